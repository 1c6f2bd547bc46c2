"""The `GP` strategy: one suggestion is encode the history → fit (or reuse) the model → add
pending trials as fantasies → maximise log-EI → decode.

Startup: until `n_startup` trials have finished with a finite value (default 10, as Optuna's;
7 scored lower on Hartmann-6 at 50 trials, 5 lower on Ackley-10 and Hartmann-6), suggestions
are the study's scrambled Sobol points (the `Sobol` strategy's sequence, so a study begun with
Sobol goes on without repeats).

Parallel workers: RUNNING and WAITING trials join as a kriging believer, their posterior mean
as a fantasy value (which may become the incumbent), so the acquisition collapses at them; a
proposal equal to a pending point is replaced by the next best.

Determinism: the candidates' scramble comes from `context.rng`, the first fit's restarts from
the study seed (every worker must compute the same fit); same context, same suggestion, with
or without the cache. BLAS runs single-threaded around the math (threadpoolctl): on these
small matrices extra threads only fight, up to 30x slower on a loaded 2-core machine.

Define-by-run studies (no declared space) are refused: the GP models the parameters jointly
and needs the space's fixed dimensions for that.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from hypersearch.errors import StrategyError
from hypersearch.samplers.base import Context, Sampler, check_int
from hypersearch.samplers.gp.acquisition import Posterior
from hypersearch.samplers.gp.encoding import Layout
from hypersearch.samplers.gp.fitting import (
    SpaceCache,
    factor,
    hyperparameters,
    take_warm_state,
    warm_state,
)
from hypersearch.samplers.gp.model import append_rows, matern, sqdist, unpack
from hypersearch.samplers.gp.optim_mixed import maximise
from hypersearch.samplers.sobol import Sobol
from hypersearch.space import Distribution, Space
from hypersearch.trial import FrozenTrial, TrialState

DEFAULT_STARTUP = 10
_WARM_FORMAT = 1  # of `warm_state`: a stored state of another format is not taken
_MAX_CACHED_SPACES = 8
_PENDING = (TrialState.RUNNING, TrialState.WAITING)
_DEFINE_BY_RUN = (
    "strategy 'gp' needs a declared search space (define-by-run gives the GP no fixed "
    "dimensions); declare the space, or use 'tpe' for define-by-run"
)

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


class GP(Sampler):
    """Gaussian-process Bayesian optimisation with log Expected Improvement.

    Arguments: `n_startup` Sobol trials before the model (default 10);
    `n_candidates` Sobol points scored by the acquisition (rounded up to a power of two);
    `n_local` candidates refined locally (the best, the rest drawn ∝ EI; the 2 best trials
    are refined too);
    `n_restarts` random restarts of the first hyperparameter fit; hyperparameters are fitted at
    every history size up to `refit_below`, then after `refit_every` new trials or 10% more;
    `max_points` / `fit_points`: trials kept in the model / in a hyperparameter fit (the best
    half and the most recent). The package's modules describe the model (`model`, `prior`),
    its fitting (`fitting`) and the acquisition (`acquisition`, `optim_mixed`).

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
        self.n_startup = None if n_startup is None else check_int("GP", "n_startup", n_startup, 1)
        n_candidates = check_int("GP", "n_candidates", n_candidates, 1)
        self.n_candidates = 1 << max(n_candidates - 1, 0).bit_length()  # Sobol wants 2^k
        self.n_local = check_int("GP", "n_local", n_local, 1)
        self.n_restarts = check_int("GP", "n_restarts", n_restarts, 0)
        self.refit_below = check_int("GP", "refit_below", refit_below, 0)
        self.refit_every = check_int("GP", "refit_every", refit_every, 1)
        self.max_points = check_int("GP", "max_points", max_points, 2)
        self.fit_points = check_int("GP", "fit_points", fit_points, 2)
        self._sobol = Sobol()
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, SpaceCache] = OrderedDict()
        self.fits = 0  # hyperparameter fits run (how often the cache was not enough)

    def config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-safe: ``GP(**gp.config())`` rebuilds this sampler."""
        return {
            "n_startup": self.n_startup,
            "n_candidates": self.n_candidates,
            "n_local": self.n_local,
            "n_restarts": self.n_restarts,
            "refit_below": self.refit_below,
            "refit_every": self.refit_every,
            "max_points": self.max_points,
            "fit_points": self.fit_points,
        }

    @property
    def startup(self) -> int:
        """Finished trials with a finite value before the model takes over from Sobol."""
        return DEFAULT_STARTUP if self.n_startup is None else self.n_startup

    def check_space(self, space: Space | None) -> None:
        if space is None:
            raise StrategyError(_DEFINE_BY_RUN)

    def suggest_param(self, context: Context, name: str, dist: Distribution) -> Any:
        """Refused (for a study that skipped `check_space`): a prior draw here would be random
        search under the GP's name."""
        raise StrategyError(_DEFINE_BY_RUN)

    # -- entry point ----------------------------------------------------------------------------

    def suggest(self, context: Context) -> dict[str, Any]:
        space = context.space
        if len(space) == 0:
            return {}
        done = [
            t
            for t in context.history
            # a PRUNED trial enters with the value it was stopped at: pessimistic for a slow
            # learner, but leaving it out would blind the model to most of an early-stopped
            # study (under ASHA most trials are pruned) and have it propose those regions again
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            and t.value is not None
            and not math.isnan(float(t.value))
        ]
        finite = sum(1 for t in done if math.isfinite(float(t.value)))  # type: ignore[arg-type]
        if finite < self.startup:
            return self._sobol.suggest(context)
        sobol_seed = int(context.rng.integers(0, 2**63 - 1))
        with self._lock, _blas_limit():
            cache = self._space_cache(space)
            if cache.key is None:
                cache.key = self._warm_key(space, context.seed)
            if cache.stored is not None:  # a warm state another process stored: check, take
                take_warm_state(cache, cache.stored, cache.key)
                cache.stored = None
            pending = [t for t in context.history if t.state in _PENDING]
            r = self._propose(cache, done, pending, context.sign, context.seed, sobol_seed)
        if r is None:
            return self._sobol.suggest(context)
        return space.decode(r)

    # -- a warm start for other processes (stored with the study: Study._propose) ------------

    def warm_state(self, space: Space) -> dict[str, Any] | None:
        """The fitted hyperparameter path for `space` as JSON, when fits were made here since
        the last call (else None): a process that takes it (`warm_from`) skips those fits, and
        suggests exactly what it would have after replaying them."""
        with self._lock:
            cache = self._cache.get(space.to_json_str())
            if cache is None or cache.key is None or cache.fits_made == cache.fits_stored:
                return None
            cache.fits_stored = cache.fits_made
            return warm_state(cache, cache.key)

    def warm_from(self, space: Space, state: dict[str, Any]) -> None:
        """Start from a `warm_state` another process stored (checked at the next suggestion)."""
        with self._lock:
            self._space_cache(space).stored = state

    def _warm_key(self, space: Space, seed: int) -> str:
        text = json.dumps([_WARM_FORMAT, space.to_json_str(), self.config(), seed],
                          sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()

    def _space_cache(self, space: Space) -> SpaceCache:
        key = space.to_json_str()
        cache = self._cache.get(key)
        if cache is None:
            cache = self._cache[key] = SpaceCache(Layout(space))
            while len(self._cache) > _MAX_CACHED_SPACES:
                self._cache.popitem(last=False)
        self._cache.move_to_end(key)
        return cache

    def _propose(
        self,
        cache: SpaceCache,
        done: Sequence[FrozenTrial],
        pending: Sequence[FrozenTrial],
        sign: float,
        study_seed: int,
        sobol_seed: int,
    ) -> list[float] | None:
        """The unit coordinates of the next point, or None when the history gives no model."""
        from scipy.linalg import cho_solve, lapack

        layout = cache.layout
        numbers, F, y = cache.usable(done, sign)
        if len(y) < 2 or not np.isfinite(y).any():
            return None
        theta, fits = hyperparameters(
            cache,
            numbers,
            F,
            y,
            study_seed,
            first=min(len(y), max(2, self.startup)),
            refit_below=self.refit_below,
            refit_every=self.refit_every,
            fit_points=min(self.fit_points, self.max_points),
            n_restarts=self.n_restarts,
        )
        self.fits += fits
        ys, F, E, L = factor(cache, numbers, F, y, theta, self.max_points)
        inv_ls, sf2, sn2 = unpack(theta, layout)
        alpha = cho_solve((L, True), ys, check_finite=False)
        # EI's incumbent is the best value seen: measured against the best posterior mean
        # instead, EI explored less and stalled more often on Ackley-10 (ripples fitted as
        # noise) and Hartmann-6. Local searches start from the best posterior means.
        best = float(ys.min())
        fitted = ys - sn2 * alpha
        incumbents = layout.relaxed(F[np.argsort(fitted, kind="stable")[:2]])
        # kriging believer: pending points join with their posterior mean as the value
        pending_rows = [row for t in pending if (row := cache.row(t)) is not None]
        if pending_rows:
            Fp = np.array(pending_rows)
            Ep = layout.expand(Fp)
            mean = sf2 * matern(sqdist(Ep * inv_ls, E * inv_ls))[0] @ alpha
            L = append_rows(L, E, Ep, inv_ls, sf2, sn2)
            E = np.vstack([E, Ep])
            ys = np.concatenate([ys, mean])
            best = min(best, float(mean.min()))
        else:
            Fp = np.zeros((0, layout.d))
        Linv, info = lapack.dtrtri(L, lower=1)
        if info != 0:
            return None
        post = Posterior(
            layout,
            E * inv_ls,
            Linv,
            cho_solve((L, True), ys, check_finite=False),
            inv_ls,
            sf2,
            sn2,
            best,
        )
        return maximise(post, incumbents, Fp, sobol_seed, self.n_candidates, self.n_local)
