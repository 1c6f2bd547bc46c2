"""The acquisition: log Expected Improvement (Ament et al. 2023, exact where EI underflows) of
the latent function under the posterior, with its gradient in the continuous coordinates.

The incumbent is the best value seen (standardised, lower is better; with pending trials the
best of those and their fantasies); the nugget is taken off the variance (`Posterior.nugget`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from hypersearch.samplers.gp.encoding import Layout
from hypersearch.samplers.gp.model import LOG_2PI, SQRT5, matern, sqdist

KNOWN = 1e-10  # posterior variance (relative) below which f is known at a point


def log_h(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log(φ(z) + zΦ(z)) without underflow (Ament et al. 2023) and its derivative Φ(z)/h(z)."""
    from scipy.special import erfcx, log_ndtr, ndtr

    out = np.empty_like(z)
    high = z > -1.0
    zh = z[high]
    out[high] = np.log(zh * ndtr(zh) + np.exp(-0.5 * zh * zh - 0.5 * LOG_2PI))
    far = z <= -1e8
    mid = ~high & ~far
    zm = z[mid]
    # h(z) = φ(z)·(1 - |z|·√(π/2)·erfcx(-z/√2)) for z < 0; log1p(-x) for the difference
    x = np.log(erfcx(-zm / math.sqrt(2.0)) * np.abs(zm)) + 0.5 * math.log(math.pi / 2.0)
    log1mexp = np.where(x > -math.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))
    out[mid] = -0.5 * zm * zm - 0.5 * LOG_2PI + log1mexp
    zf = z[far]
    out[far] = -0.5 * zf * zf - 0.5 * LOG_2PI - 2.0 * np.log(np.abs(zf))
    return out, np.exp(log_ndtr(z) - out)


@dataclass
class Posterior:
    """The fitted GP as the acquisition sees it."""

    layout: Layout
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
        r2 = sqdist(Zs, self.Z)
        k = self.sf2 * matern(r2)[0]
        mu = k @ self.alpha
        v = blas.dtrmm(1.0, self.Linv, k.T, lower=1)  # L⁻¹k*: trmm is ~2x faster than trsm
        var = self.sf2 - self.nugget - (v * v).sum(0)
        sigma = np.sqrt(np.maximum(var, 1e-12))
        lh, _ = log_h((self.best - mu) / sigma)
        # known: an evaluated point (by distance; with many copies of a point K is nearly
        # singular and the variance is only accurate to ~1e-9) or a variance of ~0
        known = (r2.min(1) < 1e-12) | (var < KNOWN * self.sf2)
        return np.log(sigma) + lh, known & (mu >= self.best - 1e-9)

    def continuous(self, R: np.ndarray) -> Any:
        """log-EI of rows `rows` of R as a function of their continuous coordinates x, the
        discrete ones held fixed, with its gradient."""
        lay = self.layout
        F, active = lay.features(R)
        Zs = lay.expand(F) * self.inv_ls
        cols = lay.cont_cols
        other = np.ones(lay.p, dtype=bool)
        other[cols] = False
        fixed = sqdist(Zs[:, other], self.Z[:, other])  # the distance the search cannot change
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
            e = np.exp(-SQRT5 * r)
            poly = 1.0 + SQRT5 * r
            k = sf2 * (poly + (5.0 / 3.0) * r2) * e
            dk = -(5.0 / 6.0) * sf2 * poly * e  # dk/d(r²)
            mu = k @ alpha
            v = Linv @ k.T
            w = Linv.T @ v  # K⁻¹k*, n × B
            var = top - (v * v).sum(0)
            floor = var < 1e-12
            sigma = np.sqrt(np.maximum(var, 1e-12))
            z = (best - mu) / sigma
            lh, dlh = log_h(z)
            dkdx = dk[:, :, None] * diff * (2.0 * scale)  # ∂k/∂x: ∂r²/∂x = 2 (z - Z)/ℓ
            dmu = np.einsum("bnc,n->bc", dkdx, alpha)
            dvar = -2.0 * np.einsum("bnc,nb->bc", dkdx, w)
            dvar[floor] = 0.0
            dsigma = dvar / (2.0 * sigma[:, None])
            dz = (-dmu - z[:, None] * dsigma) / sigma[:, None]
            grad = (dsigma / sigma[:, None] + dlh[:, None] * dz) * act[rows]
            return np.log(sigma) + lh, grad

        return value_and_grad
