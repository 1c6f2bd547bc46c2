"""Objectives the benchmarks store by name ("benchobjectives:noop"), so that `hypersearch
worker` processes, which import a study's objective, can run them."""

from __future__ import annotations

import time
from typing import Any


def noop(params: dict[str, Any]) -> float:
    return 0.0


def sleep10ms(params: dict[str, Any]) -> float:
    time.sleep(0.010)
    return 0.0


def sleep2s(params: dict[str, Any]) -> float:
    """A 2 s trial with a landscape for a model to learn (the throughput space's x)."""
    time.sleep(2.0)
    return float((params["x"] - 1.0) ** 2)
