"""Serve the dashboard with uvicorn: in the foreground (``hypersearch dashboard``) or beside a
running search (``--dashboard``, ``hs.minimize(..., dashboard=True)``)."""

from __future__ import annotations

import socket
import sys
import threading
import time
import webbrowser
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypersearch.dashboard.app import create_app
from hypersearch.dashboard.security import DashboardError, check_bind


def url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def login_link(url: str, token: str | None) -> str:
    return url if token is None else f"{url}login?token={quote(token, safe='')}"


def _announce(url: str, app: Any, read_only: bool) -> str:
    token = app.state.token
    kind = "read-only" if read_only else "controls need the login link"
    print(f"hypersearch dashboard on {url} ({kind})", file=sys.stderr)
    if token is not None:
        print(f"log in with: {login_link(url, token)}", file=sys.stderr)
    return login_link(url, token)


def serve(
    storage: str, *, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
    read_only: bool = False, open_browser: bool = False,
) -> None:
    """Serve the dashboard over the database at `storage` until interrupted."""
    import uvicorn

    check_bind(host, token)  # before opening anything: refuse fast
    app = create_app(storage, host=host, token=token, read_only=read_only)
    link = _announce(url_for(host, port), app, read_only)
    if open_browser:
        webbrowser.open(link)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)


@dataclass
class Background:
    """A dashboard serving in a daemon thread; `stop()` ends it."""

    url: str
    login_url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def start_background(
    storage: Any, *, host: str = "127.0.0.1", port: int = 8080, read_only: bool = False,
) -> Background:
    """Start the dashboard beside a search, on `port` or, when that is taken, the next free
    one (up to 20 further); print its URL and login link."""
    import uvicorn

    chosen = next((p for p in range(port, port + 21) if _port_free(host, p)), None)
    if chosen is None:
        raise DashboardError(f"no free port for the dashboard from {port} to {port + 20}")
    app = create_app(storage, host=host, read_only=read_only)
    config = uvicorn.Config(app, host=host, port=chosen, log_level="warning",
                            proxy_headers=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="hypersearch-dashboard", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise DashboardError(f"the dashboard did not start on {host}:{chosen}")
    url = url_for(host, chosen)
    return Background(url, _announce(url, app, read_only), server, thread)
