"""The TPE sampler: valid suggestions for every distribution and conditional spaces,
determinism, cache equivalence, pending trials, degenerate histories, define-by-run, quality."""

from __future__ import annotations

import itertools
import math
import pickle
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from problems import BRANIN_MIN, BRANIN_SPACE, CONDITIONAL_SPACE, branin, conditional_objective

import hypersearch as hs
from hypersearch.errors import StrategyError
from hypersearch.samplers.base import Context
from hypersearch.samplers.tpe import TPE, _Column, _Group, _Parzen, _Settings, default_gamma
from hypersearch.space import Space
from hypersearch.trial import FrozenTrial, TrialState

EVERY_KIND = {
    "uniform": hs.uniform(-2.0, 3.0),
    "loguniform": hs.loguniform(1e-5, 1e-1),
    "quniform": hs.quniform(0.0, 1.0, 0.25),
    "quniform_odd": hs.quniform(0.1, 1.0, 0.2),  # last point 0.9 < high
    "qloguniform": hs.qloguniform(1.0, 100.0, 5.0),
    "normal": hs.normal(3.0, 2.0),
    "lognormal": hs.lognormal(0.0, 1.0),
    "qnormal": hs.qnormal(0.0, 1.0, 0.5),
    "qlognormal": hs.qlognormal(0.0, 1.0, 0.5),
    "integer": hs.integer(1, 100),
    "small_integer": hs.integer(0, 2),
    "stepped": hs.integer(0, 100, step=7),
    "log_integer": hs.integer(1, 1000, log=True),
    "choice": hs.choice(["a", "b", "c"]),
    "weighted": hs.choice([1, 2, 3, 4], weights=[0.1, 0.2, 0.3, 0.4]),
    "single": hs.choice(["only"]),
}


def every_kind_objective(p: dict[str, Any]) -> float:
    return (
        (p["uniform"] - 1) ** 2
        + abs(math.log10(p["loguniform"]) + 3)
        + abs(p["quniform"] - 0.5)
        + (p["normal"] - 2) ** 2 / 4
        + abs(p["integer"] - 30) / 30
        + (0.0 if p["choice"] == "b" else 1.0)
        + p["small_integer"]
        + abs(p["log_integer"] - 50) / 100
    )


def trial(
    number: int,
    flat: dict[str, Any],
    value: float | None = None,
    state: TrialState = TrialState.COMPLETE,
    **extra: Any,
) -> FrozenTrial:
    return FrozenTrial(number=number, state=state, value=value, flat_params=dict(flat), **extra)


def context(space: Space, history: list[FrozenTrial], seed: int = 0, **kw: Any) -> Context:
    number = len(history)
    return Context(space, history, np.random.default_rng([seed, number]), number, seed, **kw)


def run(
    sampler: TPE,
    space: Space,
    objective: Callable[[Any], float],
    n: int,
    seed: int = 0,
    direction: str = "minimize",
) -> list[FrozenTrial]:
    """A sequential study driven by hand: every suggestion is validated on the way."""
    history: list[FrozenTrial] = []
    for number in range(n):
        flat = sampler.suggest(context(space, history, seed, direction=direction))
        assert space.validate(flat) == flat
        history.append(trial(number, flat, objective(space.unflatten(flat))))
    return history


# -- validity ----------------------------------------------------------------------------------


@pytest.mark.parametrize("multivariate", [True, False])
def test_every_distribution_kind_gives_valid_values(multivariate: bool) -> None:
    space = Space(EVERY_KIND)
    history = run(TPE(multivariate=multivariate, n_startup=5), space, every_kind_objective, 40)
    for t in history:
        for name, value in t.flat_params.items():
            dist = space.params[name].dist
            if isinstance(dist, (hs.space.Integer, hs.space.Choice)):
                assert type(value) is int, (name, value)
            else:
                assert type(value) is float, (name, value)
    # the model, not only the prior, proposed values: lattices are respected after rounding
    modelled = [t.flat_params for t in history[5:]]
    assert all(v["quniform"] in (0.0, 0.25, 0.5, 0.75, 1.0) for v in modelled)
    assert all(round(v["qnormal"] / 0.5, 9).is_integer() for v in modelled)
    assert all(v["stepped"] % 7 == 0 and v["stepped"] <= 98 for v in modelled)
    assert all(v["lognormal"] > 0 and v["qlognormal"] >= 0 for v in modelled)


