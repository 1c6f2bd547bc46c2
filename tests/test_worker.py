"""Issue 11: `hypersearch worker` processes serving stored studies, and the live controls
(`set`, `enqueue`, `workers`, `doctor`).

Real processes on one SQLite file and on PostgreSQL: the budget is exact, a grid point runs
once, no worker fails on a lock, and no connection stays open after the workers leave.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

import hypersearch as hs
from hypersearch.trial import TrialState

PY = sys.executable
OBJECTIVE = """
import time

def f(params):
    time.sleep(params.get("sleep", 0.0))
    return (params["x"] - 0.25) ** 2

def slow(params):
    time.sleep(0.3)
    return params["x"]

def boom(params):
    raise RuntimeError("always")
"""


def _hs(args: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "hypersearch.cli.main", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=180, **kwargs)


def _start_worker(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([PY, "-m", "hypersearch.cli.main", "worker", *args], cwd=cwd,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(workers: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    done = []
    for worker in workers:
        out, err = worker.communicate(timeout=240)
        done.append((worker.returncode, out, err))
    return done


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A study directory holding the objective module, as the working directory."""
    (tmp_path / "wobj.py").write_text(OBJECTIVE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _create(url: str, workdir: Path, name: str, space: Any, **settings: Any) -> hs.Study:
    return hs.create_study(space, name=name, storage=url, **settings)


def _check_invariants(study: hs.Study, charged: int) -> list[hs.FrozenTrial]:
    trials = study.trials
    assert [t.number for t in trials] == list(range(charged)), "numbers dense and unique"
    assert all(t.state is TrialState.COMPLETE for t in trials), {
        t.number: (t.state.value, t.failure_detail) for t in trials if t.state.value != "COMPLETE"}
    assert study.summary().n_trials == charged
    return trials


def test_eight_workers_share_one_budget_exactly(
    url: str, workdir: Path, request: pytest.FixtureRequest
) -> None:
    study = _create(url, workdir, "budget", {"x": hs.uniform(0, 1)}, objective="wobj:f",
                    max_trials=80, strategy="random")
    study.storage.close()
    workers = [_start_worker(["--storage", url, "--study", "budget"], workdir) for _ in range(8)]
    results = _finish(workers)
    for code, _, err in results:
        assert code == 0, err
        assert "locked" not in err.lower() and "Traceback" not in err, err
    reopened = hs.load_study("budget", url)
    trials = _check_invariants(reopened, 80)
    assert len({t.params["x"] for t in trials}) == 80
    ran_here = sum(int(out.split()[2]) for _, out, _ in results if out.startswith("worker done"))
    assert ran_here == 80, [out for _, out, _ in results]
    assert len({t.owner for t in trials}) >= 2, "the workers shared the study"
    reopened.storage.close()
    if url.startswith("postgresql"):
        server = request.getfixturevalue("postgres_server")
        assert server.connections(url) == 0, "a connection outlived its worker"


def test_eight_workers_run_each_grid_point_once(url: str, workdir: Path) -> None:
    space = {"x": hs.choice([i / 10 for i in range(8)]), "n": hs.integer(0, 5)}
    study = _create(url, workdir, "grid", space, objective="wobj:f", strategy="grid")
    study.storage.close()
    workers = [_start_worker(["--storage", url, "--study", "grid"], workdir) for _ in range(8)]
    for code, _, err in _finish(workers):
        assert code == 0, err
    reopened = hs.load_study("grid", url)
    trials = _check_invariants(reopened, 48)
    points = [(t.params["x"], t.params["n"]) for t in trials]
    assert len(set(points)) == 48, "a grid point ran twice"
    reopened.storage.close()


def test_worker_waits_for_a_budget_raised_with_set(workdir: Path) -> None:
    url = f"sqlite:///{workdir}/hs.db"
    study = _create(url, workdir, "grow", {"x": hs.uniform(0, 1)}, objective="wobj:f",
                    max_trials=3, strategy="random")
    study.optimize(verbose=False)
    worker = _start_worker(["--storage", url, "--study", "grow", "--idle-exit", "6"], workdir)
    time.sleep(2.0)
    assert worker.poll() is None, "an idle worker with --idle-exit waits for work"
    changed = _hs(["set", "grow", "--storage", url, "--max-trials", "7"], workdir)
    assert changed.returncode == 0 and "max_trials: 3 -> 7" in changed.stderr, changed.stderr
    code, out, err = _finish([worker])[0]
    assert code == 0, err
    assert "4 trial(s) of 'grow'" in out
    _check_invariants(hs.load_study("grow", url), 7)


def test_max_running_caps_the_study_across_every_worker(url: str, workdir: Path) -> None:
    """`set --max-running 2`: three one-slot workers never run more than two trials of the
    study at once, and do run two (so the count is the study's, not one process's: each claim
    counts the running trials under the study lock)."""
    _create(url, workdir, "capped", {"x": hs.uniform(0, 1)}, objective="wobj:slow",
            max_trials=14, strategy="random")
    changed = _hs(["set", "capped", "--storage", url, "--max-running", "2"], workdir)
    assert changed.returncode == 0 and "max_running: None -> 2" in changed.stderr, changed.stderr
    workers = [_start_worker(["--storage", url, "--study", "capped", "--slots", "1"], workdir)
               for _ in range(3)]
    study = hs.load_study("capped", url)
    most = 0
    while any(w.poll() is None for w in workers):
        most = max(most, study.summary().counts.get(TrialState.RUNNING.value, 0))
        time.sleep(0.05)
    assert [code for code, _, _ in _finish(workers)] == [0, 0, 0]
    assert most == 2, f"at most 2 trials ran at once, and 2 did (saw {most})"
    _check_invariants(study, 14)


def test_set_lowers_the_budget_of_a_running_worker(workdir: Path) -> None:
    url = f"sqlite:///{workdir}/hs.db"
    _create(url, workdir, "shrink", {"x": hs.uniform(0, 1)}, objective="wobj:slow",
            max_trials=100, strategy="random")
    worker = _start_worker(["--storage", url, "--study", "shrink"], workdir)
    time.sleep(2.5)
    changed = _hs(["set", "shrink", "--storage", url, "--max-trials", "12"], workdir)
    assert changed.returncode == 0, changed.stderr
    study = hs.load_study("shrink", url)
    at_set = study.summary().n_trials
    code, _, err = _finish([worker])[0]
    assert code == 0, err
    # read within REFRESH_EVERY (2 s): at most that many more 0.3 s trials start meanwhile
    assert study.summary().n_trials <= max(12, at_set + 8), (at_set, study.summary())


def test_max_trials_here_and_all_studies_in_turn(workdir: Path) -> None:
    url = f"sqlite:///{workdir}/hs.db"
    for name in ("a", "b"):
        _create(url, workdir, name, {"x": hs.uniform(0, 1)}, objective="wobj:f",
                max_trials=6, strategy="random")
    capped = _hs(["worker", "--storage", url, "--all", "--max-trials-here", "4"], workdir)
    assert capped.returncode == 0, capped.stderr
    counts = {n: hs.load_study(n, url).summary().n_trials for n in ("a", "b")}
    assert counts == {"a": 2, "b": 2}, "studies take turns, one round of slots each"
    rest = _hs(["worker", "--storage", url, "--all", "--slots", "2"], workdir)
    assert rest.returncode == 0, rest.stderr
    for name in ("a", "b"):
        _check_invariants(hs.load_study(name, url), 6)
    idle = _hs(["worker", "--storage", url, "--all"], workdir)
    assert idle.returncode == 0 and "no study" in idle.stderr and "has work left" in idle.stderr


def test_worker_usage_errors_exit_2(workdir: Path) -> None:
    url = f"sqlite:///{workdir}/hs.db"
    study = hs.create_study({"x": hs.uniform(0, 1)}, name="local", storage=url)
    study.optimize(lambda p: p["x"], max_trials=1, verbose=False)  # in-process only
    cases = {
        (): "--study NAME, or serve every study with --all",
        ("--study", "local", "--all"): "--study NAME, or serve every study with --all",
        ("--study", "nope"): "no study named 'nope'",
        ("--study", "local"): "only the process that started it can run",
        ("--study", "local", "--gpus", "0", "--gpus-per-trial", "2"): "gpus lists only 1",
        ("--study", "local", "--slots", "0"): "--slots",
    }
    for args, message in cases.items():
        done = _hs(["worker", "--storage", url, *args], workdir)
        assert done.returncode == 2, (args, done.stderr)
        assert message in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr


def test_enqueue_checks_the_space_and_runs_first(workdir: Path) -> None:
    url = f"sqlite:///{workdir}/hs.db"
    _create(url, workdir, "q", {"x": hs.uniform(0, 1)}, objective="wobj:f", max_trials=3,
            strategy="random")
    bad = {
        '{"x": 5}': "'x' = 5 is outside uniform(0.0, 1.0)",
        '{"y": 0.5}': "missing 'x'; not in the space: 'y'",
        '{"x": ': "--params is not JSON",
        "[0.5]": "must be a JSON object",
    }
    for text, message in bad.items():
        done = _hs(["enqueue", "q", "--storage", url, "--params", text], workdir)
        assert done.returncode == 2 and message in done.stderr, (text, done.stderr)
    done = _hs(["enqueue", "q", "--storage", url, "--params", '{"x": 0.625}'], workdir)
    assert done.returncode == 0 and "queued as trial 0" in done.stdout, done.stderr
    assert _hs(["worker", "--storage", url, "--study", "q"], workdir).returncode == 0
    trials = _check_invariants(hs.load_study("q", url), 3)
    assert trials[0].params == {"x": 0.625}


def test_workers_lists_each_process(workdir: Path) -> None:
    url = f"sqlite:///{workdir}/hs.db"
    _create(url, workdir, "who", {"x": hs.uniform(0, 1)}, objective="wobj:f", max_trials=4,
            strategy="random")
    for _ in range(2):
        assert _hs(["worker", "--storage", url, "--study", "who", "--max-trials-here", "2"],
                   workdir).returncode == 0
    shown = _hs(["workers", "who", "--storage", url], workdir)
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if line.strip().endswith("ago")]
    assert len(rows) == 2 and all(line.split()[1:4] == ["2", "0", "2"] for line in rows), (
        shown.stdout)


