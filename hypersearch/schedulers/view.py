"""What a scheduler may know of a study: stored reports, read in bulk and cached.

`StudyView` answers the two questions schedulers ask — "the values of metric M at step s of
the other trials, ranked" and "how many trials completed" — with one storage query per
question (`Storage.metric_at_step`), then keeps the answer current from this process's own
reports and finishes as they happen. What other processes store is picked up when an answer is
older than `refresh` seconds (never for in-memory storage, which no other process shares). So a
report costs a dict update and a `bisect`, flat in the number of trials, and a second worker or a
resumed study computes its answers from the same stored rows.

Values are kept as *losses*: the metric times the study's sign, so lower is better everywhere.

Example::

    view = StudyView(storage, study_id, "minimize", "val_loss", refresh=2.0)
    step = view.observe(trial, 3, {"val_loss": 0.4})
    ranked = view.ranked("val_loss", 3, at="after")  # sorted losses of trials that reached 3
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from hypersearch.storage.base import Storage
from hypersearch.trial import FrozenTrial, TrialState

log = logging.getLogger("hypersearch.schedulers")

# Rungs count trials that ran or run to their end; a FAILED trial (interrupted, stale, crashed)
# is left out, so a trial re-run after a crash is not counted twice.
ALIVE = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)


@dataclass
class Curve:
    """This process's view of one running trial's objective metric."""

    reports: int = 0  # reports so far, with or without the metric
    n: int = 0  # reports of the metric so far, this one included
    step: int = -1  # the step of the latest report
    previous_step: int = -1  # the step of the report before it (-1: none)
    best: float = math.inf  # best loss so far (NaN reports are not counted)
    since_best: int = 0  # reports since the best one improved
    last: float = math.nan  # the latest loss
    losses: list[float] = field(default_factory=list)  # every loss reported, in order


@dataclass
class _Ranking:
    """Losses at one step: stored ones (re-read after `refresh`) and this process's since."""

    stored: dict[int, float]
    local: dict[int, float] = field(default_factory=dict)
    sorted: list[float] = field(default_factory=list)
    fetched_at: float = 0.0

    def rebuild(self) -> None:
        merged = {**self.stored, **self.local}
        self.sorted = sorted(v for v in merged.values() if not math.isnan(v))

    def add(self, number: int, loss: float) -> None:
        if number in self.stored or number in self.local:
            return  # a trial enters a ranking once: its first report there
        self.local[number] = loss
        if not math.isnan(loss):
            bisect.insort(self.sorted, loss)


_Key = tuple[str, int, str, bool, int]  # metric, step, at, completed only, group


