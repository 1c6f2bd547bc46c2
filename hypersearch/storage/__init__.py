"""Where studies and trials live: in memory, in a SQLite file, or in PostgreSQL."""

from __future__ import annotations

import os
from typing import Any

from hypersearch.errors import StorageError
from hypersearch.storage.base import Storage, StudyRecord, StudySummary
from hypersearch.storage.memory import MemoryStorage

ENV_VAR = "HYPERSEARCH_STORAGE"


def get_storage(storage: str | Storage | None) -> Storage:
    """A storage from a URL (``sqlite:///study.db``, ``postgresql://...``), an instance, or None
    (``$HYPERSEARCH_STORAGE`` if set, else in memory)."""
    if storage is None:
        storage = os.environ.get(ENV_VAR) or None
        if storage is None:
            return MemoryStorage()
    if isinstance(storage, Storage):
        return storage
    if not isinstance(storage, str):
        raise StorageError(
            f"storage must be a URL string or a Storage, got {type(storage).__name__}"
        )
    if storage in ("memory", ":memory:"):
        return MemoryStorage()
    if "://" not in storage:
        raise StorageError(
            f"storage {storage!r} is not a URL; write sqlite:///{storage} for a SQLite file "
            "or postgresql://user@host/db"
        )
    from hypersearch.storage.sql import SQLStorage  # lazy: sqlalchemy is heavy

    return SQLStorage(storage)


def describe(storage: Any) -> str:
    return getattr(storage, "url", type(storage).__name__)


__all__ = ["MemoryStorage", "Storage", "StudyRecord", "StudySummary", "get_storage"]