@pytest.mark.parametrize("multivariate", [True, False])
def test_nested_conditional_space(multivariate: bool) -> None:
    space = Space(CONDITIONAL_SPACE)
    history = run(TPE(multivariate=multivariate, n_startup=6), space, conditional_objective, 60)
    branches = {t.flat_params["model"] for t in history[6:]}
    assert branches  # validate() in run() checked that exactly the active parameters appear
    best = min(history, key=lambda t: t.value or math.inf)
    assert best.value is not None and best.value < 1.0


def test_suggestions_are_inside_bounds_after_many_trials() -> None:
    # narrow kernels at the edges of the range must stay inside after exp/rounding
    space = Space(
        {"lr": hs.loguniform(1e-5, 1e-1), "x": hs.uniform(0.0, 1.0), "n": hs.integer(1, 4)}
    )
    history = run(TPE(n_startup=3), space, lambda p: math.log10(p["lr"]) + p["x"] + p["n"], 80)
    lows = [t.flat_params for t in history[-20:]]
    assert all(1e-5 <= p["lr"] <= 1e-1 and 0.0 <= p["x"] <= 1.0 for p in lows)
    assert min(p["lr"] for p in lows) < 1e-4  # it did go to the edge


def test_empty_and_one_point_spaces() -> None:
    sampler = TPE(n_startup=0)
    assert sampler.suggest(context(Space({}), [])) == {}
    space = Space({"only": hs.choice(["x"])})
    history = [trial(i, {"only": 0}, float(i)) for i in range(5)]
    assert sampler.suggest(context(space, history)) == {"only": 0}
    # all pending on the single point: a duplicate is unavoidable, and no error
    pending = [trial(5 + i, {"only": 0}, state=TrialState.RUNNING) for i in range(3)]
    assert sampler.suggest(context(space, history + pending)) == {"only": 0}


def test_study_with_tpe_instance() -> None:
    study = hs.minimize(branin, BRANIN_SPACE, strategy=TPE(), max_trials=30, seed=0, verbose=False)
    assert len(study.trials) == 30
    assert study.best_value < 1.0


def test_maximize_follows_the_direction() -> None:
    space = Space({"x": hs.uniform(0.0, 1.0)})
    history = run(TPE(), space, lambda p: -((p["x"] - 0.8) ** 2), 40, direction="maximize")
    assert abs(max(history, key=lambda t: t.value or -math.inf).flat_params["x"] - 0.8) < 0.05
    assert np.median([t.flat_params["x"] for t in history[-10:]]) > 0.6


# -- determinism and the cache -------------------------------------------------------------------


def test_same_context_same_suggestion() -> None:
    space = Space(CONDITIONAL_SPACE)
    history = run(TPE(n_startup=5), space, conditional_objective, 30)
    a, b = TPE(), TPE()
    ctx = lambda: context(space, history, seed=7)  # noqa: E731  (a fresh rng each time)
    first = a.suggest(ctx())
    assert a.suggest(ctx()) == first  # cached path
    assert b.suggest(ctx()) == first  # cold path
    assert pickle.loads(pickle.dumps(a)).suggest(ctx()) == first


def test_same_seed_same_study() -> None:
    def params(seed: int) -> list[dict[str, Any]]:
        study = hs.minimize(
            conditional_objective,
            CONDITIONAL_SPACE,
            strategy=TPE(),
            max_trials=25,
            seed=seed,
            verbose=False,
        )
        return [t.flat_params for t in study.trials]

    assert params(3) == params(3)
    assert params(3) != params(4)


def _messy_history(space: Space, n: int, seed: int) -> list[FrozenTrial]:
    """Finished trials of every kind, some of them finished out of order."""
    rng = np.random.default_rng(seed)
    history = []
    for number in range(n):
        flat = space.sample(rng)
        kind = number % 9
        if kind == 3:
            history.append(trial(number, flat, state=TrialState.FAILED, failure_reason="error"))
        elif kind == 5:
            history.append(trial(number, flat, state=TrialState.PRUNED))
        elif kind == 7:
            history.append(trial(number, flat, state=TrialState.FAILED, failure_reason="stale"))
        else:
            history.append(trial(number, flat, conditional_objective(space.unflatten(flat))))
    return history


