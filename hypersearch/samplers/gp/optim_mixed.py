"""The mixed-space optimiser of the acquisition.

log-EI is scored on `n_candidates` scrambled Sobol points. The best of them, `n_local` - 1 more
drawn with probability ∝ EI (a roulette wheel, as Optuna does: starts spread over several basins
of the acquisition rather than crowding the best one) and the two best trials so far start a
local search: quasi-Newton steps in the continuous coordinates (measured in lengthscales, all
starts at once in `batched_lbfgs`), then a coordinate search over the discrete ones (every
option of a choice, the neighbouring cells of integers and quantized numbers), then the
continuous steps again if something moved. A point the model already knows (an evaluated point
of a deterministic objective) is never proposed again while anything else is left, nor is a
pending point.
"""

from __future__ import annotations

import numpy as np

from hypersearch.samplers.gp.acquisition import Posterior
from hypersearch.samplers.gp.lbfgs import batched_lbfgs


def maximise(
    post: Posterior,
    incumbents: np.ndarray,
    pending: np.ndarray,
    sobol_seed: int,
    n_candidates: int,
    n_local: int,
) -> list[float]:
    """The `Space.decode` coordinates of the best point found (see the module docstring)."""
    from scipy.stats import qmc

    layout = post.layout
    U = qmc.Sobol(layout.d, scramble=True, seed=np.random.default_rng(sobol_seed)).random(
        n_candidates
    )
    R = layout.from_sobol(U)
    scores = post.log_ei(R)
    # the best candidate, then n_local - 1 drawn without replacement with probability
    # ∝ exp(log-EI) (Gumbel-top-k), skipping repeats of a point
    keys = scores + np.random.default_rng([sobol_seed, 1]).gumbel(size=len(scores))
    keys[int(np.argmax(scores))] = np.inf
    top = distinct_top(layout.features(R)[0], keys, n_local)
    starts = np.vstack([R[top], incumbents])
    values = post.log_ei(starts)
    for round_ in range(2):
        starts, values = refine_continuous(post, starts, values)
        starts, values, moved = refine_discrete(post, starts, values)
        if not moved or round_ == 1:
            break
    # the best point that is neither useless (when the model is sure everywhere, the
    # floor of EI at an evaluated point can beat real exploration) nor pending
    pool = np.vstack([starts, R[np.argsort(-scores, kind="stable")[: n_local * 4]]])
    pool_values, useless = post.score(pool)
    pool_F, _ = layout.features(pool)
    for i in np.argsort(-pool_values, kind="stable"):
        taken = len(pending) and np.any(np.all(np.abs(pending - pool_F[i]) < 1e-9, axis=1))
        if not useless[i] and not taken:
            return layout.unit(pool[i])
    return layout.unit(pool[int(np.argmax(pool_values))])


def refine_continuous(
    post: Posterior, starts: np.ndarray, values: np.ndarray
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

    s_opt = batched_lbfgs(objective, starts[:, cont] / ls, 1.0 / ls)
    moved = starts.copy()
    moved[:, cont] = np.clip(s_opt * ls, 0.0, 1.0)
    new_values = post.log_ei(moved)
    better = new_values > values  # keep each start's improvement only
    starts = np.where(better[:, None], moved, starts)
    return starts, np.where(better, new_values, values)


def refine_discrete(
    post: Posterior, starts: np.ndarray, values: np.ndarray
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


def distinct_top(F: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest-scoring rows, skipping repeats of a point (discrete spaces)."""
    chosen: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if all(not np.array_equal(F[i], F[j]) for j in chosen):
            chosen.append(int(i))
            if len(chosen) == k:
                break
    return np.array(chosen, dtype=int)
