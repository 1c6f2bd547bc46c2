"""``hyperopt.pyll``, on hypersearch: ``scope`` and the space's expression nodes
(re-exports `hypersearch.integrations.hyperopt.pyll`)."""

from __future__ import annotations

from hypersearch.hyperopt.pyll import stochastic
from hypersearch.integrations.hyperopt.pyll import *  # noqa: F403
from hypersearch.integrations.hyperopt.pyll import __all__ as _all

__all__ = [*_all, "stochastic"]
