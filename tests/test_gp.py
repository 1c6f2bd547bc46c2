"""The GP-EI sampler: valid suggestions on every kind of space, determinism, pending trials,
odd histories, the cached fit, and quality against random search on Branin."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from problems import BRANIN_MIN, BRANIN_SPACE, branin

import hypersearch as hs
from hypersearch.errors import StrategyError
from hypersearch.samplers.base import Context
from hypersearch.samplers.gp import GP
from hypersearch.samplers.gp.encoding import Layout
from hypersearch.samplers.gp.fitting import checkpoints
from hypersearch.samplers.gp.model import append_rows, cholesky, kernel
from hypersearch.space import Space
from hypersearch.trial import FrozenTrial, TrialState

MIXED_SPACE = {
    "x": hs.uniform(-2.0, 3.0),
    "lr": hs.loguniform(1e-5, 1e-1),
    "layers": hs.integer(1, 6),
    "width": hs.integer(8, 512, log=True),
    "drop": hs.quniform(0.0, 0.5, 0.1),
    "bias": hs.normal(0.0, 2.0),
    "batch": hs.qlognormal(3.0, 1.0, 4.0),
    "act": hs.choice(["relu", "tanh", "gelu", "never"], weights=[0.5, 0.3, 0.2, 0.0]),
}

NESTED_SPACE = {
    "optimizer": hs.choice(
        [
            {"name": "adam", "lr": hs.loguniform(1e-4, 1e-1)},
            {
                "name": "sgd",
                "lr": hs.loguniform(1e-3, 1.0),
                "momentum": hs.choice([0.0, {"beta": hs.uniform(0.5, 0.99)}]),
            },
        ]
    ),
    "layers": hs.integer(1, 4),
}


def mixed_objective(p: dict[str, Any]) -> float:
    act = {"relu": 0.0, "tanh": 0.3, "gelu": 0.1}[p["act"]]
    return (
        (p["x"] - 1.0) ** 2
        + (math.log10(p["lr"]) + 3.0) ** 2
        + abs(p["layers"] - 3)
        + abs(math.log2(p["width"]) - 6)
        + p["drop"]
        + 0.1 * abs(p["bias"])
        + 0.01 * p["batch"]
        + act
    )


def nested_objective(p: dict[str, Any]) -> float:
    opt = p["optimizer"]
    base = abs(math.log10(opt["lr"]) + 2) + 0.1 * p["layers"]
    if opt["name"] == "adam":
        return base + 0.5
    momentum = opt["momentum"]
    return base + (1.0 if momentum == 0.0 else abs(momentum["beta"] - 0.9))


def context(
    space: Any, history: list[FrozenTrial], seed: int = 0, number: int | None = None
) -> Context:
    number = len(history) if number is None else number
    rng = np.random.default_rng([seed, number])
    return Context(hs.Space(space), history, rng, number, seed)


def complete(space: Space, flats: list[dict[str, Any]], values: list[float]) -> list[FrozenTrial]:
    return [
        FrozenTrial(i, TrialState.COMPLETE, v, flat, space=space)
        for i, (flat, v) in enumerate(zip(flats, values, strict=True))
    ]


def random_history(space_tree: Any, n: int, seed: int = 0) -> list[FrozenTrial]:
    space = hs.Space(space_tree)
    rng = np.random.default_rng(seed)
    flats = [space.sample(rng) for _ in range(n)]
    values = [float(rng.normal()) for _ in flats]
    return complete(space, flats, values)


# -- validity --------------------------------------------------------------------------------


def test_mixed_space_suggestions_are_valid() -> None:
    space = hs.Space(MIXED_SPACE)
    study = hs.minimize(
        mixed_objective, MIXED_SPACE, strategy=GP(), max_trials=24, seed=3, verbose=False
    )
    trials = study.trials
    assert len(trials) == 24 and all(t.state is TrialState.COMPLETE for t in trials)
    for t in trials:
        assert space.validate(t.flat_params) == t.flat_params
        assert t.flat_params["act"] != 3  # weight 0: never proposed
        assert isinstance(t.flat_params["layers"], int) and isinstance(t.flat_params["width"], int)
    # the model did better than its own Sobol start
    startup = GP().startup
    assert min(t.value for t in trials[startup:]) < min(t.value for t in trials[:startup])


def test_nested_conditional_space_suggestions_are_valid() -> None:
    space = hs.Space(NESTED_SPACE)
    study = hs.minimize(
        nested_objective, NESTED_SPACE, strategy=GP(), max_trials=22, seed=1, verbose=False
    )
    branches = set()
    for t in study.trials:
        assert space.validate(t.flat_params) == t.flat_params
        branches.add((t.flat_params["optimizer"], t.flat_params.get("optimizer[1]/momentum")))
    assert len(branches) >= 3  # every branch was tried
    assert study.best_value < 0.5  # sgd with momentum: the only branch below 0.5


def test_direct_suggestions_after_startup_are_valid_on_odd_spaces() -> None:
    for tree in (MIXED_SPACE, NESTED_SPACE):
        space = hs.Space(tree)
        history = random_history(tree, 15)
        for number in range(15, 20):
            flat = GP().suggest(context(tree, history, number=number))
            assert space.validate(flat) == flat


def test_one_point_and_empty_spaces() -> None:
    tree = {"only": hs.choice(["a"]), "const": 3}
    history = complete(hs.Space(tree), [{"only": 0}] * 12, [1.0] * 12)
    assert GP().suggest(context(tree, history)) == {"only": 0}
    assert GP().suggest(context({"c": 1}, [])) == {}


def test_maximize_direction() -> None:
    space = {"x": hs.uniform(0.0, 1.0)}
    study = hs.maximize(
        lambda p: -((p["x"] - 0.3) ** 2), space, strategy=GP(), max_trials=16, seed=0, verbose=False
    )
    assert abs(study.best_params["x"] - 0.3) < 0.01


# -- determinism and parallel workers -------------------------------------------------------


def test_same_seed_same_suggestions() -> None:
    runs = [
        [
            t.flat_params
            for t in hs.minimize(
                branin, BRANIN_SPACE, strategy=GP(), max_trials=16, seed=7, verbose=False
            ).trials
        ]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    history = random_history(MIXED_SPACE, 14)
    a = GP().suggest(context(MIXED_SPACE, history, seed=5))
    b = GP().suggest(context(MIXED_SPACE, history, seed=5))
    sampler = GP()
    c = sampler.suggest(context(MIXED_SPACE, history, seed=5))
    d = sampler.suggest(context(MIXED_SPACE, history, seed=5))  # from the cache this time
    grown = GP()  # a worker that has followed the study: its cache holds the earlier fits
    for n in range(9, 14):
        grown.suggest(context(MIXED_SPACE, history[:n], seed=5, number=n))
    e = grown.suggest(context(MIXED_SPACE, history, seed=5))
    assert a == b == c == d == e


def test_pending_trials_get_distinct_suggestions() -> None:
    space = hs.Space(BRANIN_SPACE)
    flats = [space.sample(np.random.default_rng(i)) for i in range(12)]
    history = complete(space, flats, [branin(f) for f in flats])
    sampler = GP()
    running: list[FrozenTrial] = []
    for number in range(12, 16):  # four workers ask before any of them tells
        flat = sampler.suggest(context(BRANIN_SPACE, history + running, number=number))
        running.append(FrozenTrial(number, TrialState.RUNNING, None, flat, space=space))
    points = {tuple(t.flat_params.values()) for t in running}
    assert len(points) == 4
    # the point a worker would take alone is not taken again while it runs
    alone = sampler.suggest(context(BRANIN_SPACE, history, number=20))
    pending = FrozenTrial(12, TrialState.RUNNING, None, alone, space=space)
    again = sampler.suggest(context(BRANIN_SPACE, [*history, pending], number=20))
    assert again != alone


def test_four_workers_ask_before_tell() -> None:
    study = hs.create_study(NESTED_SPACE, strategy=GP(), seed=2)
    for _ in range(5):
        trials = [study.ask() for _ in range(4)]
        flats = [tuple(sorted(t.flat_params.items())) for t in trials]
        assert len(set(flats)) == 4
        for t in trials:
            study.tell(t, nested_objective(t.params))


# -- odd histories -----------------------------------------------------------------------------


def test_all_failed_history() -> None:
    space = hs.Space(MIXED_SPACE)
    rng = np.random.default_rng(0)
    history = [
        FrozenTrial(i, TrialState.FAILED, None, space.sample(rng), space=space) for i in range(20)
    ]
    flat = GP().suggest(context(MIXED_SPACE, history))
    assert space.validate(flat) == flat


def test_infinite_and_nan_values() -> None:
    space = hs.Space(BRANIN_SPACE)
    rng = np.random.default_rng(1)
    flats = [space.sample(rng) for _ in range(16)]
    values = [branin(f) for f in flats]
    values[2], values[5], values[9] = math.inf, -math.inf, math.nan
    flat = GP().suggest(context(BRANIN_SPACE, complete(space, flats, values)))
    assert space.validate(flat) == flat
    for same in (math.inf, -math.inf, 1.0):  # no finite value, or nothing to learn
        flat = GP().suggest(context(BRANIN_SPACE, complete(space, flats, [same] * 16)))
        assert space.validate(flat) == flat


def test_foreign_parameters_are_ignored() -> None:
    space = hs.Space(BRANIN_SPACE)
    history = random_history(BRANIN_SPACE, 12)
    history.append(
        FrozenTrial(12, TrialState.COMPLETE, 1.0, {"x1": "nope", "x2": 1.0}, space=space)
    )
    history.append(FrozenTrial(13, TrialState.COMPLETE, 1.0, {"other": 1.0}, space=space))
    flat = GP().suggest(context(BRANIN_SPACE, history))
    assert space.validate(flat) == flat


def test_define_by_run_is_refused_with_a_clear_message() -> None:
    """No silent prior draws under the GP's name: the study is refused when it is created,
    and a direct define-by-run call is refused too."""
    with pytest.raises(StrategyError, match=r"'gp' needs a declared search space.*'tpe'"):
        GP().check_space(None)
    GP().check_space(hs.Space(BRANIN_SPACE))  # a declared space is fine

    def objective(trial: hs.Trial) -> float:
        return trial.suggest_float("x", 0.0, 1.0)

    with pytest.raises(StrategyError, match="declared search space"):
        hs.minimize(objective, None, strategy="gp", max_trials=3, seed=0, verbose=False)
    ctx = Context(None, [], np.random.default_rng(0), 0, 0)
    with pytest.raises(StrategyError, match="declared search space"):
        GP().suggest_param(ctx, "lr", hs.loguniform(1e-4, 1.0))


def test_bad_arguments() -> None:
    for key, value in (
        ("n_startup", 0),
        ("n_candidates", 0),
        ("n_local", 1.5),
        ("n_restarts", -1),
        ("refit_below", "10"),
        ("refit_every", 0),
        ("max_points", True),
        ("fit_points", 1),
    ):
        with pytest.raises(StrategyError, match=rf"GP\({key}=\.\.\.\) must be an integer"):
            GP(**{key: value})
    assert GP(n_candidates=1000).n_candidates == 1024
    assert GP(n_local=np.int64(4)).n_local == 4  # numpy integers are integers


def test_config_round_trips_through_json() -> None:
    """A stored study definition rebuilds the GP exactly from its settings."""
    custom = GP(
        n_startup=5,
        n_candidates=512,
        n_local=3,
        n_restarts=0,
        refit_below=20,
        refit_every=4,
        max_points=64,
        fit_points=32,
    )
    for gp in (GP(), custom):
        config = json.loads(json.dumps(gp.config()))
        rebuilt = GP(**config)
        assert rebuilt.config() == gp.config() == config
        assert repr(rebuilt) == repr(gp)
    assert custom.config()["n_startup"] == 5 and custom.config()["fit_points"] == 32
    assert GP(n_candidates=1000).config()["n_candidates"] == 1024  # as it runs
    # the rebuilt sampler makes the same decisions
    history = random_history(MIXED_SPACE, 12)
    small = GP(n_startup=6, n_candidates=256, n_local=2, refit_below=8, refit_every=3)
    again = GP(**json.loads(json.dumps(small.config())))
    assert small.suggest(context(MIXED_SPACE, history)) == again.suggest(
        context(MIXED_SPACE, history)
    )


def test_import_does_not_load_scipy() -> None:
    code = "import sys, hypersearch; from hypersearch.samplers.gp import GP; GP(); print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the model's pieces ------------------------------------------------------------------------


def test_discrete_parameters_are_snapped_inside_the_kernel() -> None:
    layout = Layout(hs.Space(MIXED_SPACE))
    rng = np.random.default_rng(0)
    R = layout.from_sobol(rng.random((500, layout.d)))
    F, active = layout.features(R)
    assert active.all()
    for j in layout.ordinal:
        dist = layout.dists[j]
        expected = [dist.to_unit(dist.from_unit(float(u))) for u in R[:, j]]
        np.testing.assert_allclose(F[:, j], expected, atol=1e-12)
    # a point's features are the features of what it decodes to
    space = hs.Space(MIXED_SPACE)
    for r, f in zip(R[:50], F[:50], strict=True):
        np.testing.assert_allclose(layout.row(space.decode(layout.unit(r))), f, atol=1e-9)


def test_conditional_parameters_are_filled_when_inactive() -> None:
    space = hs.Space(NESTED_SPACE)
    layout = Layout(space)
    row = layout.row({"optimizer": 0, "optimizer[0]/lr": 0.01, "layers": 2})
    inactive = [j for j, name in enumerate(layout.names) if name.startswith("optimizer[1]")]
    assert all(row[j] == layout.fill[j] for j in inactive)


def test_rank_append_matches_a_full_factorisation() -> None:
    layout = Layout(hs.Space(MIXED_SPACE))
    rng = np.random.default_rng(0)
    E = layout.expand(layout.features(layout.from_sobol(rng.random((40, layout.d))))[0])
    inv_ls = np.full(layout.p, 2.0)
    full = kernel(E, inv_ls, 1.3)
    full.flat[:: len(E) + 1] += 1e-4
    head = cholesky(full[:30, :30])
    np.testing.assert_allclose(
        append_rows(head, E[:30], E[30:], inv_ls, 1.3, 1e-4), cholesky(full), atol=1e-10
    )


def test_cached_fit_is_extended_not_refactorised() -> None:
    """Between refits the cached factor grows by the new rows, and gives the same suggestion
    as a full factorisation with the same hyperparameters."""
    space = hs.Space(BRANIN_SPACE)
    rng = np.random.default_rng(3)
    flats = [space.sample(rng) for _ in range(30)]
    history = complete(space, flats, [branin(f) for f in flats])
    pending = [FrozenTrial(30, TrialState.RUNNING, None, space.sample(rng), space=space)]
    first, later = history[:25], history + pending

    cached = GP(refit_below=0, refit_every=100)
    cached.suggest(context(BRANIN_SPACE, first, number=25))
    via_cache = cached.suggest(context(BRANIN_SPACE, later, number=31))
    assert cached.fits == 1  # no refit: the hyperparameters were reused
    entry = next(iter(cached._cache.values()))
    assert entry.numbers == tuple(range(30))

    fresh = GP(refit_below=0, refit_every=100)
    fresh.suggest(context(BRANIN_SPACE, first, number=25))
    entry = next(iter(fresh._cache.values()))
    entry.L, entry.numbers = None, ()  # forget the factor, keep the hyperparameters
    via_full = fresh.suggest(context(BRANIN_SPACE, later, number=31))
    assert fresh.fits == 1
    assert via_cache == pytest.approx(via_full, abs=1e-6)


def test_cache_is_not_fooled_by_another_study_with_the_same_space() -> None:
    sampler = GP(refit_below=0, refit_every=100)
    a = random_history(BRANIN_SPACE, 20, seed=1)
    b = random_history(BRANIN_SPACE, 20, seed=2)  # same numbers, other points
    sampler.suggest(context(BRANIN_SPACE, a))
    from_b = sampler.suggest(context(BRANIN_SPACE, b))
    assert from_b == GP(refit_below=0, refit_every=100).suggest(context(BRANIN_SPACE, b))


# -- caching -------------------------------------------------------------------------------------


class _Uncached(GP):
    """A GP that forgets everything between suggestions, as a new worker process would."""

    def suggest(self, context: Context) -> dict[str, Any]:
        return GP(refit_below=12, refit_every=6).suggest(context)


def test_cached_and_uncached_studies_match() -> None:
    """The cache saves work (fits reused, factors extended) without changing the decisions."""
    cached = GP(refit_below=12, refit_every=6)
    runs = [
        hs.minimize(branin, BRANIN_SPACE, strategy=s, max_trials=30, seed=0, verbose=False)
        for s in (cached, _Uncached())
    ]
    assert cached.fits == len(checkpoints(cached.startup, 29, 12, 6))
    for a, b in zip(runs[0].trials, runs[1].trials, strict=True):
        assert a.flat_params == pytest.approx(b.flat_params, abs=1e-3)
    assert runs[0].best_value - BRANIN_MIN < 0.05


def test_a_process_joining_late_starts_from_the_stored_fits_and_suggests_the_same(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: the fitted hyperparameter path is stored with the study, so a new process
    (a worker joining at trial 40, a resumed driver) makes no fit to catch up, and proposes
    exactly what one replaying every fit proposes."""
    url = f"sqlite:///{tmp_path}/gp.db"
    first = hs.minimize(branin, BRANIN_SPACE, strategy="gp", max_trials=40, seed=3, storage=url,
                        name="late", verbose=False)
    assert first.storage.get_cache(first.id, "gp") is not None

    def fresh(stored: bool) -> hs.Study:
        study = hs.load_study("late", url)
        if not stored:
            monkeypatch.setattr(study.storage, "get_cache", lambda *_: None)
        return study

    warm, replaying = fresh(stored=True), fresh(stored=False)
    history = warm.trials
    assert warm._propose(history, 40) == replaying._propose(history, 40)
    assert warm.sampler.fits == 1, "only the fit for the trial no one has fitted on yet"
    assert replaying.sampler.fits > 20, "without it, a new process replays the fits"
    # a stored state made for other settings (another seed, format or space) is ignored
    foreign = dict(first.storage.get_cache(first.id, "gp"), key="another study's")
    ignoring = hs.load_study("late", url)
    monkeypatch.setattr(ignoring.storage, "get_cache", lambda *_: foreign)
    assert ignoring._propose(history, 40) == replaying._propose(history, 40)
    assert ignoring.sampler.fits > 20
