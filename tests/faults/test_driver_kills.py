"""Issue 8, acceptance 3: kill the driver (SIGINT and SIGKILL) at random moments and resume.

Each scenario runs a driver script as a subprocess, kills it after a seeded random delay, starts
it again, and so on until a run ends by itself; then runs it once more. Afterwards the study must
satisfy ANCHORS.md's invariants (R1, R5): trial numbers dense, nothing RUNNING or WAITING,
exactly `max_trials` COMPLETE trials that ran to their end, every failure not the
configuration's fault re-run with the same parameters, budget charged exactly, SQLite intact,
no configuration completed twice.

Also: with n_jobs=1 in this process, KeyboardInterrupt / SystemExit / an exception in the
objective never leave a trial RUNNING; with executor="process" a crashing objective
(os._exit, segfault) costs only its trial.
"""

from __future__ import annotations

import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

import hypersearch as hs
from hypersearch.trial import FailureReason, FrozenTrial, TrialState

PY = sys.executable
ROOT = Path(__file__).resolve().parent.parent
NAME = "faults"
RETRIES = 50  # high: a configuration caught by several kills in a row must still run to its end
LEASE = 3.0  # small, so the lease keeper renews and sweeps often during the scenario
# Endings that are not the configuration's fault, and are re-run by the default retry policy.
RERUN_REASONS = {FailureReason.INTERRUPTED.value, FailureReason.STALE.value}

# Importable objective (Python kind) and command script (command kind) at once. Each call logs
# "start X" and "end X" to events.log (O_APPEND: one write per line), so the test can tell that
# every COMPLETE trial ran to its end, and can wait for a trial to be in flight before a kill.
JOB = """
import os, random, sys, time

EVENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "events.log")


def _event(text):
    fd = os.open(EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + "\\n").encode())
    finally:
        os.close(fd)


def loss(x):
    return (x - 0.25) ** 2


def objective(params):
    x = params["x"]
    _event(f"start {x!r} {os.getpid()}")
    time.sleep(random.uniform(0.05, 0.3))
    _event(f"end {x!r}")
    return loss(x)


if __name__ == "__main__":
    x = float(sys.argv[1])
    _event(f"start {x!r} {os.getpid()}")
    time.sleep(random.uniform(0.05, 0.3))
    _event(f"end {x!r}")
    print(f"loss={loss(x)!r}", flush=True)
"""

DRIVER = f"""
import sys

import hypersearch as hs

kind, n, jobs, db, job = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
if kind == "python":
    from faultjob import objective
else:
    objective = hs.Command([sys.executable, job, ":x:"], grace=2.0)
hs.minimize(
    objective,
    {{"x": hs.uniform(-1.0, 1.0)}},
    max_trials=n,
    n_jobs=jobs,
    storage=f"sqlite:///{{db}}",
    name={NAME!r},
    seed=0,
    verbose=False,
    retries={RETRIES},
    lease_seconds={LEASE},
)
"""


@dataclass
class Scenario:
    """What one kill-and-resume scenario did."""

    kind: str
    n_jobs: int
    max_trials: int
    kills: dict[str, int] = field(default_factory=lambda: {"SIGINT": 0, "SIGKILL": 0})
    runs: int = 0
    seconds: float = 0.0
    trials: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # failure reason -> trials

    def line(self) -> str:
        return (
            f"{self.kind} n_jobs={self.n_jobs}: {sum(self.kills.values())} kills "
            f"({self.kills['SIGINT']} SIGINT, {self.kills['SIGKILL']} SIGKILL), {self.runs} runs, "
            f"{self.trials} trials for max_trials={self.max_trials} (failed: {self.failures}), "
            f"{self.seconds:.1f} s"
        )


def _write_files(tmp_path: Path) -> tuple[Path, Path]:
    job = tmp_path / "faultjob.py"
    job.write_text(textwrap.dedent(JOB))
    driver = tmp_path / "driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    return driver, job


def _starts(events: Path) -> int:
    try:
        return events.read_text().count("start ")
    except FileNotFoundError:
        return 0


