"""Tree-structured Parzen Estimator (Bergstra et al. 2011; Watanabe 2023), numpy only.

The complete trials are ranked (lower ``value * sign`` is better); the best ``gamma(n)`` form
the "good" set, the rest, with the trials that failed because of their parameters, the pruned
ones and the pending ones, the "bad" set. Each set gives a Parzen density (a kernel mixture),
``l`` and ``g``, both mixed with the parameters' prior. Candidates are drawn from ``l`` and the
one maximising ``l(x) / g(x)`` (which orders points as expected improvement does, Bergstra et
al. 2011) is suggested. In a study with a halving scheduler (ASHA, Hyperband) the ranked
values are those of the highest rung that holds enough of them, pruned trials included, as in
BOHB (Falkner et al. 2018; see `_targets`).

Numbers live in a transformed space x (the logarithm for log scales), where kernels are
Gaussians truncated to the parameter's bounds. Integers and quantized values are drawn
continuously, rounded onto their lattice, and scored by the probability mass of their lattice
cell: exactly (normal CDF differences) where cells are wide against the kernel, as density x
cell width where they are narrow (within 1% there). The prior component is each parameter's
own prior: uniform in x over the bounds, the normal prior of normal/lognormal parameters, the
option weights of a choice.

Conditional spaces: parameters that are active under the same choices form a group, sampled
top down (a group only once the choices above it are made) from a model fitted on the trials
where that group was active.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hypersearch.errors import StrategyError
from hypersearch.samplers.base import Context, Sampler, check_bool, check_float, check_int
from hypersearch.space import Choice, Distribution, Float, Integer, Normal, Space
from hypersearch.space.distributions import _snap, distribution_from_json
from hypersearch.trial import FailureReason, FrozenTrial, TrialState

_CONT, _LATTICE, _CAT = 0, 1, 2
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_LOG_HALF = math.log(0.5)
_MAX_EXP = 700.0  # exp() of more overflows a float
# Numerical Recipes' erfc fit: erfc(z) ~ t exp(-z^2 + P(t)), t = 1 / (1 + z/2); P from the top
_ERFC_COEFFS = (
    0.17087277,
    -0.82215223,
    1.48851587,
    -1.13520398,
    0.27886807,
    -0.18628806,
    0.09678418,
    0.37409196,
    1.00002368,
    -1.26551223,
)

# Row states in the observation arrays. _PRUNED rows are stored apart from _BAD ones: they
# become observations where rung values rank them (multi-fidelity studies), bad ones otherwise.
_COMPLETE, _BAD, _IGNORED, _PRUNED = 0, 1, 2, 3
# Failures that say nothing about the parameters (the worker died, the study was stopped).
_NEUTRAL_FAILURES = frozenset(
    {FailureReason.STALE, FailureReason.INFRASTRUCTURE, FailureReason.INTERRUPTED}
)
_STORES_PER_KEY = 4  # studies sharing one sampler instance and one space


def default_gamma(n: int) -> int:
    """How many of `n` complete trials are "good": the best 10%, at most 25.

    Linear in n, which Watanabe (2023) found more reliable than hyperopt's ``0.25 sqrt(n)``;
    the cap keeps ``l`` a model of the top region rather than of an ever larger top 10%.
    """
    return min(math.ceil(0.1 * n), 25)


# -- numerics ------------------------------------------------------------------------------------


def _log_erfc(z: np.ndarray) -> np.ndarray:
    """log(erfc(z)) for z >= 0, with relative accuracy ~1e-7 even where erfc underflows."""
    t = 1.0 / (1.0 + 0.5 * z)
    poly = np.zeros_like(t)
    for coefficient in _ERFC_COEFFS:
        poly = poly * t + coefficient
    return np.where(np.isinf(z), -np.inf, np.log(t) - z * z + poly)


def _log_normal_mass(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """log(Phi(beta) - Phi(alpha)) for alpha <= beta (standard normal), stable in both tails.
    Call under np.errstate(all="ignore")."""
    la = _log_erfc(np.abs(alpha) * _INV_SQRT2)
    lb = _log_erfc(np.abs(beta) * _INV_SQRT2)
    right = _LOG_HALF + la + np.log1p(-np.exp(lb - la))  # both >= 0: difference of upper tails
    left = _LOG_HALF + lb + np.log1p(-np.exp(la - lb))  # both <= 0: difference of lower tails
    middle = np.log(np.maximum(1.0 - 0.5 * np.exp(la) - 0.5 * np.exp(lb), 1e-300))
    out = np.where(alpha >= 0, right, np.where(beta <= 0, left, middle))
    return np.where(np.isnan(out), -np.inf, out)


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    top = a.max(axis=1)
    safe = np.where(np.isfinite(top), top, 0.0)
    return np.log(np.exp(a - safe[:, None]).sum(axis=1)) + safe


# -- one parameter in the transformed space --------------------------------------------------------


class _Column:
    """A parameter's transformed space: x = value (or log value), bounds in x, lattice, prior,
    and the scale (`span`) its bandwidths are clipped against."""

    def __init__(self, name: str, dist: Distribution) -> None:
        self.name = name
        self.dist = dist
        self.lo, self.hi = -math.inf, math.inf
        self.log = bool(getattr(dist, "log", False))
        self.q: float | None = None
        self.h_floor = 0.0  # half a lattice cell: narrower kernels would ignore the neighbours
        self.mu, self.sigma = math.nan, math.nan
        if isinstance(dist, Choice):
            self.kind = _CAT
            self.size = dist.size
            weights = dist.weights or (1.0 / dist.size,) * dist.size
            self.pi = np.asarray(weights, dtype=float)
            with np.errstate(divide="ignore"):
                self.log_pi = np.log(self.pi)
            self.span = self.h_max = 1.0
        elif isinstance(dist, Float):
            self.low, self.high = dist.low, dist.high
            self.lo, self.hi = (
                (math.log(dist.low), math.log(dist.high)) if self.log else (dist.low, dist.high)
            )
            self.span = self.h_max = self.hi - self.lo
            self.kind = _CONT
            if dist.q is not None:  # lattice low + k q, k <= top; cells clipped to the bounds
                self.kind, self.q = _LATTICE, dist.q
                self.top = math.floor((dist.high - dist.low) / dist.q + 1e-9)
                self.h_floor = 0.5 * self.span / (self.top + 1)
        elif isinstance(dist, Integer):
            self.kind = _LATTICE
            self.low, self.high, self.step = dist.low, dist.high, dist.step
            if self.log:  # as the prior: log-uniform on [low - 1/2, high + 1/2], rounded
                self.lo, self.hi = math.log(dist.low - 0.5), math.log(dist.high + 0.5)
            else:  # cells of width `step` around each lattice point
                self.lo = dist.low - dist.step / 2
                self.hi = dist.low + (dist.size - 0.5) * dist.step
            self.span = self.h_max = self.hi - self.lo
            self.h_floor = 0.5 * self.span / dist.size
        elif isinstance(dist, Normal):
            self.mu, self.sigma = dist.mu, dist.sigma
            # unbounded: bandwidths are clipped against the prior's width instead of a range
            self.span, self.h_max = 4.0 * dist.sigma, 2.0 * dist.sigma
            self.kind = _CONT
            if dist.q is not None:  # multiples of q, cells of width q (in value space)
                self.kind, self.q = _LATTICE, dist.q
                if not self.log:
                    self.h_floor = 0.5 * dist.q
        else:
            raise TypeError(f"TPE cannot model {type(dist).__name__}")
        self.bounded = not math.isinf(self.lo)

    def encode(self, value: Any) -> float:
        """The x of a stored raw value (NaN when it cannot belong to this parameter)."""
        if self.kind == _CAT:
            ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < self.size
            return float(value) if ok else math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return math.nan
        v = float(value)
        if not math.isfinite(v):
            return math.nan
        if self.log:
            if v <= 0:  # a lognormal rounded to q can be 0: its kernel sits inside its cell
                return math.log(self.q / 4) if (v == 0 and self.q is not None) else math.nan
            v = math.log(v)
        return min(max(v, self.lo), self.hi)

    def discretize(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Continuous draws -> (values, x of the values, (a, b) cell edges in x or None)."""
        if self.kind == _CAT:
            return x, x, None
        if self.kind == _CONT:
            return (np.exp(np.minimum(x, _MAX_EXP)) if self.log else x), x, None
        dist = self.dist
        if isinstance(dist, Integer):
            if self.log:
                v = np.clip(np.rint(np.exp(x)), self.low, self.high)
                return v, np.log(v), np.stack([np.log(v - 0.5), np.log(v + 0.5)])
            k = np.clip(np.rint((x - self.low) / self.step), 0, dist.size - 1)
            v = self.low + k * self.step
            return v, v, np.stack([v - self.step / 2, v + self.step / 2])
        q = self.q
        assert q is not None
        raw = np.exp(np.minimum(x, _MAX_EXP)) if self.log else x
        if isinstance(dist, Float):
            k = np.clip(np.rint((raw - self.low) / q), 0, self.top)
            v = self.low + k * q
            a = np.maximum(v - q / 2, self.low)
            b = np.where(k >= self.top, self.high, np.minimum(v + q / 2, self.high))
        else:
            v = np.rint(raw / q) * q
            if self.log:
                v = np.maximum(v, 0.0)
            a, b = v - q / 2, v + q / 2
        if not self.log:
            return v, v, np.stack([a, b])
        xc = np.where(v > 0, np.log(np.maximum(v, 1e-300)), math.log(q / 4))
        return v, xc, np.stack([np.log(np.maximum(a, 0.0)), np.log(b)])

    def python_value(self, v: float) -> Any:
        """The raw value the space stores for a discretized draw."""
        dist = self.dist
        if self.kind == _CAT or isinstance(dist, Integer):
            return int(v)
        if isinstance(dist, Float):
            if self.q is not None:
                return _snap(float(v), self.low, self.q, self.low, self.high)
            return min(max(float(v), self.low), self.high)
        if self.q is not None:
            return _snap(float(v), 0.0, self.q, None, None)
        return float(v)

    def prior_logp(self, xc: np.ndarray, cell: np.ndarray | None) -> np.ndarray | float:
        """log prior density (continuous) or mass (lattices, choices) of discretized draws."""
        if self.kind == _CAT:
            return self.log_pi[xc.astype(int)]
        if cell is None:
            if self.bounded:
                return -math.log(self.hi - self.lo)
            z = (xc - self.mu) / self.sigma
            return -0.5 * z * z - math.log(self.sigma) - _LOG_SQRT_2PI
        if self.bounded:  # uniform in x: the cell's share of the range
            return np.log(np.maximum(cell[1] - cell[0], 0.0)) - math.log(self.hi - self.lo)
        return _log_normal_mass((cell[0] - self.mu) / self.sigma, (cell[1] - self.mu) / self.sigma)


