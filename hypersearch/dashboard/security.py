"""Security defaults (DESIGN §6): loopback bind, token for anything else, Host/Origin checks.

A page served on 127.0.0.1 can still be reached by any web site the user visits, through DNS
rebinding (evil.example resolving to 127.0.0.1): the Host header check refuses such requests,
since the browser sends the attacker's name. The Origin check refuses cross-site requests of
any method but GET/HEAD/OPTIONS (CSRF). Every other method (the controls) needs the token;
reads need it too when `reads_need_token` (a token file was given, or the bind is not
loopback). The token travels as ``Authorization: Bearer`` or as the cookie that the login link
sets (HttpOnly, SameSite=Strict).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hypersearch.errors import HypersearchError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
TOKEN_COOKIE = "hs_token"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]],
                   Awaitable[None]]


class DashboardError(HypersearchError, ValueError):
    """The dashboard cannot start as asked (a non-loopback bind without a token...)."""


def is_loopback(host: str) -> bool:
    """True for localhost and the loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name other than localhost: it may resolve anywhere


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise DashboardError(
            f"refusing to serve the dashboard on {host!r} without a token: that address is "
            "reachable from other machines; give --token-file FILE (a file holding a secret), "
            "or keep the default --host 127.0.0.1"
        )


def read_token(path: str | Path) -> str:
    """The token in file `path` (surrounding whitespace removed); it must not be empty."""
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise DashboardError(f"cannot read the token file {str(path)!r}: {error}") from None
    if len(token) < 16:
        raise DashboardError(
            f"the token in {str(path)!r} is {len(token)} characters long; use at least 16 "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE)"
        )
    return token


def _host_name(value: str) -> str:
    """The name part of a Host header (``[::1]:8080`` -> ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _same_origin(origin: str, host: str) -> bool:
    """Whether a browser's Origin is this dashboard's own address: scheme http(s), and host and
    port those of the Host header (another local server, on another port, is another site)."""
    if origin == "null":
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    default = {"http": "80", "https": "443"}[parts.scheme]

    def with_port(netloc: str) -> str:
        netloc = netloc.strip().lower()
        bare = netloc.rsplit("]", 1)[-1] if netloc.startswith("[") else netloc
        return netloc if ":" in bare else f"{netloc}:{default}"

    return with_port(parts.netloc) == with_port(host)


class Guard:
    """ASGI middleware: Host check, Origin check on unsafe methods, and the token if set."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        bind_host: str,
        token: str | None,
        allowed_hosts: Iterable[str] = (),
        reads_need_token: bool = True,
    ) -> None:
        self.app = app
        self.token = token
        self.reads_need_token = reads_need_token
        bind = bind_host.strip().strip("[]").lower()
        # a wildcard bind answers on every name of the machine: the token guards it instead
        self.any_host = bind in ("0.0.0.0", "::", "")
        self.hosts = {*LOOPBACK_NAMES, bind, *(h.lower() for h in allowed_hosts)}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        state = scope.setdefault("state", {})
        state["authorised"] = self.token is not None and self._authorised(scope, headers)
        if refusal is not None:
            status, message = refusal
            await _send_json(send, status, message)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        host = _host_name(headers.get("host", ""))
        if not self.any_host and host not in self.hosts:
            return 421, (
                f"Host {headers.get('host', '')!r} is not this dashboard's address; open it as "
                "http://127.0.0.1:PORT/ (requests naming another host are refused against DNS "
                "rebinding)"
            )
        if scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and not _same_origin(origin, headers.get("host", "")):
                return 403, f"cross-site request from Origin {origin!r} refused"
        needs = self.reads_need_token or scope["method"] not in SAFE_METHODS
        if self.token is not None and needs and not self._authorised(scope, headers):
            return 401, (
                "this dashboard needs its token: open the login link printed when it started "
                "(/login?token=...), or send the header 'Authorization: Bearer TOKEN'"
            )
        return None

    def _authorised(self, scope: Scope, headers: dict[str, str]) -> bool:
        assert self.token is not None
        given: list[str] = []
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        for part in headers.get("cookie", "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == TOKEN_COOKIE:
                given.append(value)
        if scope["path"] == "/login":
            given.extend(parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", []))
        return any(token_matches(g, self.token) for g in given)


def token_matches(given: str, token: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def authorised(request: Any) -> bool:
    """Whether `request` carries the dashboard's token (set by the Guard)."""
    return bool(getattr(request.state, "authorised", False))


def login(request: Any) -> Any:
    """``/login?token=...``: trade a correct token for a cookie, then show the studies; a
    wrong or missing token is refused (the cookie is never set without it)."""
    from starlette.responses import JSONResponse, RedirectResponse

    token = request.app.state.token
    given = request.query_params.get("token", "")
    if token is None or not token_matches(given, token):
        return JSONResponse({"error": {"status": 401, "message": (
            "wrong or missing token: use the login link printed when the dashboard started")}},
            status_code=401)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
    return response


async def _send_json(send: Any, status: int, message: str) -> None:
    body = json.dumps({"error": {"status": status, "message": message}}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
