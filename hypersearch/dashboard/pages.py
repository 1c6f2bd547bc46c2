"""The HTML pages, rendered by Jinja2 with autoescaping (every stored string is escaped).

Pages are server-rendered; static/dashboard.js draws the charts from the JSON API and keeps
the page live. Parts that change while a study runs (facts, the trial table) are re-fetched as
fragments: an htmx request (``HX-Request``) naming one of `FRAGMENTS` as its target gets only
that part, so a refresh never renders the rest of the page.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from hypersearch.dashboard.api import page_args, path_number, query_int
from hypersearch.dashboard.security import authorised
from hypersearch.space.distributions import Choice, Float, Integer
from hypersearch.study import read
from hypersearch.study.study import load_study

PAGE_ROWS = 25  # trials per page of the study page's table (the API's default is larger)
LOG_TAIL = 200  # lines of each stream shown when the trial page opens (then followed live)
COMPARE_MIN, COMPARE_MAX = 2, 5  # trials side by side on the compare page
# htmx targets that get a fragment instead of the whole page: {page: {target id: template}}
FRAGMENTS = {
    "study.html": {"study-facts": "_study_facts.html", "trials-block": "_trials.html",
                   "trials-table": "_trials_table.html"},
    "trial.html": {"trial-facts": "_trial_facts.html"},
    "studies.html": {"studies-block": "_studies.html"},
}


def _when(value: float | None) -> str:
    return "" if value is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


def _num(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.6g}"
    return "" if value is None else str(value)


def _short(value: Any) -> str:
    """A number for a table cell: 4 significant digits."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    return _num(value)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{value / 60:.1f} min"
    if value < 86400:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def _size(value: int | None) -> str:
    if value is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024  # type: ignore[assignment]
    return str(value)


def _pretty(value: Any) -> str:
    """JSON for a <pre> or a textarea (escaped by the template like any text)."""
    return json.dumps(read.json_safe(value), indent=2, ensure_ascii=False)


def _compact(value: Any) -> str:
    """JSON on one line, for a table cell."""
    return json.dumps(read.json_safe(value), ensure_ascii=False)


def _space_rows(space: Any) -> list[tuple[str, str]]:
    """(parameter, its distribution) for the definition; plain choices list their options."""
    if space is None:
        return []
    rows = []
    for name, text in space.describe().items():
        dist = space.params[name].dist
        if isinstance(dist, Choice) and all(
                isinstance(o, str | int | float | bool) for o in dist.options):
            text = f"choice({', '.join(_compact(o) for o in dist.options)})"
        rows.append((name, text))
    return rows


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,  # every template, whatever its name: stored strings are user input
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(when=_when, num=_num, short=_short, seconds=_seconds, size=_size,
                       pretty=_pretty, compact=_compact,
                       q=lambda s: quote(str(s), safe=""))
    return Jinja2Templates(env=env)


def _fragment(request: Request, page: str) -> str | None:
    """The id of the part of `page` an htmx request asks for, when it is a fragment."""
    target = request.headers.get("hx-target")
    if (request.headers.get("hx-request") == "true"
            and not request.headers.get("hx-history-restore-request")
            and target in FRAGMENTS.get(page, {})):
        return target
    return None


def _render(request: Request, name: str, **context: Any) -> HTMLResponse:
    """The page `name`, or only the fragment an htmx request targets (when it has one)."""
    state = request.app.state
    read_only = bool(getattr(state, "read_only", False))
    logged_in = authorised(request)
    context.update(
        read_only=read_only,
        logged_in=logged_in,
        # the controls are shown; their forms say how to log in when the request has no token
        token_needed=not read_only and getattr(state, "token", None) is not None and not logged_in,
        now=time.time(),
    )
    target = _fragment(request, name)
    templates: Jinja2Templates = state.templates
    response = templates.TemplateResponse(
        request, FRAGMENTS[name][target] if target else name, context)
    # one URL answers a page or a fragment: caches must tell them apart
    response.headers["vary"] = "HX-Request, HX-Target"
    response.headers["cache-control"] = "no-store"
    return response


def studies(request: Request) -> HTMLResponse:
    store = request.app.state.storage
    rows = [read.study_row(store, row.name) for row in read.list_studies(store)]
    return _render(request, "studies.html", studies=rows)


def _param_kinds(space: Any, names: list[str]) -> dict[str, str]:
    """{parameter: "float" | "int" | "choice" | "other"}: which ones a range can filter."""
    kinds = {}
    for name in names:
        dist = None if space is None or name not in space.params else space.params[name].dist
        kinds[name] = ("choice" if isinstance(dist, Choice) else "int" if isinstance(dist, Integer)
                       else "float" if isinstance(dist, Float) else "other")
    return kinds


