"""The hypersearch dashboard: a read-only web view of stored studies (first slice).

``hypersearch dashboard --storage URL`` serves it; `create_app` builds the Starlette app for
tests and embedding. It reads only through `hypersearch.study.read`, so every page and JSON
answer is bounded, and it has no route that changes anything. Needs the ``dashboard`` extra
(starlette, uvicorn, jinja2); ``import hypersearch`` never imports it.
"""

from __future__ import annotations

from hypersearch.dashboard.app import create_app
from hypersearch.dashboard.security import DashboardError, check_bind, read_token

__all__ = ["DashboardError", "check_bind", "create_app", "read_token"]
