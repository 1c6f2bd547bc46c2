"""Successive halving without waiting: ASHA (Li et al. 2020) and Hyperband's brackets on it.

The resource is the reported step (epochs, by default). A bracket's rungs are the steps
``min_resource * reduction_factor**(b + k)`` for k = 0, 1, ... below `max_resource`, where b is
the bracket (0: the most aggressive). When a trial first reports at or past a rung, it goes on
only if its value is among the best ``max(1, n // reduction_factor)`` of the n trials of its
bracket that reached that rung so far, itself included (Optuna's SuccessiveHalvingPruner
rule); otherwise it stops. Trials are never paused: a rung with too few trials lets the early
ones through, which is what keeps every worker busy.

Hyperband runs ``floor(log_eta(max_resource / min_resource)) + 1`` brackets at once; each trial
is assigned a bracket by its number, with bracket sizes in Hyperband's proportions (Li et al.
2018), so every worker assigns it the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from hypersearch.schedulers.base import (
    CONTINUE,
    Scheduler,
    SchedulerError,
    Verdict,
    integer,
    stop,
)
from hypersearch.schedulers.view import StudyView
from hypersearch.trial import FrozenTrial


class ASHA(Scheduler):
    """Asynchronous successive halving: at each rung keep the best 1/`reduction_factor`."""

    name = "asha"

    def __init__(
        self,
        min_resource: int = 1,
        max_resource: int | None = None,
        reduction_factor: int = 3,
        brackets: int = 1,
    ) -> None:
        self.min_resource = integer(self.name, "min_resource", min_resource, 1)
        if max_resource is not None:
            max_resource = integer(self.name, "max_resource", max_resource, 1)
            if max_resource < self.min_resource:
                raise SchedulerError(
                    f"{self.name}: max_resource {max_resource} is below min_resource "
                    f"{self.min_resource}"
                )
        self.max_resource = max_resource
        self.reduction_factor = integer(self.name, "reduction_factor", reduction_factor, 2)
        self.brackets = integer(self.name, "brackets", brackets, 1)
        # Hyperband's bracket sizes: bracket b starts at min_resource * eta**b
        top = self.brackets - 1
        weights = [
            math.ceil((top + 1) / (top - b + 1) * self.reduction_factor ** (top - b))
            for b in range(self.brackets)
        ]
        total = sum(weights)
        self._cumulative = [sum(weights[: b + 1]) / total for b in range(self.brackets)]

    def bracket_of(self, number: int) -> int:
        """The bracket of trial `number`: a fixed function of the number."""
        if self.brackets == 1:
            return 0
        u = _unit(number)
        return next(b for b, edge in enumerate(self._cumulative) if u < edge)

    def rung_below(self, bracket: int, step: int) -> int | None:
        """The highest rung of `bracket` at or below `step` (None: below the first)."""
        eta = self.reduction_factor
        level = self.min_resource * eta**bracket
        if step < level:
            return None
        while level * eta <= step:
            level *= eta
        return level

    def rungs(self, last_step: int) -> list[int]:
        """Every bracket's rungs at or below `last_step`, ascending: ``min_resource *
        reduction_factor**k`` (bracket b's are those from k = b on), below `max_resource`."""
        out: list[int] = []
        level = self.min_resource
        top = last_step if self.max_resource is None else min(last_step, self.max_resource - 1)
        while level <= top:
            out.append(level)
            level *= self.reduction_factor
        return out

    def on_report(
        self, view: StudyView, trial: FrozenTrial, step: int, metrics: Mapping[str, float]
    ) -> Verdict:
        curve = view.curve(trial)
        name = view.metric_of(metrics)
        if curve is None or name is None:
            return CONTINUE
        bracket = self.bracket_of(trial.number)
        rung = self.rung_below(bracket, step)
        if rung is None or rung <= curve.previous_step:
            return CONTINUE  # not a rung crossing: most reports end here
        if self.max_resource is not None and rung >= self.max_resource:
            return CONTINUE  # the full budget: nothing left to decide
        if math.isnan(curve.last):
            return stop(f"{self.name}: {name} is NaN at rung {rung}")
        ranked = view.ranked(name, rung, at="after", group=bracket, group_of=self.bracket_of)
        keep = max(1, len(ranked) // self.reduction_factor)
        if keep <= len(ranked) and curve.last > ranked[keep - 1]:
            where = f" of bracket {bracket}" if self.brackets > 1 else ""
            return stop(
                f"{self.name}: {name} {view.sign * curve.last:.6g} at step {step} is not among "
                f"the best {keep} of {len(ranked)} trials at rung {rung}{where} (cut-off "
                f"{view.sign * ranked[keep - 1]:.6g})"
            )
        return CONTINUE


class Hyperband(ASHA):
    """Hyperband: ASHA brackets of every aggressiveness at once, trials spread over them."""

    name = "hyperband"

    def __init__(
        self,
        min_resource: int = 1,
        max_resource: int | None = None,
        reduction_factor: int = 3,
    ) -> None:
        if max_resource is None:
            raise SchedulerError(
                "hyperband: give max_resource, the step a trial that runs to its end reaches "
                "(e.g. its number of epochs)"
            )
        eta = integer(self.name, "reduction_factor", reduction_factor, 2)
        low = integer(self.name, "min_resource", min_resource, 1)
        high = integer(self.name, "max_resource", max_resource, 1)
        count = 1
        while low * eta**count <= high:
            count += 1
        super().__init__(low, high, eta, count)


def halving_of(scheduler: object) -> ASHA | None:
    """The successive-halving rule (ASHA, Hyperband) a study's scheduler runs, also inside a
    chain (stop conditions beside it) or wrapped by patience; None without one."""
    if isinstance(scheduler, ASHA):
        return scheduler
    for inner in (*getattr(scheduler, "schedulers", ()), getattr(scheduler, "wraps", None)):
        found = halving_of(inner) if inner is not None else None
        if found is not None:
            return found
    return None


def _unit(number: int) -> float:
    """A fixed pseudo-random number in [0, 1) for a trial number (splitmix64)."""
    z = (number + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return ((z ^ (z >> 31)) >> 11) / float(1 << 53)
