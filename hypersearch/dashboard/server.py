"""Serve the dashboard with uvicorn (what ``hypersearch dashboard`` runs)."""

from __future__ import annotations

import sys
import webbrowser
from urllib.parse import quote

from hypersearch.dashboard.app import create_app
from hypersearch.dashboard.security import check_bind


def url_for(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://[{shown}]:{port}/" if ":" in shown else f"http://{shown}:{port}/"


def serve(
    storage: str, *, host: str = "127.0.0.1", port: int = 8080, token: str | None = None,
    open_browser: bool = False,
) -> None:
    """Serve the dashboard over the database at `storage` until interrupted."""
    import uvicorn

    check_bind(host, token)  # before opening anything: refuse fast
    app = create_app(storage, host=host, token=token)
    url = url_for(host, port)
    link = url if token is None else f"{url}login?token={quote(token, safe='')}"
    print(f"hypersearch dashboard (read-only) on {url}", file=sys.stderr)
    if token is not None:
        print(f"log in with: {link}", file=sys.stderr)
    if open_browser:
        webbrowser.open(link)
    uvicorn.run(app, host=host, port=port, log_level="warning", proxy_headers=False)
