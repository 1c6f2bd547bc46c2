"""Properties of what parses and reshapes spaces in "searching again" (hypothesis): zoom keeps
every best point inside the narrowed space and inside the original bounds; widening is a growth
and narrowing is not; warm-start sources either check or raise ValueError, never anything else."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hypersearch.space import Space
from hypersearch.space.distributions import Float, Integer
from hypersearch.space.growth import growth_problems
from hypersearch.space.zoom import zoom_space
from hypersearch.study.warm_start import check_sources

FAST = settings(max_examples=200, deadline=None)
finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@st.composite
def float_dist_and_points(draw: Any) -> tuple[Float, list[float]]:
    log = draw(st.booleans())
    if log:
        low = draw(st.floats(1e-6, 1e3))
        high = low * draw(st.floats(1.01, 1e6))
    else:
        low = draw(finite)
        high = low + draw(st.floats(1e-3, 1e6))
    dist = Float(low, high, log=log)
    units = draw(st.lists(st.floats(0, 1), min_size=1, max_size=8))
    return dist, [dist.from_unit(u) for u in units]


@FAST
@given(float_dist_and_points(), st.floats(0, 2))
def test_zoomed_floats_hold_every_best_point_inside_the_original(
        case: tuple[Float, list[float]], margin: float) -> None:
    dist, points = case
    zoomed = zoom_space(Space({"x": dist}), [{"x": p} for p in points], margin).params["x"].dist
    assert isinstance(zoomed, Float) and zoomed.log == dist.log
    assert dist.low <= zoomed.low < zoomed.high <= dist.high
    assert all(zoomed.contains(p) or math.isclose(p, zoomed.low) or math.isclose(p, zoomed.high)
               for p in points)


@FAST
@given(st.integers(-1000, 1000), st.integers(1, 500), st.integers(1, 7), st.data(),
       st.floats(0, 1))
def test_zoomed_integers_keep_their_lattice_and_the_best_points(
        low: int, span: int, step: int, data: Any, margin: float) -> None:
    dist = Integer(low, low + span * step, step)
    ks = data.draw(st.lists(st.integers(0, span), min_size=1, max_size=6))
    points = [low + k * step for k in ks]
    zoomed = zoom_space(Space({"n": dist}), [{"n": p} for p in points], margin).params["n"].dist
    assert isinstance(zoomed, Integer) and zoomed.step == step
    assert dist.low <= zoomed.low < zoomed.high <= dist.high
    assert (zoomed.low - dist.low) % step == 0
    assert all(zoomed.contains(p) for p in points)


@FAST
@given(float_dist_and_points(), st.floats(0, 10), st.floats(0, 10))
def test_widening_is_a_growth_and_narrowing_is_not(
        case: tuple[Float, list[float]], below: float, above: float) -> None:
    dist, _ = case
    if dist.log:
        wide = Float(dist.low / (1 + below), dist.high * (1 + above), log=True)
    else:
        width = dist.high - dist.low
        wide = Float(dist.low - below * width, dist.high + above * width)
    assert growth_problems(Space({"x": dist}), Space({"x": wide})) == []
    if wide != dist:
        assert growth_problems(Space({"x": wide}), Space({"x": dist}))


json_values = st.recursive(
    st.none() | st.booleans() | finite | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                  max_size=3),
    max_leaves=8,
)


@FAST
@given(json_values)
def test_warm_start_sources_check_or_say_what_is_wrong(value: Any) -> None:
    try:
        checked = check_sources(value)
    except ValueError as error:
        assert str(error)
    else:
        assert isinstance(checked, tuple)
        assert all(isinstance(s, str) or set(s) == {"params", "value"} for s in checked)
