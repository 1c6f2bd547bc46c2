"""``hyperopt.hp``, on hypersearch: re-exports `hypersearch.integrations.hyperopt.hp`."""

from __future__ import annotations

from hypersearch.integrations.hyperopt.hp import *  # noqa: F403
from hypersearch.integrations.hyperopt.hp import __all__ as __all__