@pytest.mark.parametrize("multivariate", [True, False])
def test_cache_does_not_change_results(multivariate: bool) -> None:
    space = Space(CONDITIONAL_SPACE)
    final = _messy_history(space, 60, seed=1)
    cached = TPE(multivariate=multivariate, n_startup=5)
    for n in range(0, 60, 3):
        # trials n-6 .. n-1 still running, except one that finished early (out of order)
        history = list(final[:n])
        for i in range(max(n - 6, 0), n):
            if i != n - 2:
                t = history[i]
                history[i] = trial(i, t.flat_params, state=TrialState.RUNNING)
        got = cached.suggest(context(space, history, seed=n))
        fresh = TPE(multivariate=multivariate, n_startup=5).suggest(context(space, history, seed=n))
        assert got == fresh, n


def test_one_sampler_shared_by_two_studies() -> None:
    space = Space(BRANIN_SPACE)
    shared = TPE(n_startup=4)
    own = {0: TPE(n_startup=4), 1: TPE(n_startup=4)}
    histories: dict[int, list[FrozenTrial]] = {0: [], 1: []}
    for step in range(40):
        for study in (0, 1):
            history = histories[study]
            got = shared.suggest(context(space, history, seed=study))
            assert got == own[study].suggest(context(space, history, seed=study)), (step, study)
            history.append(trial(len(history), got, branin(got) * (1 + study)))


def test_kernel_cap_bounds_the_model() -> None:
    space = Space(BRANIN_SPACE)
    sampler = TPE(n_startup=5, max_kernels=20)
    history = run(sampler, space, branin, 120)
    assert min(t.value or math.inf for t in history) - BRANIN_MIN < 0.5
    obs, weights = sampler._capped(np.arange(100.0)[:, None], np.array([[100.0], [101.0]]))
    assert len(obs) == 20 and weights.sum() == pytest.approx(102)
    assert obs[-1, 0] == 101.0  # pending points are the newest: always kept


# -- pending trials ------------------------------------------------------------------------------


def test_pending_trials_are_never_duplicated() -> None:
    # 3 x 3 points: four workers must still all get different ones
    space = Space({"a": hs.choice(["x", "y", "z"]), "b": hs.integer(1, 3)})

    def value(flat: dict[str, Any]) -> float:
        return float(flat["a"] + flat["b"])

    for seed in range(5):
        history = [trial(i, flat, value(flat)) for i, flat in enumerate(space.grid())]
        history += [trial(9 + i, {"a": 0, "b": 1}, 0.0) for i in range(6)]  # a clear favourite
        sampler = TPE(n_startup=5)
        for _ in range(4):
            flat = sampler.suggest(context(space, history, seed))
            history.append(trial(len(history), flat, state=TrialState.RUNNING))
        running = [tuple(sorted(t.flat_params.items())) for t in history[-4:]]
        assert len(set(running)) == 4, running


def test_pending_point_pushes_the_suggestion_away() -> None:
    space = Space(BRANIN_SPACE)
    history = run(TPE(n_startup=5), space, branin, 40)
    moved = []
    for seed in range(10):
        first = TPE().suggest(context(space, history, seed))
        for state in (TrialState.RUNNING, TrialState.WAITING):
            busy = [*history, trial(40, first, state=state)]
            # the same rng as for `first`: only the pending trial differs
            second = TPE().suggest(
                Context(space, busy, np.random.default_rng([seed, 40]), 41, seed)
            )
            moved.append(math.hypot(second["x1"] - first["x1"], second["x2"] - first["x2"]))
    assert min(moved) > 0
    assert np.median(moved) > 0.3  # kernels here are ~0.3-1 wide: it left the neighbourhood


def _sleepy_grid(params: dict[str, Any]) -> float:
    time.sleep(0.02)
    return float(params["a"] * 3 + params["b"])


