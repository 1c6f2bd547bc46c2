"""``sample(space, rng)``: one random point of a hyperopt space, drawn from its priors."""

from __future__ import annotations

from typing import Any

import numpy as np

from hypersearch.integrations.hyperopt.space import as_hp_space


def sample(expr: Any, rng: np.random.Generator | None = None, **_kwargs: Any) -> Any:
    """A point of `expr` as the objective would receive it (hypersearch's Space.sample)."""
    hp_space = as_hp_space(expr)
    flat = hp_space.space.sample(rng if rng is not None else np.random.default_rng())
    return hp_space.point(hp_space.vals(flat))


__all__ = ["sample"]