def test_doctor_sweeps_dead_leases_and_finds_broken_invariants(workdir: Path) -> None:
    url = f"sqlite:///{workdir}/hs.db"
    study = _create(url, workdir, "doc", {"x": hs.uniform(0, 1)}, objective="wobj:f",
                    max_trials=4, strategy="random")
    study.optimize(verbose=False)
    healthy = _hs(["doctor", "doc", "--storage", url], workdir)
    assert healthy.returncode == 0 and "every invariant holds" in healthy.stdout, healthy.stderr
    # a trial left RUNNING by a process that died (its pid is gone): swept, not a problem
    dead = f"{hs.storage.base.host_id()}:999999:0.000:abcdef"
    study.revise(max_trials=5)
    claimed = study.storage.claim(study.id, dead, propose=lambda h, n: {"x": 0.5},
                                  uses_history=False, max_trials=5, lease_seconds=600)
    assert claimed is not None
    study.storage.close()
    swept = _hs(["doctor", "doc", "--storage", url], workdir)
    assert swept.returncode == 0, swept.stderr
    assert "swept 1 trial(s) left running by stopped workers: 4" in swept.stdout
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # damage: a COMPLETE trial loses its value
        conn.execute(sa.text("UPDATE trials SET value = NULL WHERE number = 1"))
    engine.dispose()
    broken = _hs(["doctor", "doc", "--storage", url], workdir)
    assert broken.returncode == 1
    assert "problem: trial 1 is COMPLETE without a value" in broken.stderr


