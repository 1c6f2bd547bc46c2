from __future__ import annotations

import threading
from typing import Any

import numpy as np

from hypersearch.errors import StrategyError
from hypersearch.samplers.base import Context, Sampler
from hypersearch.space import Space


class Sobol(Sampler):
    """Scrambled Sobol points: trial `number` takes point `number` of the sequence scrambled by
    the study seed, mapped through each parameter's prior. Covers the space more evenly than
    random draws. Every parameter of every branch owns one coordinate."""

    name = "sobol"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engines: dict[tuple[int, int], tuple[Any, int]] = {}  # (dim, seed) -> (engine, next)

    def check_space(self, space: Space | None) -> None:
        if space is None:
            raise StrategyError(
                "strategy 'sobol' needs a declared space (define-by-run trials can use 'random')"
            )

    def _point(self, dim: int, seed: int, index: int) -> np.ndarray:
        from scipy.stats import qmc  # lazy: scipy is heavy

        with self._lock:
            engine, position = self._engines.get((dim, seed), (None, 0))
            if engine is None or position > index:
                engine, position = qmc.Sobol(dim, scramble=True, seed=seed), 0
            if position < index:
                engine.fast_forward(index - position)
            point = engine.random(1)[0]
            self._engines[(dim, seed)] = (engine, index + 1)
        return point

    def suggest(self, context: Context) -> dict[str, Any]:
        space = context.space
        if len(space) == 0:
            return {}
        # the scramble comes from the study seed (shared by all trials), not the per-trial rng
        return space.decode(self._point(len(space), context.seed, context.number))
