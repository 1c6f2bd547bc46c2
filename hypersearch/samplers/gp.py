"""Gaussian-process Bayesian optimisation with (log) Expected Improvement.

Model. A zero-mean GP on the unit-cube encoding of the space (`Space.encode`: log-aware, normal
priors through their CDF) with a Matérn-5/2 ARD kernel (one lengthscale per parameter), a signal
variance and a noise variance. Values are multiplied by the direction's sign (lower is better)
and standardised; ±inf is clipped to the finite range and NaN ignored; FAILED and PRUNED trials
are left out (no value, or one not comparable with finished runs).

Hyperparameters: MAP by L-BFGS-B on the log marginal likelihood plus log prior, with analytic
gradients. Priors (see `_log_prior`): lengthscales -0.1·(ℓ² + 1/ℓ²), Optuna's prior on the
inverse squared lengthscale, centred on 1, the width of the cube (growing the centre as √d past
8 parameters, as Hvarfner et al. 2024 argue, scored lower on Ackley-10); signal variance
Gamma(2, 1); noise variance Gamma(1.1, 30), floored at 1e-8 so that deterministic objectives
are fitted almost exactly while noisy ones learn their noise. The first fit starts from a
smooth, noisy model (ℓ = 1, σ_f² = 1, σ_n² = 1) and `n_restarts`
random points; every later fit is a short step (gradient tolerance 1e-2) from the one before,
so the model gains detail as evidence accumulates rather than jumping to whichever mode fits
the latest data best (on Ackley-10 that mode fits the ripples as signal and loses the bowl:
median regret 12 instead of 6 at 100 trials).

Integers and quantized numbers are optimised in a relaxed unit coordinate, but the kernel sees
the centre of the cell the coordinate falls in (`to_unit(from_unit(u))`), so the acquisition is
flat inside a cell and is exactly the value of the point that will run. Choices are one-hot,
scaled so that two options are at distance 1 (a Hamming distance with its own lengthscale);
the acquisition search evaluates every allowed option exactly. Options of weight 0 are never
proposed.

Conditional parameters: a parameter that a trial does not use gets a fixed value (0.5, or an
"inactive" category for choices), so it never varies between trials that ignore it, and the
choices above it are in the kernel, which separates the branches. Candidates carry a
coordinate for every parameter of every branch and are decoded by `Space.decode`, which
follows the branches taken.

Acquisition: log-EI (Ament et al. 2023, exact where EI underflows) of the latent function, the
incumbent being the best value seen (standardised), the nugget taken off the variance
(`_Posterior.nugget`), scored on `n_candidates` scrambled Sobol points seeded from
`context.rng`. The best of them, `n_local` - 1 more drawn with probability ∝ EI (a roulette
wheel, as Optuna does: starts spread over several basins of the acquisition rather than
crowding the best one) and the two best trials so far start a local search: quasi-Newton
steps in the continuous coordinates (measured in lengthscales, all starts vectorised in
`_batched_lbfgs`), then a coordinate search over the
discrete ones (every option of a choice, the neighbouring cells of integers and quantized
numbers), then the continuous steps again if something moved. A point the model already
knows (an evaluated point of a deterministic objective) is never proposed again while
anything else is left.

Parallel workers: RUNNING and WAITING trials join as a kriging believer, their posterior mean
as a fantasy value (which may become the incumbent), so the acquisition collapses at them; a
proposal equal to a pending point is replaced by the next best.

Startup: until `n_startup` trials have finished with a finite value (default 10, as Optuna's;
7 scored lower on Hartmann-6 at 50 trials, 5 lower on Ackley-10 and Hartmann-6), suggestions
are the study's scrambled Sobol points (the `Sobol` strategy's sequence, so a study begun with
Sobol goes on without repeats).

Bounded cost: hyperparameters are fitted at history sizes up to `refit_below`, then each time
the history has grown by `refit_every` trials or 10%, whichever is more; in between the last
fit holds and the cached Cholesky factor is extended by the new rows (a rank-append, O(n²) per
row instead of O(n³)). A fit uses at most `fit_points` trials and the model at most
`max_points` (in both cases the best half and the most recent). The fits form a path over the
history's prefixes in trial-number order (see `GP._hyperparameters`), each step warm-started
from the one before: a function of the history alone, so a worker without the cache computes
the same θ by replaying the path (about 1 s at 300 trials, once per process) and the cache, keyed
by the space's JSON and checked against the trial numbers, parameters and values it was built
from, never changes a result. BLAS runs single-threaded around the math (threadpoolctl): on
these small matrices extra threads only fight, up to 30x slower on a loaded 2-core machine.

Determinism: the candidates' scramble comes from `context.rng`, the first fit's restarts from
the study seed (every worker must compute the same fit); same context, same suggestion, with
or without the cache.

Define-by-run trials (`trial.suggest_float(...)` without a declared space) get prior draws from
the base class: the GP models the parameters jointly and needs the declared space for that.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hypersearch.errors import SpaceError, StrategyError
from hypersearch.samplers.base import Context, Sampler
from hypersearch.samplers.sobol import Sobol
from hypersearch.space import Choice, Distribution, Float, Integer, Normal, Space
from hypersearch.trial import FrozenTrial, TrialState

_SQRT5 = math.sqrt(5.0)
_HALF_SQRT2 = math.sqrt(0.5)  # one-hot scale: two different options are at squared distance 1
_LOG_2PI = math.log(2.0 * math.pi)
_NOISE_MIN = 1e-8  # noise variance floor (standardised units)
_BOUNDS_LOG_LS = (math.log(1e-3), math.log(1e3))
_BOUNDS_LOG_SF2 = (math.log(1e-2), math.log(1e2))
_BOUNDS_LOG_SN2 = (math.log(_NOISE_MIN), 0.0)
_MAX_CACHED_SPACES = 8
_FIT_GTOL = 1e-2  # projected-gradient tolerance of the hyperparameter fit (see `_model`)
_KNOWN = 1e-10  # posterior variance (relative) below which f is known at a point
_PENDING = (TrialState.RUNNING, TrialState.WAITING)

_CONTROLLER: Any = None


def _blas_limit() -> Any:
    """A context manager holding BLAS to one thread (a no-op without threadpoolctl)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        try:
            import scipy.linalg  # noqa: F401  # load scipy's BLAS before looking for libraries
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - threadpoolctl is a dependency
            _CONTROLLER = False
        else:
            # one controller: building one scans every loaded library (~0.3 ms)
            _CONTROLLER = ThreadpoolController()
    if _CONTROLLER is False:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return _CONTROLLER.limit(limits=1, user_api="blas")


