"""Small benchmark problems shared by the sampler tests."""

from __future__ import annotations

import math
from typing import Any

import hypersearch as hs

BRANIN_SPACE = {"x1": hs.uniform(-5.0, 10.0), "x2": hs.uniform(0.0, 15.0)}
BRANIN_MIN = 0.397887357729739


def branin(p: dict[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


# A model-selection space: three branches, one with a nested choice of its own.
CONDITIONAL_SPACE = {
    "model": hs.choice(
        [
            {"name": "svm", "C": hs.loguniform(1e-3, 1e3), "kernel": hs.choice(["rbf", "poly"])},
            {
                "name": "tree",
                "depth": hs.integer(1, 20),
                "split": hs.choice(
                    [
                        {"kind": "best", "min_leaf": hs.integer(1, 10)},
                        {"kind": "random", "frac": hs.uniform(0.1, 1.0)},
                    ]
                ),
            },
            {"name": "linear"},
        ]
    ),
    "scale": hs.choice([True, False]),
    "lr": hs.loguniform(1e-4, 1.0),
}


def conditional_objective(p: dict[str, Any]) -> float:
    """Best (0.0) at svm, C=10, rbf, scaled, lr=0.01."""
    model = p["model"]
    base = abs(math.log10(p["lr"]) + 2) + (0.0 if p["scale"] else 0.3)
    if model["name"] == "svm":
        return base + abs(math.log10(model["C"]) - 1) + (0.2 if model["kernel"] == "poly" else 0)
    if model["name"] == "tree":
        split = model["split"]
        extra = split["min_leaf"] / 10 if split["kind"] == "best" else split["frac"]
        return base + abs(model["depth"] - 5) / 5 + extra
    return base + 1.5
