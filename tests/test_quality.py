"""Model-based strategies find better configurations than random search (fixed seeds)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from problems import BRANIN_MIN, BRANIN_SPACE, CONDITIONAL_SPACE, branin, conditional_objective

import hypersearch as hs

PROBLEMS: dict[str, tuple[Callable[[Any], float], Any, float]] = {
    "branin": (branin, BRANIN_SPACE, BRANIN_MIN),
    "conditional": (conditional_objective, CONDITIONAL_SPACE, 0.0),
}
SEEDS = range(10)
TRIALS = 60


@functools.cache  # random's regrets serve both strategies
def regrets(strategy: str, problem: str) -> list[float]:
    objective, space, optimum = PROBLEMS[problem]
    return [
        hs.minimize(
            objective, space, strategy=strategy, max_trials=TRIALS, seed=seed, verbose=False
        ).best_value
        - optimum
        for seed in SEEDS
    ]


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
@pytest.mark.parametrize("strategy", ["tpe", "gp"])
def test_beats_random(strategy: str, problem: str) -> None:
    model, random = regrets(strategy, problem), regrets("random", problem)
    wins = sum(m < r for m, r in zip(model, random, strict=True))
    assert np.median(model) < np.median(random) / 2
    assert wins >= 8, f"{strategy} beat random on {wins} of 10 seeds"
    if problem == "branin":
        assert np.median(model) < 0.1, "near the optimum in half the runs"
