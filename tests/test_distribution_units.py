"""What distributions tell a model about themselves: categorical or not, how many values,
the affine map behind the unit transform, the value a unit point stands for (`snap_unit`),
and the values next to a value."""

from __future__ import annotations

import math

import numpy as np
import pytest

import hypersearch as hs
from hypersearch.space import Distribution

NUMBERS: list[Distribution] = [
    hs.uniform(-2.0, 3.0),
    hs.loguniform(1e-5, 1e-1),
    hs.quniform(0.0, 1.0, 0.25),
    hs.quniform(0.0, 1.0, 0.3),  # a last cell clipped by the bound
    hs.qloguniform(1.0, 100.0, 3.0),
    hs.normal(0.0, 2.0),
    hs.lognormal(0.0, 1.0),
    hs.qnormal(0.0, 2.0, 0.5),
    hs.qlognormal(3.0, 1.0, 4.0),
    hs.integer(1, 6),
    hs.integer(0, 20, step=5),
    hs.integer(8, 512, log=True),
]
CHOICES = [hs.choice(["a", "b", "c"]), hs.choice(["x", "y", "z", "w"], weights=[2, 0, 1, 1])]


@pytest.mark.parametrize("dist", NUMBERS + CHOICES, ids=repr)
def test_snap_unit_is_the_unit_of_the_decoded_value(dist: Distribution) -> None:
    u = np.random.default_rng(0).random(400)
    u[:4] = [0.0, 1.0, 1e-15, 1.0 - 1e-15]  # the edges
    snapped = dist.snap_unit(u)
    assert snapped.shape == u.shape
    if dist.is_discrete:
        expected = [dist.to_unit(dist.from_unit(float(x))) for x in u]
        np.testing.assert_allclose(snapped, expected, rtol=0, atol=1e-12)
        # a snapped point decodes to the value it came from, and is a fixed point
        assert [dist.from_unit(float(s)) for s in snapped] == [dist.from_unit(float(x)) for x in u]
        np.testing.assert_allclose(dist.snap_unit(snapped), snapped, rtol=0, atol=1e-12)
    else:  # every point of the cube is its own value
        np.testing.assert_array_equal(snapped, u)
    np.testing.assert_array_equal(dist.snap_unit([-0.5, 1.5]), dist.snap_unit([0.0, 1.0]))


@pytest.mark.parametrize("dist", NUMBERS + CHOICES, ids=repr)
def test_n_values_counts_the_distinct_values(dist: Distribution) -> None:
    bounded = not isinstance(dist, hs.space.Normal)
    if dist.is_discrete and bounded:
        assert dist.n_values == len(dist.grid(None))
        u = np.linspace(0.0, 1.0, 20001)
        drawn = len(dist.support) if dist.is_categorical else dist.n_values  # type: ignore[attr-defined]
        assert len({dist.from_unit(float(x)) for x in u}) == drawn  # weight-0 options: never
    else:
        assert dist.n_values is None


@pytest.mark.parametrize("dist", NUMBERS, ids=repr)
def test_internal_bounds_are_the_affine_unit_map(dist: Distribution) -> None:
    bounds = dist.internal_bounds
    if isinstance(dist, hs.space.Normal):
        assert bounds is None
        return
    assert bounds is not None
    lo, hi = bounds
    for u in (0.0, 0.13, 0.5, 0.77, 1.0):
        t = lo + u * (hi - lo)  # the internal coordinate u maps to
        value = dist.from_unit(u)
        if isinstance(dist, hs.space.Integer):  # each value owns a cell of the internal line
            half = 0.5 if dist.log else dist.step / 2
            cell = (value - half, value + half)
            if dist.log:
                cell = (math.log(cell[0]), math.log(cell[1]))
            assert cell[0] - 1e-9 <= t <= cell[1] + 1e-9
        elif dist.q is None:
            assert value == pytest.approx(math.exp(t) if dist.log else t, rel=1e-12)
        else:  # the lattice point nearest the continuous value
            x = math.exp(t) if dist.log else t
            assert abs(value - x) <= dist.q / 2 + 1e-9


@pytest.mark.parametrize("dist", NUMBERS, ids=repr)
def test_neighbours_are_one_lattice_step_away(dist: Distribution) -> None:
    if not dist.is_discrete:
        assert dist.neighbours(dist.from_unit(0.5)) == []
        return
    step = dist.step if isinstance(dist, hs.space.Integer) else dist.q  # type: ignore[attr-defined]
    for u in (0.0, 0.3, 0.5, 0.9, 1.0):
        value = dist.from_unit(u)
        near = dist.neighbours(value)
        assert near and value not in near
        for other in near:
            assert dist.contains(other)
            assert abs(abs(other - value) - step) < 1e-9 * max(1.0, abs(value))
        if isinstance(dist, hs.space.Integer):
            assert all(isinstance(v, int) for v in near)
    if not isinstance(dist, hs.space.Normal):  # the ends of a bounded lattice have one
        assert len(dist.neighbours(dist.from_unit(0.0))) == 1
        assert len(dist.neighbours(dist.from_unit(1.0))) == 1


def test_choices_know_their_options() -> None:
    plain, weighted = CHOICES
    assert plain.is_categorical and weighted.is_categorical
    assert not any(d.is_categorical for d in NUMBERS)
    assert plain.probabilities == pytest.approx((1 / 3,) * 3)
    assert weighted.probabilities == pytest.approx((0.5, 0.0, 0.25, 0.25))
    assert plain.support == (0, 1, 2)
    assert weighted.support == (0, 2, 3)  # weight 0: never drawn, never proposed
    assert weighted.neighbours(0) == [2, 3]  # unordered: every other possible option
    assert weighted.neighbours(1) == [0, 2, 3]
    assert plain.n_values == 3 and weighted.n_values == 4
    assert plain.internal_bounds is None


def test_log_scale_is_known_for_every_distribution() -> None:
    assert [d.log for d in NUMBERS] == [
        False,
        True,
        False,
        False,
        True,
        False,
        True,
        False,
        True,
        False,
        False,
        True,
    ]
    assert not any(d.log for d in CHOICES)


def test_existing_apis_unchanged() -> None:
    """The additions leave the older surface alone (grid, size, JSON, equality)."""
    q = hs.quniform(0.0, 1.0, 0.25)
    assert q.grid(None) == [0.0, 0.25, 0.5, 0.75, 1.0] and q.is_discrete
    assert hs.integer(1, 6).size == 6 and hs.choice(["a", "b"]).size == 2
    assert q.to_json() == {"type": "float", "low": 0.0, "high": 1.0, "log": False, "q": 0.25}
    assert "log" not in hs.choice(["a"]).to_json()
    assert hs.choice(["a", "b"]) == hs.choice(["a", "b"])