def _ended_values(events: Path) -> list[float]:
    try:
        lines = events.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [float(line.split()[1]) for line in lines if line.startswith("end ")]


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _running_of(db: Path, pid: int) -> list[int]:
    """Trials RUNNING under a lease of process `pid` (owner ids read host:pid:started:nonce)."""
    try:
        with sqlite3.connect(db, timeout=30) as conn:
            query = "SELECT number, owner FROM trials WHERE state = 'RUNNING'"
            rows = conn.execute(query).fetchall()
    except sqlite3.OperationalError as error:  # interrupted before the schema was made
        assert "no such table" in str(error), error
        return []
    return [number for number, owner in rows if (owner or "").rsplit(":", 3)[1:2] == [str(pid)]]


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except FileNotFoundError:
        return ""


def kill_and_resume(
    tmp_path: Path, kind: str, n_jobs: int, max_trials: int, kills: int, seed: int
) -> Scenario:
    """Start the driver, kill it after a random delay, `kills` times, then let a run end by
    itself, then run once more; returns what happened (the study is checked separately)."""
    driver, job = _write_files(tmp_path)
    db, events = tmp_path / "faults.db", tmp_path / "events.log"
    rng = random.Random(f"{kind}-{n_jobs}-{seed}")
    offset = rng.randrange(2)  # which signal comes first; then they alternate
    scenario = Scenario(kind, n_jobs, max_trials)
    started = time.monotonic()
    argv = [PY, str(driver), kind, str(max_trials), str(n_jobs), str(db), str(job)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    done = 0
    while True:
        scenario.runs += 1
        assert scenario.runs <= kills + 10, f"{scenario.line()}: the study never finished"
        err = tmp_path / f"run{scenario.runs}.err"
        before = _starts(events)
        with open(err, "wb") as stderr:
            process = subprocess.Popen(
                argv,
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own group: SIGINT goes to it as Ctrl-C would
            )
        if done >= kills:  # let this run end by itself
            try:
                code = process.wait(timeout=240)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(
                    f"{scenario.line()}: the last run hung\n{_tail(err)}"
                ) from None
            assert code == 0, f"run {scenario.runs} exited {code}\n{_tail(err)}"
            break
        # Kills come in pairs (one of each signal); pairs alternate between landing while
        # trials are in flight and at a random moment from the start (imports, migrations,
        # resume and sweep, starting workers...).
        if (done // 2) % 2 == 1:
            time.sleep(rng.uniform(0.3, 2.5))
        else:
            deadline = time.monotonic() + 60
            while (
                _starts(events) == before and process.poll() is None and time.monotonic() < deadline
            ):
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
        if process.poll() is not None:  # it finished before the kill: the study is done
            assert process.returncode == 0, (
                f"run {scenario.runs} exited {process.returncode}\n{_tail(err)}"
            )
            break
        sig = (signal.SIGKILL, signal.SIGINT)[(done + offset) % 2]
        children = _descendants(process.pid)
        if sig is signal.SIGINT:
            os.killpg(process.pid, signal.SIGINT)  # the whole group, as a terminal's Ctrl-C
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(
                    f"run {scenario.runs}: SIGINT did not stop the driver in 20 s\n{_tail(err)}"
                ) from None
        else:
            process.kill()  # the driver only: its children must die with it
            process.wait()
        done += 1
        scenario.kills[sig.name] += 1
        _, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, (
            f"run {scenario.runs}: {[p.cmdline() for p in alive]} outlived the driver ({sig.name})"
        )
        if sig is signal.SIGINT and db.exists():
            left = _running_of(db, process.pid)  # (a killed predecessor's may still be)
            assert not left, (
                f"run {scenario.runs}: after Ctrl-C trials {left} of the driver were left "
                f"RUNNING (it should record them as interrupted)\n{_tail(err)}"
            )
    count = len(hs.load_study(NAME, f"sqlite:///{db}").trials)
    scenario.runs += 1
    again = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr.decode(errors="replace")[-3000:]
    study = hs.load_study(NAME, f"sqlite:///{db}")
    assert len(study.trials) == count, "a run after the end must add no trial"
    scenario.trials = count
    scenario.failures = dict(Counter(t.failure_reason for t in study.trials if t.failure_reason))
    scenario.seconds = time.monotonic() - started
    return scenario


def _attempts(by_number: dict[int, FrozenTrial], trial: FrozenTrial) -> int:
    count = 0
    while trial.parent_number is not None:
        count += 1
        trial = by_number[trial.parent_number]
    return count


def check_study(db: Path, max_trials: int, events: Path | None = None) -> None:
    """ANCHORS.md's invariants after a scenario, for a continuous space {"x": uniform}."""
    study = hs.load_study(NAME, f"sqlite:///{db}")
    trials = study.trials
    by_number = {t.number: t for t in trials}
    states = {t.number: t.state.value for t in trials}
    assert [t.number for t in trials] == list(range(len(trials))), "numbers not dense"
    left = [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    assert not left, f"trials {left} left RUNNING/WAITING: {states}"
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    failed = [t for t in trials if t.state is TrialState.FAILED]
    assert len(complete) + len(failed) == len(trials), f"unexpected states: {states}"
    exhausted = []
    for lost in failed:
        assert lost.failure_reason in RERUN_REASONS, (
            f"trial {lost.number} FAILED {lost.failure_reason}: {lost.failure_detail}"
        )
        reruns = [t for t in trials if t.parent_number == lost.number]
        if not reruns:
            attempts = _attempts(by_number, lost)
            assert attempts >= RETRIES, (
                f"trial {lost.number} FAILED ({lost.failure_reason}) was never re-run, though "
                f"its parameters ran only {attempts + 1} time(s) (retries={RETRIES}): {states}"
            )
            exhausted.append(lost.number)
            continue
        assert len(reruns) == 1, f"trial {lost.number} re-run {len(reruns)} times"
        assert reruns[0].params == lost.params
    assert len(complete) == max_trials - len(exhausted), (
        f"{len(complete)} COMPLETE for max_trials={max_trials}"
        + (f" (retries exhausted for trials {exhausted})" if exhausted else "")
        + f": {states}"
    )
    assert not exhausted, f"retries ({RETRIES}) exhausted for trials {exhausted}"
    assert study.summary().n_trials == max_trials, "budget charged != max_trials"
    values = [t.params["x"] for t in complete]
    assert len(set(values)) == len(values), "a configuration ran to completion twice"
    for trial in complete:
        assert trial.value is not None
        assert math.isclose(trial.value, (trial.params["x"] - 0.25) ** 2, rel_tol=1e-9)
    if events is not None:  # each COMPLETE trial's objective ran to its end
        ended = _ended_values(events)
        for trial in complete:
            x = trial.params["x"]
            assert any(math.isclose(x, e, rel_tol=1e-12, abs_tol=1e-15) for e in ended), (
                f"trial {trial.number} is COMPLETE but its objective never ended"
            )
    study.storage.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


CASES = [
    pytest.param(kind, jobs, id=f"{kind}-jobs{jobs}")
    for kind in ("python", "command")
    for jobs in (1, 4)
]


@pytest.mark.parametrize(("kind", "n_jobs"), CASES)
def test_kill_driver_at_random_and_resume(tmp_path: Path, kind: str, n_jobs: int) -> None:
    """CI: 2 kills per case (a SIGINT and a SIGKILL while trials run), then resume to the exact
    budget; kills early in a run (imports, migrations, resume) are in the slow variant."""
    max_trials = 6 if n_jobs == 1 else 12
    scenario = kill_and_resume(tmp_path, kind, n_jobs, max_trials, kills=2, seed=1)
    print(scenario.line())
    check_study(tmp_path / "faults.db", max_trials, tmp_path / "events.log")


SLOW_KILLS = 9  # per case: 36 in all


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "n_jobs"), CASES)
def test_kill_driver_many_times_and_resume(tmp_path: Path, kind: str, n_jobs: int) -> None:
    """≥ 30 kills across the cases (SLOW_KILLS per case): budgets big enough that no study
    ends before its kills are made."""
    max_trials = 80 if n_jobs == 1 else 200
    scenario = kill_and_resume(tmp_path, kind, n_jobs, max_trials, kills=SLOW_KILLS, seed=7)
    print(scenario.line())
    check_study(tmp_path / "faults.db", max_trials, tmp_path / "events.log")
    assert sum(scenario.kills.values()) == SLOW_KILLS, f"the study ended early: {scenario.line()}"


# -- a driver that dies between recording a failure and re-queuing it --------------------------


@pytest.mark.parametrize("reason", ["stale", "interrupted"])
def test_resume_requeues_failure_left_without_its_rerun(tmp_path: Path, reason: str) -> None:
    """`Leases.finish` and the sweep write the failure, then re-queue it, in two transactions:
    a driver killed between them leaves a FAILED (stale|interrupted) trial still charged with
    no re-run. The next run must re-queue it, or the study ends with max_trials - 1 trials
    that ran to their end."""
    from hypersearch.trial import Outcome

    url = f"sqlite:///{tmp_path}/gap.db"
    space = {"x": hs.uniform(-1.0, 1.0)}
    study = hs.create_study(space, name=NAME, storage=url, max_trials=3, seed=0)
    asked = study.ask()
    claimed = study.storage.get_trial(study.id, asked.number)
    assert claimed is not None and claimed.owner is not None
    if reason == "stale":  # what the sweep writes before its retry
        swept = study.storage.sweep_stale(study.id, dead_owners={claimed.owner})
        assert swept == [asked.number]
    else:  # what Leases.finish writes before its retry
        outcome = Outcome(TrialState.FAILED, failure_reason=reason, failure_detail="killed")
        assert claimed.id is not None
        assert study.storage.finish(claimed.id, claimed.owner, claimed.lease_epoch, outcome)
    study.close()

    seen: list[float] = []

    def objective(params: dict[str, Any]) -> float:
        seen.append(params["x"])
        return float((params["x"] - 0.25) ** 2)

    hs.minimize(objective, space, name=NAME, storage=url, max_trials=3, verbose=False)
    lost = hs.load_study(NAME, url).trial(asked.number)
    assert lost.failure_reason == reason
    assert seen[0] == lost.params["x"], "the lost trial's parameters should run first"
    check_study(tmp_path / "gap.db", 3)


# -- n_jobs=1 in this process: nothing left RUNNING ------------------------------------------


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_inprocess_interrupt_leaves_no_trial_running(
    tmp_path: Path, error: type[BaseException]
) -> None:
    url = f"sqlite:///{tmp_path}/i.db"
    space = {"x": hs.uniform(-1.0, 1.0)}
    calls: list[float] = []
    raised: list[bool] = []

    def objective(params: dict[str, Any]) -> float:
        calls.append(params["x"])
        if len(calls) == 2 and not raised:
            raised.append(True)
            raise error()
        return float((params["x"] - 0.25) ** 2)

    with pytest.raises(error):
        hs.minimize(
            objective, space, max_trials=4, n_jobs=1, name=NAME, storage=url, seed=0, verbose=False
        )
    study = hs.load_study(NAME, url)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAILED, TrialState.WAITING]
    interrupted, rerun = trials[1], trials[2]
    assert interrupted.failure_reason == FailureReason.INTERRUPTED.value
    assert interrupted.params["x"] == calls[1]
    assert rerun.parent_number == 1 and rerun.params == interrupted.params
    study.close()

    calls.clear()
    hs.minimize(
        objective, space, max_trials=4, n_jobs=1, name=NAME, storage=url, seed=0, verbose=False
    )
    assert calls[0] == interrupted.params["x"], "the interrupted configuration runs first"
    check_study(tmp_path / "i.db", 4)


