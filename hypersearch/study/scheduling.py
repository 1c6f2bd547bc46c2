"""A study's scheduler at work: each report observed, judged, and the reason kept for a stop.

One `Scheduling` per open study handle; the report buffer asks it about every report
(`decide`), the lease keeper tells it when a trial ends (`finished`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from hypersearch.schedulers import CONTINUE, Exploit, Scheduler, StudyView, Verdict
from hypersearch.schedulers.base import stop
from hypersearch.schedulers.view import objective_metric
from hypersearch.storage.base import Storage
from hypersearch.trial import Decision, FrozenTrial, Outcome, TrialState

HandOver = Callable[[FrozenTrial, Exploit], "int | None"]


class StopRequests:
    """Trials asked to stop from outside (the dashboard, the CLI), as the study's stored control
    lists them; `read()` returns those numbers and is called at most every `every` seconds,
    so a report costs no query."""

    def __init__(self, read: Callable[[], Iterable[int]], every: float = 2.0) -> None:
        self._read, self._every = read, every
        self._numbers: frozenset[int] = frozenset()
        self._read_at = -math.inf

    def asked(self, number: int) -> bool:
        now = time.monotonic()
        if now - self._read_at >= self._every:
            self._read_at = now
            self._numbers = frozenset(self._read())
        return number in self._numbers


class Scheduling:
    """`hand_over(stopped, plan)` queues the trial that continues in a stopped one's place
    (PBT) and returns its number, or None when it cannot (the stopped trial then goes on).
    Without a scheduler only the stop requests decide."""

    def __init__(
        self,
        scheduler: Scheduler | None,
        view: StudyView | None,
        hand_over: HandOver | None = None,
        requests: StopRequests | None = None,
    ) -> None:
        self.scheduler, self.view, self.hand_over = scheduler, view, hand_over
        self.requests = requests
        self._reasons: dict[int, str] = {}  # trial number -> why it was told to stop
        self._lock = threading.Lock()

    def decide(self, trial: FrozenTrial, step: int | None, metrics: Mapping[str, float]) -> Verdict:
        if self.requests is not None and self.requests.asked(trial.number):
            verdict = stop("asked to stop (from the dashboard or the command line)")
        elif self.scheduler is None or self.view is None:
            return CONTINUE
        else:
            at = self.view.observe(trial, step, metrics)
            verdict = self.scheduler.on_report(self.view, trial, at, metrics)
        if verdict.decision is Decision.CONTINUE:
            return CONTINUE
        reason = verdict.reason
        if verdict.exploit is not None:
            successor = None if self.hand_over is None else self.hand_over(trial, verdict.exploit)
            if successor is None:
                return CONTINUE
            reason = f"{reason} (trial {successor})"
        with self._lock:
            self._reasons.setdefault(trial.number, reason)
        return verdict

    def reason(self, trial: FrozenTrial) -> str | None:
        """Why `trial` was told to stop (None: it was not)."""
        with self._lock:
            return self._reasons.get(trial.number)

    def finished(self, trial: FrozenTrial) -> None:
        with self._lock:
            self._reasons.pop(trial.number, None)
        if self.view is not None:
            self.view.finished(trial)


def settle_pruned(
    storage: Storage, trial: FrozenTrial, outcome: Outcome, metric: str | None, agg: str
) -> Outcome:
    """A PRUNED outcome without a value gets the aggregate (``metric_agg``) of what the trial
    reported of the objective metric, so a stopped trial is ranked by what it showed."""
    if outcome.state is not TrialState.PRUNED or outcome.value is not None or trial.id is None:
        return outcome
    import dataclasses

    from hypersearch.execution.metric_lines import aggregate

    points = storage.get_metrics(trial.id)
    name = objective_metric({p.name for p in points}, metric)
    if name is None:
        return outcome
    value = aggregate([p.value for p in points if p.name == name], agg)
    return outcome if value is None else dataclasses.replace(outcome, value=value)
