"""The public Python API: studies, ask/tell, optimize, minimize/maximize."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypersearch.samplers import Sampler
from hypersearch.storage import Storage
from hypersearch.study.study import Study, create_study, load_study


def _search(
    direction: str,
    objective: Callable[..., Any],
    space: Any,
    *,
    strategy: str | Sampler,
    max_trials: int | None,
    timeout: float | None,
    target: float | None,
    patience: int | None,
    max_failures: int | None,
    n_jobs: int,
    storage: str | Storage | None,
    name: str | None,
    seed: int | None,
    metric: str | None,
    retry_stale: bool,
    verbose: bool,
) -> Study:
    from hypersearch.study.optimize import Limits

    limits = Limits.checked(max_trials, timeout, target, patience, max_failures, n_jobs)
    study = create_study(
        space,
        name=name,
        direction=direction,
        metric=metric,
        strategy=strategy,
        storage=storage,
        seed=seed,
    )
    study.retry_stale = retry_stale
    study.optimize(
        objective,
        max_trials=limits.max_trials,
        timeout=limits.timeout,
        target=limits.target,
        patience=limits.patience,
        max_failures=limits.max_failures,
        n_jobs=limits.n_jobs,
        verbose=verbose,
    )
    return study


def minimize(
    objective: Callable[..., Any],
    space: Any = None,
    *,
    strategy: str | Sampler = "tpe",
    max_trials: int | None = None,
    timeout: float | None = None,
    target: float | None = None,
    patience: int | None = None,
    max_failures: int | None = None,
    n_jobs: int = 1,
    storage: str | Storage | None = None,
    name: str | None = None,
    seed: int | None = None,
    metric: str | None = None,
    retry_stale: bool = False,
    verbose: bool = True,
) -> Study:
    """Search `space` for the parameters that minimise `objective`; returns the Study.

    Calling it again with the same `name` and a persistent `storage` resumes the study;
    `max_trials` is the total across all workers and resumes.

    Example::

        study = hs.minimize(lambda p: (p["x"] - 2) ** 2, {"x": hs.uniform(-5, 5)}, max_trials=50)
        study.best_params  # {'x': 2.01...}
    """
    return _search(
        "minimize",
        objective,
        space,
        strategy=strategy,
        max_trials=max_trials,
        timeout=timeout,
        target=target,
        patience=patience,
        max_failures=max_failures,
        n_jobs=n_jobs,
        storage=storage,
        name=name,
        seed=seed,
        metric=metric,
        retry_stale=retry_stale,
        verbose=verbose,
    )


def maximize(
    objective: Callable[..., Any],
    space: Any = None,
    *,
    strategy: str | Sampler = "tpe",
    max_trials: int | None = None,
    timeout: float | None = None,
    target: float | None = None,
    patience: int | None = None,
    max_failures: int | None = None,
    n_jobs: int = 1,
    storage: str | Storage | None = None,
    name: str | None = None,
    seed: int | None = None,
    metric: str | None = None,
    retry_stale: bool = False,
    verbose: bool = True,
) -> Study:
    """Like `minimize`, for objectives to maximise (accuracy, reward)."""
    return _search(
        "maximize",
        objective,
        space,
        strategy=strategy,
        max_trials=max_trials,
        timeout=timeout,
        target=target,
        patience=patience,
        max_failures=max_failures,
        n_jobs=n_jobs,
        storage=storage,
        name=name,
        seed=seed,
        metric=metric,
        retry_stale=retry_stale,
        verbose=verbose,
    )


__all__ = ["Study", "create_study", "load_study", "maximize", "minimize"]
