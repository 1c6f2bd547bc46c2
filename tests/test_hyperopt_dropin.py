"""hypersearch.hyperopt: hyperopt's API and result shapes on hypersearch's engine."""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from hypersearch.errors import HypersearchError, SpaceError
from hypersearch.hyperopt import (
    STATUS_FAIL,
    STATUS_OK,
    Trials,
    anneal,
    fmin,
    hp,
    rand,
    space_eval,
    tpe,
)
from hypersearch.hyperopt.early_stop import no_progress_loss
from hypersearch.hyperopt.exceptions import DuplicateLabel, InvalidLoss, InvalidResultStatus
from hypersearch.hyperopt.pyll import scope
from hypersearch.hyperopt.pyll.stochastic import sample

SPACE = {
    "lr": hp.loguniform("lr", np.log(1e-4), np.log(1e-1)),
    "layers": scope.int(hp.quniform("layers", 1, 4, 1)),
    "opt": hp.choice("opt", [{"name": "adam"}, {"name": "sgd", "momentum": hp.uniform("momentum", 0, 0.9)}]),
    "act": hp.choice("act", ["relu", "tanh", None]),
}


def _loss(p: dict) -> float:
    return abs(np.log10(p["lr"]) + 2) + p["layers"] * 0.1 + (p["opt"]["name"] == "sgd") * 0.5


def _run(**kw: object) -> tuple[dict, Trials]:
    trials = kw.pop("trials", None)
    trials = Trials() if trials is None else trials  # not `or`: an empty Trials is falsy
    best = fmin(_loss, SPACE, algo=kw.pop("algo", rand.suggest), max_evals=kw.pop("max_evals", 20),
                trials=trials, rstate=kw.pop("rstate", np.random.default_rng(0)),
                show_progressbar=False, **kw)
    return best, trials


def test_results_have_hyperopt_shapes() -> None:
    best, trials = _run()
    assert set(best) <= {"lr", "layers", "opt", "momentum", "act"}
    assert best["opt"] in (0, 1) and best["act"] in (0, 1, 2)  # choice indices
    assert isinstance(best["layers"], float)  # quniform under scope.int: the trial keeps the float
    point = space_eval(SPACE, best)
    assert point["opt"]["name"] in ("adam", "sgd") and isinstance(point["layers"], int)
    assert len(trials) == 20 and trials.tids == list(range(20))
    doc = trials.trials[0]
    assert set(doc) >= {"tid", "state", "result", "misc", "book_time", "refresh_time", "exp_key",
                        "owner", "spec", "version"}
    assert set(doc["misc"]) == {"tid", "idxs", "vals", "cmd", "workdir"}
    assert set(doc["misc"]["vals"]) == {"lr", "layers", "opt", "momentum", "act"}
    inactive = [t for t in trials if t["misc"]["vals"]["opt"] == [0]]
    assert inactive and all(t["misc"]["vals"]["momentum"] == [] for t in inactive)
    assert trials.best_trial["result"]["loss"] == min(trials.losses())
    assert trials.argmin == best and trials.statuses() == ["ok"] * 20
    assert len(trials.vals["lr"]) == 20 and trials.idxs["lr"] == list(range(20))
    assert trials.average_best_error() == min(trials.losses())


def test_hyperopt_conventions_of_hp() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        assert 1.0 <= sample(hp.loguniform("a", 0, 1), rng) <= np.e
        assert sample(hp.randint("b", 3)) in (0, 1, 2)
        assert sample(hp.randint("c", 5, 8)) in (5, 6, 7)
        assert sample(hp.quniform("d", 0, 10, 2.5)) in (0.0, 2.5, 5.0, 7.5, 10.0)
        assert isinstance(sample(hp.uniformint("e", 1, 3)), int)
        assert sample(hp.qlognormal("f", 0, 1, 1)) % 1 == 0
    weights = [sample(hp.pchoice("g", [(0.9, "a"), (0.1, "b")]), rng) for _ in range(500)]
    assert 400 < weights.count("a") < 490
    assert space_eval([hp.uniform("x", 0, 1), [1, 2]], {"x": 0.5}) == (0.5, (1, 2))  # as hyperopt


