"""``hyperopt.pyll.stochastic``, on hypersearch: re-exports `hypersearch.integrations.hyperopt.pyll.stochastic`."""

from __future__ import annotations

from hypersearch.integrations.hyperopt.pyll.stochastic import *  # noqa: F403
from hypersearch.integrations.hyperopt.pyll.stochastic import __all__ as __all__
