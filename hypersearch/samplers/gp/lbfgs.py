"""A batched box-constrained L-BFGS: many independent local searches in one vectorised loop."""

from __future__ import annotations

from typing import Any

import numpy as np


def batched_lbfgs(
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
