"""Gaussian-process Bayesian optimisation with (log) Expected Improvement: the `GP` strategy.

One part per module:

- `encoding`: how a space (mixed, conditional) becomes kernel inputs; discrete parameters
  snapped to their cell, choices one-hot, inactive parameters filled.
- `prior`: the prior on the hyperparameters (lengthscales, signal and noise variance).
- `model`: the Matérn-5/2 ARD kernel, Cholesky factor and rank-append, marginal likelihood
  and MAP fit.
- `fitting`: fitting the model to a history at bounded cost; the hyperparameter path and the
  cache, which never changes a result.
- `acquisition`: log-EI under the posterior, with gradients.
- `optim_mixed` and `lbfgs`: maximising the acquisition over continuous and discrete
  coordinates together.
- `sampler`: the `GP` class, startup, pending trials, determinism.
"""

from __future__ import annotations

from hypersearch.samplers.gp.sampler import GP

__all__ = ["GP"]
