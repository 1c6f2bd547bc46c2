"""The versioned JSON API (``/api/v1/...``): read models turned into JSON, inputs checked."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from hypersearch.study import read
from hypersearch.trial import FrozenTrial


def answer(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(read.json_safe(data), status_code=status)


def study_json(row: read.StudyRow) -> dict[str, Any]:
    return {
        "name": row.name,
        "direction": row.direction,
        "metric": row.metric,
        "strategy": row.strategy,
        "scheduler": row.scheduler,
        "message": row.message,
        "created_at": row.created_at,
        "version": row.version,
        "n_trials": row.n_trials,
        "counts": row.counts,
        "running": row.running,
        "best_number": row.best_number,
        "best_value": row.best_value,
        "started_at": row.started_at,
        "last_finished_at": row.last_finished_at,
    }


def trial_json(trial: FrozenTrial, *, detail: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.value,
        "value": trial.value,
        "params": trial.display_params(),
        "metrics": trial.metrics,
        "failure_reason": trial.failure_reason,
        "started_at": trial.started_at,
        "finished_at": trial.finished_at,
        "duration": trial.duration,
        "host": trial.host,
        "worker": trial.worker,
        "parent_number": trial.parent_number,
        "lineage": trial.lineage,
    }
    if detail:
        out.update(
            failure_detail=trial.failure_detail,
            user_attrs=trial.user_attrs,
            created_at=trial.created_at,
        )
    return out


def query_int(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise read.ReadError(f"{name} must be an integer, got {text!r}") from None


def path_number(request: Request) -> int:
    text = request.path_params["number"]
    try:
        number = int(text)
    except ValueError:
        raise read.ReadError(f"a trial number is an integer, got {text!r}") from None
    if number < 0:
        raise read.ReadError(f"a trial number is at least 0, got {number}")
    return number


def states_param(request: Request) -> list[str]:
    """``state=complete&state=failed`` or ``state=complete,failed``."""
    return [s for value in request.query_params.getlist("state") for s in value.split(",") if s]


def page_args(request: Request) -> dict[str, Any]:
    return {
        "states": states_param(request),
        "sort": request.query_params.get("sort") or "number",
        "order": request.query_params.get("order") or "asc",
        "limit": query_int(request, "limit", read.DEFAULT_PAGE),
        "offset": query_int(request, "offset", 0),
    }


def studies(request: Request) -> JSONResponse:
    rows = read.list_studies(request.app.state.storage)
    return answer({"studies": [study_json(r) for r in rows]})


def study(request: Request) -> JSONResponse:
    return answer(study_json(read.study_row(request.app.state.storage, request.path_params["name"])))


def trials(request: Request) -> JSONResponse:
    page = read.trial_page(request.app.state.storage, request.path_params["name"],
                           **page_args(request))
    return answer({
        "study": page.study.name,
        "total": page.total,
        "offset": page.offset,
        "limit": page.limit,
        "sort": page.sort,
        "order": page.order,
        "states": list(page.states),
        "param_names": page.param_names,
        "trials": [trial_json(t) for t in page.trials],
    })


def trial(request: Request) -> JSONResponse:
    found = read.trial(request.app.state.storage, request.path_params["name"], path_number(request))
    return answer(trial_json(found, detail=True))


def logs(request: Request) -> JSONResponse:
    page = read.trial_logs(
        request.app.state.storage,
        request.path_params["name"],
        path_number(request),
        after=query_int(request, "after", -1),
        stream=request.query_params.get("stream") or None,
        limit=query_int(request, "limit", read.MAX_LOG_LINES),
    )
    return answer({
        "lines": [{"stream": x.stream, "seq": x.seq, "text": x.text} for x in page.lines],
        "next_after": page.next_after,
        "more": page.more,
        "finished": page.finished,
    })


def series(request: Request) -> JSONResponse:
    text = request.query_params.get("trials")
    numbers = None
    if text:
        try:
            numbers = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise read.ReadError(
                f"trials is a comma-separated list of trial numbers, got {text!r}"
            ) from None
    name = request.path_params["name"]
    record = request.app.state.storage.get_study(name)  # None: metric_series answers 404
    metric = request.query_params.get("metric") or (record and record.metric) or "value"
    curves = read.metric_series(
        request.app.state.storage, name, metric, numbers,
        max_points=query_int(request, "max_points", read.DEFAULT_POINTS),
    )
    return answer({
        "study": name,
        "metric": metric,
        "series": [
            {"number": number, "steps": [s for s, _ in points], "values": [v for _, v in points]}
            for number, points in curves.items()
        ],
    })
