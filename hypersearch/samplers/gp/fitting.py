"""Fitting the GP to a history, at bounded cost, with a cache that never changes a result.

Values are multiplied by the direction's sign (lower is better) and standardised; ±inf is
clipped to the finite range and NaN ignored; FAILED trials are left out; PRUNED trials count
with the value they were stopped at (the sampler's choice, see `GPSampler.suggest`).

Hyperparameters: the first fit starts from a smooth, noisy model (`prior.default_theta`) and
`n_restarts` random points; every later fit is a short step (gradient tolerance 1e-2) from the
one before, so the model gains detail as evidence accumulates rather than jumping to whichever
mode fits the latest data best (on Ackley-10 that mode fits the ripples as signal and loses the
bowl: median regret 12 instead of 6 at 100 trials). Fits happen at history sizes up to
`refit_below`, then each time the history has grown by `refit_every` trials or 10%, whichever is
more; in between the last fit holds and the cached Cholesky factor is extended by the new rows
(a rank-append, O(n²) per row instead of O(n³)). A fit uses at most `fit_points` trials and the
model at most `max_points` (in both cases the best half and the most recent).

The fits form a path over the history's prefixes in trial-number order, each step warm-started
from the one before: a function of the history alone, so a worker without the cache computes
the same θ by replaying the path (about 1 s at 300 trials, once per process), and the cache,
keyed by the space's JSON and checked against the trial numbers, parameters and values it was
built from, never changes a result. The first fit's restarts come from the study seed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hypersearch.errors import SpaceError
from hypersearch.samplers.gp.encoding import Layout
from hypersearch.samplers.gp.model import append_rows, cholesky, fit, kernel, standardise, unpack
from hypersearch.samplers.gp.prior import default_theta
from hypersearch.trial import FrozenTrial

FIT_GTOL = 1e-2  # projected-gradient tolerance of the hyperparameter fits


@dataclass
class SpaceCache:
    """What a GP keeps for one space between suggestions (all of it checked before use)."""

    layout: Layout
    rows: dict[int, tuple[dict[str, Any], np.ndarray | None]] = field(default_factory=dict)
    # the hyperparameter path: the usable trials (in number order) and values it was computed
    # on, and θ at each checkpoint size
    path_numbers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    path_y: np.ndarray = field(default_factory=lambda: np.zeros(0))
    path: dict[int, np.ndarray] = field(default_factory=dict)
    # the Cholesky factor: its trials in row order, their features, the θ it was built with
    numbers: tuple[int, ...] = ()
    F: np.ndarray | None = None
    theta: np.ndarray | None = None
    L: np.ndarray | None = None
    # the path as another process computed it (a stored warm state): checkpoint -> (digest
    # of the prefix it was fitted on, θ), taken only where this history's prefix matches
    seeded: dict[int, tuple[str, np.ndarray]] = field(default_factory=dict)
    stored: Any = None  # a stored warm state not yet checked against this study's settings
    key: str | None = None  # the settings the path holds for (`warm_state`)
    fits_made = 0  # fits computed here (not seeded): a warm state is worth storing when it grows
    fits_stored = 0

    def row(self, trial: FrozenTrial) -> np.ndarray | None:
        """The feature row of a trial, cached by number (checked against its parameters);
        None for parameters this space cannot encode (e.g. another study's)."""
        hit = self.rows.get(trial.number)
        if hit is not None and hit[0] == trial.flat_params:
            return hit[1]
        try:
            row: np.ndarray | None = self.layout.row(trial.flat_params)
        except (SpaceError, ValueError, TypeError, IndexError, OverflowError):
            row = None
        self.rows[trial.number] = (trial.flat_params, row)
        return row

    def usable(
        self, done: Sequence[FrozenTrial], sign: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Numbers, feature rows and values (lower is better) of the finished trials the
        model can use, in number order."""
        numbers, rows, values = [], [], []
        for t in done:
            row = self.row(t)
            if row is not None:
                numbers.append(t.number)
                rows.append(row)
                values.append(sign * float(t.value))  # type: ignore[arg-type]
        F = np.array(rows).reshape(len(rows), self.layout.d)
        return np.array(numbers, dtype=int), F, np.array(values, dtype=float)


def kept(y: np.ndarray, limit: int) -> np.ndarray:
    """The rows kept under a limit: all of them, or the best half and the most recent."""
    if len(y) <= limit:
        return np.arange(len(y))
    best = np.argsort(y, kind="stable")[: limit // 2]
    rest = np.setdiff1d(np.arange(len(y)), best)
    return np.sort(np.concatenate([best, rest[len(rest) - (limit - len(best)) :]]))


def checkpoints(first: int, n: int, refit_below: int, refit_every: int) -> list[int]:
    """The history sizes up to n at which hyperparameters are fitted: every size from
    `first` to `refit_below`, then after `refit_every` new trials or 10% more, whichever
    is more (a cold worker replays about 100 + 25·log(n/100) fits, mostly small)."""
    out, c = [], first
    while c <= n:
        out.append(c)
        c += 1 if c < refit_below else max(refit_every, c // 10)
    return out


def hyperparameters(
    cache: SpaceCache,
    numbers: np.ndarray,
    F: np.ndarray,
    y: np.ndarray,
    seed: int,
    *,
    first: int,
    refit_below: int,
    refit_every: int,
    fit_points: int,
    n_restarts: int,
) -> tuple[np.ndarray, int]:
    """θ for the usable trials, and how many fits it took: a path of fits over growing
    prefixes (in trial-number order) of the history, each warm-started from the one before,
    at the sizes `checkpoints` gives; in between, the last θ holds.

    The cache only saves recomputing the checkpoints whose prefix has not changed (with
    parallel workers a late finisher changes the later ones)."""
    layout = cache.layout
    n = len(y)
    m = min(n, len(cache.path_numbers))
    same = (numbers[:m] == cache.path_numbers[:m]) & (y[:m] == cache.path_y[:m])
    valid = m if same.all() else int(np.argmin(same))
    path = {c: theta for c, theta in cache.path.items() if c <= valid}
    theta: np.ndarray | None = None
    fits = 0
    for c in checkpoints(first, n, refit_below, refit_every):
        if c in path:
            theta = path[c]
            continue
        seeded = cache.seeded.get(c)
        if seeded is not None and seeded[0] == prefix_digest(numbers, y, c):
            theta = path[c] = seeded[1]  # what this fit gives: another process made it
            continue
        part = y[:c]
        if not np.isfinite(part).any():
            continue
        keep = kept(part, fit_points)
        E, ys = layout.expand(F[:c][keep]), standardise(part[keep])
        if theta is None:
            starts = [default_theta(layout.d)]
            rng = np.random.default_rng([seed % 2**32, c])
            for _ in range(n_restarts):
                start = default_theta(layout.d)
                start[: layout.d] += rng.normal(0.0, 1.0, layout.d)
                start[layout.d :] += rng.normal(0.0, 1.0, 2)
                starts.append(start)
            theta = fit(E, ys, layout, starts, maxiter=200, gtol=FIT_GTOL)
        else:
            # a step on from the previous fit, not a fresh search: the model's detail
            # grows with the evidence instead of jumping to whichever mode fits the
            # latest data best (on Ackley, fitting the ripples as signal and losing the
            # bowl; Optuna's GPSampler follows such a path too, though per process)
            theta = fit(E, ys, layout, [theta], maxiter=30, gtol=FIT_GTOL)
        path[c] = theta
        fits += 1
    cache.path_numbers, cache.path_y, cache.path = numbers, y, path
    cache.fits_made += fits
    return (default_theta(layout.d) if theta is None else theta), fits


def prefix_digest(numbers: np.ndarray, y: np.ndarray, c: int) -> str:
    """A fingerprint of the first `c` usable trials (numbers and values): a fit on them."""
    h = hashlib.blake2b(digest_size=12)
    h.update(np.ascontiguousarray(numbers[:c], dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(y[:c], dtype=np.float64).tobytes())
    return h.hexdigest()


def warm_state(cache: SpaceCache, key: str) -> dict[str, Any]:
    """The hyperparameter path as JSON: {"key", "path": {checkpoint: [digest, θ]}}; `key`
    names the settings it holds for (space, seed, sampler options)."""
    return {
        "key": key,
        "path": {str(c): [prefix_digest(cache.path_numbers, cache.path_y, c),
                          [float(v) for v in theta]]
                 for c, theta in sorted(cache.path.items())},
    }


def take_warm_state(cache: SpaceCache, state: Any, key: str) -> None:
    """Seed `cache` with a stored `warm_state` made for the same `key`; anything else (another
    version's, another space's, damaged) is ignored: it is only ever a head start."""
    try:
        if state.get("key") != key:
            return
        seeded = {int(c): (str(digest), np.array(theta, dtype=float))
                  for c, (digest, theta) in state["path"].items()}
    except (AttributeError, KeyError, TypeError, ValueError):
        return
    width = cache.layout.d + 2
    cache.seeded = {c: v for c, v in seeded.items() if v[1].shape == (width,)
                    and np.isfinite(v[1]).all()}


def factor(
    cache: SpaceCache,
    numbers: np.ndarray,
    F: np.ndarray,
    y: np.ndarray,
    theta: np.ndarray,
    max_points: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardised values, features, expanded inputs and Cholesky factor of the rows the
    model keeps; the cached factor is extended by the new rows (a rank-append) when it
    was built with the same θ on rows that are all still there."""
    layout = cache.layout
    keep = kept(y, max_points)
    numbers, F, y = numbers[keep], F[keep], y[keep]
    inv_ls, sf2, sn2 = unpack(theta, layout)
    k_old = len(cache.numbers)
    L: np.ndarray | None = None
    if (
        cache.L is not None
        and cache.F is not None
        and cache.theta is not None
        and np.array_equal(theta, cache.theta)
        and 0 < k_old <= len(numbers)
    ):
        where = {int(num): i for i, num in enumerate(numbers)}
        old = np.array([where.get(num, -1) for num in cache.numbers])
        if (old >= 0).all() and np.array_equal(F[old], cache.F):
            order = np.concatenate([old, np.setdiff1d(np.arange(len(numbers)), old)])
            numbers, F, y = numbers[order], F[order], y[order]
            L = cache.L
            if k_old < len(numbers):  # O(n²) per new row instead of O(n³)
                E_old = layout.expand(cache.F)
                L = append_rows(L, E_old, layout.expand(F[k_old:]), inv_ls, sf2, sn2)
    E = layout.expand(F)
    if L is None:
        K = kernel(E, inv_ls, sf2)
        K.flat[:: len(E) + 1] += sn2
        L = cholesky(K)
    cache.numbers, cache.F, cache.theta, cache.L = tuple(int(v) for v in numbers), F, theta, L
    return standardise(y), F, E, L