def study(request: Request) -> HTMLResponse:
    store = request.app.state.storage
    name = request.path_params["name"]
    target = _fragment(request, "study.html")
    row = read.study_row(store, name)
    record = store.get_study(name)
    settings = dict(record.config.get("settings", {}))
    stopping = bool(record.config.get("control", {}).get("stop"))
    if target == "study-facts":  # the live refresh of the facts: nothing else is read
        return _render(request, "study.html", row=row, settings=settings, stopping=stopping)

    args = page_args(request)
    args["limit"] = query_int(request, "limit", PAGE_ROWS)
    page = read.trial_page(store, name, **args)
    ranges = args.get("ranges") or {}

    def query(*, keep_filter: bool = True, **changes: Any) -> dict[str, Any]:
        """This page's query arguments with some changed (sort, order, offset, state), or
        without its filter."""
        out: dict[str, Any] = {"sort": page.sort, "order": page.order, "limit": page.limit,
                               "offset": page.offset}
        if keep_filter:
            out["state"] = ",".join(page.states).lower()
            for field, (low, high) in ranges.items():
                out[f"min.{field}"], out[f"max.{field}"] = low, high
        out.update(changes)
        defaults: dict[str, Any] = {"limit": PAGE_ROWS, "offset": 0}
        if out["sort"] == "number" and out["order"] == "asc":
            defaults.update(sort="number", order="asc")  # else both: a link says its order
        return {k: _num(v) for k, v in out.items()
                if v not in ("", None) and defaults.get(k, object()) != v}

    def link(*, keep_filter: bool = True, **changes: Any) -> str:
        args = urlencode(query(keep_filter=keep_filter, **changes))
        return f"/studies/{quote(name, safe='')}" + (f"?{args}" if args else "")

    def sort_link(column: str) -> str:
        order = "desc" if page.sort == column and page.order == "asc" else "asc"
        return link(sort=column, order=order, offset=0)

    context: dict[str, Any] = dict(
        row=row, settings=settings, stopping=stopping, page=page, ranges=ranges, link=link,
        sort_link=sort_link,
        states=read.STATES, self_url=link(),
        metric_columns=list(dict.fromkeys(
            k for t in page.trials for k in t.metrics if k != (row.metric or "value"))),
        notes=page.notes,
        gpus={t.number: t.gpus for t in page.trials if t.gpus},
    )
    if target == "trials-table":
        return _render(request, "study.html", **context)

    study_obj = load_study(name, store)
    window = ("sort", "order", "limit", "offset")
    context.update(
        # the table's filter without its window: the export links and the search charts
        filter_query=urlencode({k: v for k, v in query().items() if k not in window}),
        export_query=urlencode({k: v for k, v in query().items() if k not in window[2:]}),
        kinds=_param_kinds(study_obj.space, page.param_names),
        metric_names=read.metric_names(store, name),
    )
    if target == "trials-block":
        return _render(request, "study.html", **context)

    definition = study_obj.definition.to_document()
    best_params = None
    if row.best_number is not None:
        best_params = read.trial(store, name, row.best_number).params
    return _render(
        request, "study.html", **context, revisions=definition.get("revisions", []),
        best_params=best_params, space_rows=_space_rows(study_obj.space),
    )


def trial(request: Request) -> HTMLResponse:
    store = request.app.state.storage
    name = request.path_params["name"]
    number = path_number(request)
    found = read.trial(store, name, number)
    logs = read.trial_logs(store, name, number, limit=2 * LOG_TAIL, tail=True)
    row = read.study_row(store, name)
    metrics = list(dict.fromkeys([*read.metric_names(store, name), *found.metrics]))
    return _render(
        request, "trial.html", study_name=name, row=row, trial=found, logs=logs,
        params=found.display_params(), metric_names=metrics,
        notes=read.notes(store, name, number),
        self_url=f"/studies/{quote(name, safe='')}/trials/{number}",
    )


def _compare_numbers(request: Request) -> list[int]:
    """``trials=1,2,3`` (or ``trials=1&trials=2``): 2 to 5 trial numbers."""
    parts = [p.strip() for value in request.query_params.getlist("trials")
             for p in value.split(",") if p.strip()]
    try:
        numbers = list(dict.fromkeys(int(p) for p in parts))
    except ValueError:
        raise read.ReadError(
            f"trials is a comma-separated list of trial numbers, got {','.join(parts)!r}"
        ) from None
    if not COMPARE_MIN <= len(numbers) <= COMPARE_MAX:
        raise read.ReadError(
            f"compare {COMPARE_MIN} to {COMPARE_MAX} trials (trials=1,2,3), got {len(numbers)}")
    return numbers


def compare(request: Request) -> HTMLResponse:
    """Trials side by side: parameters (differences marked), values, final metrics, curves."""
    store = request.app.state.storage
    name = request.path_params["name"]
    numbers = _compare_numbers(request)
    trials = [read.trial(store, name, n) for n in numbers]
    shown = [t.display_params() for t in trials]
    names = list(dict.fromkeys(k for p in shown for k in p))
    rows = []
    for param in names:
        values = [p.get(param) for p in shown]
        rows.append((param, values, len({json.dumps(v, default=str) for v in values}) > 1))
    metric_keys = list(dict.fromkeys(k for t in trials for k in t.metrics))
    metric_rows = []
    for metric in metric_keys:
        values = [t.metrics.get(metric) for t in trials]
        metric_rows.append((metric, values, len({repr(v) for v in values}) > 1))
    row = read.study_row(store, name)
    metrics = list(dict.fromkeys([*read.metric_names(store, name), *metric_keys]))
    return _render(
        request, "compare.html", study_name=name, row=row, trials=trials, rows=rows,
        metric_rows=metric_rows, metric_names=metrics, numbers=numbers,
        self_url=f"/studies/{quote(name, safe='')}/compare?trials={','.join(map(str, numbers))}",
    )
