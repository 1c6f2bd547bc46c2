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
