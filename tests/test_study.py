"""The public Python API: minimize/maximize, objective conventions, stopping, parallel runs."""

from __future__ import annotations

import math
import os
import signal
import sys
import time
from typing import Any

import pytest

import hypersearch as hs
from hypersearch.trial import TrialState

OPTIMIZER_SPACE = {
    "optimizer": hs.choice(
        [
            {"name": "adam", "lr": hs.loguniform(1e-4, 1e-1)},
            {"name": "sgd", "lr": hs.loguniform(1e-3, 1.0), "momentum": hs.uniform(0.0, 0.99)},
        ]
    ),
    "layers": hs.integer(1, 4),
}


def conditional_objective(params: dict[str, Any]) -> float:
    """Range [0, 2]: optimum 0 at sgd, lr = 0.1, momentum = 0.9; adam is in [1, 2]."""
    opt = params["optimizer"]
    assert isinstance(opt["name"], str)
    if opt["name"] == "adam":
        assert set(opt) == {"name", "lr"}
        return 1.0 + abs(math.log10(opt["lr"]) + 2.5) / 1.5
    assert set(opt) == {"name", "lr", "momentum"}
    return (abs(math.log10(opt["lr"]) + 1) / 2 + abs(opt["momentum"] - 0.9) / 0.9) / 2


def quadratic(params: dict[str, Any]) -> float:
    return (params["x"] - 1.0) ** 2


def noop(params: dict[str, Any]) -> float:
    return 0.0


def grid_objective(params: dict[str, Any]) -> float:
    return params["a"] * 10 + params["b"] + params["c"]


GRID_SPACE = {
    "a": hs.choice([1, 2, 3]),
    "b": hs.integer(0, 3),
    "c": hs.choice([0.1, 0.2, 0.3, 0.4]),
}


# -- acceptance 1: nested conditional spaces ---------------------------------------------------


def test_conditional_space_gives_values_and_random_search_gets_close() -> None:
    seen: list[Any] = []

    def objective(params: dict[str, Any]) -> float:
        seen.append(params)
        return conditional_objective(params)

    study = hs.minimize(
        objective, OPTIMIZER_SPACE, strategy="random", max_trials=200, seed=0, verbose=False
    )
    assert len(seen) == 200
    assert {p["optimizer"]["name"] for p in seen} == {"adam", "sgd"}
    assert all(isinstance(p["layers"], int) and 1 <= p["layers"] <= 4 for p in seen)
    assert study.best_params["optimizer"]["name"] == "sgd"
    flat = study.best_trial.flat_params
    assert "optimizer[0]/lr" not in flat and "optimizer[1]/momentum" in flat
    # the objective's range over the space is [0, 2]: 5% of it is 0.1. Over 10 seeds the
    # median best is well inside and at most one seed lands just outside.
    bests = sorted(
        hs.minimize(
            conditional_objective, OPTIMIZER_SPACE, max_trials=200, seed=seed, verbose=False
        ).best_value
        for seed in range(10)
    )
    assert bests[5] < 0.05 * 2
    assert bests[8] < 0.05 * 2


# -- acceptance 2: reproducibility -----------------------------------------------------------


@pytest.mark.parametrize("strategy", ["random", "sobol", "grid"])
def test_same_seed_same_sequence(strategy: str) -> None:
    space = GRID_SPACE if strategy == "grid" else OPTIMIZER_SPACE
    objective = grid_objective if strategy == "grid" else conditional_objective

    def run(seed: int) -> list[Any]:
        study = hs.minimize(
            objective, space, strategy=strategy, max_trials=30, seed=seed, verbose=False
        )
        return [t.params for t in study.trials]

    first = run(3)
    assert first == run(3)
    if strategy != "grid":
        assert first != run(4)