def test_interrupt_while_recording_a_result_leaves_no_trial_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C after the executor handed a result back but before the driver wrote it (while
    its reports are flushed, or the write waits on the database): the executor no longer lists
    the trial as running, so the driver must still record it (with its real outcome)."""
    from hypersearch.study import driver

    finish = driver.Leases.finish
    interrupted: list[int] = []

    def finish_once_interrupted(self: driver.Leases, finished: Any) -> bool:
        if not interrupted:
            interrupted.append(finished.trial.number)
            raise KeyboardInterrupt
        return finish(self, finished)

    monkeypatch.setattr(driver.Leases, "finish", finish_once_interrupted)
    url = f"sqlite:///{tmp_path}/w.db"
    with pytest.raises(KeyboardInterrupt):
        _three_trials(url)
    trials = hs.load_study(NAME, url).trials
    assert interrupted == [0]
    assert [t.state for t in trials] == [TrialState.COMPLETE], "it ran to its end: recorded"


def _three_trials(url: str) -> None:
    hs.minimize(lambda p: (p["x"] - 0.25) ** 2, {"x": hs.uniform(-1.0, 1.0)}, max_trials=3,
                name=NAME, storage=url, seed=0, verbose=False)


def test_interrupt_just_after_a_claim_leaves_no_trial_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real SIGINT that arrives once the claim has committed, while the storage is still
    returning (seen in the slow test: KeyboardInterrupt in SQLAlchemy's connection check-in
    after COMMIT): the driver must learn of the trial and record it as interrupted."""
    from hypersearch.storage.sql import SQLStorage

    claim = SQLStorage.claim
    signalled: list[int] = []

    def claim_then_ctrl_c(self: SQLStorage, *args: Any, **kwargs: Any) -> Any:
        claimed = claim(self, *args, **kwargs)
        if claimed is not None and claimed.number == 1 and not signalled:
            signalled.append(claimed.number)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # Python runs the signal handler here
        return claimed

    monkeypatch.setattr(SQLStorage, "claim", claim_then_ctrl_c)
    url = f"sqlite:///{tmp_path}/c.db"
    with pytest.raises(KeyboardInterrupt):
        _three_trials(url)
    trials = hs.load_study(NAME, url).trials
    assert signalled == [1]
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAILED, TrialState.WAITING]
    assert trials[1].failure_reason == FailureReason.INTERRUPTED.value
    assert trials[2].parent_number == 1 and trials[2].params == trials[1].params


