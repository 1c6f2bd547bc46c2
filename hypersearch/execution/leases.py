"""The lease keeper: a daemon thread that renews this process's leases and sweeps stale trials.

It runs for as long as the study is in use, independent of new trials starting, so a trial
whose worker died is failed (reason ``stale``) within about a lease even when nothing else moves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from hypersearch.storage.base import Storage, owner_is_dead

log = logging.getLogger("hypersearch.leases")


def sweep(storage: Storage, study_id: int) -> list[int]:
    """Fail expired trials and those whose owner process on this host is gone; their numbers."""
    dead = {owner for owner in storage.running_owners(study_id) if owner_is_dead(owner)}
    swept = storage.sweep_stale(study_id, dead_owners=dead)
    if swept:
        log.warning(
            "trials %s were left running by a worker that stopped; marked failed (stale)", swept
        )
    return swept


class LeaseKeeper:
    """Renews `owner`'s leases every quarter lease and calls `sweep` (which fails, and may
    re-queue, stale trials)."""

    def __init__(
        self,
        storage: Storage,
        owner: str,
        lease_seconds: float,
        sweep: Callable[[], object],
    ) -> None:
        self.storage, self.owner = storage, owner
        self.lease_seconds = lease_seconds
        self.sweep = sweep
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hypersearch-leases", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        interval = max(self.lease_seconds / 4.0, 0.05)
        while not self._stop.wait(interval):
            try:
                self.storage.heartbeat(self.owner, self.lease_seconds)
                self.sweep()
            except Exception as error:  # keep renewing: a storage hiccup must not kill leases
                log.warning("lease renewal failed, will retry: %s", error)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