def test_space_errors_are_precise() -> None:
    with pytest.raises(DuplicateLabel, match="'x'"):
        fmin(lambda p: 0, [hp.uniform("x", 0, 1), hp.normal("x", 0, 1)], max_evals=1)
    shared = hp.uniform("x", 0, 1)
    best = fmin(lambda p: p[0] + p[1], [shared, shared], algo=rand.suggest, max_evals=3,
                show_progressbar=False)
    assert set(best) == {"x"}  # one node used twice is one parameter
    with pytest.raises(SpaceError, match=r"hp.uniform\('y', 1, 0\): low must be less than high"):
        hp.uniform("y", 1, 0)
    with pytest.raises(SpaceError, match="label must be a non-empty string"):
        hp.choice(3, [1, 2])
    with pytest.raises(HypersearchError, match="max_evals must be a non-negative integer"):
        fmin(lambda p: 0, hp.uniform("x", 0, 1), max_evals="10")
    with pytest.raises(HypersearchError, match=r"not one of hypersearch\.hyperopt's tpe\.suggest"):
        fmin(lambda p: 0, hp.uniform("x", 0, 1), algo=lambda *a: [], max_evals=1)
    with pytest.raises(NotImplementedError, match="pass_expr_memo_ctrl"):
        fmin(lambda p: 0, hp.uniform("x", 0, 1), max_evals=1, pass_expr_memo_ctrl=True)
    with pytest.raises(SpaceError, match="not labels of the space"):
        fmin(lambda p: 0, hp.uniform("x", 0, 1), max_evals=1, points_to_evaluate=[{"z": 1}])
    with pytest.raises(ImportError, match="no atpe"):
        import hypersearch.hyperopt.atpe  # noqa: F401


def test_continuing_trials_runs_only_the_difference() -> None:
    trials = Trials()
    _run(trials=trials, max_evals=10)
    calls = []
    fmin(lambda p: calls.append(p) or _loss(p), SPACE, algo=tpe.suggest, max_evals=25,
         trials=trials, show_progressbar=False)
    assert len(calls) == 15 and len(trials) == 25 and trials.tids == list(range(25))
    assert len(trials.study.trials) == 25


def test_rstate_reproducible_for_generator_and_randomstate() -> None:
    for algo in (rand.suggest, tpe.suggest, anneal.suggest):
        first = _run(algo=algo, max_evals=25, rstate=np.random.default_rng(7))[1].vals
        again = _run(algo=algo, max_evals=25, rstate=np.random.default_rng(7))[1].vals
        other = _run(algo=algo, max_evals=25, rstate=np.random.default_rng(8))[1].vals
        assert first == again and first != other
    legacy = _run(rstate=np.random.RandomState(3))[1].vals
    assert legacy == _run(rstate=np.random.RandomState(3))[1].vals


def test_tpe_knobs_map_and_find_the_minimum() -> None:
    trials = Trials()
    algo = functools.partial(tpe.suggest, n_startup_jobs=5, gamma=0.25, n_EI_candidates=32)
    best = fmin(lambda x: (x - 3) ** 2, hp.uniform("x", -5, 5), algo=algo, max_evals=40,
                trials=trials, rstate=np.random.default_rng(0), show_progressbar=False)
    sampler = trials.study.sampler
    assert (sampler.n_startup, sampler.n_candidates) == (5, 32)
    assert abs(best["x"] - 3) < 0.25
    with pytest.raises(HypersearchError, match=r"tpe.suggest: .*unexpected keyword"):
        fmin(lambda x: x, hp.uniform("x", 0, 1), algo=functools.partial(tpe.suggest, bogus=1),
             max_evals=1)


def test_result_dicts_follow_hyperopt_rules() -> None:
    def objective(x: float) -> dict:
        if x < 0:
            return {"status": STATUS_FAIL, "why": "negative"}
        return {"loss": x, "status": STATUS_OK, "true_loss": 2 * x, "attachments": {"log": "hi"}}

    trials = Trials()
    fmin(objective, hp.uniform("x", -1, 1), algo=rand.suggest, max_evals=20, trials=trials,
         rstate=np.random.default_rng(0), show_progressbar=False)
    failed = [t for t in trials if t["result"]["status"] == STATUS_FAIL]
    assert failed and all("loss" not in t["result"] for t in failed)
    best = trials.best_trial
    assert best["result"]["true_loss"] == 2 * best["result"]["loss"]
    assert "attachments" not in best["result"]
    assert trials.trial_attachments(best)["log"] == "hi"
    assert trials.average_best_error() == best["result"]["true_loss"]
    with pytest.raises(InvalidResultStatus, match="needs a 'status'"):
        fmin(lambda x: {"loss": 1.0}, hp.uniform("x", 0, 1), max_evals=1, show_progressbar=False)
    with pytest.raises(InvalidLoss, match="numeric 'loss'"):
        fmin(lambda x: {"status": "ok"}, hp.uniform("x", 0, 1), max_evals=1, show_progressbar=False)


