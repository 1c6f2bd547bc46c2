"""The GP model: a zero-mean GP on the encoded space (see `encoding`) with a Matérn-5/2 ARD
kernel (one lengthscale per parameter), a signal variance and a noise variance; its Cholesky
factor, grown by rank-append; the log marginal likelihood with analytic gradients, and the
MAP fit of the hyperparameters by L-BFGS-B (prior in `prior`)."""

from __future__ import annotations

import math

import numpy as np

from hypersearch.samplers.gp.encoding import Layout
from hypersearch.samplers.gp.prior import bounds, log_prior

SQRT5 = math.sqrt(5.0)
LOG_2PI = math.log(2.0 * math.pi)


def sqdist(Za: np.ndarray, Zb: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows (inputs already divided by lengthscales)."""
    r2 = (Za * Za).sum(1)[:, None] + (Zb * Zb).sum(1)[None, :] - 2.0 * (Za @ Zb.T)
    return np.maximum(r2, 0.0, out=r2)


def matern(r2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Matérn-5/2 k(r) and dk/d(r²) (finite at r = 0)."""
    r = np.sqrt(r2)
    e = np.exp(-SQRT5 * r)
    poly = 1.0 + SQRT5 * r
    return (poly + (5.0 / 3.0) * r2) * e, -(5.0 / 6.0) * poly * e


def unpack(theta: np.ndarray, layout: Layout) -> tuple[np.ndarray, float, float]:
    """Inverse lengthscales per expanded column, signal variance, noise variance."""
    d = layout.d
    inv_ls = layout.group @ np.exp(-theta[:d])
    return inv_ls, math.exp(theta[d]), math.exp(theta[d + 1])


def kernel(E: np.ndarray, inv_ls: np.ndarray, sf2: float) -> np.ndarray:
    """The kernel matrix of the rows of E (no noise on the diagonal)."""
    Z = E * inv_ls
    k, _ = matern(sqdist(Z, Z))
    return sf2 * k


def cholesky(K: np.ndarray) -> np.ndarray:
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


def append_rows(
    L: np.ndarray, E_old: np.ndarray, E_new: np.ndarray, inv_ls: np.ndarray, sf2: float, sn2: float
) -> np.ndarray:
    """The Cholesky factor of K grown by the rows of E_new: O(n²) per new row, not O(n³)."""
    from scipy.linalg import solve_triangular

    n, m = len(E_old), len(E_new)
    Zo, Zn = E_old * inv_ls, E_new * inv_ls
    cross = sf2 * matern(sqdist(Zn, Zo))[0]  # m × n
    corner = sf2 * matern(sqdist(Zn, Zn))[0]
    corner.flat[:: m + 1] += sn2
    L21 = solve_triangular(L, cross.T, lower=True, check_finite=False).T
    L22 = cholesky(corner - L21 @ L21.T)
    out = np.zeros((n + m, n + m))
    out[:n, :n] = L
    out[n:, :n] = L21
    out[n:, n:] = L22
    return out


def neg_log_posterior(
    theta: np.ndarray, E: np.ndarray, y: np.ndarray, layout: Layout
) -> tuple[float, np.ndarray]:
    """-(log marginal likelihood + log prior) and its gradient in θ."""
    from scipy.linalg import lapack

    d, n = layout.d, len(y)
    inv_ls, sf2, sn2 = unpack(theta, layout)
    Z = E * inv_ls
    r2 = sqdist(Z, Z)
    np.fill_diagonal(r2, 0.0)
    r = np.sqrt(r2)
    e = np.exp(-SQRT5 * r)
    poly = 1.0 + SQRT5 * r
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
    nll = 0.5 * float(y @ alpha) + float(np.log(np.diag(L)).sum()) + 0.5 * n * LOG_2PI
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
    prior, prior_grad = log_prior(theta, d)
    return nll - prior, grad - prior_grad


def fit(
    E: np.ndarray,
    y: np.ndarray,
    layout: Layout,
    starts: list[np.ndarray],
    maxiter: int,
    gtol: float,
) -> np.ndarray:
    """MAP hyperparameters: L-BFGS-B from each start, the best end point."""
    from scipy.optimize import minimize

    box = bounds(layout.d)
    lower = np.array([b[0] for b in box])
    upper = np.array([b[1] for b in box])
    best_theta, best_value = np.clip(starts[0], lower, upper), math.inf
    for x0 in starts:
        x0 = np.clip(x0, lower, upper)
        result = minimize(
            neg_log_posterior,
            x0,
            args=(E, y, layout),
            jac=True,
            method="L-BFGS-B",
            bounds=box,
            options={"maxiter": maxiter, "gtol": gtol},
        )
        if np.isfinite(result.fun) and result.fun < best_value:
            best_theta, best_value = np.asarray(result.x, dtype=float), float(result.fun)
    return best_theta


def standardise(y: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance; ±inf as bad (good) as the worst (best) finite value."""
    finite = np.isfinite(y)
    if not finite.all():
        y = np.clip(y, y[finite].min(), y[finite].max()) if finite.any() else np.zeros_like(y)
    std = float(y.std())
    return (y - y.mean()) / (std if std > 0 and math.isfinite(std) else 1.0)
