"""``hyperopt.rand``, on hypersearch: re-exports `hypersearch.integrations.hyperopt.rand`."""

from __future__ import annotations

from hypersearch.integrations.hyperopt.rand import *  # noqa: F403
from hypersearch.integrations.hyperopt.rand import __all__ as __all__
