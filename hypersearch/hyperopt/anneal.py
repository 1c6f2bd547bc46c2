"""``hyperopt.anneal``, on hypersearch: re-exports `hypersearch.integrations.hyperopt.anneal`."""

from __future__ import annotations

from hypersearch.integrations.hyperopt.anneal import *  # noqa: F403
from hypersearch.integrations.hyperopt.anneal import __all__ as __all__
