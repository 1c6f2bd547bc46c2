"""Zoom: a narrower space around the best points found, for a follow-up study.

Each range shrinks to the span of the best points' values, widened on each side by `margin`
times the original range (measured on the parameter's own scale: in the logarithm for a log
scale), kept inside the original bounds; log scales, integer and ``q`` lattices stay as they
were. A choice keeps the options the best points took (weights renormalised), and the
parameters inside a kept option zoom on the best points that took it. A parameter no best
point used (a branch they never took) and a normal prior (no bounds to narrow) are kept as
they are. The space's structure (nesting, constants) is unchanged.

    zoom_space(space, [{"lr": 0.01}, {"lr": 0.03}], margin=0.1)  # lr in ~[0.0063, 0.048]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from hypersearch.errors import SpaceError
from hypersearch.space.distributions import Choice, Distribution, Float, Integer
from hypersearch.space.tree import ROOT_NAME, Space, child_path


def zoom_space(space: Space, best: Sequence[Mapping[str, Any]], margin: float = 0.1) -> Space:
    """`space` narrowed around `best` (flat assignments, as trials store them)."""
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not (
            0 <= margin < math.inf):
        raise SpaceError(f"zoom: margin must be a number >= 0, got {margin!r}")
    if not best:
        raise SpaceError("zoom: no points to zoom on; the study needs complete trials")
    return Space(_zoom(space.tree, "", list(best), float(margin)))


def _zoom(tree: Any, prefix: str, best: list[Mapping[str, Any]], margin: float) -> Any:
    if isinstance(tree, Distribution):
        path = prefix or ROOT_NAME
        values = [flat[path] for flat in best if path in flat]
        if isinstance(tree, Choice):
            return _zoom_choice(tree, path, best, margin)
        if not values:
            return tree
        if isinstance(tree, Float):
            return _zoom_float(tree, values, margin)
        if isinstance(tree, Integer):
            return _zoom_integer(tree, values, margin)
        return tree  # an unbounded prior
    if isinstance(tree, Mapping):
        return {k: _zoom(v, child_path(prefix, k), best, margin)
                for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        items = [_zoom(v, child_path(prefix, str(i)), best, margin)
                 for i, v in enumerate(tree)]
        return tuple(items) if isinstance(tree, tuple) else items
    return tree


def _span(values: Sequence[float], low: float, high: float, log: bool,
          margin: float) -> tuple[float, float]:
    """[min, max] of `values` widened by margin × the range, on the scale, inside the bounds."""
    scale = math.log if log else float
    lo, hi = scale(low), scale(high)
    pad = margin * (hi - lo)
    a = max(lo, min(scale(v) for v in values) - pad)
    b = min(hi, max(scale(v) for v in values) + pad)
    back = math.exp if log else float
    return max(low, back(a)), min(high, back(b))


def _zoom_float(dist: Float, values: Sequence[float], margin: float) -> Float:
    low, high = _span(values, dist.low, dist.high, dist.log, margin)
    if dist.q is not None:  # whole lattice cells, on the original lattice
        low = dist.low + math.floor((low - dist.low) / dist.q + 1e-9) * dist.q
        high = dist.low + math.ceil((high - dist.low) / dist.q - 1e-9) * dist.q
        if high - low < dist.q:
            high = low + dist.q if low + dist.q <= dist.high else high
            low = high - dist.q
        return Float(max(low, dist.low), min(high, dist.high), dist.log, dist.q)
    if not low < high:  # every best point at one value, no margin: keep a sliver around it
        width = 1e-6 * (dist.high - dist.low)
        low, high = max(dist.low, low - width), min(dist.high, high + width)
    return Float(low, high, dist.log)


def _zoom_integer(dist: Integer, values: Sequence[int], margin: float) -> Integer:
    low, high = _span(values, dist.low, dist.high, dist.log, margin)
    step = dist.step
    low_k = math.floor((low - dist.low) / step + 1e-9)
    high_k = math.ceil((high - dist.low) / step - 1e-9)
    if high_k == low_k:  # an integer range holds two values at least
        high_k = low_k + 1 if dist.low + (low_k + 1) * step <= dist.high else high_k
        low_k = high_k - 1
    return Integer(dist.low + low_k * step, dist.low + high_k * step, step, dist.log)


def _zoom_choice(dist: Choice, path: str, best: list[Mapping[str, Any]],
                 margin: float) -> Choice:
    taken = sorted({int(flat[path]) for flat in best if path in flat})
    if not taken:
        taken = list(range(dist.size))
    options = [_zoom(dist.options[i], f"{path}[{i}]",
                     [flat for flat in best if flat.get(path) == i], margin) for i in taken]
    weights = None if dist.weights is None else [dist.weights[i] for i in taken]
    if weights is not None and sum(weights) <= 0:
        weights = None
    return Choice(options, weights)
