"""``algo=`` of fmin: hyperopt's suggest functions as markers that pick a hypersearch sampler.

fmin runs hypersearch's ask/tell loop, so a suggest function is never called with hyperopt's
``(new_ids, domain, trials, seed)``; its name and the keywords of a ``functools.partial`` around
it choose and configure the sampler.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from hypersearch.errors import HypersearchError, StrategyError
from hypersearch.samplers import TPE, Sampler

SamplerFactory = Callable[..., Sampler]
_FACTORIES: dict[Callable[..., Any], tuple[str, SamplerFactory]] = {}


def marker(name: str, factory: SamplerFactory) -> Callable[..., Any]:
    """A suggest function standing for `factory`'s sampler (``hypersearch.hyperopt.<name>.suggest``)."""

    def suggest(new_ids: Any = None, domain: Any = None, trials: Any = None, seed: Any = None, **knobs: Any) -> Any:
        raise HypersearchError(
            f"hypersearch.hyperopt.{name}.suggest chooses fmin's strategy: pass it as "
            f"fmin(..., algo={name}.suggest); it cannot be called on a hyperopt Domain"
        )

    suggest.__qualname__ = suggest.__name__ = "suggest"
    suggest.__module__ = f"hypersearch.hyperopt.{name}"
    _FACTORIES[suggest] = (name, factory)
    return suggest


def sampler_for(algo: Any) -> Sampler:
    """The sampler `algo` (a suggest function, or a functools.partial of one) stands for."""
    func, knobs = algo, {}
    while isinstance(func, functools.partial):
        if func.args:
            raise HypersearchError(f"algo={algo!r}: give the suggest function's options by keyword")
        func, knobs = func.func, {**func.keywords, **knobs}
    if func not in _FACTORIES:
        where = getattr(func, "__module__", "") or ""
        hint = (
            f" ({where}.{getattr(func, '__name__', '')} is hyperopt's own: import tpe, rand and "
            "anneal from hypersearch.hyperopt)"
            if where.startswith("hyperopt")
            else ""
        )
        raise HypersearchError(
            f"algo={algo!r} is not one of hypersearch.hyperopt's tpe.suggest, rand.suggest or "
            f"anneal.suggest{hint}; custom suggest functions and atpe are not supported"
        )
    name, factory = _FACTORIES[func]
    try:
        return factory(**knobs)
    except TypeError as error:
        raise HypersearchError(f"{name}.suggest: {error}") from None
    except StrategyError as error:
        raise HypersearchError(f"{name}.suggest: {error}") from None


def tpe_sampler(
    *,
    n_startup_jobs: int = 20,
    gamma: float = 0.25,
    n_EI_candidates: int = 24,
    prior_weight: float = 1.0,
    linear_forgetting: int | None = None,
    verbose: bool = True,
    n_startup: int | None = None,
) -> Sampler:
    """hypersearch's TPE with hyperopt's knobs: `n_startup_jobs` (default 20, as hyperopt) random
    trials first, `gamma` the fraction of trials that count as good (hyperopt's default 0.25;
    hypersearch splits ``ceil(gamma n)``, at most 25, where hyperopt takes ``ceil(gamma sqrt(n))``),
    `n_EI_candidates` candidates per suggestion, `prior_weight`. `linear_forgetting` and
    `verbose` are accepted and have no effect."""
    del linear_forgetting, verbose  # hyperopt-only: hypersearch's TPE bounds its kernels itself
    return TPE(
        n_startup=n_startup_jobs if n_startup is None else n_startup,
        gamma=gamma,
        n_candidates=n_EI_candidates,
        prior_weight=prior_weight,
    )
