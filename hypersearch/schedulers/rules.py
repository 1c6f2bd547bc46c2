"""Rules on a trial's own curve against the others at the same step: median, percentile,
threshold, patience.

`Percentile` (and `Median`, its 50th) follow Optuna's PercentilePruner: once `n_startup_trials`
trials completed, from step `n_warmup_steps` on, at the first report of each `interval_steps`,
a trial stops when its best value so far is worse than the given percentile of the completed
trials' values at that step (with at least `n_min_trials` of them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hypersearch.schedulers.base import (
    CONTINUE,
    Scheduler,
    SchedulerError,
    Verdict,
    integer,
    number,
    optional_number,
    stop,
)
from hypersearch.schedulers.view import StudyView, percentile
from hypersearch.trial import FrozenTrial


class Percentile(Scheduler):
    """Stop a trial whose best value so far is worse than the `percentile`-th best of the
    completed trials at the same step (25: stop unless in the best quarter)."""

    name = "percentile"

    def __init__(
        self,
        percentile: float = 25.0,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        n_min_trials: int = 1,
    ) -> None:
        self.percentile = number(self.name, "percentile", percentile, 0.0, 100.0)
        self.n_startup_trials = integer(self.name, "n_startup_trials", n_startup_trials, 0)
        self.n_warmup_steps = integer(self.name, "n_warmup_steps", n_warmup_steps, 0)
        self.interval_steps = integer(self.name, "interval_steps", interval_steps, 1)
        self.n_min_trials = integer(self.name, "n_min_trials", n_min_trials, 1)

    def on_report(
        self, view: StudyView, trial: FrozenTrial, step: int, metrics: Mapping[str, float]
    ) -> Verdict:
        curve = view.curve(trial)
        name = view.metric_of(metrics)
        if curve is None or name is None or step < self.n_warmup_steps:
            return CONTINUE
        # judge at the first report at or past each interval boundary (Optuna's rule)
        boundary = (step - self.n_warmup_steps) // self.interval_steps * self.interval_steps
        if curve.previous_step >= boundary + self.n_warmup_steps:
            return CONTINUE
        completed = view.n_complete()
        if completed == 0 or completed < self.n_startup_trials:
            return CONTINUE
        if math.isinf(curve.best) and math.isnan(curve.last):
            return stop(f"{name} is NaN at step {step}")
        ranked = view.ranked(name, step, completed=True)
        if len(ranked) < self.n_min_trials:
            return CONTINUE
        cut = percentile(ranked, self.percentile)
        if curve.best > cut:
            shown = view.sign * curve.best
            return stop(
                f"{self.name}: best {name} {shown:.6g} by step {step} is worse than the "
                f"{self.percentile:g}th percentile {view.sign * cut:.6g} of {len(ranked)} "
                "completed trials at that step"
            )
        return CONTINUE


class Median(Percentile):
    """Stop a trial whose best value so far is worse than the median of the completed trials
    at the same step (Optuna's MedianPruner)."""

    name = "median"

    def __init__(
        self,
        n_startup_trials: int = 5,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        n_min_trials: int = 1,
    ) -> None:
        super().__init__(50.0, n_startup_trials, n_warmup_steps, interval_steps, n_min_trials)


class Threshold(Scheduler):
    """Stop a trial once its value leaves [lower, upper] or is NaN (Optuna's ThresholdPruner);
    `conditions` ("METRIC OP VALUE", e.g. ``loss > 10``) judge any reported metric — the
    ``stop_conditions`` of a study are this rule."""

    name = "threshold"

    def __init__(
        self,
        lower: float | None = None,
        upper: float | None = None,
        conditions: Sequence[Any] = (),
        n_warmup_steps: int = 0,
    ) -> None:
        from hypersearch.execution.metric_lines import StopCondition, parse_stop_condition

        self.lower = optional_number(self.name, "lower", lower)
        self.upper = optional_number(self.name, "upper", upper)
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise SchedulerError(f"threshold: lower {lower!r} is above upper {upper!r}")
        if isinstance(conditions, str | StopCondition):
            conditions = [conditions]
        parsed = []
        for condition in conditions:
            try:
                parsed.append(
                    condition
                    if isinstance(condition, StopCondition)
                    else parse_stop_condition(condition)
                )
            except (TypeError, ValueError) as error:
                raise SchedulerError(f"threshold: conditions: {error}") from None
        if self.lower is None and self.upper is None and not parsed:
            raise SchedulerError(
                "threshold: give lower, upper or conditions, e.g. upper=10 or "
                "conditions=['loss > 10']"
            )
        self._conditions = tuple(parsed)
        self.n_warmup_steps = integer(self.name, "n_warmup_steps", n_warmup_steps, 0)

    @property
    def conditions(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self._conditions)

    def on_report(
        self, view: StudyView, trial: FrozenTrial, step: int, metrics: Mapping[str, float]
    ) -> Verdict:
        if step < self.n_warmup_steps:
            return CONTINUE
        for condition in self._conditions:
            value = metrics.get(condition.metric)
            if value is not None and condition.holds(value):
                return stop(
                    f"stop condition '{condition.metric} {condition.op} {condition.value:g}' "
                    f"met ({condition.metric} = {value:g})"
                )
        if self.lower is None and self.upper is None:
            return CONTINUE
        name = view.metric_of(metrics)
        if name is None:
            return CONTINUE
        value = metrics[name]
        if math.isnan(value):
            return stop(f"threshold: {name} is NaN at step {step}")
        if self.lower is not None and value < self.lower:
            return stop(f"threshold: {name} {value:g} is below lower {self.lower:g}")
        if self.upper is not None and value > self.upper:
            return stop(f"threshold: {name} {value:g} is above upper {self.upper:g}")
        return CONTINUE


class Patience(Scheduler):
    """Once a trial went `patience` reports without improving on its earlier best (by at
    least `min_delta` when it is set), ask `wraps` (another scheduler); without one, stop it
    (Optuna's PatientPruner)."""

    name = "patience"

    def __init__(
        self, patience: int = 5, wraps: Scheduler | None = None, min_delta: float = 0.0
    ) -> None:
        self.patience = integer(self.name, "patience", patience, 1)
        self.min_delta = number(self.name, "min_delta", min_delta, 0.0, math.inf)
        if wraps is not None and not isinstance(wraps, Scheduler):
            raise SchedulerError(f"patience: wraps must be a scheduler, got {wraps!r}")
        self.wraps = wraps

    def _stalled(self, losses: list[float]) -> bool:
        finite = [x for x in losses if not math.isnan(x)]  # a NaN report is not counted
        if len(finite) <= self.patience:
            return False
        best_before, best_after = min(finite[:-self.patience]), min(finite[-self.patience:])
        if self.min_delta == 0:
            return best_after >= best_before  # an equal loss is no improvement
        return best_after > best_before - self.min_delta  # improving by min_delta is enough

    def on_report(
        self, view: StudyView, trial: FrozenTrial, step: int, metrics: Mapping[str, float]
    ) -> Verdict:
        curve = view.curve(trial)
        if curve is None or not self._stalled(curve.losses):
            return CONTINUE
        if self.wraps is not None:
            return self.wraps.on_report(view, trial, step, metrics)
        name = view.metric_of(metrics)
        by = f" by {self.min_delta:g}" if self.min_delta else ""
        return stop(f"patience: {name} did not improve{by} in {self.patience} reports")
