"""The versioned JSON API (``/api/v1/...``): read models turned into JSON, inputs checked;
the controls (POST) change the stored study through the public Study API, so every worker sees
them."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from hypersearch.dashboard import files
from hypersearch.errors import HypersearchError
from hypersearch.study import read
from hypersearch.study.importance import METHOD, param_importance
from hypersearch.study.study import load_study
from hypersearch.trial import FrozenTrial

MAX_NOTE = 10_000  # characters of one note
MAX_BODY = 1_000_000  # bytes of a control's request body


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
        "gpus": trial.gpus,
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
    if not 0 <= number <= read.MAX_INT:
        raise read.ReadError(f"a trial number is from 0 to {read.MAX_INT}, got {number}")
    return number


def states_param(request: Request) -> list[str]:
    """``state=complete&state=failed`` or ``state=complete,failed``."""
    return [s for value in request.query_params.getlist("state") for s in value.split(",") if s]


def ranges_param(request: Request) -> dict[str, tuple[float | None, float | None]]:
    """``min.FIELD=x`` and ``max.FIELD=y`` (FIELD: value, duration, a parameter, metrics.M)."""
    ranges: dict[str, list[float | None]] = {}
    for key, text in request.query_params.multi_items():
        bound, _, name = key.partition(".")
        if bound not in ("min", "max") or not name or text == "":
            continue
        try:
            number = float(text)
        except ValueError:
            raise read.ReadError(f"{key} must be a number, got {text!r}") from None
        if math.isnan(number):
            raise read.ReadError(f"{key} must be a number, got {text!r}")
        ranges.setdefault(name, [None, None])[bound == "max"] = number
    return {name: (low, high) for name, (low, high) in ranges.items()}


def filter_param(request: Request) -> read.TrialFilter:
    return read.TrialFilter(tuple(states_param(request)), ranges_param(request))


def page_args(request: Request) -> dict[str, Any]:
    return {
        "states": states_param(request),
        "ranges": ranges_param(request),
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
        "trials": [{**trial_json(t), "note": page.notes.get(t.number)} for t in page.trials],
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
    store = request.app.state.storage
    record = store.get_study(name)  # None: curves answers 404
    metric = request.query_params.get("metric") or (record and record.metric) or "value"
    found = read.curves(store, name, metric, numbers,
                        max_points=query_int(request, "max_points", read.DEFAULT_POINTS))
    return answer({
        "study": name,
        "metric": metric,
        "metrics": read.metric_names(store, name),
        "series": [
            {"number": c.number, "state": c.state, "steps": [s for s, _ in c.points],
             "values": [v for _, v in c.points]}
            for c in found
        ],
    })


def version(request: Request) -> JSONResponse:
    now = read.activity(request.app.state.storage, request.path_params["name"])
    return answer({"version": now.version, "reports": now.reports, "running": now.running})


def history(request: Request) -> JSONResponse:
    store, name = request.app.state.storage, request.path_params["name"]
    points = read.history(store, name, max_points=query_int(request, "max_points",
                                                            read.MAX_POINTS))
    return answer({
        "direction": store.get_study(name).direction,
        "points": [{"number": n, "value": v, "best": b} for n, v, b in points],
    })


def points(request: Request) -> JSONResponse:
    found = read.search_points(request.app.state.storage, request.path_params["name"],
                               filter_param(request),
                               limit=query_int(request, "limit", read.DEFAULT_SEARCH_POINTS))
    return answer({
        "total": found.total,
        "params": [{"name": p.name, "kind": p.kind, "log": p.log, "low": p.low,
                    "high": p.high, "options": p.options} for p in found.params],
        "trials": [{"number": t.number, "value": t.value, "params": t.display_params()}
                   for t in found.trials],
    })


def importance(request: Request) -> JSONResponse:
    found = read.search_points(request.app.state.storage, request.path_params["name"])
    scores = param_importance([t.display_params() for t in found.trials],
                              [t.value for t in found.trials])  # type: ignore[misc]
    return answer({
        "method": METHOD,
        "n_trials": len(found.trials),
        "importance": [{"name": k, "importance": v} for k, v in scores.items()],
    })


def timeline(request: Request) -> JSONResponse:
    found = read.timeline(request.app.state.storage, request.path_params["name"],
                          limit=query_int(request, "limit", read.MAX_TIMELINE))
    return answer({"trials": [
        {"number": o.number, "state": o.state.value, "host": o.host, "worker": o.worker,
         "started_at": o.started_at, "finished_at": o.finished_at} for o in found]})


def definition(request: Request) -> JSONResponse:
    document = read.definition(request.app.state.storage, request.path_params["name"])
    return answer({"definition": document, "revisions": document.get("revisions", [])})


def export(request: Request) -> Response:
    kind = request.query_params.get("format") or "csv"
    if kind not in ("csv", "json"):
        raise read.ReadError(f"format must be 'csv' or 'json', got {kind!r}")
    order = request.query_params.get("order") or "asc"
    if order not in ("asc", "desc"):
        raise read.ReadError(f"order must be 'asc' or 'desc', got {order!r}")
    name = request.path_params["name"]
    rows = read.export_trials(
        request.app.state.storage, name, filter_param(request),
        sort=request.query_params.get("sort") or "number",
        order=order,
    )
    filename = f"{files.safe_name(name)}-trials.{kind}"
    headers = {"content-disposition": f'attachment; filename="{filename}"'}
    if kind == "json":
        return JSONResponse(read.json_safe(rows), headers=headers)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def _cell(value: Any) -> Any:
    """A CSV cell; text that a spreadsheet would run as a formula is quoted with an apostrophe."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def trial_files(request: Request) -> JSONResponse:
    found = read.trial(request.app.state.storage, request.path_params["name"],
                       path_number(request))
    listing = files.listing(request.app.state.storage, request.path_params["name"], found)
    return answer({
        "root": listing.root,
        "files": [{"id": f.id, "path": f.path, "size": f.size} for f in listing.files],
        "more": listing.more,
    })