def test_sobol_covers_unit_interval_evenly() -> None:
    study = hs.minimize(
        quadratic, {"x": hs.uniform(0, 1)}, strategy="sobol", max_trials=16, seed=1, verbose=False
    )
    xs = sorted(t.params["x"] for t in study.trials)
    # one point in each sixteenth: the property random search lacks
    assert [int(x * 16) for x in xs] == list(range(16))


# -- acceptance 5: parallel exactness ----------------------------------------------------------


def test_parallel_grid_each_point_once(storage_url: Any) -> None:
    study = hs.minimize(
        grid_objective,
        GRID_SPACE,
        strategy="grid",
        n_jobs=4,
        storage=storage_url,
        name="g",
        verbose=False,
    )
    trials = study.trials
    assert len(trials) == 48
    keys = {tuple(sorted(t.params.items())) for t in trials}
    assert len(keys) == 48
    assert all(t.state is TrialState.COMPLETE for t in trials)


def test_parallel_random_exact_budget(storage_url: Any) -> None:
    study = hs.minimize(
        noop,
        OPTIMIZER_SPACE,
        max_trials=200,
        n_jobs=4,
        storage=storage_url,
        name="r",
        verbose=False,
    )
    numbers = [t.number for t in study.trials]
    assert numbers == list(range(200))
    assert all(t.state is TrialState.COMPLETE for t in study.trials)


def test_budget_is_total_across_resumes(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/b.db"
    hs.minimize(noop, OPTIMIZER_SPACE, max_trials=10, storage=url, name="b", verbose=False)
    study = hs.minimize(noop, OPTIMIZER_SPACE, max_trials=25, storage=url, name="b", verbose=False)
    assert len(study.trials) == 25
    study = hs.minimize(noop, OPTIMIZER_SPACE, max_trials=25, storage=url, name="b", verbose=False)
    assert len(study.trials) == 25


# -- acceptance 4: SIGKILL and resume ----------------------------------------------------------

KILL_SCRIPT = """
import sys, time
import hypersearch as hs

def objective(params):
    time.sleep(0.05)
    return params["x"] ** 2

hs.minimize(objective, {{"x": hs.uniform(-1, 1)}}, storage="sqlite:///{db}", name="s",
            max_trials=60, n_jobs=2, seed=1, verbose=False)
"""


def _finished_count(db: str) -> int:
    import sqlite3

    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(
            "SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'FAILED', 'PRUNED')"
        ).fetchone()[0]


def test_sigkill_then_resume_reaches_exact_budget(tmp_path: Any) -> None:
    import subprocess
    import sys

    import psutil

    db = str(tmp_path / "x.db")
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(db=db))
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if os.path.exists(db):
            try:
                if _finished_count(db) >= 30:
                    break
            except Exception:  # the schema may not exist yet
                pass
        time.sleep(0.05)
    children = psutil.Process(process.pid).children()
    assert len(children) == 2, "n_jobs=2 should run two worker processes"
    process.send_signal(signal.SIGKILL)
    process.wait()
    _, alive = psutil.wait_procs(children, timeout=5)
    assert not alive, "worker processes must die with their driver"

    study = hs.load_study("s", f"sqlite:///{db}")
    in_flight = [t.number for t in study.trials if t.state is TrialState.RUNNING]
    assert in_flight, "the kill should have caught trials in flight"
    assert len(study.trials) < 60

    rerun = subprocess.run([sys.executable, str(script)], cwd=tmp_path, timeout=120)
    assert rerun.returncode == 0
    trials = study.trials
    # the trials in flight were not their parameters' fault: they are re-run (retry policy),
    # so 60 trials ran to their end and each interrupted one has exactly one re-run
    assert len(trials) == 60 + len(in_flight)
    assert [t.number for t in trials] == list(range(len(trials)))
    assert all(t.state is TrialState.COMPLETE for t in trials if t.number not in in_flight)
    assert len({t.params["x"] for t in trials if t.number not in in_flight}) == 60
    for number in in_flight:
        assert trials[number].state is TrialState.FAILED
        assert trials[number].failure_reason == "stale"
        (rerun_of,) = [t for t in trials if t.parent_number == number]
        assert rerun_of.params == trials[number].params


