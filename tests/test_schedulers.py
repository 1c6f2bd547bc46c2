"""Schedulers: decisions on hand-computed cases, a simulated clock with 8 workers, every entry
point (Python, YAML, command line), stored and restored, and real shell commands stopped."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import hypersearch as hs
from hypersearch.schedulers import ASHA, Hyperband, Median, SchedulerError, make_scheduler
from hypersearch.settings import SettingError
from hypersearch.trial import Decision, TrialState
from tests.simulation import simulate

SPACE = {"x": hs.uniform(0.0, 1.0)}


def study_with(scheduler: str, storage: str = "memory", **options: Any) -> hs.Study:
    return hs.create_study(
        SPACE, strategy="random", seed=0, storage=storage,
        scheduler=scheduler, scheduler_options=options,
    )  # fmt: skip


def run_curve(study: hs.Study, losses: dict[int, float]) -> tuple[list[Decision], int]:
    """One asked trial reporting `losses` by step until told to stop; (decisions, trial number)."""
    trial = study.ask()
    decisions = []
    for step, loss in losses.items():
        decisions.append(trial.report(step, loss=loss))
        if trial.should_stop():
            study.tell(trial, state="pruned")
            return decisions, trial.number
    study.tell(trial, list(losses.values())[-1])
    return decisions, trial.number


# -- hand-computed decisions ------------------------------------------------------------------


def test_asha_keeps_the_best_fraction_at_each_rung_counting_itself() -> None:
    study = study_with("asha", reduction_factor=2)
    # rung 1 values in arrival order; keep max(1, n // 2) best of the n that reached it
    expected = {5.0: "CONTINUE", 3.0: "CONTINUE", 4.0: "STOP", 1.0: "CONTINUE",
                2.0: "CONTINUE", 6.0: "STOP"}  # fmt: skip
    for value, decision in expected.items():
        decisions, _ = run_curve(study, {1: value})
        assert decisions[-1].value == decision, value
    assert [t.state for t in study.trials].count(TrialState.PRUNED) == 2


def test_asha_decides_only_when_a_rung_is_crossed() -> None:
    study = study_with("asha", min_resource=1, reduction_factor=3, max_resource=9)
    run_curve(study, {s: 1.0 for s in range(1, 10)})  # the first trial passes every rung
    # rungs 1, 3 (9 is the full budget): worse at step 2 is no rung, so no decision there
    decisions, _ = run_curve(study, {1: 0.5, 2: 5.0, 3: 0.9, 4: 5.0, 9: 5.0})
    assert [d.value for d in decisions] == ["CONTINUE"] * 5
    decisions, _ = run_curve(study, {1: 0.4, 2: 0.1, 3: 2.0})  # best at 1, worst at 3
    assert [d.value for d in decisions] == ["CONTINUE", "CONTINUE", "STOP"]


def test_asha_on_maximize_keeps_the_highest() -> None:
    study = hs.create_study(
        SPACE,
        direction="maximize",
        strategy="random",
        storage="memory",
        scheduler="asha",
        scheduler_options={"reduction_factor": 2},
    )
    assert run_curve(study, {1: 0.5})[0] == [Decision.CONTINUE]
    assert run_curve(study, {1: 0.9})[0] == [Decision.CONTINUE]
    assert run_curve(study, {1: 0.1})[0] == [Decision.STOP]


def test_median_follows_optunas_median_pruner() -> None:
    study = study_with("median", n_startup_trials=2, n_warmup_steps=1)
    run_curve(study, {0: 1.0, 1: 0.8, 2: 0.6})
    # one completed trial: below n_startup_trials, nothing is judged
    assert run_curve(study, {0: 9.0, 1: 9.0, 2: 9.0})[0] == [Decision.CONTINUE] * 3
    run_curve(study, {0: 1.0, 1: 0.4, 2: 0.2})
    # completed at step 1: [0.8, 9.0, 0.4] -> median 0.8; step 0 is warm-up
    decisions, _ = run_curve(study, {0: 50.0, 1: 0.85})
    assert decisions == [Decision.CONTINUE, Decision.STOP]
    # judged on its best so far: 0.3 at step 0 counts at step 1 too
    decisions, _ = run_curve(study, {0: 0.3, 1: 5.0, 2: 0.5})
    assert decisions == [Decision.CONTINUE] * 3


def test_median_interval_judges_the_first_report_past_each_boundary() -> None:
    study = study_with("median", n_startup_trials=1, interval_steps=3)
    run_curve(study, {s: 1.0 for s in range(10)})
    decisions, _ = run_curve(study, {1: 5.0, 2: 5.0, 4: 5.0})
    # boundaries 0, 3, 6: step 1 is the first report past 0 (judged), 2 is not, 4 is past 3
    assert decisions == [Decision.STOP]
    # judged at 1 (past 0), 4 (past 3) and 6: only at 6 is the completed one better (0.1)
    study = study_with("median", n_startup_trials=1, interval_steps=3)
    run_curve(study, {s: 1.0 if s < 6 else 0.1 for s in range(10)})
    decisions, _ = run_curve(study, {1: 0.5, 2: 0.5, 4: 0.5, 5: 0.5, 6: 0.5})
    assert decisions == [Decision.CONTINUE] * 4 + [Decision.STOP]


def test_percentile_threshold_and_patience() -> None:
    study = study_with("percentile", percentile=25.0, n_startup_trials=4)
    for value in (1.0, 2.0, 3.0, 4.0):
        run_curve(study, {0: value})
    # 25th percentile of [1, 2, 3, 4] is 1.75 (linear, as numpy): 1.5 goes on
    assert run_curve(study, {0: 1.5})[0] == [Decision.CONTINUE]
    # now [1, 1.5, 2, 3, 4]: the 25th percentile is 1.5
    assert run_curve(study, {0: 1.6})[0] == [Decision.STOP]
    study = study_with("threshold", upper=2.0)
    assert run_curve(study, {0: 1.0, 1: 2.5})[0] == [Decision.CONTINUE, Decision.STOP]
    assert run_curve(study, {0: math.nan})[0] == [Decision.STOP]
    study = study_with("patience", patience=2)
    decisions, _ = run_curve(study, {0: 1.0, 1: 0.9, 2: 0.95, 3: 0.92, 4: 0.1})
    assert decisions == [Decision.CONTINUE] * 3 + [Decision.STOP]
    # min_delta (Optuna's): 0.85 improves on 0.9 by 0.05, not by more than 0.1
    study = study_with("patience", patience=2, min_delta=0.1)
    decisions, _ = run_curve(study, {0: 1.0, 1: 0.9, 2: 0.95, 3: 0.85, 4: 0.1})
    assert decisions == [Decision.CONTINUE] * 3 + [Decision.STOP]
    decisions, _ = run_curve(study, {0: 1.0, 1: 0.9, 2: 0.95, 3: 0.7, 4: 0.72, 5: 0.71})
    assert decisions == [Decision.CONTINUE] * 5 + [Decision.STOP], "0.7 beat 0.9 by 0.2"
    with pytest.raises(hs.HypersearchError, match="min_delta must be a number"):
        study_with("patience", min_delta=-1)


def test_hyperband_brackets_follow_hyperbands_proportions() -> None:
    band = Hyperband(min_resource=1, max_resource=27, reduction_factor=3)
    assert band.brackets == 4  # rungs from 1, 3, 9 and 27 (no stopping)
    counts = [0] * 4
    for number in range(20_000):
        counts[band.bracket_of(number)] += 1
    shares = [c / 20_000 for c in counts]
    # Li et al.: 27, 12, 6, 4 configurations per bracket (of 49)
    for share, expected in zip(shares, (27 / 49, 12 / 49, 6 / 49, 4 / 49), strict=True):
        assert abs(share - expected) < 0.01
    assert band.rung_below(0, 2) == 1 and band.rung_below(1, 2) is None
    assert band.rung_below(1, 26) == 9 and band.rung_below(2, 27) == 27


def test_hyperband_judges_a_trial_only_within_its_bracket() -> None:
    study = study_with("hyperband", min_resource=1, max_resource=9, reduction_factor=3)
    band = study.definition.build_scheduler()
    assert isinstance(band, Hyperband) and band.brackets == 3
    stopped_at: dict[int, int] = {}
    for _ in range(60):
        trial = study.ask()
        for step in range(1, 10):
            if trial.report(step, loss=float(trial.number % 7) + 1.0 / step) is Decision.STOP:
                stopped_at[trial.number] = step
                study.tell(trial, state="pruned")
                break
        else:
            study.tell(trial, 0.0)
    for number, step in stopped_at.items():
        first = 3 ** band.bracket_of(number)
        assert step >= first and step in (1, 3)  # stopped only at its own bracket's rungs
    assert all(band.bracket_of(n) < 2 for n in stopped_at)  # bracket 2 starts at 9: never


# -- a simulated clock: 8 workers, heterogeneous durations, thousands of trials ----------------


def test_asha_keeps_eight_simulated_workers_busy_over_thousands_of_trials() -> None:
    result = simulate("asha", trials=2000, max_resource=27, reduction_factor=3)
    assert result["pruned"] + result["complete"] == 2000
    assert result["busy"] >= 0.95
    # successive halving's shape: most trials stop at the first rungs
    assert result["complete"] < 0.15 * 2000
    assert result["epochs"] < 0.2 * 2000 * 27


def test_hyperband_simulated_spends_less_than_full_training() -> None:
    result = simulate("hyperband", trials=1000, min_resource=1, max_resource=27)
    assert result["pruned"] + result["complete"] == 1000
    assert result["busy"] >= 0.95
    assert result["epochs"] < 0.5 * 1000 * 27  # bracket 3 trains in full; the rest halve


# -- what reaches the trial --------------------------------------------------------------------


def pruned_objective(params: dict[str, float], trial: hs.Trial) -> float:
    loss = 0.0
    for epoch in range(1, 10):
        loss = params["x"] + 1.0 / epoch
        trial.report(epoch, loss=loss)
        if trial.should_prune():  # Optuna's name
            raise hs.TrialPruned()
    return loss


def test_a_pruned_python_trial_keeps_its_last_reported_value_and_reason() -> None:
    study = hs.minimize(pruned_objective, SPACE, strategy="random", seed=2, max_trials=20,
                        storage="memory", scheduler="asha", verbose=False)  # fmt: skip
    pruned = study.get_trials(["pruned"])
    assert pruned, "ASHA stopped nothing in 20 trials"
    for trial in pruned:
        assert trial.value is not None
        assert trial.failure_detail is not None and trial.failure_detail.startswith("asha: loss")
        curve = [p.value for p in study.storage.get_metrics(trial.id) if p.name == "loss"]
        assert trial.value == curve[-1]


def test_decisions_reach_worker_processes(tmp_path: Path) -> None:
    study = hs.minimize(pruned_objective, SPACE, strategy="random", seed=2, max_trials=12,
                        n_jobs=2, executor="process", storage=f"sqlite:///{tmp_path}/p.db",
                        scheduler="threshold", scheduler_options={"upper": 1.4},
                        verbose=False)  # fmt: skip
    for trial in study.trials:
        expected = TrialState.PRUNED if trial.params["x"] + 1.0 > 1.4 else TrialState.COMPLETE
        assert trial.state is expected, trial
        if expected is TrialState.PRUNED:  # stopped at its first report (epoch 1)
            points = study.storage.get_metrics(trial.id)
            assert [p.step for p in points] == [1]


# -- one scheduler setting on every surface ---------------------------------------------------


def test_a_scheduler_object_is_stored_by_name_and_options_and_restored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    hs.create_study(SPACE, name="s", storage=url, scheduler=ASHA(min_resource=2, brackets=2))
    loaded = hs.load_study("s", url)
    assert loaded.definition.scheduler == "asha"
    assert loaded.definition.scheduler_options == {
        "min_resource": 2, "max_resource": None, "reduction_factor": 3, "brackets": 2,
    }  # fmt: skip
    assert loaded.definition.build_scheduler() == ASHA(min_resource=2, brackets=2)
    changes = loaded.revise(scheduler="median", scheduler_options={"n_startup_trials": 3})
    assert changes["scheduler"] == ["asha", "median"]
    assert isinstance(hs.load_study("s", url).definition.build_scheduler(), Median)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"scheduler": "ashaa"}, "did you mean 'asha'"),
        ({"scheduler": "asha", "scheduler_options": {"reduction": 2}}, "reduction_factor"),
        ({"scheduler": "asha", "scheduler_options": {"reduction_factor": 1}}, ">= 2"),
        ({"scheduler": "hyperband"}, "give max_resource"),
        ({"scheduler_options": {"min_resource": 1}}, "without a scheduler"),
        ({"scheduler": "patience", "scheduler_options": {"wraps": "nope"}}, "unknown scheduler"),
        ({"scheduler": ASHA(), "scheduler_options": {"brackets": 2}}, "not both"),
    ],
)
def test_bad_scheduler_settings_say_what_is_wrong(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingError, match=message):
        hs.create_study(SPACE, storage="memory", **settings)


def test_make_scheduler_refuses_unknown_options_with_the_known_ones() -> None:
    with pytest.raises(SchedulerError, match=r"its options: min_resource, max_resource"):
        make_scheduler("asha", {"eta": 3})


def test_a_study_file_names_the_scheduler(tmp_path: Path) -> None:
    from hypersearch.cli.study_file import parse_study_mapping

    _, settings = parse_study_mapping({
        "objective": "mod:fn", "scheduler": "asha",
        "scheduler_options": {"reduction_factor": 4, "max_resource": 64},
    })  # fmt: skip
    assert settings["scheduler"] == "asha"
    assert settings["scheduler_options"] == {"reduction_factor": 4, "max_resource": 64}


# -- shell commands ---------------------------------------------------------------------------


def write_trainer(tmp_path: Path) -> Path:
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent("""
        import signal, sys, time
        x = float(sys.argv[1])
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # exits within the grace period
        for epoch in range(1, 7):
            print(f"epoch {epoch} loss={x + 1.0 / epoch:.4f}", flush=True)
            time.sleep(0.3 if x > 0.5 else 0.01)
    """)
    )
    return script


def test_a_command_stopped_by_asha_is_pruned_with_its_curve(tmp_path: Path) -> None:
    script = write_trainer(tmp_path)
    study = hs.create_study(SPACE, storage=f"sqlite:///{tmp_path}/c.db", strategy="random",
                            scheduler="asha", scheduler_options={"reduction_factor": 2},
                            grace=5)  # fmt: skip
    for x in (0.1, 0.9):
        study.enqueue({"x": x})
    study.optimize(hs.Command([sys.executable, str(script), ":x:"]), max_trials=2, verbose=False)
    good, bad = study.trials
    assert good.state is TrialState.COMPLETE
    assert bad.state is TrialState.PRUNED, bad
    assert "rung 1" in (bad.failure_detail or "")
    curve = [(p.step, p.value) for p in study.storage.get_metrics(bad.id) if p.name == "loss"]
    assert curve and curve[0][0] == 1 and len(curve) < 6
    assert bad.value == curve[-1][1]
    assert bad.duration is not None and bad.duration < 3.0  # stopped, not run out


def test_the_same_decisions_after_a_resume(tmp_path: Path) -> None:
    """A study run in two parts (closed, loaded again) decides as one run in one go: the
    scheduler reads what storage holds."""
    xs = [0.5, 0.2, 0.9, 0.1, 0.7, 0.3, 0.8, 0.05, 0.6, 0.4]

    def decisions(url: str, parts: list[int]) -> dict[float, tuple[str, int]]:
        study = hs.create_study(
            SPACE,
            name="r",
            storage=url,
            strategy="random",
            scheduler="asha",
            scheduler_options={"max_resource": 9},
        )
        for x in xs:
            study.enqueue({"x": x})
        done = 0
        for part in parts:
            done += part
            study = hs.load_study("r", url)  # a fresh process's view: only storage
            study.optimize(pruned_objective, max_trials=done, verbose=False)
            study.close()
        out = {}
        for trial in hs.load_study("r", url).trials:
            steps = [p.step for p in trial_points(trial, url)]
            out[trial.params["x"]] = (trial.state.value, max(steps))
        return out

    def trial_points(trial: Any, url: str) -> list[Any]:
        return hs.load_study("r", url).storage.get_metrics(trial.id)

    whole = decisions(f"sqlite:///{tmp_path}/a.db", [10])
    split = decisions(f"sqlite:///{tmp_path}/b.db", [4, 6])
    assert whole == split
    assert any(state == "PRUNED" for state, _ in whole.values())


def test_gp_learns_from_pruned_trials() -> None:
    """Under early stopping most trials end PRUNED: GP models them at the value they were
    stopped at, rather than seeing only the few that finished."""
    study = hs.create_study(SPACE, strategy="gp", seed=3, storage="memory")
    for _ in range(15):
        trial = study.ask()
        trial.report(1, loss=(trial.params["x"] - 0.3) ** 2)
        study.tell(trial, state="pruned")
    assert all(t.value is not None for t in study.trials)  # the last reported value
    proposed = []
    for _ in range(5):
        trial = study.ask()
        proposed.append(trial.params["x"])
        study.tell(trial, (trial.params["x"] - 0.3) ** 2)
    assert sorted(abs(x - 0.3) for x in proposed)[2] < 0.05, proposed


KILLED_DRIVER = """
import sys, time
import hypersearch as hs

