"""A study's seed from the random generators other libraries take (hyperopt's `rstate`,
scikit-learn's `random_state`)."""

from __future__ import annotations

from typing import Any

import numpy as np


def drawn_seed(rng: Any) -> int | None:
    """A seed drawn from a numpy Generator or legacy RandomState (so two searches with one
    generator differ, as the libraries' own do); None for anything else."""
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(2**31 - 1))
    if isinstance(rng, np.random.RandomState):
        return int(rng.randint(2**31 - 1))
    return None
