"""Parameter importance: how much of the objective's variation each parameter explains alone.

The method (numpy only, documented so a user can judge the number): the objective values are
replaced by their ranks (so one outlier cannot dominate); each parameter's values are cut into
up to `BINS` quantile bins (a choice: one bin per option; trials where a conditional parameter
is absent form their own bin); the share of the rank variance explained by the bin means is the
correlation ratio eta² (a first-order, fANOVA-style main effect). Pure noise explains about
(bins - 1) / (n - 1) by chance, which is subtracted, as adjusted R² does; the results are
normalised to sum to 1. Interactions are not credited to either parameter.

    param_importance([{"lr": 0.1, "opt": "adam"}, ...], [0.31, ...])  # {"lr": 0.8, "opt": 0.2}
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

BINS = 10
MIN_TRIALS = 4
METHOD = (
    "first-order correlation ratio (eta²) of the objective's ranks over up to 10 quantile bins "
    "per parameter, chance level subtracted, normalised to sum 1"
)


def _bins(values: Sequence[Any]) -> np.ndarray:
    """A bin label per value: quantile bins of the numbers, one per distinct other value."""
    numeric = [isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
               for v in values]
    labels = np.zeros(len(values), dtype=np.int64)
    nums = np.array([float(v) for v, ok in zip(values, numeric, strict=True) if ok])
    if len(nums):
        distinct = np.unique(nums)
        if len(distinct) <= BINS:
            which = np.searchsorted(distinct, nums)
        else:
            edges = np.unique(np.quantile(nums, np.linspace(0, 1, BINS + 1)[1:-1]))
            which = np.searchsorted(edges, nums, side="right")
        labels[np.array(numeric)] = which
    others = {v: i for i, v in enumerate(dict.fromkeys(
        str(v) for v, ok in zip(values, numeric, strict=True) if not ok))}
    offset = BINS + 1
    for i, (v, ok) in enumerate(zip(values, numeric, strict=True)):
        if not ok:
            labels[i] = offset + others[str(v)]
    return labels


def param_importance(
    params: Sequence[Mapping[str, Any]], values: Sequence[float]
) -> dict[str, float]:
    """{parameter: importance} summing to 1 (all 0 when nothing explains anything), for
    trials with `params[i]` scored `values[i]` (finite values only); empty with fewer than
    MIN_TRIALS trials."""
    keep = [i for i, v in enumerate(values) if isinstance(v, int | float) and math.isfinite(v)]
    if len(keep) < MIN_TRIALS:
        return {}
    y = np.argsort(np.argsort([values[i] for i in keep])).astype(float)
    total = float(((y - y.mean()) ** 2).sum())
    names = list(dict.fromkeys(k for i in keep for k in params[i]))
    raw: dict[str, float] = {}
    for name in names:
        labels = _bins([params[i].get(name, "<absent>") for i in keep])
        groups = np.unique(labels)
        if total == 0 or len(groups) < 2:
            raw[name] = 0.0
            continue
        between = sum(
            (labels == g).sum() * (y[labels == g].mean() - y.mean()) ** 2 for g in groups
        )
        chance = (len(groups) - 1) / (len(y) - 1)
        raw[name] = max(0.0, float(between) / total - chance)
    scale = sum(raw.values())
    return {n: (v / scale if scale > 0 else 0.0) for n, v in
            sorted(raw.items(), key=lambda item: -item[1])}
