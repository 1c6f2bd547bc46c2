"""``hyperopt.exceptions``, on hypersearch: re-exports `hypersearch.integrations.hyperopt.exceptions`."""

from __future__ import annotations

from hypersearch.integrations.hyperopt.exceptions import *  # noqa: F403
from hypersearch.integrations.hyperopt.exceptions import __all__ as __all__