def test_four_workers_no_duplicates_among_running_trials() -> None:
    study = hs.minimize(
        _sleepy_grid,
        {"a": hs.integer(0, 2), "b": hs.integer(0, 2)},
        strategy=TPE(n_startup=4),
        max_trials=24,
        n_jobs=4,
        seed=0,
        verbose=False,
    )
    trials = study.trials
    assert len(trials) == 24
    for t, u in itertools.combinations(trials, 2):
        assert t.started_at is not None and u.started_at is not None
        assert t.finished_at is not None and u.finished_at is not None
        overlap = t.started_at < u.finished_at and u.started_at < t.finished_at
        if overlap:
            assert t.flat_params != u.flat_params, (t.number, u.number)


# -- degenerate histories ------------------------------------------------------------------------


def test_all_failed_history_falls_back_to_the_prior() -> None:
    space = Space(CONDITIONAL_SPACE)
    rng = np.random.default_rng(0)
    history = [
        trial(i, space.sample(rng), state=TrialState.FAILED, failure_reason="error")
        for i in range(30)
    ]
    for seed in range(5):
        flat = TPE().suggest(context(space, history, seed))
        assert space.validate(flat) == flat


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_infinite_and_nan_values(direction: str) -> None:
    space = Space({"x": hs.uniform(0.0, 1.0), "k": hs.choice(["a", "b"])})
    rng = np.random.default_rng(1)
    values = [math.inf, -math.inf, math.nan, 1.0, 2.0]
    history = [trial(i, space.sample(rng), values[i % 5]) for i in range(40)]
    history += [trial(40, space.sample(rng), None)]  # COMPLETE without a value: ignored
    for seed in range(5):
        flat = TPE().suggest(context(space, history, seed, direction=direction))
        assert space.validate(flat) == flat
    all_inf = [trial(i, space.sample(rng), math.inf) for i in range(20)]
    assert space.validate(TPE().suggest(context(space, all_inf)))


def test_densities_are_normalised() -> None:
    """The l and g models are proper distributions: cell masses sum to 1, densities integrate
    to 1, so lattice and continuous parameters are scored consistently."""
    rng = np.random.default_rng(0)
    for dist in EVERY_KIND.values():
        col = _Column("p", dist)
        obs = np.array([[col.encode(dist.sample(rng))] for _ in range(7)])
        model = _Parzen(
            _Group((), [0], [col]), obs, np.ones(7), _Settings(1.0, 0.3, 0.3, 0.01, 4.0)
        )
        with np.errstate(all="ignore"):
            if col.kind == 0:  # continuous: integrate on a fine grid
                lo, hi = (
                    (col.lo, col.hi)
                    if col.bounded
                    else (col.mu - 12 * col.sigma, col.mu + 12 * col.sigma)
                )
                grid = np.linspace(lo, hi, 100_001)
                log_prior = np.asarray(col.prior_logp(grid, None)) + np.zeros(len(grid))
                density = np.exp(model.log_pdf(grid[:, None], [None], log_prior))
                total = float(density.sum() * (grid[1] - grid[0]))
            else:
                if isinstance(dist, hs.space.Normal):
                    raw = np.arange(-400, 400) * dist.q
                    raw = raw[raw >= 0] if dist.log else raw
                    x = np.log(np.where(raw > 0, raw, dist.q / 4)) if dist.log else raw
                elif isinstance(dist, hs.space.Choice):
                    x = np.arange(dist.size, dtype=float)
                else:
                    values = np.array(dist.grid(None), dtype=float)
                    x = np.log(values) if col.log else values
                _, xc, cell = col.discretize(x)
                log_prior = np.asarray(col.prior_logp(xc, cell)) + np.zeros(len(xc))
                total = float(np.exp(model.log_pdf(xc[:, None], [cell], log_prior)).sum())
        assert total == pytest.approx(1.0, abs=2e-3), dist


# -- define-by-run -------------------------------------------------------------------------------