def test_here_settings_are_not_stored(workdir: Path) -> None:
    url = f"sqlite:///{workdir}/hs.db"
    _create(url, workdir, "local", {"x": hs.uniform(0, 1)}, objective="wobj:f", max_trials=2,
            strategy="random")
    ran = hs.run_worker(url, "local", slots=2, verbose=False)
    assert ran == {"local": 2}
    study = hs.load_study("local", url)
    assert study.definition.n_jobs == 1 and not study.definition.revisions


SCRIPT = textwrap.dedent("""
    import sys
    print("loss=%s" % ((float(sys.argv[1]) - 0.5) ** 2))
""")


def test_worker_runs_a_stored_command(workdir: Path) -> None:
    (workdir / "train.py").write_text(SCRIPT)
    url = f"sqlite:///{workdir}/hs.db"
    hs.create_study({"x": hs.uniform(0, 1)}, name="cmd", storage=url, max_trials=4,
                    command=[PY, str(workdir / "train.py"), ":x:"], strategy="random")
    workers = [_start_worker(["--storage", url, "--study", "cmd"], workdir) for _ in range(2)]
    for code, _, err in _finish(workers):
        assert code == 0, err
    trials = _check_invariants(hs.load_study("cmd", url), 4)
    for trial in trials:
        assert trial.value == pytest.approx((trial.params["x"] - 0.5) ** 2)