class StudyView:
    """The stored reports of one study as schedulers read them (thread-safe)."""

    def __init__(
        self,
        storage: Storage,
        study_id: int,
        direction: str,
        metric: str | None,
        *,
        refresh: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
    ) -> None:
        self.storage, self.study_id, self.metric = storage, study_id, metric
        self.seed = seed  # the study's: schedulers that draw seed their generators with it
        self.sign = -1.0 if direction == "maximize" else 1.0
        self.refresh = refresh
        self.clock = clock
        self._lock = threading.Lock()
        self._curves: dict[int, Curve] = {}  # trial number -> curve (running here)
        self._rankings: dict[_Key, _Ranking] = {}
        # metric -> the rankings of running trials' reports (not completed-only): what a report
        # of that metric may enter, so a report looks at those alone
        self._watching: dict[str, list[tuple[_Key, _Ranking]]] = {}
        self._groups: dict[_Key, Callable[[int], int] | None] = {}
        self._complete: tuple[int, float] | None = None  # (count, when read)
        self._complete_here = 0  # completions seen here since that read
        self._running: tuple[set[int], float] | None = None  # (RUNNING per storage, when read)
        self._ended_here: set[int] = set()  # trials run here that ended since that read
        self._warned = False

    # -- the trial reporting -------------------------------------------------------------------

    def metric_of(self, metrics: Mapping[str, float]) -> str | None:
        """The name of the objective metric in a report (see `objective_metric`)."""
        name = objective_metric(metrics, self.metric)
        if name is None and self.metric is None and not self._warned:
            self._warned = True
            log.warning(
                "reports carry several metrics (%s) and the study names none: the scheduler "
                "cannot tell which to judge; give the study metric=NAME",
                ", ".join(sorted(metrics)),
            )
        return name

    def observe(self, trial: FrozenTrial, step: int | None, metrics: Mapping[str, float]) -> int:
        """Take in a report of `trial` (running in this process) before the scheduler judges
        it; returns its step (a report without one counts as the number of reports before it).
        Reports without the objective metric only count."""
        name = self.metric_of(metrics)
        with self._lock:
            curve = self._curves.get(trial.number)
            if curve is None:
                curve = self._curves[trial.number] = Curve()
            at = curve.reports if step is None else step
            curve.reports += 1
            if name is None:
                return at
            loss = self.sign * float(metrics[name])
            curve.n += 1
            curve.previous_step, curve.step, curve.last = curve.step, at, loss
            curve.losses.append(loss)
            if loss < curve.best:
                curve.best, curve.since_best = loss, 0
            elif not math.isnan(loss):
                curve.since_best += 1
            for key, ranking in self._watching.get(name, ()):
                _metric, rung, how, _completed, group = key
                group_of = self._groups[key]
                if group_of is not None and group_of(trial.number) != group:
                    continue
                if (how == "after" and at >= rung) or (how == "exact" and at == rung):
                    ranking.add(trial.number, loss)
        return at

    def curve(self, trial: FrozenTrial) -> Curve | None:
        return self._curves.get(trial.number)

    def finished(self, trial: FrozenTrial) -> None:
        """`trial` (run here) ended: forget its curve; a completed one enters the rankings of
        completed trials (its stored curve, read once)."""
        with self._lock:
            self._curves.pop(trial.number, None)
            self._ended_here.add(trial.number)
            if trial.state is not TrialState.COMPLETE:
                return
            self._complete_here += 1
            wanted = [key for key in self._rankings if key[3]]
        if not wanted or trial.id is None:
            return
        points = {
            (p.name, p.step): self.sign * p.value
            for p in self.storage.get_metrics(trial.id)
            if p.step is not None
        }
        with self._lock:
            for key in wanted:
                metric, step, _how, _completed, group = key
                group_of = self._groups[key]
                if group_of is not None and group_of(trial.number) != group:
                    continue
                loss = points.get((metric, step))
                if loss is not None:
                    self._rankings[key].add(trial.number, loss)

    # -- what schedulers ask -------------------------------------------------------------------

    def ranked(
        self,
        metric: str,
        step: int,
        *,
        at: str = "exact",
        completed: bool = False,
        group: int = 0,
        group_of: Callable[[int], int] | None = None,
    ) -> list[float]:
        """Sorted losses (NaN left out) of metric `metric` at `step` (`at`: "exact" or
        "after", as `Storage.metric_at_step`) over the study's trials: completed ones, or all
        that ran or run to their end; only those with ``group_of(number) == group`` when
        `group_of` is given. The list is the view's own: do not change it."""
        key = (metric, step, at, completed, group)
        now = self.clock()
        with self._lock:
            ranking = self._rankings.get(key)
            if ranking is not None and now - ranking.fetched_at <= self.refresh:
                return ranking.sorted
        stored = self.storage.metric_at_step(
            self.study_id,
            metric,
            step,
            at=at,
            states=(TrialState.COMPLETE,) if completed else ALIVE,
        )
        if group_of is not None:
            stored = {n: v for n, v in stored.items() if group_of(n) == group}
        stored = {n: self.sign * v for n, v in stored.items()}
        with self._lock:
            ranking = self._rankings.get(key)
            if ranking is None:
                ranking = self._rankings[key] = _Ranking(stored)
                self._groups[key] = group_of
                if not completed:
                    self._watching.setdefault(metric, []).append((key, ranking))
            else:  # what this process added is stored by now, or still only here
                ranking.stored = stored
                ranking.local = {n: v for n, v in ranking.local.items() if n not in stored}
            if not completed:  # trials running here whose report is not stored yet
                for number, curve in self._curves.items():
                    if (
                        (group_of is None or group_of(number) == group)
                        and (curve.step == step or (at == "after" and curve.step >= step))
                        and number not in ranking.stored
                    ):
                        ranking.local.setdefault(number, curve.last)
            ranking.fetched_at = now
            ranking.rebuild()
            return ranking.sorted

    def members(self, metric: str, step: int, *, at: str = "exact") -> dict[int, float]:
        """{trial number: loss} behind `ranked` (same arguments; NaN left out)."""
        self.ranked(metric, step, at=at)
        with self._lock:
            ranking = self._rankings[(metric, step, at, False, 0)]
            merged = {**ranking.stored, **ranking.local}
        return {n: v for n, v in merged.items() if not math.isnan(v)}

    def running(self) -> set[int]:
        """Numbers of the study's running trials: those reporting here, and those storage had
        RUNNING at the last read (re-read after `refresh`), less those that ended here since."""
        now = self.clock()
        with self._lock:
            fresh = self._running is not None and now - self._running[1] <= self.refresh
        if not fresh and self.refresh != math.inf:
            stored = {
                t.number
                for t in self.storage.get_trials(self.study_id, states=[TrialState.RUNNING])
            }
            with self._lock:
                self._running, self._ended_here = (stored, now), set()
        with self._lock:
            stored = self._running[0] if self._running is not None else set()
            return (stored - self._ended_here) | set(self._curves)

    def n_complete(self) -> int:
        """Completed trials of the study."""
        now = self.clock()
        with self._lock:
            if self._complete is not None and now - self._complete[1] <= self.refresh:
                return self._complete[0] + self._complete_here
        counts = self.storage.summary(self.study_id, "minimize").counts
        count = int(counts.get(TrialState.COMPLETE.value, 0))
        with self._lock:
            self._complete, self._complete_here = (count, now), 0
            return count