# -- objective conventions ---------------------------------------------------------------------


def test_objective_with_trial_reports_metrics_and_attrs(tmp_path: Any) -> None:
    def objective(params: dict[str, Any], trial: hs.Trial) -> dict[str, Any]:
        for step in range(3):
            trial.report(step, val_loss=params["x"] + step)
        trial.set_user_attr("note", "hello")
        return {"loss": params["x"], "accuracy": 0.5, "model": object(), "status": "ok"}

    study = hs.minimize(
        objective,
        {"x": hs.uniform(0, 1)},
        max_trials=3,
        storage=f"sqlite:///{tmp_path}/m.db",
        verbose=False,
    )
    trial = study.trials[0]
    assert trial.metrics == {"accuracy": 0.5, "loss": trial.value}
    assert trial.user_attrs == {"note": "hello"}
    points = study.storage.get_metrics(trial.id)  # type: ignore[arg-type]
    assert [(p.name, p.step) for p in points] == [("val_loss", 0), ("val_loss", 1), ("val_loss", 2)]


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_define_by_run(n_jobs: int) -> None:
    def objective(trial: hs.Trial) -> float:
        kind = trial.suggest_categorical("kind", ["linear", "square"])
        x = trial.suggest_float("x", -2, 2)
        n = trial.suggest_int("n", 1, 8, log=True)
        assert isinstance(n, int)
        return abs(x) * n if kind == "linear" else x * x * n

    study = hs.minimize(objective, None, max_trials=20, n_jobs=n_jobs, seed=2, verbose=False)
    assert len(study.trials) == 20
    params = study.best_params
    assert params["kind"] in ("linear", "square") and -2 <= params["x"] <= 2


def test_maximize_with_metric_name() -> None:
    study = hs.maximize(
        lambda p: {"accuracy": 1 - abs(p["x"] - 0.3)},
        {"x": hs.uniform(0, 1)},
        metric="accuracy",
        max_trials=40,
        seed=0,
        verbose=False,
    )
    assert study.best_value == max(t.value for t in study.trials)
    assert abs(study.best_params["x"] - 0.3) < 0.1


@pytest.mark.parametrize(
    ("returned", "reason", "fragment"),
    [
        ("a string", "invalid_value", "returned str 'a string'"),
        (None, "invalid_value", "returned None"),
        (float("nan"), "invalid_value", "NaN"),
        ({"accuracy": 1.0}, "invalid_value", "no 'loss' or 'value' key"),
        ({"loss": 1.0, "status": "fail"}, "status_fail", "status 'fail'"),
        ({"loss": 1.0, "status": "weird"}, "invalid_value", "status must be"),
        (True, "invalid_value", "returned bool"),
    ],
)
def test_bad_return_values_fail_the_trial_with_reason(
    returned: Any, reason: str, fragment: str
) -> None:
    study = hs.minimize(lambda p: returned, {"x": hs.uniform(0, 1)}, max_trials=2, verbose=False)
    for trial in study.trials:
        assert trial.state is TrialState.FAILED
        assert trial.failure_reason == reason
        assert fragment in (trial.failure_detail or "")


def test_exception_is_recorded_with_traceback_and_study_goes_on() -> None:
    def objective(params: dict[str, Any]) -> float:
        if params["x"] < 0.5:
            raise RuntimeError("diverged")
        return params["x"]

    study = hs.minimize(objective, {"x": hs.uniform(0, 1)}, max_trials=20, seed=1, verbose=False)
    failed = [t for t in study.trials if t.state is TrialState.FAILED]
    assert failed and len(failed) < 20
    assert all("RuntimeError: diverged" in (t.failure_detail or "") for t in failed)
    assert "Traceback" in (failed[0].failure_detail or "")
    assert study.best_value >= 0.5


