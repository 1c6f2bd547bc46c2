"""``hyperopt.fmin``, on hypersearch: re-exports `hypersearch.integrations.hyperopt.fmin`."""

from __future__ import annotations

from hypersearch.integrations.hyperopt.fmin import *  # noqa: F403
from hypersearch.integrations.hyperopt.fmin import __all__ as __all__
