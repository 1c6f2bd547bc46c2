"""``hyperopt.atpe`` is not available: importing it says so."""

from __future__ import annotations

raise ImportError(
    "hypersearch.hyperopt has no atpe (hyperopt's Adaptive TPE needs lightgbm and its own "
    "models); use tpe.suggest, which runs hypersearch's TPE"
)