def test_infinite_values_are_ordered() -> None:
    values = iter([math.inf, 3.0, -math.inf, 1.0])
    study = hs.minimize(
        lambda p: next(values), {"x": hs.uniform(0, 1)}, max_trials=4, verbose=False
    )
    assert study.best_value == -math.inf
    assert study.best_trial.number == 2


def crash_on_second(params: dict[str, Any]) -> float:
    if params["x"] > 0.5:
        os.kill(os.getpid(), signal.SIGKILL)
    return params["x"]


def test_worker_killed_costs_only_its_trial() -> None:
    study = hs.minimize(
        crash_on_second, {"x": hs.uniform(0, 1)}, max_trials=12, n_jobs=2, seed=3, verbose=False
    )
    trials = study.trials
    assert len(trials) == 12
    crashed = [t for t in trials if t.state is TrialState.FAILED]
    assert crashed and all(t.failure_reason == "crashed" for t in crashed)
    assert all("SIGKILL" in (t.failure_detail or "") for t in crashed)
    assert all(t.params["x"] > 0.5 for t in crashed)
    assert all(t.state is TrialState.COMPLETE for t in trials if t.params["x"] <= 0.5)


def test_pruned_and_ask_tell() -> None:
    study = hs.create_study({"x": hs.uniform(0, 1)}, seed=1)
    trial = study.ask()
    assert 0 <= trial.params["x"] <= 1
    study.tell(trial, trial.params["x"])
    second = study.ask()
    study.tell(second, state="pruned")
    third = study.ask()
    study.tell(third.number, {"loss": 0.1})
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE]
    with pytest.raises(hs.HypersearchError, match="not RUNNING"):
        study.tell(third.number, 0.5)

    def objective(params: dict[str, Any]) -> float:
        raise hs.TrialPruned()

    study = hs.minimize(objective, {"x": hs.uniform(0, 1)}, max_trials=2, verbose=False)
    assert {t.state for t in study.trials} == {TrialState.PRUNED}


def test_ask_on_exhausted_grid_raises() -> None:
    study = hs.create_study({"a": hs.choice([1, 2])}, strategy="grid")
    for _ in range(2):
        study.tell(study.ask(), 0.0)
    with pytest.raises(hs.StudyExhausted, match="no point left"):
        study.ask()


def test_enqueue_runs_first() -> None:
    study = hs.create_study(OPTIMIZER_SPACE, seed=0)
    wanted = {"optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}, "layers": 2}
    study.enqueue(wanted)
    study.optimize(conditional_objective, max_trials=5, verbose=False)
    assert study.trials[0].params == wanted
    assert study.trials[0].value == pytest.approx(0.0)
    assert len(study.trials) == 5


# -- stopping criteria -------------------------------------------------------------------------


def test_target_stops_the_study() -> None:
    study = hs.minimize(quadratic, {"x": hs.uniform(-5, 5)}, target=0.5, seed=0, verbose=False)
    assert study.best_value <= 0.5
    assert all(t.value > 0.5 for t in study.trials[:-1])


def test_patience_stops_after_no_improvement() -> None:
    values = iter([5.0, 4.0, 3.0] + [10.0] * 100)
    study = hs.minimize(lambda p: next(values), {"x": hs.uniform(0, 1)}, patience=4, verbose=False)
    assert len(study.trials) == 3 + 4


def test_max_failures_stops() -> None:
    def objective(params: dict[str, Any]) -> float:
        raise ValueError("always")

    study = hs.minimize(objective, {"x": hs.uniform(0, 1)}, max_failures=3, verbose=False)
    assert len(study.trials) == 3


def test_timeout_stops() -> None:
    start = time.monotonic()
    study = hs.minimize(
        lambda p: time.sleep(0.02) or 0.0, {"x": hs.uniform(0, 1)}, timeout=0.5, verbose=False
    )
    assert time.monotonic() - start < 3
    assert 5 <= len(study.trials) <= 40


# -- acceptance 6: precise errors --------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: hs.uniform(1, 0), "low must be less than high"),
        (lambda: hs.loguniform(0, 1), "needs low > 0"),
        (lambda: hs.quniform(0, 1, 0), "q must be > 0"),
        (lambda: hs.quniform(0, 1, -0.5), "q must be > 0"),
        (lambda: hs.choice([]), "options is empty"),
        (lambda: hs.integer(5, 1), "low must be less than high"),
        (lambda: hs.uniform("a", 1), "low must be a number, got str 'a'"),
    ],
)
def test_bad_distributions(make: Any, message: str) -> None:
    with pytest.raises(hs.SpaceError, match=message):
        make()