def test_define_by_run_study() -> None:
    def objective(t: hs.Trial) -> float:
        kind = t.suggest_categorical("kind", ["linear", "square"])
        x = t.suggest_float("x", -2.0, 2.0)
        n = t.suggest_int("n", 1, 8, log=True)
        return abs(x - 0.5) * n + (0.5 if kind == "linear" else 0.0)

    study = hs.minimize(objective, None, strategy=TPE(), max_trials=50, seed=2, verbose=False)
    assert len(study.trials) == 50
    late = [t.params for t in study.trials[-15:]]
    assert np.median([abs(p["x"] - 0.5) for p in late]) < 0.5
    assert study.best_value < 0.2


def param_context(
    history: list[FrozenTrial],
    seed: int = 0,
    direction: str = "minimize",
    number: int | None = None,
) -> Context:
    number = len(history) if number is None else number
    return Context(None, history, np.random.default_rng([seed, number]), number, seed, direction)


def test_suggest_param_uses_matching_history_only() -> None:
    dist = hs.uniform(0.0, 10.0)
    other = hs.uniform(0.0, 100.0)
    spec, other_spec = dist.to_json(), other.to_json()
    history = [
        trial(i, {"x": 0.5 * i}, abs(0.5 * i - 7.0), distributions={"x": spec}) for i in range(20)
    ]
    # the best values, but for another distribution of "x": they must not pull towards 10
    history += [
        trial(20 + i, {"x": 90.0}, -5.0, distributions={"x": other_spec}) for i in range(10)
    ]
    sampler = TPE()
    draws = [sampler.suggest_param(param_context(history, s), "x", dist) for s in range(20)]
    assert all(isinstance(d, float) and 0.0 <= d <= 10.0 for d in draws)
    assert np.median(draws) == pytest.approx(7.0, abs=1.0)  # the good region, not the 90s
    # same inputs, same value; too little history: the prior
    again = TPE().suggest_param(param_context(history, 3), "x", dist)
    assert again == draws[3]
    few = history[:3]
    assert 0.0 <= TPE().suggest_param(param_context(few), "x", dist) <= 10.0
    k = TPE().suggest_param(param_context(history), "k", hs.integer(1, 5))
    assert isinstance(k, int) and 1 <= k <= 5
    maximized = [
        TPE().suggest_param(param_context(history[:20], s, "maximize"), "x", dist)
        for s in range(10)
    ]
    assert np.median(maximized) < 3.0  # now the trials far from 7 (near 0) are the good ones


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_candidates": 0},
        {"n_startup": -1},
        {"n_startup": 2.5},
        {"prior_weight": 0.0},
        {"bandwidth_factor": -1.0},
        {"lattice_bandwidth_factor": 0.0},
        {"choice_smoothing": -0.5},
        {"max_kernels": 1},
        {"gamma": 0.0},
        {"gamma": 1.5},
        {"gamma": "ten"},
        {"multivariate": "yes"},
        {"avoid_repeats": None},
    ],
)
def test_bad_arguments_name_the_argument(kwargs: dict[str, Any]) -> None:
    (name,) = kwargs
    with pytest.raises(StrategyError, match=rf"TPE\({name}=\.\.\.\) must be"):
        TPE(**kwargs)


# -- storable settings ---------------------------------------------------------------------------


def test_gamma_is_a_stored_fraction() -> None:
    assert TPE().config()["gamma"] == 0.1
    assert TPE(gamma=default_gamma).config() == TPE().config()  # the old spelling of the default
    space = Space({"x": hs.uniform(0.0, 1.0)})
    a = run(TPE(gamma=0.3, n_startup=5), space, lambda p: abs(p["x"] - 0.2), 25)
    b = run(
        TPE(gamma=lambda n: math.ceil(0.3 * n), n_startup=5), space, lambda p: abs(p["x"] - 0.2), 25
    )
    assert [t.flat_params for t in a] == [t.flat_params for t in b]  # same split for n < 84


def test_custom_gamma_cannot_be_stored() -> None:
    sampler = TPE(gamma=lambda n: 3)
    with pytest.raises(StrategyError, match=r"cannot be stored.*pass gamma as a number"):
        sampler.config()
    assert "TPE(" in repr(sampler)  # still printable


# -- define-by-run through the sampler contract ---------------------------------------------------