class _Group:
    """Parameters modelled jointly (all of them, in univariate mode one), with the
    per-dimension constants the vectorised density code needs."""

    def __init__(self, condition: tuple[tuple[str, int], ...], idx: list[int], cols: list[_Column]):
        self.condition = condition
        self.idx = idx
        self.cols = cols
        self.num = [j for j, c in enumerate(cols) if c.kind != _CAT]
        self.cat = [j for j, c in enumerate(cols) if c.kind == _CAT]
        num_cols = [cols[j] for j in self.num]
        self.lo = np.array([c.lo for c in num_cols])
        self.hi = np.array([c.hi for c in num_cols])
        self.span = np.array([c.span for c in num_cols])
        self.h_max = np.array([c.h_max for c in num_cols])
        self.h_floor = np.array([c.h_floor for c in num_cols])
        self.bounded = np.array([c.bounded for c in num_cols], dtype=bool)
        # integers and quantized values on a linear scale: their own bandwidth factor
        self.linear_lattice = np.array(
            [c.kind == _LATTICE and not c.log for c in num_cols], dtype=bool
        )
        self.mu = np.array([c.mu for c in num_cols])
        self.sigma = np.array([c.sigma for c in num_cols])
        self.width = np.where(self.bounded, self.hi - self.lo, 0.0)
        self.any_normal = not bool(self.bounded.all())


# -- a Parzen estimator over one group ---------------------------------------------------------------


@dataclass(frozen=True)
class _Settings:
    prior_weight: float
    bandwidth_factor: float
    lattice_bandwidth_factor: float
    min_bandwidth: float
    choice_smoothing: float


