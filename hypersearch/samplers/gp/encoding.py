"""The search-space encoding: how the parameters of a space become kernel inputs.

Integers and quantized numbers are optimised in a relaxed unit coordinate, but the kernel sees
the centre of the cell the coordinate falls in (`Distribution.snap_unit`), so the acquisition
is flat inside a cell and is exactly the value of the point that will run. Choices are one-hot,
scaled so that two options are at distance 1 (a Hamming distance with its own lengthscale);
options of weight 0 are never proposed.

Conditional parameters: a parameter that a trial does not use gets a fixed value (0.5, or an
"inactive" category for choices), so it never varies between trials that ignore it, and the
choices above it are in the kernel, which separates the branches. Candidates carry a coordinate
for every parameter of every branch and are decoded by `Space.decode`, which follows the
branches taken.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hypersearch.space import Distribution, Space

_HALF_SQRT2 = math.sqrt(0.5)  # one-hot scale: two different options are at squared distance 1


class Layout:
    """The kernel inputs of a space.

    Every parameter of every branch owns one column of the relaxed matrix R (a unit coordinate
    for numbers, the option index for choices) and of the feature matrix F (R snapped to cell
    centres, inactive parameters filled). F is expanded to E (one column per number, one-hot
    blocks for choices), on which the kernel is a Euclidean Matérn with per-parameter lengthscales.
    """

    def __init__(self, space: Space) -> None:
        self.space = space
        self.names = list(space.names)
        self.d = len(self.names)
        index = {name: i for i, name in enumerate(self.names)}
        self.dists: list[Distribution] = [space.params[n].dist for n in self.names]
        self.conditions = [
            [(index[path], option) for path, option in space.params[n].condition]
            for n in self.names
        ]
        self.cont: list[int] = []
        self.ordinal: list[int] = []
        self.cat: list[int] = []
        self.allowed: dict[int, np.ndarray] = {}  # choice -> the options it may propose
        self.start = np.zeros(self.d, dtype=int)
        width = 0
        for j, dist in enumerate(self.dists):
            self.start[j] = width
            if dist.is_categorical:
                self.cat.append(j)
                self.allowed[j] = np.array(dist.support)  # type: ignore[attr-defined]
                options = dist.n_values or 0
                width += options + (1 if self.conditions[j] else 0)  # + "inactive"
            else:
                (self.ordinal if dist.is_discrete else self.cont).append(j)
                width += 1
        self.p = width
        self.fill = np.array([-1.0 if j in self.allowed else 0.5 for j in range(self.d)])
        # group matrix: expanded column -> parameter, to sum per-column gradient terms
        self.group = np.zeros((self.p, self.d))
        for j in range(self.d):
            end = self.start[j + 1] if j + 1 < self.d else self.p
            self.group[self.start[j] : end, j] = 1.0
        self.number_cols = np.array(
            [self.start[j] for j in range(self.d) if j not in self.allowed], dtype=int
        )
        self.number_params = np.array([j for j in range(self.d) if j not in self.allowed])
        self.cont_cols = self.start[self.cont] if self.cont else np.zeros(0, dtype=int)

    def row(self, flat: dict[str, Any]) -> np.ndarray:
        """The feature row of a stored assignment (inactive parameters filled); SpaceError
        for an assignment that does not fit the space (another study's, an older version)."""
        self.space.validate(flat)
        out = self.fill.copy()
        for j, name in enumerate(self.names):
            if name in flat:
                dist = self.dists[j]
                value = flat[name]
                out[j] = float(value) if j in self.allowed else dist.to_unit(value)
        return out

    def active(self, R: np.ndarray) -> np.ndarray:
        """Which parameters each row of R uses (the choices above them take their branch)."""
        mask = np.ones(R.shape, dtype=bool)
        for j, conds in enumerate(self.conditions):
            for col, option in conds:
                mask[:, j] &= R[:, col] == option
        return mask

    def features(self, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """F from R: numbers snapped to the cell they fall in, inactive ones filled."""
        F = R.copy()
        if self.cont:
            F[:, self.cont] = np.clip(R[:, self.cont], 0.0, 1.0)
        for j in self.ordinal:
            F[:, j] = self.dists[j].snap_unit(R[:, j])
        active = self.active(R)
        F[~active] = np.broadcast_to(self.fill, F.shape)[~active]
        return F, active

    def expand(self, F: np.ndarray) -> np.ndarray:
        """E from F: numbers as they are, choices one-hot at 1/√2."""
        E = np.zeros((F.shape[0], self.p))
        if len(self.number_params):
            E[:, self.number_cols] = F[:, self.number_params]
        rows = np.arange(F.shape[0])
        for j in self.cat:
            index = F[:, j].astype(int)
            index[index < 0] = self.dists[j].n_values  # the "inactive" column
            E[rows, self.start[j] + index] = _HALF_SQRT2
        return E

    def relaxed(self, F: np.ndarray) -> np.ndarray:
        """R from F (to start a local search at a known point): inactive choices take an option."""
        R = F.copy()
        for j in self.cat:
            R[R[:, j] < 0, j] = self.allowed[j][0]
        return R

    def from_sobol(self, U: np.ndarray) -> np.ndarray:
        """R from unit points: choices spread evenly over their allowed options."""
        R = U.copy()
        for j in self.cat:
            allowed = self.allowed[j]
            R[:, j] = allowed[np.minimum((U[:, j] * len(allowed)).astype(int), len(allowed) - 1)]
        return R

    def unit(self, r: np.ndarray) -> list[float]:
        """The `Space.decode` coordinates of one point: discrete numbers at their cell centre
        (far from the cell's edges, so decoding gives exactly the value the kernel saw)."""
        out = []
        for j, dist in enumerate(self.dists):
            if j in self.allowed:
                out.append(dist.to_unit(int(r[j])))
            else:
                out.append(float(dist.snap_unit(np.array([r[j]]))[0]))
        return out

    def neighbours(self, j: int, r: np.ndarray, f: np.ndarray) -> list[float]:
        """Relaxed values of parameter j next to its current one (discrete parameters only)."""
        dist = self.dists[j]
        if j in self.allowed:  # the relaxed coordinate of a choice is the option index
            return [float(i) for i in dist.neighbours(int(r[j]))]
        return [float(dist.to_unit(v)) for v in dist.neighbours(dist.from_unit(float(f[j])))]