def test_exceptions_propagate_or_become_errors() -> None:
    def boom(x: float) -> float:
        raise RuntimeError("bad luck")

    trials = Trials()
    with pytest.raises(RuntimeError, match="bad luck"):
        fmin(boom, hp.uniform("x", 0, 1), max_evals=3, trials=trials, show_progressbar=False)
    assert len(trials) == 0 and len(trials._dynamic_trials) == 1
    trials = Trials()
    assert fmin(boom, hp.uniform("x", 0, 1), max_evals=3, trials=trials, return_argmin=False,
                catch_eval_exceptions=True, show_progressbar=False) is None
    assert [t["state"] for t in trials._dynamic_trials] == [3, 3, 3]
    assert trials._dynamic_trials[0]["misc"]["error"] == ("<class 'RuntimeError'>", "bad luck")
    assert [t.state.value for t in trials.study.trials] == ["FAILED"] * 3


def test_hyperas_style_objective_keeps_its_model_in_memory(tmp_path: Path) -> None:
    class Model:
        def __init__(self, units: int) -> None:
            self.units = units

    def create_model(params: dict) -> dict:
        model = Model(params["units"])
        return {"loss": -params["units"] / 100, "status": STATUS_OK, "model": model, "acc": 0.5}

    trials = Trials(storage=f"sqlite:///{tmp_path / 'h.db'}", name="hyperas")
    best = fmin(create_model, {"units": hp.choice("units", [16, 64, 256])}, algo=tpe.suggest,
                max_evals=8, trials=trials, rstate=np.random.default_rng(0), show_progressbar=False)
    assert isinstance(trials.best_trial["result"]["model"], Model)
    assert trials.best_trial["result"]["model"].units == [16, 64, 256][best["units"]]
    stored = trials.study.trials[0]
    assert stored.user_attrs["hyperopt_result"].keys() == {"loss", "status", "acc"}
    assert stored.metrics["acc"] == 0.5
    reloaded = Trials(storage=f"sqlite:///{tmp_path / 'h.db'}", name="hyperas")
    assert [r.get("model") for r in reloaded.results] == [None] * 8  # not JSON: not stored


def test_early_stop_and_points_to_evaluate() -> None:
    trials = Trials()
    fmin(lambda x: x, hp.uniform("x", -5, 5), algo=rand.suggest, max_evals=500, trials=trials,
         points_to_evaluate=[{"x": -100.0}], early_stop_fn=no_progress_loss(10),
         rstate=np.random.default_rng(0), show_progressbar=False)
    assert trials.trials[0]["misc"]["vals"]["x"] == [-100.0] and len(trials) == 10
    best = fmin(lambda p: p["x"] ** 2 + p["y"] ** 2,
                {"x": hp.uniform("x", -10, 10), "y": hp.choice("y", [3, 0])}, algo=tpe.suggest,
                max_evals=5, points_to_evaluate=[{"x": 0.0, "y": 1}], show_progressbar=False)
    assert best == {"x": 0.0, "y": 1}


def test_storage_trials_survive_the_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    script = textwrap.dedent(f"""
        import numpy as np
        from hypersearch.hyperopt import Trials, fmin, hp, tpe
        space = {{"x": hp.uniform("x", -5, 5), "c": hp.choice("c", ["a", {{"z": hp.normal("z", 0, 1)}}])}}
        def f(p):
            return (p["x"] - 1) ** 2 + (0 if p["c"] == "a" else p["c"]["z"] ** 2)
        trials = Trials(storage={url!r}, name="demo")
        n = int(__import__("sys").argv[1])
        print(fmin(f, space, algo=tpe.suggest, max_evals=n, trials=trials,
                   rstate=np.random.default_rng(0), show_progressbar=False), len(trials))
    """)
    (tmp_path / "run.py").write_text(script)
    for n in (6, 10):
        out = subprocess.run([sys.executable, "run.py", str(n)], cwd=tmp_path, capture_output=True,
                             text=True, check=True, timeout=120).stdout
        assert out.strip().endswith(f" {n}")
    trials = Trials(storage=url, name="demo")
    assert len(trials) == 10 and trials.tids == list(range(10))
    assert set(trials.trials[0]["misc"]["vals"]) == {"c", "x", "z"}
    assert trials.argmin["c"] in (0, 1) and trials.results[0]["status"] == STATUS_OK