def test_inprocess_exception_is_a_failed_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/e.db"

    def objective(params: dict[str, Any]) -> float:
        if params["x"] > 0:
            raise ValueError("positive")
        return float(params["x"])

    study = hs.minimize(
        objective,
        {"x": hs.uniform(-1.0, 1.0)},
        max_trials=8,
        n_jobs=1,
        name=NAME,
        storage=url,
        seed=0,
        verbose=False,
    )
    trials = study.trials
    assert len(trials) == 8
    assert not [t for t in trials if t.state is TrialState.RUNNING]
    failed = [t for t in trials if t.state is TrialState.FAILED]
    assert failed and all(t.failure_reason == FailureReason.ERROR.value for t in failed)
    assert all("ValueError: positive" in (t.failure_detail or "") for t in failed)
    assert all(t.params["x"] > 0 for t in failed)
    assert study.summary().n_trials == 8


# -- executor="process" with n_jobs=1: the caller survives the objective's death ---------------

CRASHY = """
import ctypes, os

MARK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crashed-once")


def exits(params):
    os._exit(3)


def segfaults(params):
    ctypes.string_at(0)


def exits_once(params):
    if not os.path.exists(MARK):
        open(MARK, "w").close()
        os._exit(3)
    return params["x"] ** 2
"""


