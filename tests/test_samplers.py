"""The sampler contract, run against every registered strategy.

A new strategy registered in `hypersearch.samplers.STRATEGIES` is checked here automatically.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

import hypersearch as hs
from hypersearch.errors import StrategyError
from hypersearch.samplers import STRATEGIES
from hypersearch.trial import TrialState

NAMES = sorted(STRATEGIES)

MIXED_SPACE = {
    "lr": hs.loguniform(1e-5, 1e-1),
    "dropout": hs.uniform(0.0, 0.5),
    "units": hs.integer(16, 256, log=True),
    "layers": hs.integer(1, 4),
    "batch": hs.choice([16, 32, 64], weights=[0.2, 0.5, 0.3]),
    "wd": hs.quniform(0.0, 0.1, 0.01),
    "noise": hs.normal(0.0, 1.0),
    "scale": hs.lognormal(0.0, 0.5),
    "optimizer": hs.choice(
        [
            {"name": "adam", "beta": hs.uniform(0.8, 0.999)},
            {
                "name": "sgd",
                "momentum": hs.uniform(0.0, 0.99),
                "nesterov": hs.choice([True, False]),
            },
        ]
    ),
}


def sampler_for(name: str) -> Any:
    # continuous parameters need a resolution for a grid
    return hs.Grid(resolution=2) if name == "grid" else name


def objective(params: dict[str, Any]) -> float:
    value = math.log10(params["lr"]) + params["dropout"] + params["units"] / 256 + params["layers"]
    value += params["wd"] + abs(params["noise"]) + params["scale"]
    opt = params["optimizer"]
    return value + (opt["beta"] if opt["name"] == "adam" else opt["momentum"])


def check_values(params: dict[str, Any]) -> None:
    assert 1e-5 <= params["lr"] <= 1e-1 and isinstance(params["lr"], float)
    assert 0.0 <= params["dropout"] <= 0.5
    assert isinstance(params["units"], int) and 16 <= params["units"] <= 256
    assert isinstance(params["layers"], int) and 1 <= params["layers"] <= 4
    assert params["batch"] in (16, 32, 64)
    assert any(abs(params["wd"] - k / 100) < 1e-12 for k in range(11))
    assert isinstance(params["noise"], float) and math.isfinite(params["noise"])
    assert params["scale"] > 0
    opt = params["optimizer"]
    if opt["name"] == "adam":
        assert set(opt) == {"name", "beta"} and 0.8 <= opt["beta"] <= 0.999
    else:
        assert set(opt) == {"name", "momentum", "nesterov"} and opt["nesterov"] in (True, False)


@pytest.mark.parametrize("name", NAMES)
def test_suggestions_lie_in_the_space(name: str) -> None:
    study = hs.minimize(
        objective, MIXED_SPACE, strategy=sampler_for(name), max_trials=40, seed=1, verbose=False
    )
    assert len(study.trials) == 40
    for trial in study.trials:
        assert trial.state is TrialState.COMPLETE
        check_values(trial.params)
        space = study.space
        assert space is not None
        assert space.validate(trial.flat_params) == trial.flat_params


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_suggestions(name: str) -> None:
    def run() -> list[Any]:
        study = hs.minimize(
            objective, MIXED_SPACE, strategy=sampler_for(name), max_trials=25, seed=5, verbose=False
        )
        return [t.flat_params for t in study.trials]

    assert run() == run()


@pytest.mark.parametrize("name", NAMES)
def test_parallel_workers_on_sqlite(name: str, tmp_path: Any) -> None:
    study = hs.minimize(
        objective,
        MIXED_SPACE,
        strategy=sampler_for(name),
        max_trials=24,
        n_jobs=2,
        storage=f"sqlite:///{tmp_path}/p.db",
        name="p",
        seed=2,
        verbose=False,
    )
    assert [t.number for t in study.trials] == list(range(24))
    assert all(t.state is TrialState.COMPLETE for t in study.trials)


def always_fails(params: dict[str, Any]) -> float:
    raise RuntimeError("broken objective")


@pytest.mark.parametrize("name", NAMES)
def test_a_study_whose_trials_all_failed(name: str) -> None:
    study = hs.minimize(
        always_fails, MIXED_SPACE, strategy=sampler_for(name), max_trials=20, seed=0, verbose=False
    )
    assert len(study.trials) == 20
    assert all(t.state is TrialState.FAILED for t in study.trials)


@pytest.mark.parametrize("name", NAMES)
def test_infinite_and_mixed_outcomes(name: str) -> None:
    outcomes = iter([math.inf, -math.inf, 1.0, math.nan, "bad", 2.0] * 10)

    def objective(params: dict[str, Any]) -> Any:
        return next(outcomes)

    study = hs.minimize(
        objective, MIXED_SPACE, strategy=sampler_for(name), max_trials=30, seed=0, verbose=False
    )
    assert len(study.trials) == 30
    assert study.best_value == -math.inf


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "space", [{"a": hs.choice([7])}, {"const": 3}], ids=["one-choice", "no-parameters"]
)
def test_one_point_space(name: str, space: dict[str, Any]) -> None:
    strategy = "grid" if name == "grid" else name
    seen: list[Any] = []

    def objective(params: dict[str, Any]) -> float:
        seen.append(params)
        return 0.0

    study = hs.minimize(objective, space, strategy=strategy, max_trials=5, seed=0, verbose=False)
    expected = 1 if name == "grid" else 5  # a grid of one point is done after one trial
    assert len(study.trials) == expected
    assert all(params == space if "const" in space else params == {"a": 7} for params in seen)


@pytest.mark.parametrize("name", NAMES)
def test_no_duplicates_among_concurrently_running_trials(name: str) -> None:
    """Four workers asking before any result is told never get the same point."""
    study = hs.create_study(MIXED_SPACE, strategy=sampler_for(name), seed=3)
    for _ in range(15):  # some history first, so model-based strategies are past start-up
        trial = study.ask()
        study.tell(trial, objective(trial.params))
    pending = [study.ask() for _ in range(4)]
    keys = {repr(sorted(t.flat_params.items())) for t in pending}
    assert len(keys) == 4


@pytest.mark.parametrize("name", NAMES)
def test_strategy_change_on_resume_reuses_history(name: str, tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/r.db"
    hs.minimize(
        objective,
        MIXED_SPACE,
        strategy="random",
        max_trials=10,
        storage=url,
        name="r",
        seed=0,
        verbose=False,
    )
    study = hs.minimize(
        objective,
        MIXED_SPACE,
        strategy=sampler_for(name),
        max_trials=20,
        storage=url,
        name="r",
        verbose=False,
    )
    assert len(study.trials) == 20
    assert study.sampler.name == name


# -- settings are storable: a study definition holds them as JSON --------------------------------

NON_DEFAULT_SETTINGS: dict[str, dict[str, Any]] = {
    "grid": {"resolution": 7, "shuffle": True},
    "random": {},
    "sobol": {},
    "tpe": {
        "multivariate": False,
        "n_startup": 4,
        "n_candidates": 12,
        "gamma": 0.2,
        "prior_weight": 2.0,
        "bandwidth_factor": 0.5,
        "lattice_bandwidth_factor": 0.9,
        "min_bandwidth": 0.02,
        "choice_smoothing": 3.0,
        "max_kernels": 100,
        "avoid_repeats": False,
    },
}


@pytest.mark.parametrize("name", sorted(NON_DEFAULT_SETTINGS))
def test_config_rebuilds_an_equal_sampler(name: str) -> None:
    kwargs = NON_DEFAULT_SETTINGS[name]
    sampler = STRATEGIES[name](**kwargs)
    config = sampler.config()
    assert config == {**STRATEGIES[name]().config(), **kwargs}  # every setting, non-defaults kept
    stored = json.loads(json.dumps(config))  # JSON-safe, and survives the trip unchanged
    rebuilt = type(sampler)(**stored)
    assert rebuilt.config() == config
    assert repr(rebuilt) == repr(sampler)
    assert type(sampler)(**type(sampler)().config()).config() == type(sampler)().config()


def test_rebuilt_sampler_suggests_the_same() -> None:
    space = hs.Space({"x": hs.uniform(0.0, 1.0), "k": hs.integer(1, 9)})
    a = STRATEGIES["tpe"](**NON_DEFAULT_SETTINGS["tpe"])
    b = type(a)(**json.loads(json.dumps(a.config())))
    study_a = hs.minimize(
        lambda p: p["x"] * p["k"], space, strategy=a, max_trials=15, seed=3, verbose=False
    )
    study_b = hs.minimize(
        lambda p: p["x"] * p["k"], space, strategy=b, max_trials=15, seed=3, verbose=False
    )
    assert [t.params for t in study_a.trials] == [t.params for t in study_b.trials]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"resolution": 0}, r"Grid\(resolution=\.\.\.\) must be an integer >= 1"),
        ({"resolution": 2.5}, r"Grid\(resolution=\.\.\.\)"),
        ({"shuffle": "yes"}, r"Grid\(shuffle=\.\.\.\) must be true or false"),
    ],
)
def test_grid_argument_errors_name_the_argument(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        hs.Grid(**kwargs)