class _Parzen:
    """Mixture of the prior (weight `prior_weight`) and one product kernel per observation.

    Numeric kernels share one bandwidth per dimension: Scott's rule ``1.059 sd n**(-1/(d+4))``
    clipped to ``[span * max(min_bandwidth, 1/(n+1)), span]`` (hyperopt's "magic clip"), then
    scaled by `bandwidth_factor` (`lattice_bandwidth_factor` on linear lattices), and never
    under half a lattice cell. A choice's kernel is
    ``(1 - eps) [j == c] + eps prior(j)`` with ``eps = s / (n + s)``: the prior's pull fades as
    the model gains observations, as the magic clip does for numbers.
    """

    def __init__(
        self, group: _Group, obs: np.ndarray, weights: np.ndarray, settings: _Settings
    ) -> None:
        self.group = group
        self.obs = obs
        n = len(obs)
        wsum = float(weights.sum())
        total = wsum + settings.prior_weight
        self.p = np.append(weights, settings.prior_weight) / total  # last entry: the prior
        self.log_w = np.log(weights / total)
        self.log_prior_w = math.log(settings.prior_weight / total)
        pseudo = settings.choice_smoothing
        self.eps = 1.0 if wsum + pseudo <= 0 else pseudo / (wsum + pseudo)
        self.log_norm = np.zeros(n)  # -sum over bounded dims of log(truncation mass)
        num = group.num
        self.h = np.ones(len(num))
        if n == 0 or not num:
            return
        x = obs[:, num]
        mean = weights @ x / wsum
        sd = np.sqrt(np.maximum(weights @ ((x - mean) ** 2) / wsum, 0.0))
        scott = 1.059 * sd * n ** (-1.0 / (len(num) + 4))
        clip = group.span * max(settings.min_bandwidth, 1.0 / (n + 1.0))
        factor = np.where(
            group.linear_lattice, settings.lattice_bandwidth_factor, settings.bandwidth_factor
        )
        h = np.minimum(np.maximum(scott, clip), group.h_max) * factor
        self.h = h = np.maximum(h, group.h_floor)
        # log Z = log(1 - both tails): only kernels within 8 h of a bound lose more than 1e-15
        below, above = (x - group.lo) / h, (group.hi - x) / h  # +inf where unbounded
        rows, dims = np.nonzero(np.minimum(below, above) < 8.0)
        if len(rows):
            tails = np.exp(_log_erfc(below[rows, dims] * _INV_SQRT2)) + np.exp(
                _log_erfc(above[rows, dims] * _INV_SQRT2)
            )
            np.add.at(self.log_norm, rows, -np.log(np.maximum(1.0 - 0.5 * tails, 1e-300)))
        # centred and scaled once: squared distances then come from one inner product
        self.mean = mean
        self.scaled = (x - mean) / h
        self.scaled_sq = self.scaled * self.scaled

    def sample(self, rng: np.random.Generator, m: int) -> np.ndarray:
        """m draws, one column per parameter (continuous x; choices as option indices)."""
        group, n = self.group, len(self.obs)
        comp = rng.choice(n + 1, size=m, p=self.p) if n else np.zeros(m, dtype=int)
        from_prior = comp == n
        n_prior = int(from_prior.sum())
        kern = comp[~from_prior]
        out = np.empty((m, len(group.cols)))
        if group.num:
            draws = np.empty((m, len(group.num)))
            if n_prior:
                u = group.lo + group.width * rng.random((n_prior, len(group.num)))
                if group.any_normal:
                    z = group.mu + group.sigma * rng.standard_normal((n_prior, len(group.num)))
                    u = np.where(group.bounded, u, z)
                draws[from_prior] = u
            if len(kern):
                draws[~from_prior] = self._kernel_draws(rng, self.obs[kern][:, group.num])
            out[:, group.num] = draws
        for j in group.cat:
            col = group.cols[j]
            x = np.empty(m)
            if n_prior:
                x[from_prior] = rng.choice(col.size, size=n_prior, p=col.pi)
            if len(kern):
                centres = self.obs[kern, j]
                redraw = rng.random(len(kern)) < self.eps
                if redraw.any():
                    centres[redraw] = rng.choice(col.size, size=int(redraw.sum()), p=col.pi)
                x[~from_prior] = centres
            out[:, j] = x
        return out

    def _kernel_draws(self, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
        """Truncated normal draws around `centres` by rejection (acceptance >= ~1/3 here:
        centres lie inside the bounds and bandwidths never exceed the range)."""
        group, h = self.group, self.h
        x = centres + h * rng.standard_normal(centres.shape)
        out = (x < group.lo) | (x > group.hi)
        for _ in range(64):
            if not out.any():
                break
            rows, dims = np.nonzero(out)
            x[rows, dims] = centres[rows, dims] + h[dims] * rng.standard_normal(len(rows))
            out[rows, dims] = (x[rows, dims] < group.lo[dims]) | (x[rows, dims] > group.hi[dims])
        return np.clip(x, group.lo, group.hi)

    def log_pdf(
        self, xc: np.ndarray, cells: list[np.ndarray | None], log_prior: np.ndarray
    ) -> np.ndarray:
        """log density (mass on lattices and choices) at discretized candidates `xc` (m x d)
        with their lattice `cells`; `log_prior` is the prior's, shared by l and g."""
        group, m, n = self.group, len(xc), len(self.obs)
        prior = log_prior + self.log_prior_w
        if n == 0:
            return prior
        total = np.broadcast_to(self.log_w + self.log_norm, (m, n)).copy()
        # Gaussian factors (continuous dims, and lattices whose cells are narrow against the
        # kernel: mass = density x width, < 1% off at width h/2) as one squared distance
        gauss: list[int] = []
        const = np.zeros(m)
        for k, j in enumerate(group.num):
            h, cell = self.h[k], cells[j]
            if cell is None:
                gauss.append(k)
                const -= math.log(h) + _LOG_SQRT_2PI
                continue
            width = cell[1] - cell[0]
            if np.all(width <= 0.5 * h):
                gauss.append(k)
                const += np.log(width) - (math.log(h) + _LOG_SQRT_2PI)
                continue
            centres = self.obs[:, j]
            total += _log_normal_mass(
                (cell[0][:, None] - centres[None, :]) / h, (cell[1][:, None] - centres[None, :]) / h
            )
        if gauss:
            dims = [group.num[k] for k in gauss]
            z = (xc[:, dims] - self.mean[gauss]) / self.h[gauss]
            sq = (z * z).sum(axis=1)[:, None] + self.scaled_sq[:, gauss].sum(axis=1)[None, :]
            sq -= 2.0 * np.einsum("ik,jk->ij", z, self.scaled[:, gauss])
            total += const[:, None] - 0.5 * np.maximum(sq, 0.0)
        for j in group.cat:
            pi, x, centres = group.cols[j].pi, xc[:, j], self.obs[:, j]
            hit = np.log((1 - self.eps) + self.eps * pi[centres.astype(int)])
            miss = np.log(self.eps * pi[x.astype(int)])
            total += np.where(x[:, None] == centres[None, :], hit[None, :], miss[:, None])
        return np.logaddexp(_logsumexp_rows(total), prior)


# -- observations: finished trials cached, pending ones recomputed ---------------------------------


def _fingerprint(trial: FrozenTrial) -> tuple[Any, ...]:
    value = trial.value
    return (trial.number, trial.state, None if value is None else repr(value), trial.flat_params)


def _row_state(trial: FrozenTrial) -> int:
    if trial.state is TrialState.COMPLETE:
        return _COMPLETE if trial.value is not None and not math.isnan(trial.value) else _IGNORED
    if trial.state is TrialState.PRUNED:
        return _PRUNED
    if trial.failure_reason in _NEUTRAL_FAILURES:
        return _IGNORED
    return _BAD


class _Store:
    """The finished trials of one study as arrays in trial-number order: `x` (rows x
    parameters, NaN where inactive), raw `values`, `states` (_COMPLETE/_BAD/_IGNORED/_PRUNED).

    Finished trials never change, so each is encoded once; `frontier` is the length of the
    history prefix known to be finished and encoded, so a call scans only the trials after it
    (in a sequential study, one). Fingerprints of the first and the last trial encoded detect
    a history that is not the one cached (another study sharing this sampler).
    """

    def __init__(self, width: int) -> None:
        self.numbers = np.empty(0, dtype=np.int64)
        self.values = np.empty(0)
        self.states = np.empty(0, dtype=np.int8)
        self.x = np.empty((0, width))
        self.encoded: set[int] = set()
        self.seen: set[bytes] = set()  # keys of the rows evaluated (complete, failed, pruned)
        self.frontier = 0
        self.prints: list[tuple[Any, ...]] = []

    def matches(self, history: Sequence[FrozenTrial]) -> bool:
        for mark in self.prints:
            number = mark[0]
            if number >= len(history) or _fingerprint(history[number]) != mark:
                return False
        return True

    def update(
        self, history: Sequence[FrozenTrial], encode: Callable[[FrozenTrial], np.ndarray]
    ) -> list[FrozenTrial]:
        """Encode the newly finished trials; return the pending ones."""
        start = self.frontier
        if start and (start > len(history) or history[start - 1].number != start - 1):
            start = 0  # not positional: scan it all (still encoding only the new trials)
        new: list[FrozenTrial] = []
        pending: list[FrozenTrial] = []
        for trial in history[start:]:
            if trial.state.is_finished:
                if trial.number not in self.encoded:
                    new.append(trial)
            else:
                pending.append(trial)
        if new:
            self._append(new, encode)
        frontier = self.frontier
        while frontier < len(history):
            number = history[frontier].number
            if number != frontier or number not in self.encoded:
                break
            frontier += 1
        self.frontier = frontier
        return pending

    def _append(self, new: list[FrozenTrial], encode: Callable[[FrozenTrial], np.ndarray]) -> None:
        numbers = np.array([t.number for t in new], dtype=np.int64)
        values = np.array([math.nan if t.value is None else float(t.value) for t in new])
        states = np.array([_row_state(t) for t in new], dtype=np.int8)
        rows = np.array([encode(t) for t in new], dtype=float).reshape(len(new), self.x.shape[1])
        # new arrays, never in-place writes: a reader in another thread keeps a consistent view
        self.numbers = np.concatenate([self.numbers, numbers])
        self.values = np.concatenate([self.values, values])
        self.states = np.concatenate([self.states, states])
        self.x = np.concatenate([self.x, rows])
        # only ever added to, so readers may test membership outside the lock
        for row, state in zip(rows, states, strict=True):
            if state != _IGNORED and not np.isnan(row).all():
                self.seen.add(_row_key(row))
        if np.any(np.diff(self.numbers) < 0):  # trials finished out of order
            order = np.argsort(self.numbers, kind="stable")
            self.numbers, self.values = self.numbers[order], self.values[order]
            self.states, self.x = self.states[order], self.x[order]
        self.encoded.update(int(n) for n in numbers)
        first = min(new, key=lambda t: t.number)
        last = max(new, key=lambda t: t.number)
        if not self.prints or first.number < self.prints[0][0]:
            self.prints[:1] = [_fingerprint(first)]
        if len(self.prints) < 2 or last.number > self.prints[-1][0]:
            self.prints[1:] = [_fingerprint(last)]


# -- what the split ranks: final values, or values at a rung (multi-fidelity) ---------------------


def _lookup(numbers: np.ndarray, found: Mapping[int, float]) -> np.ndarray:
    """`found`'s value for each of the (sorted) trial `numbers`, NaN where it has none."""
    out = np.full(len(numbers), math.nan)
    if not found or not len(numbers):
        return out
    keys = np.fromiter(found.keys(), dtype=np.int64, count=len(found))
    vals = np.fromiter(found.values(), dtype=float, count=len(found))
    pos = np.minimum(np.searchsorted(numbers, keys), len(numbers) - 1)
    hit = numbers[pos] == keys
    out[pos[hit]] = vals[hit]
    return out


def _targets(
    context: Context,
    numbers: np.ndarray,
    values: np.ndarray,
    states: np.ndarray,
    n_startup: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """(y, states, seen) for the good/bad split: y is the loss (lower better) of the rows
    whose state is _COMPLETE, the observations; the other rows are _BAD or _IGNORED. `seen`
    is what startup counts: the model is fitted once it reaches `n_startup`.

    Without rung values the observations are the complete trials at their final value and the
    pruned ones are bad. With them (a halving scheduler: `Context.rung_values`), as in BOHB
    (Falkner et al. 2018), the observations are the trials' values at the highest level that
    holds at least `n_startup` of them, the complete trials' final values being the top level:
    there every configuration ran the same budget, so their values compare; the finished
    trials stopped below that level are bad. Early in a halving study nearly every trial is
    pruned, and this is what lets TPE model from them rather than draw at random until
    `n_startup` trials ran to the end. Without rung values, pruned trials with a value count
    towards startup too (they are finished evaluations, if bad ones)."""
    sign = context.sign
    complete = states == _COMPLETE
    pruned = states == _PRUNED
    base = np.where(pruned, _BAD, states).astype(np.int8)
    y = np.where(complete, values * sign, np.nan)
    rungs = context.rung_values
    if not rungs or not len(numbers):
        return y, base, int((complete | (pruned & ~np.isnan(values))).sum())
    finished = complete | pruned
    steps = sorted(rungs)
    at = [np.where(finished, _lookup(numbers, rungs[r]) * sign, np.nan) for r in steps]
    need = max(n_startup, 1)
    counts = [int((~np.isnan(level)).sum()) for level in at]
    n_final = int((~np.isnan(y)).sum())
    if n_final >= need:
        return y, base, n_final
    for level, count in zip(reversed(at), reversed(counts), strict=True):
        if count >= need:
            observed = ~np.isnan(level)
            out = base.copy()
            out[observed] = _COMPLETE
            # complete trials without a value at the rung (no report there) tell nothing here
            out[complete & ~observed] = _IGNORED
            return level, out, count
    # no level holds enough yet: startup goes on until the most populated one does
    return y, base, max([n_final, *counts])


class _Plan:
    """Parameters prepared for TPE: their columns and their groups in top-down order. From a
    declared space, or (define-by-run) from flat names and distributions."""

    def __init__(
        self,
        names: list[str],
        dists: list[Distribution],
        conditions: list[tuple[tuple[str, int], ...]],
        multivariate: bool,
    ) -> None:
        self.names = names
        self.index = {name: i for i, name in enumerate(self.names)}
        self.columns = [_Column(name, dist) for name, dist in zip(names, dists, strict=True)]
        items: list[tuple[tuple[tuple[str, int], ...], list[int]]]
        if multivariate:
            by_condition: dict[tuple[tuple[str, int], ...], list[int]] = {}
            for i, condition in enumerate(conditions):
                by_condition.setdefault(condition, []).append(i)
            items = list(by_condition.items())
        else:
            items = [(condition, [i]) for i, condition in enumerate(conditions)]
        # a choice comes before the parameters of its options, so conditions resolve in order
        self.groups = [
            _Group(condition, idx, [self.columns[i] for i in idx]) for condition, idx in items
        ]

    @classmethod
    def of_space(cls, space: Space, multivariate: bool) -> _Plan:
        names = list(space.names)
        return cls(
            names,
            [space.params[name].dist for name in names],
            [space.params[name].condition for name in names],
            multivariate,
        )

    def encode(self, flat: Mapping[str, Any]) -> np.ndarray:
        row = np.full(len(self.names), math.nan)
        for name, value in flat.items():
            i = self.index.get(name)
            if i is not None:
                row[i] = self.columns[i].encode(value)
        return row

    def sample_prior(self, rng: np.random.Generator) -> dict[str, Any]:
        """A prior draw of every parameter (flat plans: no conditions)."""
        out = {}
        for col in self.columns:
            value = col.dist.sample(rng)
            out[col.name] = value.item() if isinstance(value, np.generic) else value
        return out


def _row_key(row: np.ndarray) -> bytes:
    """A hashable key of an encoded row; NaN (inactive) entries all compare equal."""
    return np.where(np.isnan(row), -math.inf, row + 0.0).tobytes()  # + 0.0: -0.0 is 0.0


class _Taken:
    """Keys of points not to propose: the pending ones and (a live view of) the evaluated ones."""

    def __init__(self, pending: set[bytes], seen: set[bytes] | None) -> None:
        self.pending = pending
        self.seen = seen

    def __contains__(self, key: bytes) -> bool:
        return key in self.pending or (self.seen is not None and key in self.seen)

    def __bool__(self) -> bool:
        return bool(self.pending) or bool(self.seen)


class TPE(Sampler):
    """Tree-structured Parzen Estimator: model-based search for any space, fast at any history
    size. ``hs.minimize(f, space, strategy=TPE())``.

    Defaults, chosen on a 10-problem suite (Branin, Hartmann-6, Rosenbrock-5, Ackley-10,
    Styblinski-Tang-6, mixed int/log/choice, a choice-heavy and a conditional problem; 40 seeds,
    50 and 100 trials) starting from Watanabe (2023)'s recommendations:

    - ``multivariate=True``: one joint density per group of parameters active together (the
      same branch of the space), so correlated parameters are modelled together; clearly better
      than ``False`` (each parameter on its own) on every problem but the separable ones.
    - ``n_startup=10`` draws from the prior before modelling.
    - ``gamma=0.1``: the best ``min(ceil(gamma n), 25)`` of the n complete trials where a group
      was active are "good" (Watanabe: linear splits beat hyperopt's sqrt). A number, so that
      a study definition can store it; a function ``n -> count`` still works in Python, but
      such a sampler cannot be stored (`config` says so). Trials tied with the last good one
      but left out of the good set join neither set: on a plateau of equal values (CV errors,
      a parameter with no effect) points as good as the good ones do not count against it.
    - ``prior_weight=1.0``: the prior is a mixture component of ``l`` and ``g`` worth one
      observation: it keeps unexplored regions alive (Watanabe's and Optuna's value). 2.0 did
      better alongside a choice smoothing of 4, but together with ``choice_smoothing=1.0`` the
      pair scored higher on bench/efficiency.py's nine problems (seeds 0-19; bench/RESULTS.md)
      and on held-out seeds 20-59 of its six synthetic ones.
    - ``bandwidth_factor=0.3``: Scott's rule with the magic clip (Watanabe: both essential),
      then scaled by 0.3. Scott's rule is tuned for estimating a density, not for searching:
      kernels at full width barely refine around good points in 5+ dimensions (Ackley-10:
      regret 16.5 at 1.0, 13.3 at 0.3; gains on every problem, 0.2-0.4 about equal).
    - ``lattice_bandwidth_factor=0.6``: the same for integers and quantized values on a linear
      scale (depths, leaf sizes, neighbour counts, step= widths). Their responses are often
      jagged with flat regions, where kernels a lattice cell or two wide re-propose the
      neighbours of the first good points instead of exploring: on tree_cancer (six linear
      integers, CV error; 24 seeds, 60 trials) the score was 61 at 0.3, 70 at 0.6 (Optuna's
      TPE: 62); on mixed, whose integers are mostly log-scaled (which keep 0.3), 95.6 against
      96.6, and 93.4 against 93.6 on its step= variant. 1.0 did worse on both.
    - ``min_bandwidth=0.01``: no kernel narrower than 1% of the range (hyperopt's 1/100).
    - ``choice_smoothing=1.0``: a choice's kernel redraws its option from the prior with
      probability ``1 / (n + 1)``. The small "good" model then still proposes options few
      trials tried; with a fixed 0.1 a conditional search locked onto a mediocre but
      low-variance branch in half the seeds; 4 explored the branches too long (mixed and
      conditional problems, seeds 0-59).
    - ``n_candidates=24`` draws from ``l`` per group (8 explores more, 64 no better).
    - ``max_kernels=300``: past 300 kernels a density keeps its most recent 150 kernels (where
      the search now concentrates) and 150 evenly spaced older ones, each weighted by the
      trials it stands for; a suggestion's cost is then bounded whatever the history size.
    - ``avoid_repeats=True``: never propose a point already evaluated (complete, failed or
      pruned) while a free one can be found: for a deterministic objective a repeat teaches
      nothing, and on small integer lattices the model otherwise re-proposes its best points
      (bench/efficiency.py's tree_digits, 288 points: 23 of 60 trials were repeats, median
      of 10 seeds; Optuna's TPE 11.5, random search 5.5; now 0). Set False for a noisy
      objective, where evaluating a point again is information. A lattice with every point
      taken gets a repeat, never a pending point.

    Failed and pruned trials join the bad set (they say "not here"), except failures that are
    not about the parameters (stale lease, infrastructure, interruption), which are ignored, as
    are NaN values. Pruned trials with a value count towards `n_startup`. With a halving
    scheduler (``scheduler="asha"`` or ``"hyperband"``: BOHB, Falkner et al. 2018) the good/bad
    split ranks the values at the highest level holding ``n_startup`` of them: the complete
    trials' final values, else the rung values (`Context.rung_values`) of every finished trial
    that reached the highest such rung, pruned ones included; the trials stopped below it are
    bad. So TPE models from the first rung on instead of waiting for ``n_startup`` trials to run
    to the end, which few do under ASHA.

    Pending trials (RUNNING, WAITING) join the bad set too (a constant liar with the worst
    value), and a suggestion equal to a pending one is drawn again, so parallel workers do not
    propose the same point.
    """

    name = "tpe"
    uses_history = True
    uses_rungs = True

    def __init__(
        self,
        *,
        multivariate: bool = True,
        n_startup: int = 10,
        n_candidates: int = 24,
        gamma: float | Callable[[int], int] = 0.1,
        prior_weight: float = 1.0,
        bandwidth_factor: float = 0.3,
        lattice_bandwidth_factor: float = 0.6,
        min_bandwidth: float = 0.01,
        choice_smoothing: float = 1.0,
        max_kernels: int = 300,
        avoid_repeats: bool = True,
    ) -> None:
        self.multivariate = check_bool("TPE", "multivariate", multivariate)
        self.n_startup = check_int("TPE", "n_startup", n_startup, 0)
        self.n_candidates = check_int("TPE", "n_candidates", n_candidates, 1)
        if gamma is default_gamma:
            gamma = 0.1
        if callable(gamma):
            self.gamma: float | Callable[[int], int] = gamma
        else:
            fraction = check_float("TPE", "gamma", gamma, 0.0, strict=True)
            if fraction > 1.0:
                raise StrategyError(
                    f"TPE(gamma=...) must be a fraction in (0, 1] (of the complete trials that "
                    f"are good), got {gamma!r}"
                )
            self.gamma = fraction
        self.prior_weight = check_float("TPE", "prior_weight", prior_weight, 0.0, strict=True)
        self.bandwidth_factor = check_float(
            "TPE", "bandwidth_factor", bandwidth_factor, 0.0, strict=True
        )
        self.lattice_bandwidth_factor = check_float(
            "TPE", "lattice_bandwidth_factor", lattice_bandwidth_factor, 0.0, strict=True
        )
        self.min_bandwidth = check_float("TPE", "min_bandwidth", min_bandwidth, 0.0, strict=False)
        self.choice_smoothing = check_float(
            "TPE", "choice_smoothing", choice_smoothing, 0.0, strict=False
        )
        self.max_kernels = check_int("TPE", "max_kernels", max_kernels, 2)
        self.avoid_repeats = check_bool("TPE", "avoid_repeats", avoid_repeats)
        self._settings = _Settings(
            self.prior_weight,
            self.bandwidth_factor,
            self.lattice_bandwidth_factor,
            self.min_bandwidth,
            self.choice_smoothing,
        )
        self._lock = threading.Lock()
        self._plans: dict[Any, _Plan] = {}
        self._keys: dict[int, tuple[Space, str]] = {}
        self._stores: dict[Any, list[_Store]] = {}
        self._joint: dict[tuple[int, int, str | None], dict[str, Any]] = {}  # -> the draw
        self._intersection = _Intersection()

    def config(self) -> dict[str, Any]:
        if not isinstance(self.gamma, float):
            raise StrategyError(
                f"TPE(gamma={self.gamma!r}) cannot be stored in a study definition: a custom "
                "function is not JSON; pass gamma as a number instead, the fraction of the "
                "complete trials that are good (at most 25 of them; default 0.1)"
            )
        return {
            "multivariate": self.multivariate,
            "n_startup": self.n_startup,
            "n_candidates": self.n_candidates,
            "gamma": self.gamma,
            "prior_weight": self.prior_weight,
            "bandwidth_factor": self.bandwidth_factor,
            "lattice_bandwidth_factor": self.lattice_bandwidth_factor,
            "min_bandwidth": self.min_bandwidth,
            "choice_smoothing": self.choice_smoothing,
            "max_kernels": self.max_kernels,
            "avoid_repeats": self.avoid_repeats,
        }

    def __repr__(self) -> str:
        try:
            return super().__repr__()
        except StrategyError:  # a custom gamma: still printable
            return f"TPE(multivariate={self.multivariate}, gamma={self.gamma!r}, ...)"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        # caches rebuild
        state.update(_lock=None, _plans={}, _keys={}, _stores={}, _joint={})
        state["_intersection"] = _Intersection()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- declared spaces -------------------------------------------------------------------------

    def suggest(self, context: Context) -> dict[str, Any]:
        space = context.space
        if space is None:
            raise StrategyError(
                "TPE.suggest needs a declared space; define-by-run uses suggest_param"
            )
        if len(space) == 0:
            return {}
        with self._lock:
            plan, key = self._plan(space)
        return self._suggest_plan(
            plan,
            ("space", key),
            lambda t: plan.encode(t.flat_params),
            context,
            lambda rng: space.sample(rng),
        )

    def _plan(self, space: Space) -> tuple[_Plan, str]:
        """The plan for `space` and its cache key (its JSON), computed once per Space object."""
        known = self._keys.get(id(space))
        if known is not None and known[0] is space:
            key = known[1]
        else:
            key = space.to_json_str()
            if len(self._keys) > 16:
                self._keys.clear()
            self._keys[id(space)] = (space, key)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _Plan.of_space(space, self.multivariate)
        return plan, key

    def _suggest_plan(
        self,
        plan: _Plan,
        key: Any,
        encode: Callable[[FrozenTrial], np.ndarray],
        context: Context,
        prior: Callable[[np.random.Generator], dict[str, Any]],
        rng: np.random.Generator | None = None,
    ) -> dict[str, Any]:
        """One suggestion for `plan`'s parameters from the trials `encode` turns into rows
        (NaN where a parameter is not active); `prior` draws a fallback."""
        with self._lock:
            store, pending = self._store_update(key, context.history, len(plan.names), encode)
            # a snapshot: the store replaces its arrays, it never writes into them
            x, values, states, seen = store.x, store.values, store.states, store.seen
            numbers = store.numbers
        pending_x = np.array([encode(t) for t in pending], dtype=float)
        pending_x = pending_x.reshape(len(pending), len(plan.names))
        # points not to propose again: the pending ones always (parallel workers would
        # duplicate them); the evaluated ones unless the objective is noisy, since a repeat of
        # a deterministic objective teaches nothing
        pending_keys = {_row_key(row) for row in pending_x}
        tiers = [_Taken(pending_keys, seen)] if self.avoid_repeats else []
        tiers.append(_Taken(pending_keys, None))  # every point evaluated: a repeat, not a pending
        rng = context.rng if rng is None else rng
        y, states, seen_count = _targets(context, numbers, values, states, self.n_startup)
        if seen_count < self.n_startup:
            for taken in tiers:
                out, free = self._distinct(plan, lambda: prior(rng), taken)
                if free:
                    break
            return out
        for taken in tiers:
            # one group holding every parameter: candidates already taken are skipped inside it
            skip = taken if len(plan.groups) == 1 else None

            def model() -> dict[str, Any]:
                return self._sample_tree(plan, x, y, states, pending_x, rng, skip)  # noqa: B023

            out, free = self._distinct(plan, model, taken, fallback=lambda: prior(rng))
            if free:
                break
        return out

    def _store_update(
        self,
        key: Any,
        history: Sequence[FrozenTrial],
        width: int,
        encode: Callable[[FrozenTrial], np.ndarray],
    ) -> tuple[_Store, list[FrozenTrial]]:
        """The store matching `history` (a new one when none does), updated; and the pending
        trials. Call under the lock."""
        stores = self._stores.setdefault(key, [])
        store = next((s for s in stores if s.matches(history)), None)
        if store is None:
            store = _Store(width)
            stores.append(store)
            del stores[:-_STORES_PER_KEY]
        return store, store.update(history, encode)

    @staticmethod
    def _distinct(
        plan: _Plan,
        draw: Callable[[], dict[str, Any]],
        taken: _Taken,
        fallback: Callable[[], dict[str, Any]] | None = None,
    ) -> tuple[dict[str, Any], bool]:
        """A draw that is not `taken`, when a few tries can find one (the model again, with
        new candidates, three times, then the prior), and whether it is free."""
        out = draw()
        if not taken:
            return out, True
        for attempt in range(40):
            if _row_key(plan.encode(out)) not in taken:
                return out, True
            out = draw() if fallback is None or attempt < 3 else fallback()
        return out, False

    def _sample_tree(
        self,
        plan: _Plan,
        x: np.ndarray,
        y: np.ndarray,
        states: np.ndarray,
        pending_x: np.ndarray,
        rng: np.random.Generator,
        skip: _Taken | None = None,
    ) -> dict[str, Any]:
        """Top down: each group whose condition the choices made so far satisfy is sampled from
        its own model."""
        chosen: dict[str, Any] = {}
        with np.errstate(all="ignore"):  # -inf logs are expected (empty cells, eps = 0)
            for group in plan.groups:
                if any(chosen.get(path) != index for path, index in group.condition):
                    continue
                values = self._sample_group(group, x, y, states, pending_x, rng, skip)
                for i, value in zip(group.idx, values, strict=True):
                    chosen[plan.names[i]] = value
        return {name: chosen[name] for name in plan.names if name in chosen}

    def _split(self, y: np.ndarray, done: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(good, tied): masks over `done`. The best ``gamma(n)`` are good, ties at the cut to
        the earlier trial; `tied` marks the trials left out with the cut's value, as good as
        the last good one: they join neither set, so a plateau does not count against itself."""
        n = len(done)
        gamma = self.gamma
        n_good = min(math.ceil(gamma * n), 25) if isinstance(gamma, float) else int(gamma(n))
        n_good = min(max(n_good, 0), n)
        good_mask = np.zeros(len(done), dtype=bool)
        tied = np.zeros(len(done), dtype=bool)
        if n_good:
            ranked = y[done]
            # the n_good best; O(n) where a sort would be O(n log n)
            cut = np.partition(ranked, n_good - 1)[n_good - 1]
            good_mask = ranked < cut
            at_cut = np.flatnonzero(ranked == cut)
            chosen = at_cut[: n_good - int(good_mask.sum())]
            good_mask[chosen] = True
            tied[at_cut] = True
            tied[chosen] = False
        return good_mask, tied

    def _sample_group(
        self,
        group: _Group,
        x: np.ndarray,
        y: np.ndarray,
        states: np.ndarray,
        pending_x: np.ndarray,
        rng: np.random.Generator,
        skip: _Taken | None = None,
    ) -> list[Any]:
        """Split the trials where `group` was active into good and bad, fit l and g, and
        return the candidate with the best l/g (not one in `skip`, when some is not)."""
        idx = group.idx
        active = ~np.isnan(x[:, idx[0]])  # a group's parameters are active together
        done = np.flatnonzero(active & (states == _COMPLETE))
        good_mask, tied = self._split(y, done)
        good = done[good_mask]
        bad_mask = active & (states == _BAD)
        bad_mask[done[~good_mask & ~tied]] = True
        bad = np.flatnonzero(bad_mask)  # trial order
        pend = pending_x[~np.isnan(pending_x[:, idx[0]])][:, idx] if len(pending_x) else None
        l_model = _Parzen(group, *self._capped(x[np.ix_(good, idx)], None), self._settings)
        g_model = _Parzen(group, *self._capped(x[np.ix_(bad, idx)], pend), self._settings)

        best_values: list[Any] | None = None
        for _ in range(4 if skip else 1):  # more candidates while every one is taken
            draws = l_model.sample(rng, self.n_candidates)
            values = np.empty_like(draws)
            xc = np.empty_like(draws)
            cells: list[np.ndarray | None] = []
            log_prior = np.zeros(len(draws))
            for j, col in enumerate(group.cols):
                values[:, j], xc[:, j], cell = col.discretize(draws[:, j])
                cells.append(cell)
                log_prior = log_prior + col.prior_logp(xc[:, j], cell)
            score = l_model.log_pdf(xc, cells, log_prior) - g_model.log_pdf(xc, cells, log_prior)
            score = np.where(np.isnan(score), -np.inf, score)
            for best in np.argsort(-score, kind="stable"):
                out = [col.python_value(values[best, j]) for j, col in enumerate(group.cols)]
                if best_values is None:
                    best_values = out
                if not skip:
                    return out
                row = np.array([col.encode(v) for col, v in zip(group.cols, out, strict=True)])
                if _row_key(row) not in skip:
                    return out
        assert best_values is not None
        return best_values  # all taken: the caller draws again or from the prior

    def _capped(self, obs: np.ndarray, newest: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Kernels for `obs` (in trial order) then `newest`, at most `max_kernels`: the recent
        half in full, an evenly spaced sample of the rest weighted by what it stands for."""
        rows = obs if newest is None or not len(newest) else np.concatenate([obs, newest])
        n, cap = len(rows), self.max_kernels
        if n <= cap:
            return rows, np.ones(n)
        recent = cap // 2
        old = n - recent
        keep = np.rint(np.linspace(0, old - 1, cap - recent)).astype(int)
        weights = np.concatenate([np.full(len(keep), old / len(keep)), np.ones(recent)])
        return np.concatenate([rows[keep], rows[old:]]), weights

    # -- define-by-run ---------------------------------------------------------------------------

    def suggest_param(self, context: Context, name: str, dist: Distribution) -> Any:
        """Define-by-run. Parameters that every complete trial suggested with the same
        distribution (Optuna's intersection search space) are drawn together from one joint
        model at the trial's first call, as in a declared space, and handed out one by one;
        any other parameter gets univariate TPE over the trials that suggested it with this
        distribution. Prior draws until `n_startup` trials are complete."""
        spec = dist.to_json()
        if self.multivariate:
            joint = self._joint_values(context)
            if name in joint:
                value, joint_spec = joint[name]
                if joint_spec == spec:
                    return value
        return self._suggest_one(context, name, dist, spec)

    def _joint_values(self, context: Context) -> dict[str, tuple[Any, dict[str, Any]]]:
        """name -> (value, distribution JSON) of the trial's joint draw, made once per trial:
        later calls of the same trial hand out the same draw whatever finished meanwhile."""
        # the first trial tells studies apart that share this sampler and their seed (while it
        # runs, its parameters grow: only its number then, so the key stays put)
        history = context.history
        first = None
        if history:
            head = history[0]
            first = repr(_fingerprint(head) if head.state.is_finished else head.number)
        trial_key = (context.seed, context.number, first)
        with self._lock:
            known = self._joint.get(trial_key)
        if known is not None:
            return known
        with self._lock:
            specs = dict(self._intersection.update(context.history))
        out: dict[str, tuple[Any, dict[str, Any]]] = {}
        if len(specs) > 1:  # one parameter: the univariate model is the same model
            names = list(specs)
            dists = [distribution_from_json(specs[n]) for n in names]
            plan_key = ("joint", json.dumps([names, [specs[n] for n in names]], sort_keys=True))
            with self._lock:
                plan = self._plans.get(plan_key)
                if plan is None:
                    plan = self._plans[plan_key] = _Plan(
                        names, dists, [()] * len(names), self.multivariate
                    )

            def encode(trial: FrozenTrial) -> np.ndarray:
                known = trial.distributions or {}
                flat = trial.flat_params
                if all(n in flat and known.get(n) == specs[n] for n in names):
                    return plan.encode(flat)
                return np.full(len(names), math.nan)  # partial or different: not this model

            # one generator for the whole draw, from (seed, number) like a declared space's
            rng = np.random.default_rng([context.seed, context.number, _JOINT_STREAM])
            values = self._suggest_plan(plan, plan_key, encode, context, plan.sample_prior, rng)
            out = {n: (values[n], specs[n]) for n in names}
        with self._lock:
            if len(self._joint) >= _JOINT_CACHE:
                del self._joint[next(iter(self._joint))]  # oldest first
            self._joint[trial_key] = out
        return out

    def _suggest_one(
        self, context: Context, name: str, dist: Distribution, spec: dict[str, Any]
    ) -> Any:
        """Univariate TPE on `name` over the history trials that suggested it with `spec`."""
        key = ("param", name, json.dumps(spec, sort_keys=True))
        column = _Column(name, dist)

        def encode(trial: FrozenTrial) -> np.ndarray:
            known = trial.distributions or {}
            if name in trial.flat_params and known.get(name) == spec:
                return np.array([column.encode(trial.flat_params[name])])
            return np.array([math.nan])

        with self._lock:
            store, pending = self._store_update(key, context.history, 1, encode)
            x, values, states, numbers = store.x, store.values, store.states, store.numbers
        active = ~np.isnan(x[:, 0])
        # the rows that suggested this parameter: the rung is chosen among them
        y, states, seen_count = _targets(
            context, numbers[active], values[active], states[active], self.n_startup
        )
        x = x[active]
        rng = context.rng
        if seen_count < max(self.n_startup, 1):
            value = dist.sample(rng)
            return value.item() if isinstance(value, np.generic) else value
        pending_x = np.array([encode(t) for t in pending], dtype=float).reshape(len(pending), 1)
        with np.errstate(all="ignore"):
            group = _Group((), [0], [column])
            return self._sample_group(group, x, y, states, pending_x, rng)[0]


_JOINT_STREAM = 0x7E7  # keeps the joint draw's generator apart from the per-parameter ones
_JOINT_CACHE = 256  # trials whose joint draw is kept (parallel workers: one per running trial)


def _merge(specs: dict[str, Any] | None, known: dict[str, Any]) -> dict[str, Any]:
    if specs is None:
        return dict(known)
    if known == specs:  # usually equal: one comparison in C, no loop here
        return specs
    return {n: s for n, s in specs.items() if known.get(n) == s}


class _Intersection:
    """Optuna's intersection search space, kept incrementally: the parameters (name ->
    distribution JSON) that every complete define-by-run trial suggested alike, in the first
    such trial's order. Each call scans the trials added since the last one and those that
    were not finished then; a history whose first trial differs starts over."""

    def __init__(self) -> None:
        self._reset(None)

    def _reset(self, first: tuple[Any, ...] | None) -> None:
        self.first = first
        self.cursor = 0
        self.open: list[int] = []  # positions below the cursor not finished when scanned
        self.specs: dict[str, Any] | None = None

    def update(self, history: Sequence[FrozenTrial]) -> dict[str, Any]:
        first = _fingerprint(history[0]) if history and history[0].state.is_finished else None
        if first is None or first != self.first or self.cursor > len(history):
            self._reset(first)
        still_open: list[int] = []
        for i in (*self.open, *range(self.cursor, len(history))):
            trial = history[i]
            if not trial.state.is_finished:
                still_open.append(i)
            elif trial.state is TrialState.COMPLETE and trial.distributions is not None:
                self.specs = _merge(self.specs, trial.distributions)
        self.open, self.cursor = still_open, len(history)
        return self.specs or {}