def objective(params, trial):
    loss = 0.0
    for epoch in range(1, 10):
        loss = params["x"] + 1.0 / epoch
        trial.report(epoch, loss=loss)
        if trial.should_stop():
            raise hs.TrialPruned()
        time.sleep(0.1)
    return loss

hs.load_study("r", sys.argv[1]).optimize(objective, verbose=False)
"""


def test_a_driver_killed_mid_rung_resumes_to_the_same_decisions(tmp_path: Path) -> None:
    """SIGKILL the driver while a trial is between rungs; the resumed study re-runs that trial
    and every trial ends as in a run never interrupted."""
    import sqlite3
    import subprocess
    import time

    xs = [0.5, 0.2, 0.9, 0.1, 0.7, 0.3, 0.8, 0.05, 0.6, 0.4, 0.45, 0.15]

    def create(url: str) -> hs.Study:
        study = hs.create_study(
            SPACE, name="r", storage=url, strategy="random", max_trials=len(xs),
            scheduler="asha", scheduler_options={"max_resource": 9},
        )  # fmt: skip
        for x in xs:
            study.enqueue({"x": x})
        return study

    def outcome(url: str) -> dict[float, tuple[str, int]]:
        study = hs.load_study("r", url)
        out = {}
        for trial in study.trials:
            if trial.state is TrialState.FAILED:
                continue  # the killed attempt; its re-run is what counts
            steps = [p.step for p in study.storage.get_metrics(trial.id)]  # type: ignore[arg-type]
            out[trial.params["x"]] = (trial.state.value, max(steps))
        return out

    whole_url = f"sqlite:///{tmp_path}/whole.db"
    create(whole_url).optimize(pruned_objective, verbose=False)

    path = tmp_path / "killed.db"
    killed_url = f"sqlite:///{path}"
    create(killed_url).close()
    script = tmp_path / "driver.py"
    script.write_text(KILLED_DRIVER)
    driver = subprocess.Popen([sys.executable, str(script), killed_url])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for a trial past rung 1, short of rung 3
            with sqlite3.connect(path) as db:
                row = db.execute(
                    "SELECT t.number, MAX(m.step) FROM trials t JOIN metrics m "
                    "ON m.trial_id = t.id WHERE t.state = 'RUNNING' GROUP BY t.id"
                ).fetchone()
                done = db.execute(
                    "SELECT COUNT(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED')"
                ).fetchone()[0]
            if row is not None and done >= 3 and row[1] in (1, 2):
                break
            time.sleep(0.005)
        else:
            pytest.fail("the driver never reached a trial between rungs")
    finally:
        driver.kill()
        driver.wait()
    study = hs.load_study("r", killed_url)
    study.optimize(pruned_objective, verbose=False)
    failed = study.get_trials(states=["FAILED"])
    assert len(failed) == 1 and failed[0].failure_reason in ("crashed", "stale", "interrupted")
    assert outcome(killed_url) == outcome(whole_url)
    assert any(state == "PRUNED" for state, _ in outcome(whole_url).values())


def test_max_resource_total_is_a_compute_budget_in_reported_steps(tmp_path: Path) -> None:
    """Trials of 9 steps under a budget of 30 steps: the search ends when the fourth finishes
    (27 < 30 <= 36), on any storage; a resume with the budget spent runs nothing, a larger
    budget runs on."""
    for storage in ("memory", f"sqlite:///{tmp_path}/r.db"):
        study = hs.minimize(
            pruned_objective, SPACE, storage=storage, strategy="random", seed=2,
            max_resource_total=30, verbose=False,
        )  # fmt: skip
        assert len(study.trials) == 4
        assert study.storage.resource_used(study.id) == 36
    resumed = hs.load_study(study.name, storage)
    resumed.optimize(pruned_objective, verbose=False)  # already spent: nothing more runs
    assert len(resumed.trials) == 4
    resumed.optimize(pruned_objective, max_resource_total=45, verbose=False)
    assert len(resumed.trials) == 5