def trial_file(request: Request) -> Response:
    found = read.trial(request.app.state.storage, request.path_params["name"],
                       path_number(request))
    listing = files.listing(request.app.state.storage, request.path_params["name"], found)
    chosen = listing.find(request.path_params["id"])
    if chosen is None:
        raise read.TrialNotFoundError(
            f"trial {found.number} has no file with id {request.path_params['id']!r}; list "
            "them at .../files"
        )
    return FileResponse(chosen.absolute, media_type="application/octet-stream",
                        filename=chosen.path.rsplit("/", 1)[-1])


async def notes(request: Request) -> JSONResponse:
    if request.method == "POST":
        return await add_note(request)
    found = read.notes(request.app.state.storage, request.path_params["name"],
                       path_number(request))
    return answer({"notes": [{"text": n.text, "created_at": n.created_at} for n in found]})


# -- controls ---------------------------------------------------------------------------------


async def body_fields(request: Request) -> dict[str, Any]:
    """A control's arguments: a JSON object, or a form (application/x-www-form-urlencoded)."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise read.ReadError(f"request body over {MAX_BODY} bytes")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not raw.strip():
        return {}
    if kind == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            raise read.ReadError("the form body is not valid UTF-8 url-encoded fields") from None
        return {k: v[-1] for k, v in form.items()}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise read.ReadError("the body must be a JSON object (or a url-encoded form)") from None
    if not isinstance(data, dict):
        raise read.ReadError(f"the body must be a JSON object, got {type(data).__name__}")
    return data


def _control_study(request: Request) -> Any:
    if request.app.state.read_only:
        raise ReadOnlyError("this dashboard is read-only (--read-only): controls are off")
    return load_study(request.path_params["name"], request.app.state.writer())


class ReadOnlyError(HypersearchError):
    """A control was asked of a read-only dashboard."""


async def stop_study(request: Request) -> JSONResponse:
    study = _control_study(request)
    study.request_stop()
    return answer({"ok": True, "message": f"asked every worker of {study.name!r} to stop"})


async def stop_trial(request: Request) -> JSONResponse:
    study = _control_study(request)
    number = path_number(request)
    try:
        study.stop_trial(number)
    except HypersearchError as error:
        if study.storage.get_trial(study.id, number) is None:
            raise read.TrialNotFoundError(str(error)) from None
        raise read.ReadError(str(error)) from None
    return answer({"ok": True, "message": f"trial {number} stops at its next report "
                                          "(it ends PRUNED, its curve kept)"})


async def enqueue(request: Request) -> JSONResponse:
    study = _control_study(request)
    fields = await body_fields(request)
    params = fields.get("params")
    if isinstance(params, str):
        try:
            params = json.loads(params)
        except ValueError as error:
            raise read.ReadError(f"params is not valid JSON: {error}") from None
    if not isinstance(params, dict):
        raise read.ReadError('give the configuration as {"params": {name: value, ...}}')
    try:
        number = study.enqueue(params)
    except (HypersearchError, ValueError, TypeError) as error:
        raise read.ReadError(f"these parameters do not fit the space: {error}") from None
    return answer({"ok": True, "number": number, "message": f"queued as trial {number}"})


BUDGET = {"max_trials": int, "max_time": float}


async def budget(request: Request) -> JSONResponse:
    study = _control_study(request)
    fields = await body_fields(request)
    unknown = sorted(set(fields) - set(BUDGET))
    if unknown:
        raise read.ReadError(f"unknown field {unknown[0]!r}; the budget has: "
                             f"{', '.join(BUDGET)}")
    given: dict[str, Any] = {}
    for name, kind in BUDGET.items():
        value = fields.get(name)
        if value is None or value == "":
            continue
        try:
            number = kind(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (kind is int and isinstance(value, float)
                              and not value.is_integer()):
            raise read.ReadError(f"{name} must be a {'whole ' if kind is int else ''}number, "
                                 f"got {value!r}")
        given[name] = number
    if not given:
        raise read.ReadError("give max_trials and/or max_time")
    try:
        changes = study.revise(**given)
    except (HypersearchError, ValueError) as error:
        raise read.ReadError(str(error)) from None
    return answer({"ok": True, "changes": changes})


async def add_note(request: Request) -> JSONResponse:
    if request.app.state.read_only:
        raise ReadOnlyError("this dashboard is read-only (--read-only): notes are off")
    store, name = request.app.state.storage, request.path_params["name"]
    found = read.trial(store, name, path_number(request))
    text = (await body_fields(request)).get("text")
    if not isinstance(text, str) or not text.strip():
        raise read.ReadError("a note needs text")
    if len(text) > MAX_NOTE:
        raise read.ReadError(f"a note is at most {MAX_NOTE} characters, got {len(text)}")
    writer = request.app.state.writer()
    writer.add_note(writer.get_study(name).id, found.number, text.strip())
    return answer({"ok": True})
