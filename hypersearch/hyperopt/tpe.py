"""``hyperopt.tpe``, on hypersearch: re-exports `hypersearch.integrations.hyperopt.tpe`."""

from __future__ import annotations

from hypersearch.integrations.hyperopt.tpe import *  # noqa: F403
from hypersearch.integrations.hyperopt.tpe import __all__ as __all__