def define_by_run(
    sampler: TPE,
    suggest: Callable[[Callable[[str, Any], Any]], float],
    n: int,
    seed: int = 0,
    direction: str = "minimize",
) -> list[FrozenTrial]:
    """A sequential define-by-run study driven as the study layer drives it: each parameter is
    ``suggest_param(Context(None, history, rng, number, seed, direction), name, dist)`` with the
    running trial (holding what it suggested so far) in `history`."""
    from hypersearch.trial import param_seed

    history: list[FrozenTrial] = []
    for number in range(n):
        flat: dict[str, Any] = {}
        dists: dict[str, Any] = {}
        history.append(trial(number, flat, None, TrialState.RUNNING, distributions=dists))

        def ask(name: str, dist: Any) -> Any:
            rng = np.random.default_rng(param_seed(seed, number, name))  # noqa: B023
            ctx = Context(None, history, rng, number, seed, direction)  # noqa: B023
            raw = sampler.suggest_param(ctx, name, dist)
            assert dist.contains(raw), (name, raw)
            flat[name], dists[name] = raw, dist.to_json()  # noqa: B023
            return dist.options[raw] if isinstance(dist, hs.space.Choice) else raw

        value = suggest(ask)
        history[-1] = trial(number, flat, value, distributions=dists)
    return history


STEPPED = {
    "act": hs.choice(["relu", "elu", "tanh", "sigmoid"]),
    "layers": hs.integer(1, 8),
    "units": hs.integer(8, 512, step=8),
    "lr": hs.loguniform(1e-5, 1.0),
    "batch": hs.integer(16, 1024, step=16),
    "opt": hs.choice(["sgd", "rmsprop", "adam"]),
}
_ACT = {"relu": 0.0, "elu": 0.1, "tanh": 0.3, "sigmoid": 1.0}


def stepped_objective(p: dict[str, Any]) -> float:
    """0 at relu, 3 layers, 64 units, lr 1e-3, batch 128, adam; the categoricals' effects are
    small against the numbers', which is where univariate models lock onto a lucky option."""
    return (
        _ACT[p["act"]]
        + ((p["layers"] - 3) / 2) ** 2
        + 4 * ((p["units"] - 64) / 64) ** 2
        + (math.log10(p["lr"]) + 3) ** 2 / 2
        + abs(p["batch"] - 128) / 128
        + (0.0 if p["opt"] == "adam" else 0.3)
    )


def test_define_by_run_explores_choices_and_steps_like_a_declared_space() -> None:
    def suggest(ask: Callable[[str, Any], Any]) -> float:
        return stepped_objective({name: ask(name, dist) for name, dist in STEPPED.items()})

    space = Space(STEPPED)
    dbr, static = [], []
    for seed in range(6):
        history = define_by_run(TPE(), suggest, 60, seed)
        dbr.append(min(t.value for t in history if t.value is not None))
        # not locked onto one option: the univariate model this replaced gave one option 90-100%
        # of trials 30-59 in 3 of these 6 seeds; the joint model at most 63%
        counts = np.bincount([t.flat_params["act"] for t in history[30:]], minlength=4)
        assert counts.max() <= 0.8 * 30, (seed, counts)
        static_history = run(TPE(), space, lambda p: stepped_objective(p), 60, seed)
        static.append(min(t.value for t in static_history if t.value is not None))
    # the same joint model as the declared space, so as good within noise (medians 1.03 and
    # 0.78 here; bench/efficiency.py compares them over more seeds)
    assert np.median(dbr) < 1.5 * np.median(static) + 0.1, (dbr, static)


def test_define_by_run_follows_the_direction() -> None:
    def suggest(ask: Callable[[str, Any], Any]) -> float:
        x = ask("x", hs.uniform(0.0, 1.0))
        k = ask("k", hs.integer(0, 100, step=5))
        return -((x - 0.8) ** 2) - abs(k - 35) / 100

    history = define_by_run(TPE(), suggest, 50, seed=1, direction="maximize")
    best = max(history, key=lambda t: t.value if t.value is not None else -math.inf)
    assert abs(best.flat_params["x"] - 0.8) < 0.1 and abs(best.flat_params["k"] - 35) <= 10
    assert np.median([t.flat_params["x"] for t in history[-15:]]) > 0.6
    # the univariate path (a parameter not every trial has) follows it too
    assert (
        np.median(
            [
                TPE().suggest_param(
                    param_context(history, s, "maximize"), "x", hs.uniform(0.0, 1.0)
                )
                for s in range(9)
            ]
        )
        > 0.6
    )