def test_unknown_strategy_lists_valid_ones() -> None:
    with pytest.raises(hs.HypersearchError, match="strategy: unknown strategy 'annealing'; valid: tpe, gp, random, sobol, grid"):
        hs.minimize(noop, {"x": hs.uniform(0, 1)}, strategy="annealing", max_trials=1)


def test_grid_of_continuous_parameter_is_refused_with_a_fix() -> None:
    with pytest.raises(hs.SpaceError, match=r"uniform\(0.0, 1.0\).*resolution"):
        hs.minimize(noop, {"x": hs.uniform(0, 1)}, strategy="grid")
    study = hs.minimize(
        noop, {"x": hs.uniform(0, 1)}, strategy=hs.Grid(resolution=5), verbose=False
    )
    assert sorted(t.params["x"] for t in study.trials) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_resume_with_changed_space_or_direction_is_refused(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    hs.minimize(
        noop,
        {"x": hs.uniform(0, 1), "y": hs.integer(1, 3)},
        max_trials=2,
        storage=url,
        name="c",
        verbose=False,
    )
    with pytest.raises(hs.StudyConflictError) as info:
        hs.minimize(
            noop,
            {"x": hs.uniform(0.5, 2), "z": hs.integer(1, 3)},
            max_trials=2,
            storage=url,
            name="c",
        )
    text = str(info.value)
    assert ("parameter 'x': stored uniform(0.0, 1.0), given uniform(0.5, 2.0): the range is "
            "narrower") in text
    assert "parameter 'y' (integer(1, 3)) is gone" in text and "may only grow" in text
    with pytest.raises(hs.StudyConflictError, match="direction: stored minimize, given maximize"):
        hs.maximize(noop, {"x": hs.uniform(0, 1), "y": hs.integer(1, 3)}, storage=url, name="c")


def test_strategy_may_change_on_resume(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    space = {"x": hs.uniform(0, 1)}
    hs.minimize(noop, space, strategy="random", max_trials=4, storage=url, name="s", verbose=False)
    study = hs.minimize(
        noop, space, strategy="sobol", max_trials=8, storage=url, name="s", verbose=False
    )
    assert len(study.trials) == 8
    assert hs.load_study("s", url).sampler.name == "sobol"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_trials": 0}, "max_trials: expected a positive integer"),
        ({"max_trials": 2.5}, "max_trials: expected a positive integer"),
        ({"n_jobs": 0}, "n_jobs: expected a positive integer"),
        ({"timeout": -1}, "timeout: expected a positive number of seconds"),
        ({"target": "low"}, "target: expected a finite number"),
        ({"storage": "nowhere.db"}, "write sqlite:///nowhere.db"),
        ({"storage": "mysql://x/y"}, "unsupported database"),
        ({"seed": "abc"}, "seed: expected an integer >= 0"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(hs.HypersearchError, match=message):
        hs.minimize(noop, {"x": hs.uniform(0, 1)}, **{"max_trials": 1, **kwargs})


def test_objective_signature_is_checked() -> None:
    with pytest.raises(hs.HypersearchError, match="takes no arguments"):
        hs.minimize(lambda: 0.0, {"x": hs.uniform(0, 1)}, max_trials=1)
    with pytest.raises(hs.HypersearchError, match="needs 3 arguments"):
        hs.minimize(lambda a, b, c: 0.0, {"x": hs.uniform(0, 1)}, max_trials=1)


def test_load_missing_study_names_known_ones(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/l.db"
    hs.minimize(
        noop, {"x": hs.uniform(0, 1)}, max_trials=1, storage=url, name="known", verbose=False
    )
    with pytest.raises(hs.StudyNotFoundError, match=r"no study named 'other'.*\['known'\]"):
        hs.load_study("other", url)


# -- results -----------------------------------------------------------------------------------


def test_records_and_dataframe() -> None:
    study = hs.minimize(
        conditional_objective, OPTIMIZER_SPACE, max_trials=10, seed=0, verbose=False
    )
    records = study.to_records()
    assert len(records) == 10
    assert {"number", "state", "value", "params.optimizer", "params.layers", "duration"} <= set(
        records[0]
    )
    assert records[0]["params.optimizer"] in (0, 1)
    pd = pytest.importorskip("pandas")
    frame = study.to_dataframe()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 10


def test_records_show_plain_choice_values() -> None:
    study = hs.minimize(
        noop, {"act": hs.choice(["relu", "tanh"])}, max_trials=4, seed=0, verbose=False
    )
    assert {r["params.act"] for r in study.to_records()} <= {"relu", "tanh"}


def test_best_before_any_complete_trial_is_a_clear_error() -> None:
    study = hs.create_study({"x": hs.uniform(0, 1)})
    with pytest.raises(ValueError, match="no completed trial"):
        _ = study.best_value


def slow_noop(params: dict[str, Any]) -> float:
    time.sleep(0.3)  # long enough that both workers get trials, even on a loaded machine
    return 0.0


def test_trials_record_their_worker_process() -> None:
    study = hs.minimize(slow_noop, {"x": hs.uniform(0, 1)}, max_trials=8, n_jobs=2, verbose=False)
    workers = {t.worker for t in study.trials}
    assert len(workers) == 2 and all(w and ":" in w for w in workers)
    assert str(os.getpid()) not in {w.split(":")[1] for w in workers}  # type: ignore[union-attr]
    study = hs.minimize(noop, {"x": hs.uniform(0, 1)}, max_trials=2, verbose=False)
    assert {t.worker.split(":")[1] for t in study.trials} == {str(os.getpid())}  # type: ignore[union-attr]


def test_storage_from_environment(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/env.db"
    monkeypatch.setenv("HYPERSEARCH_STORAGE", url)
    hs.minimize(noop, {"x": hs.uniform(0, 1)}, max_trials=3, name="env", verbose=False)
    assert len(hs.load_study("env", url).trials) == 3


def test_objective_the_workers_cannot_load_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import types

    ghost = types.ModuleType("ghost_module_not_on_disk")
    exec("def objective(params):\n    return 0.0\n", ghost.__dict__)
    monkeypatch.setitem(sys.modules, "ghost_module_not_on_disk", ghost)
    start = time.monotonic()
    with pytest.raises(hs.HypersearchError, match="cannot load the objective"):
        hs.minimize(ghost.objective, {"x": hs.uniform(0, 1)}, max_trials=5, n_jobs=2, verbose=False)
    assert time.monotonic() - start < 20


MP_MAIN_SCRIPT = """
import multiprocessing as mp
import hypersearch as hs

def objective(params):
    return params["x"]

def run():
    study = hs.minimize(objective, {"x": hs.uniform(0, 1)}, max_trials=10, n_jobs=2, verbose=False)
    print("complete", sum(t.state.value == "COMPLETE" for t in study.trials))

if __name__ == "__main__":
    process = mp.get_context("spawn").Process(target=run)
    process.start()
    process.join()
"""


def test_parallel_study_inside_a_multiprocessing_child(tmp_path: Any) -> None:
    import subprocess

    path = tmp_path / "mp_main.py"
    path.write_text(MP_MAIN_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, timeout=120
    )
    assert "complete 10" in result.stdout, result.stderr
