from __future__ import annotations

from hypersearch.storage.sql.storage import SQLStorage

__all__ = ["SQLStorage"]
