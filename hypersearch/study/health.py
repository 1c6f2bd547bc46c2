"""Worker health: a process whose trials keep failing while other workers' trials complete is
a bad machine (a broken GPU, a missing library), not a run of bad configurations. It
quarantines itself for the study: recorded in the study's control, listed by `hypersearch
workers STUDY`, lifted with ``hypersearch workers STUDY --lift HOST:PID``.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from hypersearch.trial import FailureReason, Outcome, TrialState

if TYPE_CHECKING:
    from hypersearch.study.study import Study

TRIPS_AFTER = 5  # failed trials in a row...
WITHIN = 120.0  # ...within this many seconds
# endings that say nothing about the machine: asked for, or the worker itself went away
_NOT_THE_MACHINE = {FailureReason.KILLED.value, FailureReason.INTERRUPTED.value,
                    FailureReason.STALE.value}


def process_name(owner: str) -> str:
    """"host:pid" of a lease owner (host:pid:start:random)."""
    host, _, rest = owner.partition(":")
    return f"{host}:{rest.partition(':')[0]}"


class Breaker:
    """Counts this process's failed trials in a row; `observe` says when to quarantine."""

    def __init__(self, trips_after: int = TRIPS_AFTER, within: float = WITHIN) -> None:
        self.trips_after, self.within = trips_after, within
        self._failed: deque[float] = deque(maxlen=trips_after)

    def observe(self, outcome: Outcome, now: float | None = None) -> bool:
        """True when the last `trips_after` trials all failed within `within` seconds."""
        if outcome.state is not TrialState.FAILED:
            self._failed.clear()
            return False
        if outcome.failure_reason in _NOT_THE_MACHINE:
            return False
        self._failed.append(time.monotonic() if now is None else now)
        return (len(self._failed) == self.trips_after
                and self._failed[-1] - self._failed[0] <= self.within)


def others_succeed(study: Study, owner: str, within: float = WITHIN) -> bool:
    """Whether another process completed a trial of `study` in the `within` seconds before
    this one's last failure (database times: no clock of ours is compared with another's)."""
    outlines = study.storage.trial_outlines(study.id, latest=500)
    mine = [o.finished_at for o in outlines
            if o.owner == owner and o.state is TrialState.FAILED and o.finished_at is not None]
    if not mine:
        return False
    since = max(mine) - within
    return any(o.state is TrialState.COMPLETE and o.owner != owner and o.finished_at is not None
               and o.finished_at >= since for o in outlines)
