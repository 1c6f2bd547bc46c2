from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

from hypersearch.errors import SpaceError, StrategyError
from hypersearch.samplers.base import Context, Sampler, check_bool, check_int
from hypersearch.space import Space

MAX_GRID_POINTS = 10_000_000


def point_key(flat: dict[str, Any]) -> str:
    return json.dumps(flat, sort_keys=True)


class Grid(Sampler):
    """Every combination of the space's discrete values, each exactly once across all workers.

    The storage runs `suggest` inside the study lock with every past trial (failed and running
    ones included) as history, so two workers can never take the same point. `resolution` gives
    continuous parameters that many evenly spaced values; `shuffle` walks the grid in a seeded
    random order, so a grid stopped early is still an unbiased sample.
    """

    name = "grid"
    uses_history = True

    def __init__(self, resolution: int | None = None, shuffle: bool = False) -> None:
        if resolution is not None:
            resolution = check_int("Grid", "resolution", resolution, 1)
        self.resolution = resolution
        self.shuffle = check_bool("Grid", "shuffle", shuffle)
        self._lock = threading.Lock()
        self._points: dict[tuple[str, int], list[dict[str, Any]]] = {}

    def config(self) -> dict[str, Any]:
        return {"resolution": self.resolution, "shuffle": self.shuffle}

    def check_space(self, space: Space | None) -> None:
        if space is None:
            raise StrategyError(
                "strategy 'grid' needs a declared space to enumerate; define-by-run studies "
                "(space=None) can use 'random'"
            )
        size = space.grid_size(self.resolution)  # raises SpaceError for continuous parameters
        if size > MAX_GRID_POINTS:
            raise SpaceError(
                f"the grid has {size:,} points (more than {MAX_GRID_POINTS:,}); use fewer values "
                "or strategy='random'/'sobol'"
            )

    def points(self, space: Space, seed: int) -> list[dict[str, Any]]:
        key = (space.to_json_str(), seed if self.shuffle else 0)
        with self._lock:
            if key not in self._points:
                points = list(space.grid(self.resolution))
                if self.shuffle:
                    order = np.random.default_rng(seed).permutation(len(points))
                    points = [points[i] for i in order]
                self._points[key] = points
            return self._points[key]

    def suggest(self, context: Context) -> dict[str, Any] | None:
        points = self.points(context.space, context.seed)
        taken = {point_key(t.flat_params) for t in context.history if t.parent_number is None}
        # trials usually take points in order, so the first free one is near len(taken)
        start = min(len(taken), len(points))
        for index in (*range(start, len(points)), *range(start)):
            if point_key(points[index]) not in taken:
                return dict(points[index])
        return None