def test_define_by_run_joint_draw_is_one_per_trial() -> None:
    def suggest(ask: Callable[[str, Any], Any]) -> float:
        return stepped_objective({name: ask(name, dist) for name, dist in STEPPED.items()})

    history = define_by_run(TPE(), suggest, 30, seed=4)
    # the next trial: asked in another order, by a fresh sampler, it gets the same values
    running = trial(30, {}, None, TrialState.RUNNING, distributions={})
    ctx = Context(None, [*history, running], np.random.default_rng(0), 30, 4)
    forward = {n: TPE().suggest_param(ctx, n, d) for n, d in STEPPED.items()}
    sampler = TPE()
    backward = {n: sampler.suggest_param(ctx, n, d) for n, d in reversed(STEPPED.items())}
    assert forward == backward
    # a distribution that differs from the stored one is not served from the joint draw
    other = sampler.suggest_param(ctx, "layers", hs.integer(1, 3))
    assert 1 <= other <= 3


# -- repeats ---------------------------------------------------------------------------------------


def test_deterministic_study_avoids_repeating_evaluated_points() -> None:
    # 5 x 5 x 3 = 75 points, 50 trials: the model keeps proposing the good corner
    space = Space(
        {"a": hs.integer(1, 5), "b": hs.integer(0, 40, step=10), "c": hs.choice(["x", "y", "z"])}
    )

    def value(p: dict[str, Any]) -> float:
        return abs(p["a"] - 2) + abs(p["b"] - 20) / 10 + (0.0 if p["c"] == "y" else 0.5)

    def repeats(history: list[FrozenTrial]) -> int:
        return len(history) - len({tuple(sorted(t.flat_params.items())) for t in history})

    avoided = [repeats(run(TPE(), space, value, 50, seed)) for seed in range(4)]
    allowed = [repeats(run(TPE(avoid_repeats=False), space, value, 50, seed)) for seed in range(4)]
    assert max(avoided) == 0, avoided
    assert min(allowed) >= 10, allowed  # what a noisy objective's study (and the old TPE) did
    # the best point is still found
    assert all(min(t.value or 0 for t in run(TPE(), space, value, 50, s)) == 0 for s in range(4))


def test_a_lattice_smaller_than_the_budget_repeats_only_when_exhausted() -> None:
    space = Space({"a": hs.integer(1, 3), "b": hs.choice(["x", "y"])})  # 6 points
    history = run(TPE(n_startup=2), space, lambda p: p["a"] + (p["b"] == "y"), 12)
    first = {tuple(sorted(t.flat_params.items())) for t in history[:6]}
    assert len(first) == 6  # every point once before any repeat


def test_ties_on_a_plateau_do_not_count_as_bad() -> None:
    # half the range is a plateau at the best value: the model should keep sampling in it
    space = Space({"k": hs.integer(0, 99)})
    history = run(TPE(), space, lambda p: 0.0 if p["k"] >= 50 else 1.0 + (50 - p["k"]) / 50, 60)
    late = [t.flat_params["k"] for t in history[20:]]
    assert np.mean([k >= 50 for k in late]) > 0.7


def test_two_define_by_run_studies_sharing_a_sampler_and_seed_stay_apart() -> None:
    shared = TPE(n_startup=3)

    def suggest_for(target: float) -> Callable[[Callable[[str, Any], Any]], float]:
        def suggest(ask: Callable[[str, Any], Any]) -> float:
            x, y = ask("x", hs.uniform(0.0, 1.0)), ask("y", hs.uniform(0.0, 1.0))
            return abs(x - target) + abs(y - target)

        return suggest

    low = define_by_run(shared, suggest_for(0.1), 25, seed=5)
    high = define_by_run(shared, suggest_for(0.9), 25, seed=5)
    alone = define_by_run(TPE(n_startup=3), suggest_for(0.9), 25, seed=5)
    assert [t.flat_params for t in high] == [t.flat_params for t in alone]
    assert [t.flat_params for t in low] != [t.flat_params for t in high]
