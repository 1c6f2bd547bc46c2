"""Population Based Training (Jaderberg et al. 2017), asynchronous, on stored reports.

Every `perturbation_interval` steps a trial is compared with the most recent
`population_size` trials that reached the same step (from its first report there until the next
perturbation step, as the others arrive). In the bottom `quantile_fraction` it is
stopped, and a new trial takes its place: it continues the checkpoint of a trial from the top
`quantile_fraction` that is still running (exploit), with that trial's parameters perturbed
(explore: each one multiplied by a factor from `perturbation_factors`, or with probability
`resample_probability` drawn afresh from its distribution; always inside the space). The new
trial's lineage (donor, step, what changed) is stored with it.

Trials are compared at the same step, not at whatever step each reached, so a late starter is
judged against what the others had at its age. Exploiting needs checkpoints: the objective
saves its state to ``trial.checkpoint_dir`` and, when ``trial.restore_from`` is set, starts from
there (a command: ``:checkpoint_dir:`` / ``:restore_dir:``). Run as many trials at once as the
population (``n_jobs=population_size``): a donor must be running to hand over a checkpoint of
the age being compared.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hypersearch.schedulers.base import (
    CONTINUE,
    Exploit,
    Scheduler,
    SchedulerError,
    Verdict,
    integer,
    number,
)
from hypersearch.schedulers.view import StudyView
from hypersearch.space import Choice, Distribution, Integer, Space
from hypersearch.trial import Decision, FrozenTrial


class PBT(Scheduler):
    """Population Based Training: stop the worst, continue the best's checkpoint, perturbed."""

    name = "pbt"

    def __init__(
        self,
        population_size: int = 8,
        perturbation_interval: int = 5,
        quantile_fraction: float = 0.25,
        resample_probability: float = 0.25,
        perturbation_factors: Sequence[float] = (0.8, 1.2),
        mutations: Sequence[str] | None = None,
    ) -> None:
        self.population_size = integer(self.name, "population_size", population_size, 2)
        self.perturbation_interval = integer(
            self.name, "perturbation_interval", perturbation_interval, 1
        )
        self.quantile_fraction = number(self.name, "quantile_fraction", quantile_fraction, 0, 0.5)
        if self.quantile_fraction == 0:
            raise SchedulerError(f"{self.name}: quantile_fraction must be above 0, got 0")
        self.resample_probability = number(
            self.name, "resample_probability", resample_probability, 0, 1
        )
        if isinstance(perturbation_factors, str | bytes) or not isinstance(
            perturbation_factors, Sequence
        ):
            raise SchedulerError(
                f"{self.name}: perturbation_factors must be a list of positive numbers such as "
                f"[0.8, 1.2], got {perturbation_factors!r}"
            )
        factors = [
            number(self.name, "perturbation_factors[]", f, 1e-9, 1e9) for f in perturbation_factors
        ]
        if not factors:
            raise SchedulerError(f"{self.name}: perturbation_factors must not be empty")
        self.perturbation_factors = tuple(factors)
        if mutations is not None:
            if isinstance(mutations, str) or not all(isinstance(m, str) for m in mutations):
                raise SchedulerError(
                    f"{self.name}: mutations must be a list of parameter names, got {mutations!r}"
                )
            mutations = tuple(mutations)
        self.mutations = mutations
        # fewer trials than this at a step leave the bottom quantile empty
        self._quorum = max(2, math.ceil(1 / self.quantile_fraction))

    def on_report(
        self, view: StudyView, trial: FrozenTrial, step: int, metrics: Mapping[str, float]
    ) -> Verdict:
        curve = view.curve(trial)
        name = view.metric_of(metrics)
        if curve is None or name is None or curve.step != step:
            return CONTINUE
        boundary = step // self.perturbation_interval * self.perturbation_interval
        if boundary <= 0 or boundary <= (trial.lineage or {}).get("step", 0):
            return CONTINUE  # no perturbation step yet, or one it was started past
        # judged at every report until the next perturbation step: the population at this one
        # fills up as the others get there
        at_boundary = view.members(name, boundary, at="after")
        if trial.number not in at_boundary:
            return CONTINUE
        others = sorted(n for n in at_boundary if n != trial.number)
        population = [*others[-(self.population_size - 1) :], trial.number]
        if len(population) < self._quorum:
            return CONTINUE
        ranked = sorted(population, key=lambda n: (at_boundary[n], n))  # best first
        cut = max(1, int(len(ranked) * self.quantile_fraction))
        if trial.number not in ranked[-cut:]:
            return CONTINUE
        running = view.running()
        donors = [n for n in ranked[:cut] if n in running and n != trial.number]
        if not donors:
            return CONTINUE  # nobody of the age compared can hand over a checkpoint
        rng = np.random.default_rng([view.seed, trial.number, boundary])
        donor = donors[int(rng.integers(len(donors)))]
        rank = ranked.index(trial.number) + 1
        return Verdict(
            Decision.STOP,
            f"pbt: rank {rank} of {len(ranked)} at step {boundary} (bottom "
            f"{self.quantile_fraction:.0%}); trial {donor}'s checkpoint continues in its place",
            Exploit(donor, boundary, self.explore),
        )

    def explore(
        self, space: Space, params: Mapping[str, Any], rng: np.random.Generator
    ) -> dict[str, Any]:
        """`params` (flat, raw) perturbed: each mutable parameter resampled with probability
        `resample_probability`, else moved by a factor; a branch newly taken is sampled."""

        def pick(name: str, dist: Distribution) -> Any:
            if name not in params:
                return dist.sample(rng)  # a branch the donor did not take
            if self.mutations is not None and name not in self.mutations:
                return params[name]
            if rng.random() < self.resample_probability:
                return dist.sample(rng)
            factor = self.perturbation_factors[int(rng.integers(len(self.perturbation_factors)))]
            return perturb(dist, params[name], factor)

        return space.validate(space.assign(pick))


def perturb(dist: Distribution, value: Any, factor: float) -> Any:
    """`value` moved by `factor`, kept inside `dist`: numbers are multiplied (then put on the
    distribution's lattice and bounds); a number the product leaves where it was moves one
    lattice step (or 5 % of its range) in the factor's direction; a choice moves to the next
    option up (factor > 1) or down."""
    up = factor > 1
    if isinstance(dist, Choice):
        support = list(dist.support)
        here = support.index(value) if value in support else 0
        return support[min(max(here + (1 if up else -1), 0), len(support) - 1)]
    moved = float(value) * factor
    candidate = _inside(dist, moved)
    if candidate == value and factor != 1:
        unit = dist.to_unit(value)
        nudged = dist.from_unit(min(max(unit + (0.05 if up else -0.05), 0.0), 1.0))
        if isinstance(dist, Integer) and nudged == value:
            steps = [v for v in dist.neighbours(value) if (v > value) == up]
            nudged = steps[0] if steps else value
        candidate = nudged
    return candidate


def _inside(dist: Distribution, x: float) -> Any:
    """The value of `dist` nearest `x` (its bounds and lattice)."""
    bounds = _bounds(dist)
    if bounds is not None:
        x = min(max(x, bounds[0]), bounds[1])
    if isinstance(dist, Integer):
        x = round(x)
    try:
        return dist.from_unit(min(max(dist.to_unit(x), 0.0), 1.0))
    except (ValueError, OverflowError):
        return x


def _bounds(dist: Distribution) -> tuple[float, float] | None:
    low, high = getattr(dist, "low", None), getattr(dist, "high", None)
    return None if low is None or high is None else (float(low), float(high))
