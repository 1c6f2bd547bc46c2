"""``rand.suggest``: hypersearch's random search (`hypersearch.samplers.Random`), independent draws
from each hyperparameter's prior."""

from __future__ import annotations

from hypersearch.integrations.hyperopt.algos import marker
from hypersearch.samplers import Random

suggest = marker("rand", Random)

__all__ = ["suggest"]