GPU_SCRIPT = textwrap.dedent("""
    import os, sys, time
    time.sleep(0.3)
    print("gpu=%s" % os.environ["CUDA_VISIBLE_DEVICES"])
    print("loss=%s" % float(sys.argv[1]))
""")


def test_worker_gpus_are_handed_out_and_stored_per_trial(workdir: Path) -> None:
    """--gpus 0,1 --slots 2: each trial sees its own CUDA_VISIBLE_DEVICES and the trial row
    stores the GPU it got (the study's definition keeps no GPUs: they belong to the worker)."""
    (workdir / "train.py").write_text(GPU_SCRIPT)
    url = f"sqlite:///{workdir}/hs.db"
    hs.create_study({"x": hs.uniform(0, 1)}, name="gpu", storage=url, max_trials=6,
                    command=[PY, str(workdir / "train.py"), ":x:"], strategy="random")
    done = _hs(["worker", "--storage", url, "--study", "gpu", "--gpus", "0,1", "--slots", "2"],
               workdir)
    assert done.returncode == 0, done.stderr
    study = hs.load_study("gpu", url)
    trials = _check_invariants(study, 6)
    assert {t.gpus for t in trials} == {"0", "1"}
    for trial in trials:
        seen = [line.text for line in study.storage.get_logs(trial.id, "stdout")]
        assert f"gpu={trial.gpus}" in seen, (seen, trial.gpus)
    assert study.definition.gpus is None


def test_run_create_only_stores_a_study_for_workers(workdir: Path) -> None:
    url = f"sqlite:///{workdir}/hs.db"
    (workdir / "study.yaml").write_text(textwrap.dedent("""
        name: shared
        objective: wobj:f
        strategy: random
        max_trials: 3
        space:
          x: {uniform: [0, 1]}
    """))
    made = _hs(["run", "study.yaml", "--create-only", "--storage", url], workdir)
    assert made.returncode == 0, made.stderr
    assert f"hypersearch worker --study shared --storage {url}" in made.stdout
    assert hs.load_study("shared", url).summary().n_trials == 0
    assert _hs(["worker", "--study", "shared", "--storage", url], workdir).returncode == 0
    _check_invariants(hs.load_study("shared", url), 3)


SLOW_SCRIPT = textwrap.dedent("""
    import sys, time
    if float(sys.argv[1]) == 0.25:  # the enqueued trial
        time.sleep(60)
    print("loss=%s" % float(sys.argv[1]))
""")


