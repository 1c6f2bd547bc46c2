"""What every sampler is: a pure function of a `Context` (space, history, rng) returning a flat
assignment. Samplers keep no state that matters between calls; caches keyed by what they were
computed from are fine (any worker on any machine must compute the same decision)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hypersearch.space import Distribution, Space
from hypersearch.trial import FrozenTrial


@dataclass(frozen=True)
class Context:
    """Everything a sampler may use to propose trial `number`.

    `history` holds every earlier trial of the study in number order, whatever its state:
    COMPLETE ones carry `value`; RUNNING and WAITING ones are pending (their parameters are
    taken, their values unknown); FAILED and PRUNED ones are known not to be good. Parameters
    are in `flat_params` (raw values: a choice's option index). `direction` tells which values
    are better. `rng` is seeded from (study seed, number); `seed` is the study seed itself.
    """

    space: Space
    history: Sequence[FrozenTrial]
    rng: np.random.Generator
    number: int
    seed: int
    direction: str = "minimize"

    @property
    def sign(self) -> float:
        """Multiply values by this to make lower better."""
        return 1.0 if self.direction == "minimize" else -1.0


class Sampler:
    """Base class. Subclasses override `suggest` (declared spaces) and may override
    `suggest_param` (define-by-run, one parameter at a time).

    `uses_history` tells the storage whether to load past trials before calling `suggest`;
    samplers that ignore history (random, Sobol) then cost no database read.
    """

    name: str = ""
    uses_history: bool = False

    def suggest(self, context: Context) -> dict[str, Any] | None:
        """A flat assignment for trial `context.number`, or None when nothing is left to try."""
        raise NotImplementedError

    def suggest_param(
        self,
        name: str,
        dist: Distribution,
        history: Sequence[FrozenTrial],
        rng: np.random.Generator,
    ) -> Any:
        """One define-by-run parameter. The default draws from the prior."""
        value = dist.sample(rng)
        return value.item() if isinstance(value, np.generic) else value

    def check_space(self, space: Space | None) -> None:
        """Raise StrategyError when this sampler cannot serve `space` (None: define-by-run)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
