"""Regression tests for the defects a new user found in the command-line tool (issue 8, §5).

Each test is named after its defect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import hypersearch as hs

PY = sys.executable
SQUARE = ["--", PY, "-c", "import sys; print('loss=%s' % float(sys.argv[1]) ** 2)", ":x:"]


def cli(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYPERSEARCH_STORAGE": f"sqlite:///{tmp_path}/hs.db"}
    return subprocess.run(
        [PY, "-m", "hypersearch.cli.main", *args],
        cwd=tmp_path,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_defect_read_only_commands_do_not_create_a_database(tmp_path: Path) -> None:
    for args in (["studies"], ["trials", "s"], ["best", "s"], ["export", "s"], ["logs", "s", "0"]):
        result = cli(tmp_path, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert "no database at" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "hs.db").exists()


def test_defect_file_that_is_not_a_database_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "notes.db").write_text("just some text\n")
    result = cli(tmp_path, "studies", "--storage", f"sqlite:///{tmp_path}/notes.db")
    assert result.returncode == 2
    assert "is not an SQLite database" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("name", ["../escape", "a/b", "x\x01y", "n" * 600])
def test_defect_bad_study_names_are_one_line_exit_2(tmp_path: Path, name: str) -> None:
    result = cli(tmp_path, "random", "-n", "1", "--name", name, "--param", "x=0:1", *SQUARE)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "study name" in result.stderr
    assert not (tmp_path / "hypersearch-runs").exists() or not any(
        (tmp_path / "hypersearch-runs").iterdir()
    )
    assert not (tmp_path / "escape").exists()


def test_defect_study_name_with_a_nul_byte_is_refused_before_any_trial() -> None:
    with pytest.raises(hs.HypersearchError, match="study name") as info:
        hs.minimize(lambda p: 0.0, {"x": hs.uniform(0, 1)}, name="x\x00y", max_trials=1)
    assert "\n" not in str(info.value)


def test_defect_objective_module_with_syntax_error_is_one_line_exit_2(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def objective(params):\n    return params[\n")
    (tmp_path / "study.yaml").write_text(
        "objective: broken:objective\nmax_trials: 2\nspace:\n  x: {uniform: [0, 1]}\n"
    )
    result = cli(tmp_path, "run", "study.yaml")
    assert result.returncode == 2, result.stderr
    assert "syntax error" in result.stderr and "broken.py:2" in result.stderr
    assert "Traceback" not in result.stderr


def test_defect_best_and_export_json_are_valid_json_with_infinities(tmp_path: Path) -> None:
    result = cli(
        tmp_path, "random", "-n", "2", "--seed", "0", "--name", "inf", "--param", "x=0:1",
        "--", PY, "-c", "print('loss=inf')",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    best = cli(tmp_path, "best", "inf", "--json")
    assert json.loads(best.stdout)["value"] == "inf"  # json.loads refuses nothing: strict below
    json.loads(best.stdout, parse_constant=_no_constants)
    export = cli(tmp_path, "export", "inf", "--format", "json")
    records = json.loads(export.stdout, parse_constant=_no_constants)
    assert {r["value"] for r in records} == {"inf"}


def _no_constants(text: str) -> Any:
    raise AssertionError(f"not valid JSON: {text}")


def test_defect_ctrl_c_resume_hint_names_the_storage(tmp_path: Path) -> None:
    import signal
    import time

    storage = f"sqlite:///{tmp_path}/other.db"
    process = subprocess.Popen(
        [PY, "-m", "hypersearch.cli.main", "random", "-n", "5", "--name", "slow",
         "--storage", storage, "--param", "x=0:1", "--", PY, "-c",
         "import time; time.sleep(30)"],
        cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (tmp_path / "other.db").exists():
        time.sleep(0.1)
    time.sleep(1.5)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130
    assert f"hypersearch resume slow --storage {storage}" in stderr
    study = hs.load_study("slow", storage)
    assert not [t for t in study.trials if t.state is hs.TrialState.RUNNING]


def test_defect_see_why_hint_names_a_command_that_shows_failures(tmp_path: Path) -> None:
    result = cli(tmp_path, "random", "-n", "1", "--name", "f", "--param", "x=0:1",
                 "--", PY, "-c", "raise SystemExit(3)")  # fmt: skip
    assert result.returncode == 1
    hint = result.stderr.strip().splitlines()[-1]
    assert "hypersearch trials f --state failed" in hint
    shown = cli(tmp_path, "trials", "f", "--state", "failed")
    assert shown.returncode == 0 and "exit_code" in shown.stdout


def test_defect_search_whose_trials_were_all_pruned_exits_0(tmp_path: Path) -> None:
    result = cli(tmp_path, "random", "-n", "2", "--name", "p", "--param", "x=0:1",
                 "--stop-condition", "loss > 1", "--", PY, "-c",
                 "import time; print('loss=5', flush=True); time.sleep(20)")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "2 pruned" in result.stdout


def test_defect_gpus_per_trial_without_gpus_is_refused(tmp_path: Path) -> None:
    result = cli(tmp_path, "random", "-n", "1", "--gpus-per-trial", "2", "--param", "x=0:1",
                 *SQUARE)  # fmt: skip
    assert result.returncode == 2
    assert "gpus_per_trial: needs gpus" in result.stderr


def test_defect_unknown_option_before_the_command_is_refused_with_a_suggestion(
    tmp_path: Path,
) -> None:
    result = cli(tmp_path, "random", "-n", "1", "--maximise", "--param", "x=0:1", *SQUARE)
    assert result.returncode == 2
    assert "No such option" in result.stderr and "--maximize" in result.stderr


def test_defect_grace_is_an_option(tmp_path: Path) -> None:
    result = cli(tmp_path, "random", "-n", "1", "--name", "g", "--grace", "2.5",
                 "--param", "x=0:1", *SQUARE)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert hs.load_study("g", f"sqlite:///{tmp_path}/hs.db").definition.grace == 2.5


def test_defect_warnings_are_visible_in_the_terminal(tmp_path: Path) -> None:
    result = cli(tmp_path, "random", "-n", "1", "--name", "w", "--param", "x=0:1",
                 "--param", "unused=1:2", *SQUARE)  # fmt: skip
    assert "unused" in result.stderr  # the CLI's own warning
    quiet = cli(tmp_path, "-q", "resume", "w", "-n", "2")
    assert quiet.returncode == 0, quiet.stderr
    assert "WARNING" not in quiet.stderr
    loud = cli(tmp_path, "-v", "resume", "w", "-n", "3")
    assert "INFO: " in loud.stderr  # library logging reaches stderr


def test_defect_progress_count_goes_on_after_a_resume(tmp_path: Path) -> None:
    cli(tmp_path, "random", "-n", "2", "--name", "c", "--param", "x=0:1", *SQUARE)
    result = cli(tmp_path, "resume", "c", "-n", "3")
    assert result.returncode == 0, result.stderr
    assert "[done 3/3" in result.stderr  # not "done 1/3"


def test_defect_second_tell_is_an_error_not_silently_dropped() -> None:
    study = hs.create_study({"x": hs.uniform(0, 1)})
    trial = study.ask()
    study.tell(trial, 0.5)
    with pytest.raises(hs.HypersearchError, match="COMPLETE, not RUNNING"):
        study.tell(trial, 0.1)
    assert study.trial(trial.number).value == 0.5


def test_defect_resume_keeps_the_grid_resolution(tmp_path: Path) -> None:
    result = cli(tmp_path, "grid", "--resolution", "3", "--name", "r", "--param", "x=0:1",
                 *SQUARE)  # fmt: skip
    assert result.returncode == 0, result.stderr
    study = hs.load_study("r", f"sqlite:///{tmp_path}/hs.db")
    assert study.definition.strategy_options == {"resolution": 3}
    assert len(study.trials) == 3
    assert cli(tmp_path, "resume", "r").returncode == 0
    assert len(study.trials) == 3  # the stored 3-point grid is exhausted; no default grid


def test_defect_grid_resolution_applies_to_integer_ranges(tmp_path: Path) -> None:
    result = cli(tmp_path, "grid", "--resolution", "4", "--name", "ints",
                 "--param", "n=1:1000:log:int", *SQUARE[:-1], ":n:")  # fmt: skip
    assert result.returncode == 0, result.stderr
    study = hs.load_study("ints", f"sqlite:///{tmp_path}/hs.db")
    assert sorted(t.params["n"] for t in study.trials) == [1, 10, 100, 1000]
    assert hs.integer(0, 100, step=10).grid(3) == [0, 50, 100]
    assert hs.integer(1, 3).grid(5) == [1, 2, 3]  # never more values than the range has


def test_defect_grid_errors_say_how_to_fix_them_on_every_surface(tmp_path: Path) -> None:
    result = cli(tmp_path, "grid", "--param", "x=0.0:1.0", *SQUARE)
    assert result.returncode == 2
    for form in ("--resolution N", "hs.Grid(resolution=N)", "strategy_options: {resolution: N}"):
        assert form in result.stderr


def test_defect_crashed_trials_are_retried_when_the_policy_says_so() -> None:
    study = hs.create_study({"x": hs.uniform(0, 1)}, retry_on=["crashed"], retries=1)
    study.optimize(_exit_on_first_try, max_trials=2, executor="process", verbose=False)
    trials = study.trials
    crashed = [t for t in trials if t.failure_reason == "crashed"]
    assert crashed and all(
        any(t.parent_number == c.number and t.state is hs.TrialState.COMPLETE for t in trials)
        for c in crashed
    )
    assert sum(t.state is hs.TrialState.COMPLETE for t in trials) == 2


def _exit_on_first_try(params: dict[str, Any], trial: hs.Trial) -> float:
    marker = Path(os.environ.get("TMPDIR", "/tmp")) / f"hs-crash-{os.getppid()}-{params['x']}"
    if not marker.exists():
        marker.write_text("crashed once")
        os._exit(3)
    return float(params["x"])
