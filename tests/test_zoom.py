"""Zoom: `hs.zoom(study, top, margin)` narrows a space around the best trials, keeping scales,
lattices, the choices the best took and the space's structure."""

from __future__ import annotations

import math

import pytest

import hypersearch as hs
from hypersearch.space import Space
from hypersearch.space.distributions import Choice, Float, Integer
from hypersearch.space.zoom import zoom_space


def test_ranges_shrink_around_the_best_with_a_margin_on_their_own_scale() -> None:
    space = Space({"lr": hs.loguniform(1e-6, 1.0), "x": hs.uniform(0, 10)})
    zoomed = zoom_space(space, [{"lr": 1e-3, "x": 4.0}, {"lr": 1e-2, "x": 6.0}], margin=0.1)
    lr, x = zoomed.params["lr"].dist, zoomed.params["x"].dist
    assert isinstance(lr, Float) and lr.log
    # log range: 6 decades; 10% of it is 0.6 decades each side of [1e-3, 1e-2]
    assert math.isclose(math.log10(lr.low), -3.6) and math.isclose(math.log10(lr.high), -1.4)
    assert (x.low, x.high) == (3.0, 7.0)


def test_bounds_stay_inside_the_original_space() -> None:
    space = Space({"x": hs.uniform(0, 1)})
    x = zoom_space(space, [{"x": 0.0}, {"x": 0.05}], margin=0.5).params["x"].dist
    assert (x.low, x.high) == (0.0, 0.55)


def test_lattices_are_kept() -> None:
    space = Space({"n": hs.integer(0, 100, step=5), "q": hs.quniform(0, 1, 0.25),
                   "d": hs.integer(1, 20)})
    zoomed = zoom_space(space, [{"n": 40, "q": 0.5, "d": 7}, {"n": 45, "q": 0.5, "d": 7}],
                        margin=0.0)
    n, q, d = (zoomed.params[k].dist for k in ("n", "q", "d"))
    assert isinstance(n, Integer) and (n.low, n.high, n.step) == (40, 45, 5)
    assert (q.low, q.high, q.q) == (0.25, 0.5, 0.25) or (q.low, q.high, q.q) == (0.5, 0.75, 0.25)
    assert isinstance(d, Integer) and d.high - d.low == 1 and d.low <= 7 <= d.high


def test_a_choice_keeps_the_options_the_best_took_and_zooms_inside_them() -> None:
    space = Space({"model": hs.choice(
        [{"kind": "tree", "depth": hs.integer(1, 30)}, {"kind": "svm", "c": hs.uniform(0, 100)},
         "knn"], weights=[0.5, 0.25, 0.25]), "seed": 7})
    best = [{"model": 1, "model[1]/c": 40.0}, {"model": 1, "model[1]/c": 50.0},
            {"model": 2}]
    zoomed = zoom_space(space, best, margin=0.0)
    model = zoomed.params["model"].dist
    assert isinstance(model, Choice) and len(model.options) == 2
    assert model.options[1] == "knn" and model.weights == (0.5, 0.5)
    c = zoomed.params["model[0]/c"].dist
    assert (c.low, c.high) == (40.0, 50.0)
    assert zoomed.unflatten({"model": 1}) == {"model": "knn", "seed": 7}  # constants kept


def test_a_study_zooms_on_its_best_fraction_and_a_follow_up_runs_in_it() -> None:
    space = {"x": hs.uniform(-10, 10), "opt": hs.choice(["adam", "sgd", "rms"])}

    def loss(p):
        return (p["x"] - 3) ** 2 + (0 if p["opt"] == "adam" else 50)

    study = hs.minimize(loss, space, strategy="random", max_trials=80, seed=0, verbose=False)
    narrow = hs.zoom(study, top=0.1, margin=0.05)
    x = narrow.params["x"].dist
    assert x.low < 3 < x.high and x.high - x.low < 8
    assert narrow.params["opt"].dist.options == ("adam",)
    follow = hs.minimize(loss, narrow, max_trials=10, seed=1, warm_start=study, verbose=False)
    assert all(narrow.params["x"].dist.contains(t.params["x"]) for t in follow.trials)
    assert follow.best_value <= study.best_value + 1.0


def test_maximize_takes_the_largest_values_as_best() -> None:
    study = hs.maximize(lambda p: -abs(p["x"] - 8), {"x": hs.uniform(0, 10)}, strategy="random",
                        max_trials=50, seed=2, verbose=False)
    x = study.zoom(top=0.1, margin=0.0).params["x"].dist
    assert x.low < 8 < x.high and x.high - x.low < 2


@pytest.mark.parametrize("top", [0, 1.5, True, "x"])
def test_a_bad_fraction_is_refused(top: object) -> None:
    study = hs.minimize(lambda p: p["x"], {"x": hs.uniform(0, 1)}, max_trials=3, verbose=False)
    with pytest.raises(hs.HypersearchError, match="top must be a fraction in"):
        study.zoom(top=top)  # type: ignore[arg-type]


def test_nothing_to_zoom_on_says_so() -> None:
    study = hs.create_study({"x": hs.uniform(0, 1)})
    with pytest.raises(hs.SpaceError, match="no points to zoom on"):
        study.zoom()
    with pytest.raises(hs.SpaceError, match="margin must be a number >= 0"):
        zoom_space(study.space, [{"x": 0.5}], margin=-1)  # type: ignore[arg-type]
    with pytest.raises(hs.HypersearchError, match="define-by-run"):
        hs.create_study(None).zoom()
