"""The one back-off policy for a database that is busy or unreachable.

Every storage operation (including the first open of a storage, so a worker started while the
database is down behaves like one that was already running) retries transient errors the same
way: it waits 0.05 s, then twice as long each time (with jitter), at most 5 s between tries,
until its *patience* is spent; then it raises `StorageError`. The patience is 120 s by default;
set ``HYPERSEARCH_STORAGE_PATIENCE`` (seconds, 0 to fail at once) or pass ``patience=`` to
`get_storage`. While it waits it logs a warning on the ``hypersearch.storage`` logger::

    database at postgresql://u@host/db unreachable (connection refused); retrying for up to 120 s

Nothing waiting here is ever charged to a trial: the operation either succeeds late or raises
`StorageError`, which callers treat as infrastructure trouble.
"""

from __future__ import annotations

import logging
import os
import random
import time

from hypersearch.errors import StorageError, StorageUnreachable

PATIENCE_ENV = "HYPERSEARCH_STORAGE_PATIENCE"
DEFAULT_PATIENCE = 120.0
FIRST_DELAY = 0.05
MAX_DELAY = 5.0
LOG_EVERY = 15.0  # while still waiting, repeat the warning this often (seconds)

log = logging.getLogger("hypersearch.storage")


def patience_seconds(patience: float | None = None) -> float:
    """The patience to use: `patience` if given, else ``$HYPERSEARCH_STORAGE_PATIENCE``, else
    120 s."""
    source = "patience"
    if patience is None:
        text = os.environ.get(PATIENCE_ENV, "").strip()
        if not text:
            return DEFAULT_PATIENCE
        source = f"${PATIENCE_ENV}"
        try:
            patience = float(text)
        except ValueError:
            raise StorageError(f"{source} must be a number of seconds, got {text!r}") from None
    if isinstance(patience, bool) or not patience >= 0 or patience == float("inf"):
        raise StorageError(f"{source} must be a finite number of seconds >= 0, got {patience!r}")
    return float(patience)


class Backoff:
    """One operation's waits: `wait()` after each transient failure, until patience runs out."""

    def __init__(self, where: str, patience: float) -> None:
        self.where = where
        self.patience = patience
        self._start = time.monotonic()
        self._delay = FIRST_DELAY
        self._logged_at: float | None = None

    def wait(self, error: str) -> bool:
        """Log and sleep before the next try; False (no sleep) once patience is spent."""
        now = time.monotonic()
        elapsed = now - self._start
        remaining = self.patience - elapsed
        if remaining <= 0:
            return False
        what = "busy" if _is_busy(error) else "unreachable"
        if self._logged_at is None:
            log.warning(
                "database at %s %s (%s); retrying for up to %.0f s",
                self.where,
                what,
                error,
                self.patience,
            )
            self._logged_at = now
        elif now - self._logged_at >= LOG_EVERY:
            log.warning(
                "database at %s still %s after %.0f s (%s); retrying for up to %.0f s more",
                self.where,
                what,
                elapsed,
                error,
                remaining,
            )
            self._logged_at = now
        time.sleep(min(self._delay * (0.5 + random.random()), remaining))
        self._delay = min(self._delay * 2, MAX_DELAY)
        return True

    def give_up(self, error: str) -> StorageUnreachable:
        """The error to raise once `wait()` said no."""
        if self.patience <= 0:
            return StorageUnreachable(f"database at {self.where}: {error}")
        return StorageUnreachable(
            f"database at {self.where} {'busy' if _is_busy(error) else 'unreachable'} for "
            f"{self.patience:.0f} s ({error}); gave up. Check the database is running and "
            f"reachable, or wait longer with ${PATIENCE_ENV}=SECONDS"
        )

    @property
    def waited(self) -> bool:
        return self._logged_at is not None


def _is_busy(error: str) -> bool:
    text = error.lower()
    return "locked" in text or "busy" in text or "queuepool limit" in text
