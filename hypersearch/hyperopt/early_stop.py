"""``hyperopt.early_stop``, on hypersearch: re-exports `hypersearch.integrations.hyperopt.early_stop`."""

from __future__ import annotations

from hypersearch.integrations.hyperopt.early_stop import *  # noqa: F403
from hypersearch.integrations.hyperopt.early_stop import __all__ as __all__
