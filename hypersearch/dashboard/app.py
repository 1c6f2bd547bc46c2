"""The Starlette app: routes, error answers (4xx with a message, never a bare 500), headers."""

from __future__ import annotations

import html
import logging
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from hypersearch.dashboard import api, pages
from hypersearch.dashboard.openapi import document
from hypersearch.dashboard.security import Guard, check_bind, login
from hypersearch.errors import HypersearchError, StudyNotFoundError
from hypersearch.storage import Storage, get_storage
from hypersearch.storage.base import StudyNameError
from hypersearch.storage.sql.engines import ReadOnlyStorageError
from hypersearch.study.read import ReadError, TrialNotFoundError

log = logging.getLogger("hypersearch.dashboard")

# Scripts and styles only from this server's files: no inline script, handler or style, no
# eval. plotly.js is the "strict" bundle (its WebGL traces, parcoords among them, are compiled
# ahead of time instead of with `new Function`, which the full bundle needs: 'unsafe-eval'), and
# the rules plotly.js would inject in a <style> element are served as static/vendor/plotly.css.
# The style attributes plotly.js sets through setAttribute are refused without visible effect
# (the DOM comes out the same as with them allowed, checked in Chromium). connect-src: the
# pages' own JSON API.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def _status(error: Exception) -> int:
    if isinstance(error, StudyNotFoundError | TrialNotFoundError):
        return 404
    if isinstance(error, api.ReadOnlyError | ReadOnlyStorageError):
        return 405
    if isinstance(error, ReadError | StudyNameError):
        return 422
    return 503  # a storage that is busy or unreachable: try again later


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": {"status": status, "message": message}}, status_code=status)
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>hypersearch: error</title>"
        "<link rel='stylesheet' href='/static/style.css'></head><body><main>"
        f"<h1>{status}</h1><p class='error'>{html.escape(message)}</p>"
        "<p><a href='/'>all studies</a></p></main></body></html>"
    )
    return HTMLResponse(page, status_code=status)


async def _hypersearch_error(request: Request, error: Exception) -> Response:
    status = _status(error)
    if status == 503:
        log.warning("dashboard: %s", error)
    return _error(request, status, str(error))


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = {404: f"no such page: {request.url.path}",
               405: f"{request.method} is not allowed on {request.url.path}"}
    response = _error(request, error.status_code,
                      message.get(error.status_code, str(error.detail)))
    response.headers.update(error.headers or {})  # a 405 names what is allowed (Allow)
    return response


async def _unexpected(request: Request, error: Exception) -> Response:
    log.exception("dashboard: unexpected error on %s", request.url.path)
    return _error(request, 500, f"internal error ({type(error).__name__}); see the server log")


class _Headers:
    """ASGI middleware adding SECURITY_HEADERS to every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()
                         if k.encode() not in have]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


def openapi(request: Request) -> JSONResponse:
    return JSONResponse(document())


class _Writer:
    """The storage the controls write through: the one given, or (for a URL) a writing one
    opened on first use."""

    def __init__(self, storage: Storage | str) -> None:
        self._given, self._opened = storage, None if isinstance(storage, str) else storage
        self._lock = threading.Lock()

    def __call__(self) -> Storage:
        with self._lock:
            if self._opened is None:
                self._opened = get_storage(str(self._given), create=False)
            return self._opened


def create_app(
    storage: Storage | str,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    read_only: bool = False,
    allowed_hosts: Iterable[str] = (),
) -> Starlette:
    """The dashboard over `storage` (a Storage, or the URL of an existing database), as served
    on `host`; refuses a non-loopback `host` without a `token`. With a `token` every request
    needs it; without one (loopback only) reads are open and, unless `read_only`, the controls
    get a random token of their own (`app.state.token`, given out as the login link)."""
    check_bind(host, token)
    reads_need_token = token is not None
    if token is None and not read_only:
        token = secrets.token_urlsafe(24)
    # a URL is read through connections that cannot write, so a running worker never waits
    # on the dashboard; the controls open a writing storage when first used
    if isinstance(storage, str):
        store = get_storage(storage, create=False, read_only=True)
    else:
        store = storage
    study = "/studies/{name}"
    trial = study + "/trials/{number}"
    v1 = "/api/v1"
    post = ["POST"]
    routes = [
        Route("/", pages.studies, name="studies"),
        Route("/login", login),
        Route(study, pages.study, name="study"),
        Route(study + "/compare", pages.compare, name="compare"),
        Route(trial, pages.trial, name="trial"),
        Route("/api/openapi.json", openapi),
        Route(v1 + "/studies", api.studies),
        Route(v1 + study, api.study),
        Route(v1 + study + "/version", api.version),
        Route(v1 + study + "/history", api.history),
        Route(v1 + study + "/series", api.series),
        Route(v1 + study + "/points", api.points),
        Route(v1 + study + "/importance", api.importance),
        Route(v1 + study + "/timeline", api.timeline),
        Route(v1 + study + "/definition", api.definition),
        Route(v1 + study + "/export", api.export),
        Route(v1 + study + "/trials", api.trials),
        Route(v1 + trial, api.trial),
        Route(v1 + trial + "/logs", api.logs),
        Route(v1 + trial + "/files", api.trial_files),
        Route(v1 + trial + "/files/{id}", api.trial_file),
        Route(v1 + trial + "/notes", api.notes, methods=["GET", "POST"]),
        Route(v1 + study + "/stop", api.stop_study, methods=post),
        Route(v1 + trial + "/stop", api.stop_trial, methods=post),
        Route(v1 + study + "/enqueue", api.enqueue, methods=post),
        Route(v1 + study + "/budget", api.budget, methods=post),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(_Headers),
            Middleware(Guard, bind_host=host, token=token, allowed_hosts=allowed_hosts,
                       reads_need_token=reads_need_token),
            Middleware(GZipMiddleware, minimum_size=2048),
        ],
        exception_handlers={
            HypersearchError: _hypersearch_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.storage = store
    app.state.writer = _Writer(storage)
    app.state.token = token
    app.state.read_only = read_only
    app.state.templates = pages.make_templates()
    return app