def _wait_running(url: str, name: str, number: int, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        study = hs.load_study(name, url)
        found = [t for t in study.trials if t.number == number]
        study.storage.close()
        if found and found[0].state is TrialState.RUNNING:
            return
        time.sleep(0.2)
    raise AssertionError(f"trial {number} never ran")


@pytest.mark.parametrize("kind", ["command", "python"])
def test_kill_ends_one_running_trial_now(workdir: Path, kind: str) -> None:
    """`hypersearch kill STUDY N`: the worker running trial N ends it within seconds, FAILED
    (killed), not re-run; the worker goes on with the rest of the budget."""
    url = f"sqlite:///{workdir}/hs.db"
    if kind == "command":
        (workdir / "slow.py").write_text(SLOW_SCRIPT)
        hs.create_study({"x": hs.uniform(0, 1)}, name="k", storage=url, max_trials=3,
                        command=[PY, str(workdir / "slow.py"), ":x:"], strategy="random")
        slots = "1"
    else:
        (workdir / "wslow.py").write_text(
            "import time\ndef f(p):\n    if p['x'] == 0.25:\n        time.sleep(60)\n"
            "    return p['x']\n")
        hs.create_study({"x": hs.uniform(0, 1)}, name="k", storage=url, max_trials=3,
                        objective="wslow:f", strategy="random", executor="process")
        slots = "2"
    study = hs.load_study("k", url)
    study.enqueue({"x": 0.25})  # trial 0: a slow one
    study.storage.close()
    worker = _start_worker(["--storage", url, "--study", "k", "--slots", slots], workdir)
    _wait_running(url, "k", 0)
    started = time.monotonic()
    done = _hs(["kill", "k", "0", "--storage", url], workdir)
    assert done.returncode == 0 and "FAILED, killed" in done.stdout, done.stderr
    code, _, err = _finish([worker])[0]
    assert code == 0, err
    trials = hs.load_study("k", url).trials
    assert trials[0].state is TrialState.FAILED and trials[0].failure_reason == "killed"
    assert time.monotonic() - started < 45, "killed, not left to its 60 s"
    assert not any(t.parent_number == 0 for t in trials), "a killed trial is not re-run"
    assert len(trials) == 3


def test_kill_refuses_a_trial_that_is_not_running(workdir: Path) -> None:
    url = f"sqlite:///{workdir}/hs.db"
    _create(url, workdir, "done", {"x": hs.uniform(0, 1)}, objective="wobj:f", max_trials=1,
            strategy="random").optimize(verbose=False)
    done = _hs(["kill", "done", "0", "--storage", url], workdir)
    assert done.returncode == 2 and "trial 0 is COMPLETE, not RUNNING" in done.stderr
    missing = _hs(["kill", "done", "7", "--storage", url], workdir)
    assert missing.returncode == 2 and "has no trial 7" in missing.stderr


FLAKY_MACHINE = """
import os

def f(params):
    if os.environ.get("BROKEN_GPU"):
        raise RuntimeError("CUDA error: no kernel image is available for execution")
    import time
    time.sleep(0.05)
    return params["x"]
"""


def test_a_worker_whose_trials_keep_failing_quarantines_itself(workdir: Path) -> None:
    """Issue 11, worker health: a worker on a broken machine fails every trial while another
    completes them; after 5 failures in a row it stops taking the study's trials, records why
    (listed by `workers`), and `workers --lift` lifts it. The budget is still spent exactly."""
    import os

    (workdir / "flaky.py").write_text(FLAKY_MACHINE)
    url = f"sqlite:///{workdir}/hs.db"
    _create(url, workdir, "node", {"x": hs.uniform(0, 1)}, objective="flaky:f", max_trials=60,
            strategy="random", retries=0)
    good = _start_worker(["--storage", url, "--study", "node"], workdir)
    time.sleep(1.5)  # the good worker completes trials first
    broken = subprocess.run(
        [PY, "-m", "hypersearch.cli.main", "worker", "--storage", url, "--study", "node"],
        cwd=workdir, text=True, capture_output=True, timeout=120,
        env={**os.environ, "BROKEN_GPU": "1"})
    assert broken.returncode == 0, broken.stderr
    assert "quarantines itself for study 'node'" in broken.stderr, broken.stderr
    assert "CUDA error" in broken.stderr
    _finish([good])
    study = hs.load_study("node", url)
    failed = [t for t in study.trials if t.state is TrialState.FAILED]
    assert len(failed) == 5, "it stopped after five failures in a row"
    assert study.summary().n_trials == 60
    (entry,) = study.quarantined().values()
    shown = _hs(["workers", "node", "--storage", url], workdir)
    assert f"quarantined: {entry['process']}" in shown.stderr
    lifted = _hs(["workers", "node", "--storage", url, "--lift", entry["process"]], workdir)
    assert lifted.returncode == 0 and entry["process"] in lifted.stdout
    assert hs.load_study("node", url).quarantined() == {}
    again = _hs(["workers", "node", "--storage", url, "--lift", "nobody:1"], workdir)
    assert again.returncode == 2 and "no quarantined worker 'nobody:1'" in again.stderr


def test_breaker_counts_only_failures_that_say_something_about_the_machine() -> None:
    from hypersearch.study.health import Breaker
    from hypersearch.trial import Outcome

    def failed(reason: str) -> Outcome:
        return Outcome(TrialState.FAILED, failure_reason=reason)

    breaker = Breaker(trips_after=3, within=10.0)
    assert not breaker.observe(failed("error"), now=0.0)
    assert not breaker.observe(failed("killed"), now=1.0), "asked for: not counted"
    assert not breaker.observe(failed("interrupted"), now=1.5)
    assert not breaker.observe(failed("exit_code"), now=2.0)
    assert breaker.observe(failed("crashed"), now=3.0), "three in a row within 10 s"
    assert not breaker.observe(Outcome(TrialState.COMPLETE, 1.0), now=4.0), "a success resets"
    for t in (5.0, 6.0):
        assert not breaker.observe(failed("error"), now=t)
    slow = Breaker(trips_after=3, within=10.0)
    assert not any(slow.observe(failed("error"), now=t) for t in (0.0, 6.0, 12.0)), (
        "spread over more than 10 s: no trip")
