"""R13, R16, R17 and worker health: objectives and commands that fail every way, a machine that
cannot run trials (its disk is full) beside a healthy one, a configuration that fails so on two
machines. Each failure is recorded with its reason; a worker goes on after a failed trial; a
broken machine leaves its trials to the others and is not re-run past two machines."""

from __future__ import annotations

import sys
from pathlib import Path

import hypersearch as hs
from faults.harness import PY, check_invariants, finish, hs_cli, start_worker
from hypersearch.trial import TrialState


def test_a_worker_records_every_kind_of_objective_failure_and_goes_on(
    url: str, workdir: Path
) -> None:
    """R13 (raise, exit, segfault) and R16 (hang past the timeout) in child processes."""
    hows = ["ok", "raise", "exit", "segv", "hang", "ok"]
    hs.create_study({"how": hs.choice(hows[:5])}, name="bad", storage=url, max_trials=5,
                    objective="fobj:misbehaves", strategy="grid", executor="process",
                    trial_timeout=2.0)
    ((code, err),) = finish([start_worker(url, "bad", workdir)])
    assert code == 0, err[-2000:]
    trials = check_invariants(url, "bad", 5)
    ended = {t.params["how"]: t for t in trials}
    assert ended["ok"].state is TrialState.COMPLETE
    assert ended["raise"].failure_reason == "error"
    assert "Traceback" in ended["raise"].failure_detail and "a bug" in ended["raise"].failure_detail
    assert ended["exit"].failure_reason == "crashed" and "exit code 3" in ended["exit"].failure_detail
    assert ended["segv"].failure_reason == "crashed" and "SIGSEGV" in ended["segv"].failure_detail
    assert ended["hang"].failure_reason == "timeout"


def test_a_failing_command_is_recorded_with_its_exit_code_and_stderr(
    url: str, workdir: Path
) -> None:
    """R17: a non-zero exit is the configuration's failure, with the tail of its stderr."""
    fails = "import sys; print('loss=1'); print('boom: bad lr', file=sys.stderr); sys.exit(3)"
    hs.create_study({"x": hs.uniform(0, 1)}, name="cmd", storage=url, max_trials=3,
                    command=[PY, "-c", fails, ":x:"], metric="loss")
    ((code, err),) = finish([start_worker(url, "cmd", workdir)])
    assert code == 0, err[-2000:]
    trials = check_invariants(url, "cmd", 3)
    for trial in trials:
        assert trial.failure_reason == "exit_code"
        assert "exited with code 3" in trial.failure_detail and "boom: bad lr" in trial.failure_detail


def test_a_machine_with_a_full_disk_leaves_its_trials_to_a_healthy_one(
    url: str, workdir: Path
) -> None:
    """Its first trial fails as infrastructure (the machine's fault): queued again and run by
    the healthy worker with the same parameters; the broken worker quarantines itself at once
    (visible in hypersearch workers) instead of failing trial after trial."""
    hs.create_study({"x": hs.uniform(0, 1)}, name="disk", storage=url, max_trials=12,
                    objective="fobj:broken_here", strategy="random", seed=3)
    broken = start_worker(url, "disk", workdir, env={"BROKEN": "1"}, host="broken-box")
    (broken_end,) = finish([broken])
    healthy = start_worker(url, "disk", workdir, host="good-box")
    (healthy_end,) = finish([healthy])
    assert broken_end[0] == 0 and healthy_end[0] == 0, (broken_end[1][-2000:], healthy_end[1])
    assert "quarantines itself" in broken_end[1] and "the disk is full" in broken_end[1]
    trials = check_invariants(url, "disk", 12)
    (lost,) = [t for t in trials if t.state is TrialState.FAILED]
    assert lost.failure_reason == "infrastructure" and lost.host.startswith("broken-box/")
    assert "the disk is full on host broken-box" in lost.failure_detail
    (again,) = [t for t in trials if t.parent_number == lost.number]
    assert again.state is TrialState.COMPLETE and again.host.startswith("good-box/")
    assert sum(t.state is TrialState.COMPLETE for t in trials) == 12
    listed = hs_cli(["workers", "disk", "--storage", url], workdir)
    shown = (listed.stdout + listed.stderr).lower()
    assert listed.returncode == 0 and "quarantined" in shown and "broken-box" in shown, shown


def test_a_configuration_failing_so_on_two_machines_is_not_run_again(
    url: str, workdir: Path
) -> None:
    hs.create_study({"x": hs.uniform(0, 1)}, name="both", storage=url, max_trials=3,
                    objective="fobj:broken_here", strategy="random", seed=3)
    for host in ("box-a", "box-b"):  # both machines' disks are full
        ((code, err),) = finish([start_worker(url, "both", workdir, env={"BROKEN": "1"},
                                              host=host)])
        assert code == 0, err[-2000:]
    trials = check_invariants(url, "both", None)
    assert [(t.number, t.state, t.parent_number) for t in trials] == [
        (0, TrialState.FAILED, None), (1, TrialState.FAILED, 0)]
    assert {t.host.split("/")[0] for t in trials} == {"box-a", "box-b"}
    study = hs.load_study("both", url)
    assert len(study.quarantined()) == 2
    study.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run with pytest")