def objective_metric(names: Mapping[str, object] | set[str], metric: str | None) -> str | None:
    """Which reported metric is the objective: the study's `metric`; without one, the only
    metric reported, else ``loss`` or ``value`` (as a returned dict is read). None: not there."""
    if metric is not None:
        return metric if metric in names else None
    if len(names) == 1:
        return next(iter(names))
    for name in ("loss", "value"):
        if name in names:
            return name
    return None


def percentile(ranked: list[float], q: float) -> float:
    """The q-th percentile (0-100) of sorted values, linearly interpolated as numpy's default."""
    if not ranked:
        return math.nan
    position = (len(ranked) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ranked) - 1)
    return ranked[low] + (ranked[high] - ranked[low]) * (position - low)


# Past this many newly finished trials, one bulk query per rung beats one read per trial.
_BULK = 32


class RungValues:
    """The objective metric of a study's finished trials at each rung of its halving scheduler,
    for model-based strategies (BOHB-style TPE: `Context.rung_values`).

    A finished trial's stored reports never change, so each trial is read once and kept: a
    call reads the trials finished since the last one (`Storage.get_metrics`, one query each),
    or, when many are new (a resumed study), every rung in one `Storage.metric_at_step` query.
    Either way a trial's value at rung r is its first report at or after step r (a trial that
    reports every step: its value at r), so every process computes the same values."""

    def __init__(self, storage: Storage, study_id: int, metric: str | None, rungs: object) -> None:
        self.storage, self.study_id, self.metric = storage, study_id, metric
        self.halving = rungs  # an ASHA (Hyperband is one): its `rungs(last_step)`
        self._lock = threading.Lock()
        self._read: set[int] = set()  # finished trials already read
        self._values: dict[int, dict[int, float]] = {}  # rung -> {number: value}

    def values(self, history: Sequence[FrozenTrial]) -> dict[int, dict[int, float]]:
        """rung -> {trial number: value} over the finished (COMPLETE, PRUNED) trials of
        `history`; a new dict, which the caller may keep."""
        with self._lock:
            new = [
                t
                for t in history
                if t.state in _FINISHED and t.id is not None and t.number not in self._read
            ]
            if len(new) > _BULK:
                self._read_bulk(new)
            else:
                for trial in new:
                    self._read_one(trial)
            self._read.update(t.number for t in new)
            return {rung: dict(found) for rung, found in self._values.items() if found}

    def _read_one(self, trial: FrozenTrial) -> None:
        stored = self.storage.get_metrics(trial.id)  # type: ignore[arg-type]
        points = [p for p in stored if p.step is not None]
        name = objective_metric({p.name for p in points}, self.metric)
        if name is None:
            return
        curve: dict[int, float] = {}
        for p in points:  # report order: the last report of a repeated step wins
            if p.name == name:
                curve[int(p.step)] = float(p.value)  # type: ignore[arg-type]
        if not curve:
            return
        steps = sorted(curve)
        for rung in self.halving.rungs(steps[-1]):  # type: ignore[attr-defined]
            first = steps[bisect.bisect_left(steps, rung)]
            self._values.setdefault(rung, {})[trial.number] = curve[first]

    def _read_bulk(self, new: list[FrozenTrial]) -> None:
        name = self.metric
        if name is None:  # the name a report of theirs would be judged by
            for trial in new:
                points = self.storage.get_metrics(trial.id)  # type: ignore[arg-type]
                name = objective_metric({p.name for p in points}, None)
                if name is not None:
                    break
            if name is None:
                return
        wanted = {t.number for t in new}
        for rung in self.halving.rungs(2**62):  # type: ignore[attr-defined]
            stored = self.storage.metric_at_step(
                self.study_id, name, rung, at="after", states=_FINISHED
            )
            found = {n: v for n, v in stored.items() if n in wanted}
            if not found:
                break  # no trial got this far, nor further
            self._values.setdefault(rung, {}).update(found)


_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