# -- space layout -------------------------------------------------------------------------------


class _Layout:
    """How the parameters of a space become kernel inputs.

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
        self.allowed: dict[int, np.ndarray] = {}
        self.start = np.zeros(self.d, dtype=int)
        width = 0
        for j, dist in enumerate(self.dists):
            self.start[j] = width
            if isinstance(dist, Choice):
                self.cat.append(j)
                weights = dist.weights or (1.0,) * dist.size
                self.allowed[j] = np.array([i for i, w in enumerate(weights) if w > 0])
                width += dist.size + (1 if self.conditions[j] else 0)  # + "inactive"
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
                out[j] = float(value) if isinstance(dist, Choice) else dist.to_unit(value)
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
            F[:, j] = _cell_centre(self.dists[j], R[:, j])
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
            index[index < 0] = self.dists[j].size  # the "inactive" column
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
            if isinstance(dist, Choice):
                out.append(dist.to_unit(int(r[j])))
            elif j in self.ordinal:
                out.append(float(_cell_centre(dist, np.array([r[j]]))[0]))
            else:
                out.append(float(min(max(r[j], 0.0), 1.0)))
        return out

    def neighbours(self, j: int, r: np.ndarray, f: np.ndarray) -> list[float]:
        """Relaxed values of parameter j next to its current one (discrete parameters only)."""
        dist = self.dists[j]
        if isinstance(dist, Choice):
            return [float(i) for i in self.allowed[j] if i != int(r[j])]
        value = dist.from_unit(float(f[j]))
        step = dist.step if isinstance(dist, Integer) else dist.q  # type: ignore[attr-defined]
        out = []
        for other in (value - step, value + step):
            if isinstance(dist, Float | Normal):
                other = float(f"{other:.12g}")
            if dist.contains(other):
                out.append(float(dist.to_unit(other)))
        return out


def _cell_centre(dist: Distribution, u: np.ndarray) -> np.ndarray:
    """Vectorised `dist.to_unit(dist.from_unit(u))` for integers and quantized numbers."""
    u = np.clip(u, 0.0, 1.0)
    if isinstance(dist, Integer):
        if dist.log:
            lo, hi = math.log(dist.low - 0.5), math.log(dist.high + 0.5)
            v = np.clip(np.rint(np.exp(lo + u * (hi - lo))), dist.low, dist.high)
            return (np.log(v) - lo) / (hi - lo)
        k = np.minimum(np.floor(u * dist.size), dist.size - 1)
        return (k + 0.5) / dist.size
    if isinstance(dist, Float):
        assert dist.q is not None
        if dist.log:
            lo, hi = math.log(dist.low), math.log(dist.high)
            x = np.exp(lo + u * (hi - lo))
        else:
            x = dist.low + u * (dist.high - dist.low)
        x = np.clip(x, dist.low, dist.high)
        top = math.floor((dist.high - dist.low) / dist.q + 1e-9)
        k = np.clip(np.rint((x - dist.low) / dist.q), 0, top)
        x = np.clip(dist.low + k * dist.q, dist.low, dist.high)
        if dist.log:
            return (np.log(x) - lo) / (hi - lo)
        return (x - dist.low) / (dist.high - dist.low)
    from scipy.special import ndtr, ndtri

    assert isinstance(dist, Normal) and dist.q is not None
    z = dist.mu + dist.sigma * ndtri(np.clip(u, 1e-12, 1.0 - 1e-12))
    x = np.exp(np.minimum(z, 700.0)) if dist.log else z
    x = np.rint(x / dist.q) * dist.q
    t = np.log(np.maximum(x, 1e-300)) if dist.log else x
    return ndtr((t - dist.mu) / dist.sigma)


# -- kernel and marginal likelihood -------------------------------------------------------------


def _sqdist(Za: np.ndarray, Zb: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows (inputs already divided by lengthscales)."""
    r2 = (Za * Za).sum(1)[:, None] + (Zb * Zb).sum(1)[None, :] - 2.0 * (Za @ Zb.T)
    return np.maximum(r2, 0.0, out=r2)


