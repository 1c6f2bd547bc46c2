"""What every sampler is: a pure function of a `Context` (space, history, rng) returning a flat
assignment. Samplers keep no state that matters between calls; caches keyed by what they were
computed from are fine (any worker on any machine must compute the same decision)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hypersearch.errors import StrategyError
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

    Define-by-run (`Sampler.suggest_param`): `space` is None, `history` is still every trial of
    the study (the one being suggested for among the pending ones, holding the parameters it
    has suggested so far), and `rng` is seeded from (study seed, number, parameter name).

    `rung_values` (multi-fidelity studies: the scheduler is ASHA or Hyperband, and the sampler
    `uses_rungs`): rung step -> {trial number: the objective metric at that step} for the
    finished (COMPLETE, PRUNED) trials of `history` that reported at or past the step, the
    value their first report there (``Storage.metric_at_step(..., at="after")``), in the
    metric's own units. Stored reports of finished trials never change, so it is as much a
    function of storage as `history`. None when the study has no halving scheduler.
    """

    space: Space | None
    history: Sequence[FrozenTrial]
    rng: np.random.Generator
    number: int
    seed: int
    direction: str = "minimize"
    rung_values: Mapping[int, Mapping[int, float]] | None = None

    @property
    def sign(self) -> float:
        """Multiply values by this to make lower better."""
        return 1.0 if self.direction == "minimize" else -1.0


class Sampler:
    """Base class. Subclasses override `suggest` (declared spaces) and may override
    `suggest_param` (define-by-run, one parameter at a time).

    `uses_history` tells the storage whether to load past trials before calling `suggest`;
    samplers that ignore history (random, Sobol) then cost no database read. `uses_rungs`
    asks the study for `Context.rung_values` when its scheduler is a halving one.

    A study is stored as JSON, so a sampler's settings must be too: `config()` returns the
    constructor's keyword arguments, JSON-safe, with ``type(s)(**s.config())`` an equal sampler.
    """

    name: str = ""
    uses_history: bool = False
    uses_rungs: bool = False

    def suggest(self, context: Context) -> dict[str, Any] | None:
        """A flat assignment for trial `context.number`, or None when nothing is left to try."""
        raise NotImplementedError

    def suggest_param(self, context: Context, name: str, dist: Distribution) -> Any:
        """The raw value of define-by-run parameter `name` for trial `context.number`
        (`context.space` is None). The default draws from the prior with `context.rng`."""
        value = dist.sample(context.rng)
        return value.item() if isinstance(value, np.generic) else value

    def config(self) -> dict[str, Any]:
        """The JSON-safe constructor keyword arguments that rebuild this sampler."""
        return {}

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy (pickle, copy.deepcopy, scikit-learn's clone) is a fresh sampler with the same
        # settings: caches and locks belong to the process that made them.
        return (_rebuild, (type(self), self.config()))

    def warm_state(self, space: Space) -> dict[str, Any] | None:
        """What makes this sampler's next suggestions for `space` cheap (a GP's fitted
        hyperparameters), as JSON, when it changed since the last call; the study stores it so
        a process that joins later starts warm. None: nothing new (or nothing kept)."""
        return None

    def warm_from(self, space: Space, state: dict[str, Any]) -> None:
        """Take a `warm_state` another process stored: a head start that never changes a
        suggestion (a state that does not fit is ignored)."""

    def check_space(self, space: Space | None) -> None:
        """Raise StrategyError when this sampler cannot serve `space` (None: define-by-run)."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


# -- argument checks shared by the samplers: one message for Python, CLI and YAML users -----------


def check_int(owner: str, name: str, value: Any, minimum: int) -> int:
    """`value` as an int >= `minimum`, or a StrategyError naming ``owner(name=...)``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise StrategyError(f"{owner}({name}=...) must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_float(owner: str, name: str, value: Any, minimum: float, strict: bool) -> float:
    """`value` as a finite float > `minimum` (`strict`) or >= it, else a StrategyError."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.number))
    if ok:
        value = float(value)
        ok = math.isfinite(value) and (value > minimum if strict else value >= minimum)
    if not ok:
        bound = f"> {minimum}" if strict else f">= {minimum}"
        raise StrategyError(f"{owner}({name}=...) must be a number {bound}, got {value!r}")
    return float(value)


def check_bool(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise StrategyError(f"{owner}({name}=...) must be true or false, got {value!r}")
    return bool(value)


def _rebuild(cls: type[Sampler], config: dict[str, Any]) -> Sampler:
    return cls(**config)
