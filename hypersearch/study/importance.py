"""Parameter importance: how much of the objective's variation each parameter explains alone.

The method (numpy only, documented so a user can judge the number): the objective values are
replaced by their ranks (so one outlier cannot dominate); each parameter's values are cut into
up to `BINS` quantile bins, about four trials a bin (a choice: one bin per option); the share of
the rank variance explained by the bin means is the correlation ratio eta² (a first-order,
fANOVA-style main effect). Pure noise explains about (bins - 1) / (n - 1) by chance, which is
subtracted, as adjusted R² does. A conditional parameter is judged among the trials where it is
active (its bins' share of the whole variation), so the effect of taking a branch goes to the
choice that takes it. The results are normalised to sum to 1. Interactions are not credited to
either parameter.

    param_importance([{"lr": 0.1, "opt": "adam"}, ...], [0.31, ...])  # {"lr": 0.8, "opt": 0.2}
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

BINS = 10
TRIALS_PER_BIN = 4
MIN_TRIALS = 4
METHOD = (
    "first-order correlation ratio (eta²) of the objective's ranks over up to 10 quantile bins "
    "per parameter (about 4 trials a bin; a conditional one where it is active), chance level "
    "subtracted, normalised to sum 1"
)


def _bins(values: Sequence[Any]) -> np.ndarray:
    """A bin label per value: quantile bins of the numbers, one per distinct other value."""
    numeric = [isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
               for v in values]
    labels = np.zeros(len(values), dtype=np.int64)
    nums = np.array([float(v) for v, ok in zip(values, numeric, strict=True) if ok])
    if len(nums):
        distinct = np.unique(nums)
        # about TRIALS_PER_BIN trials a bin: with one trial a bin, every parameter explains
        # everything and the chance correction leaves nothing
        bins = min(BINS, max(2, len(nums) // TRIALS_PER_BIN))
        if len(distinct) <= bins:
            which = np.searchsorted(distinct, nums)
        else:
            edges = np.unique(np.quantile(nums, np.linspace(0, 1, bins + 1)[1:-1]))
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
        # among the trials where it is active: a branch's own effect goes to the choice above
        active = np.array([j for j, i in enumerate(keep) if name in params[i]])
        ya = y[active]
        labels = _bins([params[keep[j]][name] for j in active])
        groups = np.unique(labels)
        if total == 0 or len(groups) < 2 or len(ya) < 3:
            raw[name] = 0.0
            continue
        between = sum(
            (labels == g).sum() * (ya[labels == g].mean() - ya.mean()) ** 2 for g in groups
        )
        chance = (len(groups) - 1) / (len(ya) - 1) * float(((ya - ya.mean()) ** 2).sum())
        raw[name] = max(0.0, (float(between) - chance) / total)
    scale = sum(raw.values())
    return {n: (v / scale if scale > 0 else 0.0) for n, v in
            sorted(raw.items(), key=lambda item: -item[1])}