@pytest.fixture
def crashy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    (tmp_path / "crashy_objectives.py").write_text(textwrap.dedent(CRASHY))
    monkeypatch.syspath_prepend(str(tmp_path))
    import crashy_objectives

    yield crashy_objectives
    sys.modules.pop("crashy_objectives", None)


@pytest.mark.parametrize(
    ("function", "how"), [("exits", "exit code 3"), ("segfaults", "signal SIGSEGV")]
)
def test_process_executor_isolates_a_dying_objective(
    tmp_path: Path, crashy: Any, function: str, how: str
) -> None:
    study = _in_child_processes(getattr(crashy, function), 2, tmp_path)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.FAILED, TrialState.FAILED]
    for trial in trials:
        assert trial.failure_reason == FailureReason.CRASHED.value
        assert how in (trial.failure_detail or ""), trial.failure_detail
    assert study.summary().n_trials == 2


def _in_child_processes(objective: Any, max_trials: int, tmp_path: Path) -> hs.Study:
    return hs.minimize(objective, {"x": hs.uniform(-1.0, 1.0)}, max_trials=max_trials,
                       n_jobs=1, executor="process", name=NAME,
                       storage=f"sqlite:///{tmp_path}/c.db", seed=0, verbose=False)


def test_process_executor_goes_on_after_a_crash(tmp_path: Path, crashy: Any) -> None:
    study = _in_child_processes(crashy.exits_once, 4, tmp_path)
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAILED] + [TrialState.COMPLETE] * 3
    assert study.trials[0].failure_reason == FailureReason.CRASHED.value
    assert not [t for t in study.trials if t.state is TrialState.RUNNING]
