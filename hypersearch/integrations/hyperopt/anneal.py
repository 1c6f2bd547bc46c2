"""``anneal.suggest``: not hyperopt's annealing, but hypersearch's TPE after 5 random trials.

hyperopt's annealing samples around the best trials with a neighbourhood that shrinks as trials
accumulate. TPE with a short random start does the same job (it concentrates on the best region
after a few trials) and is stored like any hypersearch strategy, so it is what runs here.
hyperopt's annealing knobs (``avg_best_idx``, ``shrink_coef``) are accepted and have no effect.
"""

from __future__ import annotations

from typing import Any

from hypersearch.integrations.hyperopt.algos import marker
from hypersearch.samplers import TPE, Sampler


def _anneal(*, avg_best_idx: float = 2.0, shrink_coef: float = 0.1, **_ignored: Any) -> Sampler:
    del avg_best_idx, shrink_coef  # hyperopt's annealing schedule: not reimplemented (see above)
    if _ignored:
        raise TypeError(f"unexpected options {sorted(_ignored)} (anneal takes avg_best_idx, shrink_coef)")
    return TPE(n_startup=5)


suggest = marker("anneal", _anneal)

__all__ = ["suggest"]