def test_a_killed_searchs_running_trial_is_reclaimed(tmp_path: Path) -> None:
    """hyperopt's #270: a MongoTrials worker killed mid-trial left it RUNNING for ever. Here the
    next fmin on the same storage fails it stale and runs its parameters again."""
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    (tmp_path / "run.py").write_text(textwrap.dedent(f"""
        import pathlib, time
        from hypersearch.hyperopt import Trials, fmin, hp, rand
        def f(p):
            pathlib.Path("started").touch()
            time.sleep(float(__import__("sys").argv[1]))
            return p["x"] ** 2
        trials = Trials(storage={url!r}, name="kill")
        fmin(f, {{"x": hp.uniform("x", -1, 1)}}, algo=rand.suggest, max_evals=4, trials=trials,
             show_progressbar=False)
    """))
    doomed = subprocess.Popen([sys.executable, "run.py", "60"], cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "started").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        doomed.kill()  # SIGKILL in the middle of trial 0
        doomed.wait()
    subprocess.run([sys.executable, "run.py", "0"], cwd=tmp_path, check=True, timeout=120)
    study = Trials(storage=url, name="kill").study
    assert study is not None
    first, rerun = study.trial(0), study.trial(1)
    assert (first.state.value, first.failure_reason) == ("FAILED", "stale")
    assert rerun.parent_number == 0 and rerun.params == first.params
    assert sum(t.state.value == "COMPLETE" for t in study.trials) == 4
    assert not [t for t in study.trials if t.state.value == "RUNNING"]


def test_fmin_processes_sharing_a_stored_trials_share_max_evals(tmp_path: Path) -> None:
    """MongoTrials' use: the same script on several machines, one database. max_evals is
    the total between them, and each ends knowing every trial."""
    url = f"sqlite:///{tmp_path / 'hpo.db'}"
    (tmp_path / "run.py").write_text(textwrap.dedent(f"""
        import time
        from hypersearch.hyperopt import Trials, fmin, hp, tpe
        def f(p):
            time.sleep(0.05)
            return (p["x"] - 1) ** 2
        trials = Trials(storage={url!r}, name="shared")
        best = fmin(f, {{"x": hp.uniform("x", -3, 3)}}, algo=tpe.suggest, max_evals=16,
                    trials=trials, show_progressbar=False)
        print(len(trials))
    """))
    runs = [subprocess.Popen([sys.executable, "run.py"], cwd=tmp_path, text=True,
                             stdout=subprocess.PIPE) for _ in range(2)]
    seen = [int(run.communicate(timeout=120)[0].split()[-1]) for run in runs]
    assert all(run.returncode == 0 for run in runs)
    study = Trials(storage=url, name="shared").study
    assert study is not None and len(study.trials) == 16
    assert {t.state.value for t in study.trials} == {"COMPLETE"}
    assert max(seen) == 16 and min(seen) >= 8  # the last to end saw them all


def test_hyperopt_docs_example_shapes() -> None:
    # hyperopt's README example: a conditional space, argmin with indices, space_eval values
    space = hp.choice("a", [("case 1", 1 + hp.lognormal("c1", 0, 1)), ("case 2", hp.uniform("c2", -10, 10))])

    def objective(args: tuple) -> float:
        case, val = args
        return val if case == "case 1" else val**2

    best = fmin(objective, space, algo=tpe.suggest, max_evals=100, show_progressbar=False,
                rstate=np.random.default_rng(0))
    assert best.keys() in ({"a", "c1"}, {"a", "c2"})
    case, _ = space_eval(space, best)
    assert case in ("case 1", "case 2") and (best["a"] == 0) == (case == "case 1")
    assert space_eval(space, {"a": 0, "c1": 1.0}) == ("case 1", 2.0)


def test_annotated_space_and_trials_fmin() -> None:
    def objective(x: hp.uniform("x", -1, 1), y: hp.choice("y", [1, 2])) -> float:  # type: ignore[valid-type]
        return x * y

    trials = Trials()
    best = trials.fmin(objective, "annotated", algo=rand.suggest, max_evals=5, show_progressbar=False)
    assert set(best) == {"x", "y"} and len(trials) == 5


def test_timeout_and_loss_threshold() -> None:
    trials = Trials()
    fmin(lambda x: x**2, hp.uniform("x", -1, 1), algo=rand.suggest, loss_threshold=0.05,
         trials=trials, rstate=np.random.default_rng(0), show_progressbar=False)
    assert trials.best_trial["result"]["loss"] < 0.05 and 0 < len(trials) < 200
    with pytest.raises(HypersearchError, match="The timeout argument should be None or a positive"):
        fmin(lambda x: x, hp.uniform("x", 0, 1), timeout=-1, max_evals=1)
