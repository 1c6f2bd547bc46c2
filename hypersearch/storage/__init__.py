"""Where studies and trials live: in memory, in a SQLite file, or in PostgreSQL.

``get_storage(url)`` opens (and if needed creates) a storage; ``get_storage(url, create=False)``
opens only one that hypersearch has already written (read-only commands), raising StorageError
"no database at PATH (nothing has run there yet?)" otherwise. SQL storages on one URL share one
small connection pool per process. A database that is busy or unreachable is retried with one
back-off policy (hypersearch/storage/retry.py): 120 s of patience by default, set by
``$HYPERSEARCH_STORAGE_PATIENCE`` (seconds) or ``patience=``. Study names are checked by
`check_study_name` (base.py) in every backend.
"""

from __future__ import annotations

import os
from typing import Any

from hypersearch.errors import StorageError
from hypersearch.storage.base import (
    Storage,
    StudyNameError,
    StudyRecord,
    StudySummary,
    check_study_name,
)
from hypersearch.storage.memory import MemoryStorage

ENV_VAR = "HYPERSEARCH_STORAGE"


def get_storage(
    storage: str | Storage | None, *, create: bool = True, patience: float | None = None,
    read_only: bool = False,
) -> Storage:
    """A storage from a URL (``sqlite:///study.db``, ``postgresql://...``), an instance, or None
    (``$HYPERSEARCH_STORAGE`` if set, else in memory).

    `create=False`: the database must already hold hypersearch's tables; nothing is created.
    `patience`: seconds to wait for an unreachable or busy database (default
    ``$HYPERSEARCH_STORAGE_PATIENCE`` or 120). `read_only`: a database URL opened for reading
    only (the dashboard beside running workers)."""
    if storage is None:
        storage = os.environ.get(ENV_VAR) or None
        if storage is None:
            storage = "memory"
    if isinstance(storage, Storage):
        return storage
    if not isinstance(storage, str):
        raise StorageError(
            f"storage must be a URL string or a Storage, got {type(storage).__name__}"
        )
    if storage in ("memory", ":memory:"):
        if not create:
            raise StorageError(
                "an in-memory storage starts empty: there is nothing to read; give the URL of "
                f"a database (sqlite:///path.db, postgresql://...) or set ${ENV_VAR}"
            )
        return MemoryStorage()
    if "://" not in storage:
        raise StorageError(
            f"storage {storage!r} is not a URL; write sqlite:///{storage} for a SQLite file "
            "or postgresql://user@host/db"
        )
    from hypersearch.storage.sql import SQLStorage  # lazy: sqlalchemy is heavy

    return SQLStorage(storage, create=create, patience=patience, read_only=read_only)


def describe(storage: Any) -> str:
    return getattr(storage, "url", type(storage).__name__)


__all__ = [
    "MemoryStorage",
    "Storage",
    "StudyNameError",
    "StudyRecord",
    "StudySummary",
    "check_study_name",
    "get_storage",
]
