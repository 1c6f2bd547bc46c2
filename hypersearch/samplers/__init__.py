"""Strategies that decide what to try next. Each is a pure function of (space, history, rng)."""

from __future__ import annotations

from hypersearch.errors import StrategyError
from hypersearch.samplers.base import Context, Sampler
from hypersearch.samplers.gp import GP
from hypersearch.samplers.grid import Grid
from hypersearch.samplers.random import Random
from hypersearch.samplers.sobol import Sobol
from hypersearch.samplers.tpe import TPE

STRATEGIES: dict[str, type[Sampler]] = {
    "tpe": TPE,
    "gp": GP,
    "random": Random,
    "sobol": Sobol,
    "grid": Grid,
}
ALIASES: dict[str, str] = {"bayes": "gp", "bayesian": "gp"}  # Spell's and W&B's words
PLANNED: tuple[str, ...] = ()  # names reserved for strategies still to come
DEFAULT_STRATEGY = "tpe"


def get_sampler(strategy: str | Sampler) -> Sampler:
    """A sampler from a strategy name (``"random"``) or a configured instance (``Grid(resolution=5)``)."""
    if isinstance(strategy, Sampler):
        return strategy
    if not isinstance(strategy, str):
        raise StrategyError(
            f"strategy must be a name or a sampler instance, got {type(strategy).__name__}"
        )
    key = strategy.strip().lower()
    key = ALIASES.get(key, key)
    if key in STRATEGIES:
        return STRATEGIES[key]()
    valid = ", ".join(repr(name) for name in STRATEGIES)
    if key in PLANNED:
        raise StrategyError(
            f"strategy {strategy!r} is not available yet; valid strategies: {valid}"
        )
    raise StrategyError(f"unknown strategy {strategy!r}; valid strategies: {valid}")


__all__ = [
    "ALIASES",
    "DEFAULT_STRATEGY",
    "GP",
    "STRATEGIES",
    "TPE",
    "Context",
    "Grid",
    "Random",
    "Sampler",
    "Sobol",
    "get_sampler",
]
