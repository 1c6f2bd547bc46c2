"""``tpe.suggest``: hypersearch's Tree-structured Parzen Estimator (`hypersearch.samplers.TPE`).

Knobs through ``functools.partial(tpe.suggest, n_startup_jobs=10, gamma=0.25,
n_EI_candidates=24, prior_weight=1.0)``; see `algos.tpe_sampler` for how each maps.
"""

from __future__ import annotations

from hypersearch.integrations.hyperopt.algos import marker, tpe_sampler

suggest = marker("tpe", tpe_sampler)

__all__ = ["suggest"]