def _matern(r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matérn-5/2 k(r) and dk/d(r²) (finite at r = 0)."""
    r = np.sqrt(r2)
    e = np.exp(-_SQRT5 * r)
    poly = 1.0 + _SQRT5 * r
    return (poly + (5.0 / 3.0) * r2) * e, -(5.0 / 6.0) * poly * e


def _default_theta(d: int) -> np.ndarray:
    """Where a first fit starts: lengthscales at the prior's centre, signal variance 1, noise
    variance 1 (a smooth, noisy model: the data must earn the detail)."""
    return np.zeros(d + 2)


def _log_prior(theta: np.ndarray, d: int) -> tuple[float, np.ndarray]:
    """log p(θ) with θ = (log ℓ, log σ_f², log σ_n²).

    Lengthscales: -0.1·(ℓ² + 1/ℓ²), Optuna's prior on the inverse squared lengthscale:
    nearly flat for ℓ within a factor of 3 of 1, steep beyond, so that neither
    a few points nor a long flat stretch can make the model certain that a parameter does not
    matter (ℓ → ∞), which stops exploration. Signal variance: Gamma(2, 1), mode 1 on
    standardised values. Noise variance: Gamma(1.1, 30), nearly flat down to the 1e-6 floor.
    """
    t_ls, t_sf, t_sn = theta[:d], theta[d], theta[d + 1]
    grow = np.exp(2.0 * t_ls)
    value = float(-0.1 * (grow + 1.0 / grow).sum())
    grad = np.empty_like(theta)
    grad[:d] = -0.2 * (grow - 1.0 / grow)
    value += t_sf - math.exp(t_sf)
    grad[d] = 1.0 - math.exp(t_sf)
    value += 0.1 * t_sn - 30.0 * math.exp(t_sn)
    grad[d + 1] = 0.1 - 30.0 * math.exp(t_sn)
    return value, grad


def _unpack(theta: np.ndarray, layout: _Layout) -> tuple[np.ndarray, float, float]:
    d = layout.d
    inv_ls = layout.group @ np.exp(-theta[:d])  # per expanded column
    return inv_ls, math.exp(theta[d]), math.exp(theta[d + 1])


def _kernel(E: np.ndarray, inv_ls: np.ndarray, sf2: float) -> np.ndarray:
    Z = E * inv_ls
    k, _ = _matern(_sqdist(Z, Z))
    return sf2 * k


def _neg_log_posterior(
    theta: np.ndarray, E: np.ndarray, y: np.ndarray, layout: _Layout
) -> tuple[float, np.ndarray]:
    """-(log marginal likelihood + log prior) and its gradient in θ."""
    from scipy.linalg import lapack

    d, n = layout.d, len(y)
    inv_ls, sf2, sn2 = _unpack(theta, layout)
    Z = E * inv_ls
    r2 = _sqdist(Z, Z)
    np.fill_diagonal(r2, 0.0)
    r = np.sqrt(r2)
    e = np.exp(-_SQRT5 * r)
    poly = 1.0 + _SQRT5 * r
    Kf = sf2 * (poly + (5.0 / 3.0) * r2) * e
    K = Kf.copy()
    K.flat[:: n + 1] += sn2
    L, info = lapack.dpotrf(K, lower=1, clean=1)
    if info != 0:
        return 1e25, np.zeros_like(theta)
    alpha, _ = lapack.dpotrs(L, y, lower=1)
    Kinv, _ = lapack.dpotri(L, lower=1)  # lower triangle; the upper is 0 (clean=1 above)
    Kinv += Kinv.T
    Kinv.flat[:: n + 1] *= 0.5
    nll = 0.5 * float(y @ alpha) + float(np.log(np.diag(L)).sum()) + 0.5 * n * _LOG_2PI
    W = np.outer(alpha, alpha) - Kinv
    grad = np.empty_like(theta)
    # ∂K/∂log ℓ_g = σ_f² (5/3)(1 + √5 r) e^{-√5 r} · (scaled squared distance in group g);
    # Σ_ab G_ab (z_a - z_b)² = 2 Σ_a s_a z_a² - 2 Σ_a z_a (G z)_a for symmetric G
    G = W * (sf2 * (5.0 / 3.0)) * poly * e
    s = G.sum(1)
    per_col = 2.0 * (s @ (Z * Z)) - 2.0 * (Z * (G @ Z)).sum(0)
    grad[:d] = -0.5 * (per_col @ layout.group)
    grad[d] = -0.5 * float((W * Kf).sum())
    grad[d + 1] = -0.5 * sn2 * float(np.trace(W))
    prior, prior_grad = _log_prior(theta, d)
    return nll - prior, grad - prior_grad


def _fit(
    E: np.ndarray,
    y: np.ndarray,
    layout: _Layout,
    starts: list[np.ndarray],
    maxiter: int,
    gtol: float,
) -> np.ndarray:
    """MAP hyperparameters: L-BFGS-B from each start, the best end point."""
    from scipy.optimize import minimize

    bounds = [_BOUNDS_LOG_LS] * layout.d + [_BOUNDS_LOG_SF2, _BOUNDS_LOG_SN2]
    lower = np.array([b[0] for b in bounds])
    upper = np.array([b[1] for b in bounds])
    best_theta, best_value = np.clip(starts[0], lower, upper), math.inf
    for x0 in starts:
        x0 = np.clip(x0, lower, upper)
        result = minimize(
            _neg_log_posterior,
            x0,
            args=(E, y, layout),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": maxiter, "gtol": gtol},
        )
        if np.isfinite(result.fun) and result.fun < best_value:
            best_theta, best_value = np.asarray(result.x, dtype=float), float(result.fun)
    return best_theta


def _cholesky(K: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor, with growing jitter if rounding made K indefinite."""
    from scipy.linalg import lapack

    jitter = 0.0
    for _ in range(6):
        A = K if jitter == 0.0 else K + jitter * np.eye(len(K))
        L, info = lapack.dpotrf(A, lower=1, clean=1)
        if info == 0:
            return L
        jitter = max(jitter * 10.0, 1e-8)
    raise np.linalg.LinAlgError("kernel matrix is not positive definite")


def _append_rows(
    L: np.ndarray, E_old: np.ndarray, E_new: np.ndarray, inv_ls: np.ndarray, sf2: float, sn2: float
) -> np.ndarray:
    """The Cholesky factor of K grown by the rows of E_new: O(n²) per new row, not O(n³)."""
    from scipy.linalg import solve_triangular

    n, m = len(E_old), len(E_new)
    Zo, Zn = E_old * inv_ls, E_new * inv_ls
    cross = sf2 * _matern(_sqdist(Zn, Zo))[0]  # m × n
    corner = sf2 * _matern(_sqdist(Zn, Zn))[0]
    corner.flat[:: m + 1] += sn2
    L21 = solve_triangular(L, cross.T, lower=True, check_finite=False).T
    L22 = _cholesky(corner - L21 @ L21.T)
    out = np.zeros((n + m, n + m))
    out[:n, :n] = L
    out[n:, :n] = L21
    out[n:, n:] = L22
    return out


# -- log expected improvement -------------------------------------------------------------------


def _log_h(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(φ(z) + zΦ(z)) without underflow (Ament et al. 2023) and its derivative Φ(z)/h(z)."""
    from scipy.special import erfcx, log_ndtr, ndtr

    out = np.empty_like(z)
    high = z > -1.0
    zh = z[high]
    out[high] = np.log(zh * ndtr(zh) + np.exp(-0.5 * zh * zh - 0.5 * _LOG_2PI))
    far = z <= -1e8
    mid = ~high & ~far
    zm = z[mid]
    # h(z) = φ(z)·(1 - |z|·√(π/2)·erfcx(-z/√2)) for z < 0; log1p(-x) for the difference
    x = np.log(erfcx(-zm / math.sqrt(2.0)) * np.abs(zm)) + 0.5 * math.log(math.pi / 2.0)
    log1mexp = np.where(x > -math.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))
    out[mid] = -0.5 * zm * zm - 0.5 * _LOG_2PI + log1mexp
    zf = z[far]
    out[far] = -0.5 * zf * zf - 0.5 * _LOG_2PI - 2.0 * np.log(np.abs(zf))
    return out, np.exp(log_ndtr(z) - out)


# -- the posterior used by the acquisition ------------------------------------------------------


@dataclass
class _Posterior:
    layout: _Layout
    Z: np.ndarray  # training inputs divided by lengthscales
    Linv: np.ndarray  # inverse of the Cholesky factor (lower): variances by one triangular product
    alpha: np.ndarray
    inv_ls: np.ndarray
    sf2: float
    sn2: float
    best: float  # incumbent (standardised, lower is better)

    @property
    def nugget(self) -> float:
        """The part of the noise variance taken off the predictive variance: at an evaluated
        point the latent variance is about σ_n², and on a deterministic objective (σ_n² at its
        floor) counting that as uncertainty makes EI re-sample near-copies of an incumbent
        forever (seen on Branin and Hartmann at a boundary optimum). Real noise is left in:
        taken off, it would leave uncertainty only far from the data, in the cube's corners."""
        return min(self.sn2, 1e-4 * self.sf2)

    def log_ei(self, R: np.ndarray) -> np.ndarray:
        return self.score(R)[0]

    def score(self, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log-EI of the rows of R, and whether a row is useless: the model knows f there
        (an evaluated point of a deterministic objective) and expects no improvement."""
        from scipy.linalg import blas

        F, _ = self.layout.features(R)
        Zs = self.layout.expand(F) * self.inv_ls
        r2 = _sqdist(Zs, self.Z)
        k = self.sf2 * _matern(r2)[0]
        mu = k @ self.alpha
        v = blas.dtrmm(1.0, self.Linv, k.T, lower=1)  # L⁻¹k*: trmm is ~2x faster than trsm
        var = self.sf2 - self.nugget - (v * v).sum(0)
        sigma = np.sqrt(np.maximum(var, 1e-12))
        log_h, _ = _log_h((self.best - mu) / sigma)
        # known: an evaluated point (by distance; with many copies of a point K is nearly
        # singular and the variance is only accurate to ~1e-9) or a variance of ~0
        known = (r2.min(1) < 1e-12) | (var < _KNOWN * self.sf2)
        return np.log(sigma) + log_h, known & (mu >= self.best - 1e-9)

    def continuous(self, R: np.ndarray) -> Any:
        """log-EI of rows `rows` of R as a function of their continuous coordinates x, the
        discrete ones held fixed, with its gradient."""
        lay = self.layout
        F, active = lay.features(R)
        Zs = lay.expand(F) * self.inv_ls
        cols = lay.cont_cols
        other = np.ones(lay.p, dtype=bool)
        other[cols] = False
        fixed = _sqdist(Zs[:, other], self.Z[:, other])  # the distance the search cannot change
        act = active[:, lay.cont]
        scale = self.inv_ls[cols]
        Zc = self.Z[:, cols]
        sf2, alpha, Linv, best = self.sf2, self.alpha, self.Linv, self.best
        top = sf2 - self.nugget

        def value_and_grad(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            zc = np.where(act[rows], x, 0.5) * scale
            diff = zc[:, None, :] - Zc[None, :, :]  # B × n × c
            r2 = fixed[rows] + np.einsum("bnc,bnc->bn", diff, diff)
            r = np.sqrt(r2)
            e = np.exp(-_SQRT5 * r)
            poly = 1.0 + _SQRT5 * r
            k = sf2 * (poly + (5.0 / 3.0) * r2) * e
            dk = -(5.0 / 6.0) * sf2 * poly * e  # dk/d(r²)
            mu = k @ alpha
            v = Linv @ k.T
            w = Linv.T @ v  # K⁻¹k*, n × B
            var = top - (v * v).sum(0)
            floor = var < 1e-12
            sigma = np.sqrt(np.maximum(var, 1e-12))
            z = (best - mu) / sigma
            log_h, dlog_h = _log_h(z)
            dkdx = dk[:, :, None] * diff * (2.0 * scale)  # ∂k/∂x: ∂r²/∂x = 2 (z - Z)/ℓ
            dmu = np.einsum("bnc,n->bc", dkdx, alpha)
            dvar = -2.0 * np.einsum("bnc,nb->bc", dkdx, w)
            dvar[floor] = 0.0
            dsigma = dvar / (2.0 * sigma[:, None])
            dz = (-dmu - z[:, None] * dsigma) / sigma[:, None]
            grad = (dsigma / sigma[:, None] + dlog_h[:, None] * dz) * act[rows]
            return np.log(sigma) + log_h, grad

        return value_and_grad


# -- the cache ----------------------------------------------------------------------------------


@dataclass
class _SpaceCache:
    layout: _Layout
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


# -- the sampler --------------------------------------------------------------------------------


class GP(Sampler):
    """Gaussian-process Bayesian optimisation with log Expected Improvement.

    Arguments: `n_startup` Sobol trials before the model (default 10);
    `n_candidates` Sobol points scored by the acquisition (rounded up to a power of two);
    `n_local` candidates refined locally (the best, the rest drawn ∝ EI; the 2 best trials
    are refined too);
    `n_restarts` random restarts of the first hyperparameter fit; hyperparameters are fitted at
    every history size up to `refit_below`, then after `refit_every` new trials or 10% more;
    `max_points` / `fit_points`: trials kept in the model / in a hyperparameter fit (the best
    half and the most recent). The module docstring describes the model and its priors.

    Run a study with it: ``hs.minimize(f, space, strategy=GP(), max_trials=60, seed=0)``.
    """

    name = "gp"
    uses_history = True

    def __init__(
        self,
        n_startup: int | None = None,
        n_candidates: int = 2048,
        n_local: int = 8,
        n_restarts: int = 2,
        refit_below: int = 100,
        refit_every: int = 10,
        max_points: int = 500,
        fit_points: int = 250,
    ) -> None:
        for key, value, low in (
            ("n_candidates", n_candidates, 1),
            ("n_local", n_local, 1),
            ("n_restarts", n_restarts, 0),
            ("refit_below", refit_below, 0),
            ("refit_every", refit_every, 1),
            ("max_points", max_points, 2),
            ("fit_points", fit_points, 2),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise StrategyError(f"GP({key}=...) must be an integer >= {low}, got {value!r}")
        if n_startup is not None and (
            isinstance(n_startup, bool) or not isinstance(n_startup, int) or n_startup < 1
        ):
            raise StrategyError(f"GP(n_startup=...) must be an integer >= 1, got {n_startup!r}")
        self.n_startup = n_startup
        self.n_candidates = 1 << max(n_candidates - 1, 0).bit_length()
        self.n_local = n_local
        self.n_restarts = n_restarts
        self.refit_below = refit_below
        self.refit_every = refit_every
        self.max_points = max_points
        self.fit_points = fit_points
        self._sobol = Sobol()
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, _SpaceCache] = OrderedDict()
        self.fits = 0  # hyperparameter fits run (how often the cache was not enough)

    def __repr__(self) -> str:
        return (
            f"GP(n_startup={self.n_startup!r}, n_candidates={self.n_candidates}, "
            f"n_local={self.n_local}, n_restarts={self.n_restarts}, "
            f"refit_below={self.refit_below}, refit_every={self.refit_every}, "
            f"max_points={self.max_points}, fit_points={self.fit_points})"
        )

    def startup_trials(self, space: Space) -> int:
        if self.n_startup is not None:
            return self.n_startup
        return 10

    # -- entry point ----------------------------------------------------------------------------

    def suggest(self, context: Context) -> dict[str, Any]:
        space = context.space
        if len(space) == 0:
            return {}
        done = [
            t
            for t in context.history
            if t.state == TrialState.COMPLETE
            and t.value is not None
            and not math.isnan(float(t.value))
        ]
        finite = sum(1 for t in done if math.isfinite(float(t.value)))  # type: ignore[arg-type]
        if finite < self.startup_trials(space):
            return self._sobol.suggest(context)
        sobol_seed = int(context.rng.integers(0, 2**63 - 1))
        with self._lock, _blas_limit():
            cache = self._space_cache(space)
            pending = [t for t in context.history if t.state in _PENDING]
            r = self._propose(cache, done, pending, context.sign, context.seed, sobol_seed)
        if r is None:
            return self._sobol.suggest(context)
        return space.decode(r)

    def _space_cache(self, space: Space) -> _SpaceCache:
        key = space.to_json_str()
        cache = self._cache.get(key)
        if cache is None:
            cache = self._cache[key] = _SpaceCache(_Layout(space))
            while len(self._cache) > _MAX_CACHED_SPACES:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return cache

    def _row(self, cache: _SpaceCache, trial: FrozenTrial) -> np.ndarray | None:
        """The feature row of a trial, cached by number (checked against its parameters)."""
        hit = cache.rows.get(trial.number)
        if hit is not None and hit[0] == trial.flat_params:
            return hit[1]
        try:
            row: np.ndarray | None = cache.layout.row(trial.flat_params)
        except (SpaceError, ValueError, TypeError, IndexError, OverflowError):
            row = None  # parameters this space cannot encode (e.g. another study's): left out
        cache.rows[trial.number] = (trial.flat_params, row)
        return row

    # -- model ----------------------------------------------------------------------------------

    def _usable(
        self, cache: _SpaceCache, done: Sequence[FrozenTrial], sign: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Numbers, feature rows and values (lower is better) of the finished trials the
        model can use, in number order."""
        numbers, rows, values = [], [], []
        for t in done:
            row = self._row(cache, t)
            if row is not None:
                numbers.append(t.number)
                rows.append(row)
                values.append(sign * float(t.value))  # type: ignore[arg-type]
        F = np.array(rows).reshape(len(rows), cache.layout.d)
        return np.array(numbers, dtype=int), F, np.array(values, dtype=float)

    @staticmethod
    def _kept(y: np.ndarray, limit: int) -> np.ndarray:
        """The rows kept under a limit: all of them, or the best half and the most recent."""
        if len(y) <= limit:
            return np.arange(len(y))
        best = np.argsort(y, kind="stable")[: limit // 2]
        rest = np.setdiff1d(np.arange(len(y)), best)
        return np.sort(np.concatenate([best, rest[len(rest) - (limit - len(best)) :]]))

    def _checkpoints(self, first: int, n: int) -> list[int]:
        """The history sizes up to n at which hyperparameters are fitted: every size from
        `first` to `refit_below`, then after `refit_every` new trials or 10% more, whichever
        is more (a cold worker replays about 100 + 25·log(n/100) fits, mostly small)."""
        out, c = [], first
        while c <= n:
            out.append(c)
            c += 1 if c < self.refit_below else max(self.refit_every, c // 10)
        return out

    def _hyperparameters(
        self, cache: _SpaceCache, numbers: np.ndarray, F: np.ndarray, y: np.ndarray, seed: int
    ) -> np.ndarray:
        """θ for the usable trials: a path of fits over growing prefixes (in trial-number
        order) of the history, each warm-started from the one before, at the sizes
        `_checkpoints` gives; in between, the last θ holds.

        The path is a function of the history alone, so a worker that has the cache and one
        that starts cold compute the same θ; the cache only saves recomputing the checkpoints
        whose prefix has not changed (with parallel workers a late finisher changes the later
        ones)."""
        layout = cache.layout
        n = len(y)
        m = min(n, len(cache.path_numbers))
        same = (numbers[:m] == cache.path_numbers[:m]) & (y[:m] == cache.path_y[:m])
        valid = m if same.all() else int(np.argmin(same))
        path = {c: theta for c, theta in cache.path.items() if c <= valid}
        first = min(n, max(2, self.startup_trials(layout.space)))
        theta: np.ndarray | None = None
        for c in self._checkpoints(first, n):
            if c in path:
                theta = path[c]
                continue
            part = y[:c]
            if not np.isfinite(part).any():
                continue
            keep = self._kept(part, min(self.fit_points, self.max_points))
            E, ys = layout.expand(F[:c][keep]), _standardise(part[keep])
            if theta is None:
                starts = [_default_theta(layout.d)]
                rng = np.random.default_rng([seed % 2**32, c])
                for _ in range(self.n_restarts):
                    start = _default_theta(layout.d)
                    start[: layout.d] += rng.normal(0.0, 1.0, layout.d)
                    start[layout.d :] += rng.normal(0.0, 1.0, 2)
                    starts.append(start)
                theta = _fit(E, ys, layout, starts, maxiter=200, gtol=_FIT_GTOL)
            else:
                # a step on from the previous fit, not a fresh search: the model's detail
                # grows with the evidence instead of jumping to whichever mode fits the
                # latest data best (on Ackley, fitting the ripples as signal and losing the
                # bowl; Optuna's GPSampler follows such a path too, though per process)
                theta = _fit(E, ys, layout, [theta], maxiter=30, gtol=_FIT_GTOL)
            path[c] = theta
            self.fits += 1
        cache.path_numbers, cache.path_y, cache.path = numbers, y, path
        return _default_theta(layout.d) if theta is None else theta

    def _model(
        self,
        cache: _SpaceCache,
        numbers: np.ndarray,
        F: np.ndarray,
        y: np.ndarray,
        theta: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Standardised values, features, expanded inputs and Cholesky factor of the rows the
        model keeps; the cached factor is extended by the new rows (a rank-append) when it
        was built with the same θ on rows that are all still there."""
        layout = cache.layout
        keep = self._kept(y, self.max_points)
        numbers, F, y = numbers[keep], F[keep], y[keep]
        inv_ls, sf2, sn2 = _unpack(theta, layout)
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
                    L = _append_rows(L, E_old, layout.expand(F[k_old:]), inv_ls, sf2, sn2)
        E = layout.expand(F)
        if L is None:
            K = _kernel(E, inv_ls, sf2)
            K.flat[:: len(E) + 1] += sn2
            L = _cholesky(K)
        cache.numbers, cache.F, cache.theta, cache.L = tuple(int(v) for v in numbers), F, theta, L
        return _standardise(y), F, E, L

    def _propose(
        self,
        cache: _SpaceCache,
        done: Sequence[FrozenTrial],
        pending: Sequence[FrozenTrial],
        sign: float,
        study_seed: int,
        sobol_seed: int,
    ) -> list[float] | None:
        from scipy.linalg import cho_solve, lapack

        layout = cache.layout
        numbers, F, y = self._usable(cache, done, sign)
        if len(y) < 2 or not np.isfinite(y).any():
            return None
        theta = self._hyperparameters(cache, numbers, F, y, study_seed)
        ys, F, E, L = self._model(cache, numbers, F, y, theta)
        inv_ls, sf2, sn2 = _unpack(theta, layout)
        alpha = cho_solve((L, True), ys, check_finite=False)
        # EI's incumbent is the best value seen: measured against the best posterior mean
        # instead, EI explored less and stalled more often on Ackley-10 (ripples fitted as
        # noise) and Hartmann-6. Local searches start from the best posterior means.
        best = float(ys.min())
        fitted = ys - sn2 * alpha
        incumbents = layout.relaxed(F[np.argsort(fitted, kind="stable")[:2]])
        # kriging believer: pending points join with their posterior mean as the value
        pending_rows = [row for t in pending if (row := self._row(cache, t)) is not None]
        if pending_rows:
            Fp = np.array(pending_rows)
            Ep = layout.expand(Fp)
            mean = sf2 * _matern(_sqdist(Ep * inv_ls, E * inv_ls))[0] @ alpha
            L = _append_rows(L, E, Ep, inv_ls, sf2, sn2)
            E = np.vstack([E, Ep])
            ys = np.concatenate([ys, mean])
            best = min(best, float(mean.min()))
        else:
            Fp = np.zeros((0, layout.d))
        Linv, info = lapack.dtrtri(L, lower=1)
        if info != 0:
            return None
        post = _Posterior(
            layout,
            E * inv_ls,
            Linv,
            cho_solve((L, True), ys, check_finite=False),
            inv_ls,
            sf2,
            sn2,
            best,
        )
        return self._maximise(post, incumbents, Fp, sobol_seed)

    # -- acquisition ----------------------------------------------------------------------------

    def _maximise(
        self, post: _Posterior, incumbents: np.ndarray, pending: np.ndarray, sobol_seed: int
    ) -> list[float]:
        from scipy.stats import qmc

        layout = post.layout
        U = qmc.Sobol(layout.d, scramble=True, seed=np.random.default_rng(sobol_seed)).random(
            self.n_candidates
        )
        R = layout.from_sobol(U)
        scores = post.log_ei(R)
        # the best candidate, then n_local - 1 drawn without replacement with probability
        # ∝ exp(log-EI) (Gumbel-top-k), skipping repeats of a point
        keys = scores + np.random.default_rng([sobol_seed, 1]).gumbel(size=len(scores))
        keys[int(np.argmax(scores))] = np.inf
        top = _distinct_top(layout.features(R)[0], keys, self.n_local)
        starts = np.vstack([R[top], incumbents])
        values = post.log_ei(starts)
        for round_ in range(2):
            starts, values = self._refine_continuous(post, starts, values)
            starts, values, moved = self._refine_discrete(post, starts, values)
            if not moved or round_ == 1:
                break
        # the best point that is neither useless (when the model is sure everywhere, the
        # floor of EI at an evaluated point can beat real exploration) nor pending
        pool = np.vstack([starts, R[np.argsort(-scores, kind="stable")[: self.n_local * 4]]])
        pool_values, useless = post.score(pool)
        pool_F, _ = layout.features(pool)
        for i in np.argsort(-pool_values, kind="stable"):
            taken = len(pending) and np.any(np.all(np.abs(pending - pool_F[i]) < 1e-9, axis=1))
            if not useless[i] and not taken:
                return layout.unit(pool[i])
        return layout.unit(pool[int(np.argmax(pool_values))])

    def _refine_continuous(
        self, post: _Posterior, starts: np.ndarray, values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Climb log-EI from every start in the continuous coordinates, all starts at once."""
        cont = post.layout.cont
        if not cont:
            return starts, values
        value_and_grad = post.continuous(starts)
        # search in x/ℓ (as Optuna does): the acquisition is then about as curved along every
        # coordinate, so quasi-Newton steps need far fewer iterations than in x
        ls = 1.0 / post.inv_ls[post.layout.cont_cols]

        def objective(s: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            value, grad = value_and_grad(s * ls, rows)
            return -value, -grad * ls

        s_opt = _batched_lbfgs(objective, starts[:, cont] / ls, 1.0 / ls)
        moved = starts.copy()
        moved[:, cont] = np.clip(s_opt * ls, 0.0, 1.0)
        new_values = post.log_ei(moved)
        better = new_values > values  # keep each start's improvement only
        starts = np.where(better[:, None], moved, starts)
        return starts, np.where(better, new_values, values)

    def _refine_discrete(
        self, post: _Posterior, starts: np.ndarray, values: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Coordinate search over discrete parameters: every option of a choice, the
        neighbouring cells of integers and quantized numbers; a few greedy passes."""
        layout = post.layout
        discrete = layout.ordinal + layout.cat
        if not discrete:
            return starts, values, False
        starts, values = starts.copy(), values.copy()
        moved = False
        for _ in range(3):
            F, active = layout.features(starts)
            variants, owner = [], []
            for b in range(len(starts)):
                for j in discrete:
                    if not active[b, j]:
                        continue
                    for v in layout.neighbours(j, starts[b], F[b]):
                        r = starts[b].copy()
                        r[j] = v
                        variants.append(r)
                        owner.append(b)
            if not variants:
                break
            V = np.array(variants)
            scores = post.log_ei(V)
            owners = np.array(owner)
            improved = False
            for b in range(len(starts)):
                mine = np.flatnonzero(owners == b)
                if len(mine) == 0:
                    continue
                i = mine[np.argmax(scores[mine])]
                if scores[i] > values[b] + 1e-12:
                    starts[b], values[b] = V[i], scores[i]
                    improved = moved = True
            if not improved:
                break
        return starts, values, moved


def _batched_lbfgs(
    fun: Any, x0: np.ndarray, upper: np.ndarray, max_iter: int = 60, memory: int = 6
) -> np.ndarray:
    """Minimise B independent smooth functions on the box [0, upper] at once.

    `fun(x, rows)` gives the values and gradients of rows `rows` at x. Each row runs its own
    L-BFGS (two-loop recursion on the free coordinates, projection onto the box, Armijo
    backtracking), but every evaluation is one vectorised call for all rows still running,
    so B searches cost little more than one; scipy's per-call overhead would dominate here.
    """
    B, c = x0.shape
    x = np.clip(x0, 0.0, upper)
    f, g = fun(x, np.arange(B))
    S = np.zeros((memory, B, c))
    Y = np.zeros((memory, B, c))
    rho = np.zeros((memory, B))
    scale = np.zeros(B)  # s·y / y·y of the latest pair: the initial inverse-Hessian guess
    running = np.ones(B, dtype=bool)
    slot = 0
    for _ in range(max_iter):
        free = ~(((x <= 0.0) & (g > 0)) | ((x >= upper) & (g < 0)))
        pg = np.where(free, g, 0.0)
        running &= np.abs(pg).max(1) > 1e-6
        rows = np.flatnonzero(running)
        if len(rows) == 0:
            break
        q = pg[rows].copy()
        order = [(slot - 1 - i) % memory for i in range(memory)]  # newest first
        alphas = []
        for i in order:
            a = rho[i, rows] * (S[i, rows] * q).sum(1)
            q -= a[:, None] * Y[i, rows]
            alphas.append(a)
        first = 0.25 / np.maximum(np.abs(pg[rows]).max(1), 1e-12)  # a quarter lengthscale
        r = q * np.where(scale[rows] > 0, scale[rows], first)[:, None]
        for i, a in zip(reversed(order), reversed(alphas), strict=True):
            b = rho[i, rows] * (Y[i, rows] * r).sum(1)
            r += S[i, rows] * (a - b)[:, None]
        d = -np.where(free[rows], r, 0.0)
        uphill = (d * pg[rows]).sum(1) >= 0  # a stale curvature pair: fall back to the gradient
        d[uphill] = -pg[rows][uphill] * first[uphill, None]
        step = np.ones(len(rows))
        todo = np.ones(len(rows), dtype=bool)
        x_new, f_new, g_new = x[rows].copy(), f[rows].copy(), g[rows].copy()
        for _ in range(12):
            sub = np.flatnonzero(todo)
            trial = np.clip(x[rows[sub]] + step[sub, None] * d[sub], 0.0, upper)
            ft, gt = fun(trial, rows[sub])
            decrease = (g[rows[sub]] * (trial - x[rows[sub]])).sum(1)
            ok = np.isfinite(ft) & (ft <= f[rows[sub]] + 1e-4 * decrease)
            x_new[sub[ok]], f_new[sub[ok]], g_new[sub[ok]] = trial[ok], ft[ok], gt[ok]
            todo[sub[ok]] = False
            step[sub[~ok]] *= 0.5
            if not todo.any():
                break
        running[rows[todo]] = False  # no decrease along the direction: converged
        s_k = x_new - x[rows]
        y_k = g_new - g[rows]
        sy = (s_k * y_k).sum(1)
        good = sy > 1e-12
        S[slot, rows] = np.where(good[:, None], s_k, 0.0)
        Y[slot, rows] = np.where(good[:, None], y_k, 0.0)
        rho[slot, rows] = np.where(good, 1.0 / np.where(good, sy, 1.0), 0.0)
        scale[rows] = np.where(good, sy / np.maximum((y_k * y_k).sum(1), 1e-300), scale[rows])
        slot = (slot + 1) % memory
        small = f[rows] - f_new <= 1e-10 * (1.0 + np.abs(f_new))
        x[rows], f[rows], g[rows] = x_new, f_new, g_new
        running[rows[small & ~todo]] = False
    return x


def _standardise(y: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance; ±inf as bad (good) as the worst (best) finite value."""
    finite = np.isfinite(y)
    if not finite.all():
        y = np.clip(y, y[finite].min(), y[finite].max()) if finite.any() else np.zeros_like(y)
    std = float(y.std())
    return (y - y.mean()) / (std if std > 0 and math.isfinite(std) else 1.0)


def _distinct_top(F: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest-scoring rows, skipping repeats of a point (discrete spaces)."""
    chosen: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(not np.array_equal(F[i], F[j]) for j in chosen):
            chosen.append(int(i))
            if len(chosen) == k:
                break
    return np.array(chosen, dtype=int)
