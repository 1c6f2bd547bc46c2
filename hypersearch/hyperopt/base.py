"""``hyperopt.base``, on hypersearch: re-exports `hypersearch.integrations.hyperopt.base`."""

from __future__ import annotations

from hypersearch.integrations.hyperopt.base import *  # noqa: F403
from hypersearch.integrations.hyperopt.base import __all__ as __all__
