"""The space layer: distributions, the Space tree, the unit cube, grids and JSON."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import hypersearch.space as hs
from hypersearch.errors import SpaceError
from hypersearch.space import Choice, Distribution, Float, Integer, Normal, Space
from hypersearch.space.distributions import distribution_from_json

FUZZ = settings(  # HYPERSEARCH_FUZZ_EXAMPLES=5000 for a long hunt
    max_examples=int(os.environ.get("HYPERSEARCH_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

OPT_SPACE = {
    "opt": hs.choice(
        [
            {"name": "adam", "lr": hs.loguniform(1e-5, 1e-1)},
            {"name": "sgd", "momentum": hs.uniform(0.0, 0.99)},
        ]
    )
}


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def raises(message: str) -> Any:
    """pytest.raises(SpaceError) matching `message` literally."""
    return pytest.raises(SpaceError, match=re.escape(message))


# -- constructors: validation and messages ----------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: hs.uniform(1, 0),
            "uniform(1, 0): low must be less than high (got low=1.0, high=0.0)",
        ),
        (lambda: hs.uniform(2.5, 2.5), "low must be less than high (got low=2.5, high=2.5)"),
        (lambda: hs.loguniform(0.1, 0.01), "loguniform(0.1, 0.01): low must be less than high"),
        (lambda: hs.loguniform(0, 1), "loguniform(0, 1): a log scale needs low > 0 (got low=0.0)"),
        (lambda: hs.loguniform(-1, 1), "a log scale needs low > 0 (got low=-1.0)"),
        (lambda: hs.qloguniform(0, 10, 1), "qloguniform(0, 10, q=1): a log scale needs low > 0"),
        (lambda: hs.quniform(0, 1, 0), "quniform(0, 1, q=0): q must be > 0 (got q=0.0)"),
        (lambda: hs.quniform(0, 1, -0.25), "q must be > 0 (got q=-0.25)"),
        (lambda: hs.quniform(0, 1, 2), "q=2.0 is wider than the range [0.0, 1.0]"),
        (lambda: hs.qnormal(0, 1, 0), "qnormal(0, 1, q=0): q must be > 0 (got q=0.0)"),
        (lambda: hs.qlognormal(0, 1, -1), "qlognormal(0, 1, q=-1): q must be > 0"),
        (lambda: hs.normal(0, 0), "normal(0, 0): sigma must be > 0 (got sigma=0.0)"),
        (lambda: hs.lognormal(0, -1), "lognormal(0, -1): sigma must be > 0 (got sigma=-1.0)"),
        (lambda: hs.integer(5, 5), "integer(5, 5): low must be less than high (got low=5, high=5)"),
        (lambda: hs.integer(5, 1), "low must be less than high (got low=5, high=1)"),
        (
            lambda: hs.integer(0, 10, step=0),
            "integer(0, 10, step=0): step must be >= 1 (got step=0)",
        ),
        (lambda: hs.integer(0, 10, step=-2), "step must be >= 1 (got step=-2)"),
        (lambda: hs.integer(0, 10, step=11), "step=11 is wider than the range"),
        (lambda: hs.integer(0, 10, log=True), "a log scale needs low >= 1 (got low=0)"),
        (lambda: hs.integer(1, 10, 2, True), "a log scale needs step=1 (got step=2)"),
        (lambda: hs.integer(0.5, 3), "integer(0.5, 3): low must be an integer, got float 0.5"),
        (lambda: hs.integer(0, "3"), "high must be an integer, got str '3'"),
        (lambda: hs.integer(0, 3, step=1.5), "step must be an integer, got float 1.5"),
        (lambda: hs.choice([]), "choice(...): options is empty; give at least one option"),
        (
            lambda: hs.choice("abc"),
            "options must be a list, got str 'abc'; write hs.choice(['a', 'b'])",
        ),
        (lambda: hs.choice(5), "options must be a list, got int 5"),
        (lambda: hs.choice(None), "options must be a list, got NoneType None"),
        (lambda: hs.choice({"a": 1}), "options must be a list, got dict"),
        (lambda: hs.choice([1, 2], [1]), "1 weights for 2 options; give one weight per option"),
        (lambda: hs.choice([1, 2], [1, 2, 3]), "3 weights for 2 options"),
        (
            lambda: hs.choice([1, 2], [1, -1]),
            "weights must be >= 0 with a positive sum, got [1.0, -1.0]",
        ),
        (lambda: hs.choice([1, 2], [0, 0]), "weights must be >= 0 with a positive sum"),
        (lambda: hs.choice([1, 2], ["a", 1]), "weights[0] must be a number, got str 'a'"),
        (lambda: hs.choice([1, 2], [1, math.nan]), "weights[1] must be finite, got nan"),
        (lambda: hs.choice([1, 2], [True, 1]), "weights[0] must be a number, got bool True"),
    ],
)
def test_constructor_errors(make: Callable[[], Any], message: str) -> None:
    with raises(message):
        make()


@pytest.mark.parametrize("make", [hs.uniform, hs.loguniform, hs.normal, hs.lognormal])
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("0", 1), "low must be a number, got str '0'"),
        ((0.5, "1"), "high must be a number, got str '1'"),
        ((True, 2), "low must be a number, got bool True"),
        ((0.5, False), "high must be a number, got bool False"),
        ((None, 1), "low must be a number, got NoneType None"),
        ((math.nan, 1), "low must be finite, got nan"),
        ((0.5, math.inf), "high must be finite, got inf"),
        ((-math.inf, 1), "low must be finite, got -inf"),
        (([0], 1), "low must be a number, got list [0]"),
        ((complex(1, 1), 2), "low must be a number, got complex"),
    ],
)
def test_non_numbers_are_refused(make: Callable[..., Any], args: tuple, message: str) -> None:
    if make in (hs.normal, hs.lognormal):
        message = message.replace("low", "mu").replace("high", "sigma")
    with raises(message):
        make(*args)


@pytest.mark.parametrize("make", [hs.quniform, hs.qloguniform, hs.qnormal, hs.qlognormal])
@pytest.mark.parametrize(
    ("q", "message"),
    [
        ("0.1", "q must be a number, got str '0.1'"),
        (True, "q must be a number, got bool True"),
        (math.nan, "q must be finite, got nan"),
        (math.inf, "q must be finite, got inf"),
    ],
)
def test_bad_q_is_refused(make: Callable[..., Any], q: Any, message: str) -> None:
    with raises(message):
        make(1, 2, q)


def test_integer_bools_are_refused() -> None:
    with raises("low must be an integer, got bool True"):
        hs.integer(True, 3)
    with raises("high must be an integer, got bool False"):
        hs.integer(-3, False)


def test_numeric_types_are_normalised() -> None:
    dist = hs.uniform(np.int64(0), np.float32(2.5))
    assert (dist.low, dist.high) == (0.0, 2.5)
    assert type(dist.low) is float and type(dist.high) is float
    assert hs.uniform(Fraction(1, 4), 1).low == 0.25
    ints = hs.integer(1.0, np.int64(8), step=np.int32(1))
    assert (ints.low, ints.high, ints.step) == (1, 8, 1)
    assert all(type(v) is int for v in (ints.low, ints.high, ints.step))
    weighted = hs.choice(["a", "b", "c"], [1, 0, np.float64(3)])
    assert weighted.weights == (0.25, 0.0, 0.75)
    assert hs.choice(("x", "y")).options == ("x", "y")


def test_distributions_compare_by_value() -> None:
    assert hs.uniform(0, 1) == hs.uniform(0.0, 1.0)
    assert hs.uniform(0, 1) != hs.loguniform(0.5, 1)
    assert hs.choice([1, {"a": hs.uniform(0, 1)}]) == hs.choice([1, {"a": hs.uniform(0, 1)}])
    assert hs.choice([1, 2]) != hs.choice([1, 2], [1, 3])
    assert len({hs.choice([1, 2]), hs.choice([1, 2]), hs.integer(0, 3)}) == 2


# -- the Space tree: names, validation, flatten/unflatten ---------------------------------------


def test_path_naming() -> None:
    space = Space(
        {
            "lr": hs.loguniform(1e-5, 1e-1),
            "model": {"layers": [hs.integer(1, 4), hs.integer(8, 64)], "act": "relu"},
            "pair": (hs.uniform(0, 1), 3),
        }
    )
    assert space.names == ["lr", "model/layers/0", "model/layers/1", "pair/0"]
    assert len(space) == 4
    assert Space(hs.uniform(0, 1)).names == ["value"]
    assert Space([hs.uniform(0, 1), hs.choice([1, 2])]).names == ["0", "1"]
    assert Space({"a": 1, "b": [2, "x"]}).names == []


def test_nested_conditional_names() -> None:
    space = Space(OPT_SPACE)
    assert space.names == ["opt", "opt[0]/lr", "opt[1]/momentum"]
    assert space.params["opt[0]/lr"].condition == (("opt", 0),)
    assert space.params["opt[1]/momentum"].condition == (("opt", 1),)
    assert space.describe() == {
        "opt": "choice(<2 options>)",
        "opt[0]/lr": "loguniform(1e-05, 0.1)",
        "opt[1]/momentum": "uniform(0.0, 0.99)",
    }


def test_deeply_nested_conditional_names() -> None:
    space = Space(
        {
            "opt": hs.choice(
                [
                    {"name": "adam", "betas": [hs.uniform(0.8, 0.95), hs.uniform(0.9, 0.9999)]},
                    {
                        "name": "sgd",
                        "schedule": hs.choice(
                            [{"kind": "step", "gamma": hs.uniform(0.1, 0.9)}, "constant"]
                        ),
                    },
                ]
            ),
            "seed": 0,
        }
    )
    assert space.names == [
        "opt",
        "opt[0]/betas/0",
        "opt[0]/betas/1",
        "opt[1]/schedule",
        "opt[1]/schedule[0]/gamma",
    ]
    assert space.params["opt[1]/schedule[0]/gamma"].condition == (
        ("opt", 1),
        ("opt[1]/schedule", 0),
    )
    flat = {"opt": 1, "opt[1]/schedule": 0, "opt[1]/schedule[0]/gamma": 0.5}
    assert space.active_names(flat) == ["opt", "opt[1]/schedule", "opt[1]/schedule[0]/gamma"]
    assert not space.is_active("opt[0]/betas/0", flat)
    assert space.unflatten(flat) == {
        "opt": {"name": "sgd", "schedule": {"kind": "step", "gamma": 0.5}},
        "seed": 0,
    }
    root = Space(hs.choice([{"a": hs.uniform(0, 1)}, 3]))
    assert root.names == ["value", "value[0]/a"]
    assert root.unflatten({"value": 1}) == 3


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({1: hs.uniform(0, 1)}, "space key 1 at '<root>' must be a string (got int)"),
        ({"a": {"b/c": 1}}, "space key 'b/c' at 'a' is not a valid name"),
        ({"": 1}, "space key '' at '<root>' is not a valid name"),
        ({"x[0]": hs.uniform(0, 1)}, "may not contain '/', '[' or ']'"),
        ({"a": [1, math.nan]}, "constant nan at 'a/1' is not finite"),
        ({"a": hs.choice([{"b": math.inf}])}, "constant inf at 'a[0]/b' is not finite"),
    ],
)
def test_bad_trees(tree: Any, message: str) -> None:
    with raises(message):
        Space(tree)


def test_inactive_parameters_are_absent_from_samples() -> None:
    space = Space(OPT_SPACE)
    generator = rng(1)
    seen = set()
    for _ in range(100):
        flat = space.sample(generator)
        seen.add(flat["opt"])
        expected = {0: {"opt", "opt[0]/lr"}, 1: {"opt", "opt[1]/momentum"}}[flat["opt"]]
        assert set(flat) == expected
        assert space.validate(flat) == flat
    assert seen == {0, 1}


def test_unflatten_gives_values_not_indices() -> None:
    space = Space({**OPT_SPACE, "act": hs.choice(["relu", "tanh"]), "bs": hs.choice([16, 32])})
    flat = {"opt": 1, "opt[1]/momentum": 0.9, "act": 1, "bs": 0}
    values = space.unflatten(flat)
    assert values == {"opt": {"name": "sgd", "momentum": 0.9}, "act": "tanh", "bs": 16}
    assert space.flatten(values) == flat
    assert Space({"t": (hs.choice([1, 2]), "c")}).unflatten({"t/0": 0}) == {"t": (1, "c")}
    with raises("parameter 'opt[1]/momentum' is missing"):
        space.unflatten({"opt": 1, "act": 0, "bs": 0})


def test_flatten_inverts_unflatten() -> None:
    space = Space({**OPT_SPACE, "n": hs.integer(1, 10), "tags": ["a", hs.choice(["b", "c"])]})
    generator = rng(2)
    for _ in range(50):
        flat = space.sample(generator)
        assert space.flatten(space.unflatten(flat)) == flat
    assert space.flatten({"opt": {"name": "adam", "lr": 0.01}, "n": 3.0, "tags": ("a", "c")}) == {
        "opt": 0,
        "opt[0]/lr": 0.01,
        "n": 3,
        "tags/1": 1,
    }


@pytest.mark.parametrize(
    "values",
    [
        {"opt": {"name": "rmsprop", "lr": 0.01}},
        {"opt": {"name": "adam", "lr": 5.0}},
        {"opt": {"name": "adam"}},
        {"opt": {"name": "adam", "lr": 0.01, "extra": 1}},
        {"opt": {"name": "sgd", "momentum": "0.5"}},
        {},
        [0.5],
        None,
    ],
)
def test_flatten_refuses_values_outside_the_space(values: Any) -> None:
    with raises("does not fit the space"):
        Space(OPT_SPACE).flatten(values)


def test_validate_messages() -> None:
    space = Space(OPT_SPACE)
    with raises("parameter 'opt[0]/lr' = 5.0 is outside loguniform(1e-05, 0.1)"):
        space.validate({"opt": 0, "opt[0]/lr": 5.0})
    with raises("parameter 'opt[1]/momentum' is missing"):
        space.validate({"opt": 1})
    with raises("parameters ['opt[0]/lr'] are not active in this assignment"):
        space.validate({"opt": 1, "opt[1]/momentum": 0.5, "opt[0]/lr": 0.01})
    with raises("parameters ['zzz'] are not active"):
        space.validate({"opt": 1, "opt[1]/momentum": 0.5, "zzz": 1})
    with raises("parameter 'opt' = 2 is outside choice(<2 options>)"):
        space.validate({"opt": 2})
    with raises("parameter 'opt' = True is outside"):
        space.validate({"opt": True, "opt[1]/momentum": 0.5})
    ints = Space({"n": hs.integer(0, 10, step=2)})
    with raises("parameter 'n' = 3 is outside integer(0, 10, step=2)"):
        ints.validate({"n": 3})
    with raises("parameter 'n' = 4.0 is outside"):
        ints.validate({"n": 4.0})
    cleaned = ints.validate({"n": np.int64(4)})
    assert cleaned == {"n": 4} and type(cleaned["n"]) is int


def test_sample_is_reproducible_under_a_seed() -> None:
    space = Space({**OPT_SPACE, "n": hs.integer(1, 100, log=True), "z": hs.normal(0, 1)})
    first = [space.sample(rng(42)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    a, b = rng(7), rng(7)
    assert [space.sample(a) for _ in range(20)] == [space.sample(b) for _ in range(20)]
    assert [space.sample(rng(1)) for _ in range(5)] != [space.sample(rng(2)) for _ in range(5)]
    for flat in (space.sample(rng(3)) for _ in range(20)):
        assert all(type(v) in (int, float) for v in flat.values()), "plain Python scalars"


# -- distributions: values, lattices, priors --------------------------------------------------


def _draws(dist: Distribution, n: int = 4000, seed: int = 0) -> list[Any]:
    generator = rng(seed)
    return [dist.sample(generator) for _ in range(n)]


def test_quantized_uniform_values_lie_on_the_lattice() -> None:
    dist = hs.quniform(0.1, 1.0, 0.3)
    assert set(_draws(dist, 500)) == {0.1, 0.4, 0.7, 1.0}
    assert dist.grid(None) == [0.1, 0.4, 0.7, 1.0]
    assert hs.quniform(0, 1, 0.25).grid(None) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert not dist.contains(0.25) and dist.contains(0.7)
    assert hs.quniform(0, 1, 0.3).grid(None) == [0.0, 0.3, 0.6, 0.9]  # 1.0 is off the lattice


def test_quantized_log_and_normal_lattices() -> None:
    for value in _draws(hs.qloguniform(1, 100, 5), 1000):
        assert 1 <= value <= 100
        assert abs((value - 1) / 5 - round((value - 1) / 5)) < 1e-9
    for value in _draws(hs.qnormal(0, 10, 2.5), 1000):
        assert abs(value / 2.5 - round(value / 2.5)) < 1e-9
    values = _draws(hs.qlognormal(0, 1, 0.5), 1000)
    assert all(v >= 0 and abs(v / 0.5 - round(v / 0.5)) < 1e-9 for v in values)
    assert 0.0 in values, "small values round down to zero"


def test_quantized_values_stay_inside_awkward_bounds() -> None:
    dist = hs.quniform(0.1234567890123, 1.0, 0.5)
    for value in [*_draws(dist, 200), *dist.grid(None), dist.from_unit(0.0), dist.from_unit(1.0)]:
        assert dist.contains(value), value
        assert Space({"x": dist}).validate({"x": value}) == {"x": value}


def test_log_integers() -> None:
    dist = hs.integer(1, 1024, log=True)
    values = _draws(dist)
    assert all(type(v) is int and 1 <= v <= 1024 for v in values)
    below = sum(v <= 32 for v in values) / len(values)
    assert 0.42 < below < 0.58, "log-uniform: half the mass below sqrt(1024)"
    assert (dist.from_unit(0.0), dist.from_unit(1.0)) == (1, 1024)
    assert {1, 2, 3} <= set(values)
    small = hs.integer(16, 128, log=True)
    assert set(_draws(small, 3000)) == set(range(16, 129))
    assert dist.grid(None) == list(range(1, 1025))


def test_integers_with_a_step() -> None:
    dist = hs.integer(0, 10, step=3)
    assert dist.size == 4
    assert set(_draws(dist, 400)) == {0, 3, 6, 9}
    assert dist.grid(None) == [0, 3, 6, 9]
    assert (dist.from_unit(0.0), dist.from_unit(1.0)) == (0, 9)
    assert not dist.contains(10) and not dist.contains(True) and not dist.contains(3.0)


def test_loguniform_prior() -> None:
    values = _draws(hs.loguniform(1e-4, 1.0))
    assert all(1e-4 <= v <= 1.0 for v in values)
    assert 0.005 < float(np.median(values)) < 0.02, "median near sqrt(1e-4 * 1)"
    assert hs.loguniform(1e-4, 1.0).from_unit(0.5) == pytest.approx(1e-2)


def test_normal_and_lognormal_priors() -> None:
    values = np.array(_draws(hs.normal(5, 2), 20000))
    assert abs(values.mean() - 5) < 0.1 and abs(values.std() - 2) < 0.1
    logs = np.log(_draws(hs.lognormal(-1, 0.5), 20000))
    assert abs(logs.mean() + 1) < 0.03 and abs(logs.std() - 0.5) < 0.03
    normal = hs.normal(5, 2)
    assert normal.from_unit(0.5) == pytest.approx(5)
    assert normal.to_unit(5) == pytest.approx(0.5)
    assert normal.from_unit(0.8413447460685429) == pytest.approx(7)
    assert hs.lognormal(1, 1).from_unit(0.5) == pytest.approx(math.e)
    assert normal.contains(-1e9) and not normal.contains(math.inf) and not normal.contains("1")
    assert not hs.lognormal(0, 1).contains(-1.0)
    finite = [normal.from_unit(u) for u in (0.0, 1.0)]
    assert all(math.isfinite(v) for v in finite), "the cube's edges map to finite values"


def test_weighted_choice() -> None:
    dist = hs.choice(["a", "b", "c"], [1, 0, 3])
    values = _draws(dist)
    assert 1 not in values, "a zero weight is never drawn"
    assert 0.71 < values.count(2) / len(values) < 0.79
    assert dist.grid(None) == [0, 1, 2], "grids still enumerate every option"


# -- the unit cube ----------------------------------------------------------------------------


def test_encode_marks_inactive_coordinates() -> None:
    space = Space(OPT_SPACE)
    unit = space.encode({"opt": 1, "opt[1]/momentum": 0.495})
    assert unit.shape == (3,)
    assert unit[0] == 0.75 and math.isnan(unit[1]) and unit[2] == pytest.approx(0.5)


def test_decode_maps_the_cube() -> None:
    space = Space({"x": hs.uniform(-1, 1), "n": hs.integer(1, 5), "c": hs.choice(["a", "b"])})
    assert space.decode([0.0, 0.0, 0.0]) == {"x": -1.0, "n": 1, "c": 0}
    assert space.decode([1.0, 1.0, 1.0]) == {"x": 1.0, "n": 5, "c": 1}
    assert space.decode([0.5, 0.5, 0.49]) == {"x": 0.0, "n": 3, "c": 0}
    with pytest.raises(ValueError, match="expected 3 coordinates, got 2"):
        space.decode([0.5, 0.5])
    conditional = Space(OPT_SPACE)
    assert conditional.decode([0.2, 1.0, 0.3]) == {"opt": 0, "opt[0]/lr": pytest.approx(0.1)}


def _assert_round_trip(space: Space, flat: dict[str, Any]) -> None:
    decoded = space.decode(space.encode(flat))
    assert set(decoded) == set(flat)
    for name, value in flat.items():
        dist = space.params[name].dist
        if dist.is_discrete:
            assert decoded[name] == value, (name, dist, value, decoded[name])
        else:
            assert decoded[name] == pytest.approx(value, rel=1e-9, abs=1e-12), (name, dist)


def test_encode_decode_round_trip() -> None:
    space = Space(
        {
            **OPT_SPACE,
            "q": hs.quniform(0, 1, 0.1),
            "ql": hs.qloguniform(1, 1000, 7),
            "n": hs.integer(-5, 50, step=5),
            "nl": hs.integer(2, 4096, log=True),
            "z": hs.normal(3, 2),
            "zl": hs.lognormal(0, 1),
            "zq": hs.qnormal(0, 5, 0.5),
            "w": hs.choice(["a", "b", "c"], [0.2, 0.3, 0.5]),
        }
    )
    generator = rng(5)
    for _ in range(300):
        _assert_round_trip(space, space.sample(generator))
    small = Space({**OPT_SPACE, "q": hs.quniform(0, 1, 0.25), "n": hs.integer(1, 9, log=True)})
    for point in small.grid(resolution=3):
        _assert_round_trip(small, point)


# -- grids ------------------------------------------------------------------------------------


def test_grid_enumerates_in_order() -> None:
    space = Space({"a": hs.choice(["x", "y"]), "b": hs.integer(1, 3), "c": "const"})
    assert space.grid_size() == 6
    assert list(space.grid()) == [{"a": a, "b": b} for a in (0, 1) for b in (1, 2, 3)]


def test_conditional_grid_sums_over_branches() -> None:
    space = Space(
        {
            "opt": hs.choice(
                [
                    {"name": "adam", "lr": hs.choice([0.1, 0.01, 0.001])},
                    {"name": "sgd", "momentum": hs.quniform(0.0, 0.9, 0.3)},
                    "none",
                ]
            ),
            "bs": hs.choice([16, 32]),
        }
    )
    assert space.grid_size() == (3 + 4 + 1) * 2
    points = list(space.grid())
    assert len(points) == 16
    assert len({json.dumps(p, sort_keys=True) for p in points}) == 16
    for point in points:
        assert space.validate(point) == point
    values = [space.unflatten(p) for p in points]
    assert {"opt": "none", "bs": 32} in values
    assert {"opt": {"name": "sgd", "momentum": 0.9}, "bs": 16} in values
    assert {"opt": {"name": "adam", "lr": 0.001}, "bs": 32} in values
    assert sum(1 for v in values if v["opt"] == "none") == 2


def test_grid_with_resolution() -> None:
    assert list(Space({"x": hs.uniform(0, 1)}).grid(resolution=3)) == [
        {"x": 0.0},
        {"x": 0.5},
        {"x": 1.0},
    ]
    logs = [p["x"] for p in Space({"x": hs.loguniform(1e-3, 1e-1)}).grid(resolution=3)]
    assert logs == pytest.approx([1e-3, 1e-2, 1e-1])
    assert [p["x"] for p in Space({"x": hs.uniform(0, 2)}).grid(resolution=1)] == [1.0]
    quantiles = [p["z"] for p in Space({"z": hs.normal(10, 2)}).grid(resolution=4)]
    assert quantiles == sorted(quantiles) and len(quantiles) == 4
    assert quantiles[0] + quantiles[3] == pytest.approx(20)
    assert Space({"x": hs.uniform(0, 1), "n": hs.integer(0, 4)}).grid_size(resolution=7) == 35
    assert Space({"q": hs.quniform(0, 1, 0.5)}).grid_size(resolution=10) == 3, "q wins"


@pytest.mark.parametrize(
    ("tree", "name"),
    [
        ({"model": {"lr": hs.loguniform(1e-5, 1e-1)}, "b": hs.choice([1, 2])}, "model/lr"),
        (OPT_SPACE, "opt[0]/lr"),
        ({"a": hs.choice([1, 2]), "z": hs.normal(0, 1)}, "z"),
        (hs.uniform(0, 1), "value"),
    ],
)
def test_continuous_grid_without_resolution_names_the_parameter(tree: Any, name: str) -> None:
    space = Space(tree)
    with raises(f"'{name}'"):
        list(space.grid())
    with raises(f"'{name}'"):
        space.grid_size()
    assert space.grid_size(resolution=2) >= 2


def test_grid_size_of_huge_ranges_is_counted_not_enumerated() -> None:
    space = Space(
        {"a": hs.integer(0, 10**12), "b": hs.quniform(0, 1e9, 1e-3), "c": hs.choice([1, 2])}
    )
    assert space.grid_size() == (10**12 + 1) * (10**12 + 1) * 2


# -- JSON -------------------------------------------------------------------------------------


def test_json_round_trip() -> None:
    space = Space(
        {
            **OPT_SPACE,
            "q": hs.qloguniform(1, 100, 3),
            "z": hs.qlognormal(0, 1, 0.5),
            "n": hs.integer(1, 64, log=True),
            "w": hs.choice([None, True, 1.5, "s", [1, 2]], [1, 1, 1, 1, 4]),
            "t": (hs.integer(0, 10, step=2), "fixed"),
            "nested": {"deep": [{"x": hs.normal(0, 1)}]},
        }
    )
    text = space.to_json_str()
    again = Space.from_json(text)
    assert again == space
    assert hash(again) == hash(space)
    assert again.names == space.names
    assert Space.from_json(json.loads(text)) == space
    assert again.to_json_str() == text
    flat = space.sample(rng(0))
    assert again.unflatten(flat) == space.unflatten(flat)
    assert isinstance(again.unflatten(flat)["t"], tuple)
    assert Space({"a": hs.uniform(0, 1)}) != Space({"a": hs.uniform(0, 2)})
    assert Space({"a": [1]}) != Space({"a": (1,)})


def test_json_keeps_the_repr_of_unstorable_constants() -> None:
    space = Space({"act": hs.choice([len, "relu"])})
    again = Space.from_json(space.to_json_str())
    assert again == space
    assert repr(again.unflatten({"act": 0})["act"]) == repr(len)
    assert again.unflatten({"act": 1}) == {"act": "relu"}


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"type": "dict", "items": 3}, "$"),
        ({"type": "list", "items": {"a": 1}}, "$"),
        ({"type": "float", "low": 0}, "$"),
        (
            {"type": "dict", "items": {"lr": {"type": "float", "low": 1, "high": 0}}},
            '$.items["lr"]',
        ),
        (
            {
                "type": "dict",
                "items": {
                    "opt": {
                        "type": "choice",
                        "options": [{"type": "const", "value": 1}, {"type": "wat"}],
                    }
                },
            },
            '$.items["opt"].options[1]',
        ),
        ({"type": "tuple", "items": [1]}, "$.items[0]"),
        ({"type": "choice", "options": 5}, "$"),
        ({"type": "choice", "options": [], "weights": None}, "$"),
        ({"type": "choice", "options": [{"type": "const", "value": 1}], "weights": 7}, "$"),
        ({"type": "const"}, "$"),
        ({"type": "const", "repr": 5}, "$"),
        ({"type": "int", "low": "0", "high": 3}, "$"),
        ({"type": ["float"], "low": 0, "high": 1}, "$"),
    ],
)
def test_bad_stored_json_names_the_place(data: Any, where: str) -> None:
    with raises(f"at {where}"):
        Space.from_json(data)


@pytest.mark.parametrize("text", ["{", "", "[1, 2", "nope"])
def test_bad_json_text(text: str) -> None:
    with pytest.raises(SpaceError, match="not valid JSON"):
        Space.from_json(text)


# -- fuzzing: random valid spaces -------------------------------------------------------------

_KEYS = st.text(min_size=1, max_size=6).filter(lambda k: not any(c in k for c in "/[]"))


@st.composite
def distributions(draw: st.DrawFn) -> Distribution:
    """Any valid distribution except choices (those are built by `spaces`)."""
    kind = draw(st.sampled_from(["uniform", "log", "q", "qlog", "int", "intlog", "normal"]))
    if kind in ("uniform", "q"):
        low = draw(st.floats(-1e6, 1e6))
        width = draw(st.floats(1e-3, 1e6))
        high = low + width
        assume(high > low)
        if kind == "uniform":
            return hs.uniform(low, high)
        span = high - low  # not quite `width`, after rounding
        return hs.quniform(low, high, draw(st.floats(span / 200, span)))
    if kind in ("log", "qlog"):
        low = draw(st.floats(1e-6, 1e4))
        high = low * draw(st.floats(1.01, 1e4))
        if kind == "log":
            return hs.loguniform(low, high)
        return hs.qloguniform(low, high, draw(st.floats((high - low) / 200, high - low)))
    if kind == "int":
        low = draw(st.integers(-1000, 1000))
        high = low + draw(st.integers(1, 1000))
        return hs.integer(low, high, step=draw(st.integers(1, max(1, (high - low) // 2))))
    if kind == "intlog":
        low = draw(st.integers(1, 1000))
        return hs.integer(low, low + draw(st.integers(1, 10_000)), log=True)
    mu = draw(st.floats(-3, 3))
    sigma = draw(st.floats(0.05, 2))
    log = draw(st.booleans())
    q = draw(st.none() | st.floats(0.01, 2))
    return Normal(mu, sigma, log=log, q=q)


_CONSTANTS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(-1e6, 1e6),
    st.text(max_size=5),
)


@st.composite
def tagged_choices(draw: st.DrawFn, children: st.SearchStrategy[Any]) -> Choice:
    """A choice whose options can be told apart from their values (so flatten is exact):
    each option is a distinct string constant or a dict carrying a distinct tag."""
    n = draw(st.integers(1, 3))
    options: list[Any] = []
    for i in range(n):
        if draw(st.booleans()):
            options.append(f"option-{i}")
        else:
            options.append({"tag": i, "body": draw(children)})
    weights = draw(st.none() | st.lists(st.floats(0.05, 10), min_size=n, max_size=n))
    return hs.choice(options, weights)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.dictionaries(_KEYS, children, max_size=4),
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        tagged_choices(children),
    )


spaces = st.recursive(
    st.one_of(distributions(), distributions(), _CONSTANTS), _extend, max_leaves=10
)


@FUZZ
@given(tree=spaces, seed=st.integers(0, 2**32 - 1))
def test_fuzz_random_spaces(tree: Any, seed: int) -> None:
    space = Space(tree)
    again = Space.from_json(space.to_json_str())
    assert again == space and again.names == space.names
    assert again.to_json_str() == space.to_json_str()
    generator = rng(seed)
    for _ in range(3):
        flat = space.sample(generator)
        assert space.validate(flat) == flat
        assert list(flat) == space.active_names(flat)
        assert json.loads(json.dumps(flat, allow_nan=False)) == flat
        values = space.unflatten(flat)
        assert space.flatten(values) == flat
        assert again.validate(flat) == flat
        assert again.unflatten(flat) == values
        _assert_round_trip(space, flat)
    point = space.decode(generator.random(len(space)))
    assert space.validate(point) == point
    if space.grid_size(resolution=2) <= 64:
        grid = list(space.grid(resolution=2))
        assert len(grid) == space.grid_size(resolution=2)
        for flat in grid:
            assert space.validate(flat) == flat


# -- fuzzing: garbage into constructors -------------------------------------------------------

_GARBAGE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.fractions(),
    st.decimals(),
    st.complex_numbers(),
    st.text(max_size=4),
    st.binary(max_size=3),
    st.lists(st.integers(-3, 3), max_size=3),
    st.tuples(st.floats()),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.sampled_from(
        [
            np.float64(0.5),
            np.int64(3),
            np.float32(2.0),
            np.bool_(True),
            np.array([1.0, 2.0]),
            Decimal("sNaN"),
            object(),
        ]
    ),
)
_NUMBERS = st.one_of(
    st.integers(-5, 50), st.floats(-5, 50), st.integers(), st.floats(-1e6, 1e6), st.just(1)
)
_ARGS = st.one_of(_NUMBERS, _NUMBERS, _NUMBERS, _GARBAGE)
_OPTIONS = st.one_of(st.lists(_CONSTANTS, min_size=1, max_size=3), _GARBAGE)

# (constructor, how many arguments it needs, how many it takes, a strategy for the first one)
_CONSTRUCTORS: list[tuple[Callable[..., Any], int, int, st.SearchStrategy[Any]]] = [
    (hs.uniform, 2, 2, _ARGS),
    (hs.loguniform, 2, 2, _ARGS),
    (hs.quniform, 3, 3, _ARGS),
    (hs.qloguniform, 3, 3, _ARGS),
    (hs.normal, 2, 2, _ARGS),
    (hs.lognormal, 2, 2, _ARGS),
    (hs.qnormal, 3, 3, _ARGS),
    (hs.qlognormal, 3, 3, _ARGS),
    (hs.integer, 2, 4, _ARGS),
    (Float, 2, 4, _ARGS),
    (Normal, 2, 4, _ARGS),
    (Integer, 2, 4, _ARGS),
    (hs.choice, 1, 2, _OPTIONS),
]


def _check_usable(dist: Distribution) -> None:
    """What a constructor returns must work: sampling, membership, JSON, the cube."""
    stored = dist.to_json()
    assert distribution_from_json(json.loads(json.dumps(stored, allow_nan=False))) == dist
    generator = rng(0)
    for value in [dist.sample(generator) for _ in range(5)] + [
        dist.from_unit(u) for u in (0.0, 0.3, 1.0)
    ]:
        assert dist.contains(value), (dist, value)
        unit = dist.to_unit(value)
        assert 0.0 <= unit <= 1.0, (dist, value, unit)
    try:
        space = Space({"p": dist})
    except SpaceError:  # e.g. choice([nan]): the option is refused where the space is built
        assert isinstance(dist, Choice)
        return
    assert Space.from_json(space.to_json_str()) == space
    assert space.grid_size(resolution=3) >= 1


@FUZZ
@given(index=st.integers(0, len(_CONSTRUCTORS) - 1), data=st.data())
def test_fuzz_constructor_garbage(index: int, data: st.DataObject) -> None:
    make, required, most, first = _CONSTRUCTORS[index]
    n = data.draw(st.integers(required, most), label="n_args")
    args = [data.draw(first, label="first"), *(data.draw(_ARGS) for _ in range(n - 1))]
    try:
        dist = make(*args)
    except SpaceError:
        return
    _check_usable(dist)


@FUZZ
@given(
    options=st.lists(_CONSTANTS, min_size=1, max_size=4),
    weights=st.one_of(_GARBAGE, st.lists(_ARGS, max_size=5)),
)
def test_fuzz_choice_weights(options: list[Any], weights: Any) -> None:
    try:
        dist = hs.choice(options, weights)
    except SpaceError:
        return
    _check_usable(dist)
    assert dist.weights is None or math.isclose(sum(dist.weights), 1.0)


@pytest.mark.parametrize(
    "args",
    [
        (-1e308, 1e308),
        (0, 1e308),
        (-(10**400), 10**400),
        (1e-300, 1e300),
    ],
)
@pytest.mark.parametrize("make", [hs.uniform, hs.loguniform, hs.integer, hs.normal, hs.lognormal])
def test_extreme_bounds_are_usable_or_refused(make: Callable[..., Any], args: tuple) -> None:
    try:
        dist = make(*args)
    except SpaceError:
        return
    _check_usable(dist)


@pytest.mark.parametrize(
    "args",
    [(1000, 1, 1e-300), (0, 1e300, 1e-300), (0, 1, 1e-300), (-1000, 50, 1e300)],
)
@pytest.mark.parametrize("make", [hs.qnormal, hs.qlognormal, hs.quniform, hs.qloguniform])
def test_extreme_quantization_is_usable_or_refused(make: Callable[..., Any], args: tuple) -> None:
    try:
        dist = make(*args)
    except SpaceError:
        return
    _check_usable(dist)


def test_log_flag_must_be_a_bool() -> None:
    assert hs.integer(1, 10, log=np.bool_(True)).log is True
    for bad in ("yes", 2, None, [1]):
        with raises("log must be True or False"):
            hs.integer(1, 10, log=bad)
        with raises("log must be True or False"):
            Float(1, 10, log=bad)


# -- fuzzing: stored JSON ---------------------------------------------------------------------

_JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**3), 10**3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.sampled_from(
        ["float", "int", "normal", "choice", "dict", "list", "tuple", "const", "low", "items"]
    ),
)
_NODE_KEYS = st.sampled_from(
    [
        "type",
        "items",
        "value",
        "repr",
        "low",
        "high",
        "log",
        "q",
        "mu",
        "sigma",
        "step",
        "options",
        "weights",
    ]
)
_TYPES = st.sampled_from(
    ["float", "int", "normal", "choice", "dict", "list", "tuple", "const", "nope"]
)


def _json_extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    node = st.builds(
        lambda kind, extra: {"type": kind, **extra},
        _TYPES,
        st.dictionaries(_NODE_KEYS, children, max_size=4),
    )
    return st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=3), children, max_size=3),
        node,
        node,
    )


_STORED = st.recursive(_JSON_LEAVES, _json_extend, max_leaves=15)


def _mutations(tree: Any) -> st.SearchStrategy[Any]:
    """The JSON of a valid space with one node replaced by fuzz."""
    data = Space(tree).to_json()

    def places(node: Any, path: tuple) -> list[tuple]:
        out = [path]
        if isinstance(node, dict):
            for key, value in node.items():
                out.extend(places(value, (*path, key)))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                out.extend(places(value, (*path, i)))
        return out

    def replace(node: Any, path: tuple, new: Any) -> Any:
        if not path:
            return new
        copy = dict(node) if isinstance(node, dict) else list(node)
        copy[path[0]] = replace(node[path[0]], path[1:], new)
        return copy

    return st.builds(replace, st.just(data), st.sampled_from(places(data, ())), _STORED)


def _check_from_json(data: Any) -> None:
    try:
        space = Space.from_json(data)
    except SpaceError:
        return
    again = Space.from_json(space.to_json_str())
    assert again == space
    flat = space.sample(rng(0))
    assert space.validate(flat) == flat


@FUZZ
@given(data=_STORED)
def test_fuzz_stored_json(data: Any) -> None:
    _check_from_json(data)
    _check_from_json(json.dumps(data))


@FUZZ
@given(data=spaces.flatmap(_mutations))
def test_fuzz_mutated_stored_json(data: Any) -> None:
    _check_from_json(data)


@FUZZ
@given(text=st.text(max_size=30))
def test_fuzz_stored_text(text: str) -> None:
    _check_from_json(text)
