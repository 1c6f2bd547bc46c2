"""Search spaces: distributions, nested conditional structure, unit-cube encoding, grids, JSON."""

from __future__ import annotations

from hypersearch.space.distributions import (
    Choice,
    Distribution,
    Float,
    Integer,
    Normal,
    choice,
    integer,
    lognormal,
    loguniform,
    normal,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    uniform,
)
from hypersearch.space.tree import Space, as_space

__all__ = [
    "Choice",
    "Distribution",
    "Float",
    "Integer",
    "Normal",
    "Space",
    "as_space",
    "choice",
    "integer",
    "lognormal",
    "loguniform",
    "normal",
    "qlognormal",
    "qloguniform",
    "qnormal",
    "quniform",
    "uniform",
]
