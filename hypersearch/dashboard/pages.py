"""The HTML pages, rendered by Jinja2 with autoescaping (every stored string is escaped)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from hypersearch.dashboard.api import page_args
from hypersearch.dashboard.security import TOKEN_COOKIE
from hypersearch.study import read

LOG_TAIL = 200  # lines of each stream on the trial page
METRIC_ROWS = 200  # reported points per metric on the trial page (downsampled)


def _when(value: float | None) -> str:
    return "" if value is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


CHART_W, CHART_H, PAD = 720, 240, 40


def history_chart(points: list[tuple[int, float, float]]) -> dict[str, Any] | None:
    """Coordinates of the optimisation-history chart (an inline SVG: no script needed):
    one dot per completed trial, the best so far as a step line."""
    if not points:
        return None
    xs = [p[0] for p in points]
    ys = [v for p in points for v in p[1:]]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    x_span, y_span = (x1 - x0) or 1, (y1 - y0) or 1.0

    def x(number: float) -> float:
        return round(PAD + (number - x0) / x_span * (CHART_W - 2 * PAD), 1)

    def y(value: float) -> float:
        return round(CHART_H - PAD - (value - y0) / y_span * (CHART_H - 2 * PAD), 1)

    line: list[str] = []
    for number, _, best in points:
        if line:
            line.append(f"{x(number)},{line[-1].split(',')[1]}")  # hold the level, then step
        line.append(f"{x(number)},{y(best)}")
    return {
        "width": CHART_W, "height": CHART_H, "pad": PAD,
        "dots": [(x(n), y(v), n, v) for n, v, _ in points],
        "best": " ".join(line),
        "x_range": (x0, x1), "y_range": (y0, y1),
    }


def make_templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,  # every template, whatever its name: stored strings are user input
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(when=_when, num=_num, seconds=_seconds,
                       q=lambda s: quote(str(s), safe=""))
    return Jinja2Templates(env=env)


def _render(request: Request, name: str, **context: Any) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    return templates.TemplateResponse(request, name, context)


def studies(request: Request) -> HTMLResponse:
    return _render(request, "studies.html", studies=read.list_studies(request.app.state.storage))


def study(request: Request) -> HTMLResponse:
    name = request.path_params["name"]
    args = page_args(request)
    page = read.trial_page(request.app.state.storage, name, **args)

    def link(**changes: Any) -> str:
        """This page's URL with some query arguments changed (sort, order, offset, state)."""
        query = {"sort": page.sort, "order": page.order, "limit": page.limit,
                 "offset": page.offset, "state": ",".join(page.states), **changes}
        query = {k: v for k, v in query.items() if v not in ("", None)}
        return f"/studies/{quote(name, safe='')}?{urlencode(query)}"

    def sort_link(column: str) -> str:
        order = "desc" if page.sort == column and page.order == "asc" else "asc"
        return link(sort=column, order=order, offset=0)

    chart = history_chart(read.history(request.app.state.storage, name))
    return _render(
        request, "study.html", page=page, row=read.study_row(request.app.state.storage, name),
        link=link, sort_link=sort_link, states=read.STATES, chart=chart,
    )


def trial(request: Request) -> HTMLResponse:
    from hypersearch.dashboard.api import path_number

    storage = request.app.state.storage
    name = request.path_params["name"]
    number = path_number(request)
    found = read.trial(storage, name, number)
    points = storage.get_metrics(found.id)
    by_metric: dict[str, list[Any]] = {}
    for point in points:
        by_metric.setdefault(point.name, []).append(point)
    shown = {metric: read.downsample(found_points, METRIC_ROWS)
             for metric, found_points in by_metric.items()}
    logs = read.trial_logs(storage, name, number, limit=2 * LOG_TAIL, tail=True)
    return _render(
        request, "trial.html", study_name=name, trial=found, metrics=shown,
        counts={m: len(p) for m, p in by_metric.items()}, logs=logs,
        params=found.display_params(),
    )


def login(request: Request) -> Response:
    """Trade the token of the login link for a cookie, then show the studies (the Guard has
    already checked the token)."""
    response = RedirectResponse("/", status_code=303)
    token = request.app.state.token
    if token is not None:
        response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
    return response
