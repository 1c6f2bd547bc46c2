"""Command trials and the `hypersearch` CLI, with real subprocesses."""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import math
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import hypersearch as hs
from hypersearch.execution.command import (
    Command,
    CommandExecutor,
    CommandSpec,
    CommandTemplate,
    TemplateError,
)
from hypersearch.execution.command.process import SUPERVISED, supervisor_argv
from hypersearch.execution.folders import MAX_NAME, contained, safe_name, trial_output_dir
from hypersearch.execution.metric_lines import parse_stop_condition
from hypersearch.trial import FrozenTrial, TrialState, clean_metrics, parse_result

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def cli(
    *args: str, cwd: Path, timeout: float = 180, check: bool = False
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [PY, "-m", "hypersearch.cli.main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"exit {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def study_of(tmp_path: Path, name: str) -> hs.Study:
    return hs.load_study(name, f"sqlite:///{tmp_path}/hypersearch.db")


# -- templates ---------------------------------------------------------------------------------


def test_template_substitutes_inside_tokens_and_keeps_literal_colons() -> None:
    template = CommandTemplate(
        ["run", "--lr=:lr:", "out/:lr:/m.pt", "a::b", "cuda:0", "http://x:80"]
    )
    assert template.render({"lr": 0.01}) == [
        "run",
        "--lr=0.01",
        "out/0.01/m.pt",
        "a:b",
        "cuda:0",
        "http://x:80",
    ]


def test_template_drops_tokens_of_branches_not_taken_and_checks_names() -> None:
    space = {"opt": hs.choice([{"name": "adam"}, {"name": "sgd", "momentum": hs.uniform(0, 1)}])}
    template = CommandTemplate("train --opt :opt/name: --momentum=:opt/momentum:")
    assert template.check(space) == []
    assert template.render({"opt": {"name": "adam"}}) == ["train", "--opt", "adam"]
    assert template.render({"opt": {"name": "sgd", "momentum": 0.5}})[-1] == "--momentum=0.5"
    with pytest.raises(TemplateError, match=r":lrr:.*available: :opt:"):
        CommandTemplate("train --lr :lrr:").check(space)


def test_shell_mode_quotes_values() -> None:
    template = CommandTemplate("echo :name: > out.txt", shell=True)
    argv = template.render({"name": "a; rm -rf /"})
    assert argv[:2] == ["/bin/sh", "-c"]
    assert "'a; rm -rf /'" in argv[2]


# -- acceptance 1: the seed example ------------------------------------------------------------


def test_seed_example_grid_runs_every_point(tmp_path: Path) -> None:
    result = cli(
        "grid",
        "--param",
        "conv2_filter=16,32,64",
        "--param",
        "dropout_3=0.2,0.5",
        "--param",
        "dense_layer=32,64,512",
        "--metric",
        "val_acc",
        "--maximize",
        "-p",
        "2",
        "--name",
        "seed",
        "--",
        PY,
        str(ROOT / "examples" / "spell_seed_example.py"),
        "--epochs",  # one epoch is enough to show every point ran (and 3x quicker)
        "1",
        "--conv2_filter",
        ":conv2_filter:",
        "--dropout_3",
        ":dropout_3:",
        "--dense_layer",
        ":dense_layer:",
        cwd=tmp_path,
        check=True,
    )
    assert "18 complete" in result.stdout
    trials = study_of(tmp_path, "seed").trials
    assert len(trials) == 18
    points = {
        (t.params["conv2_filter"], t.params["dropout_3"], t.params["dense_layer"]) for t in trials
    }
    assert len(points) == 18
    assert all(0 <= t.value <= 1 for t in trials)


def test_random_ranges_have_the_right_types(tmp_path: Path) -> None:
    echo = script(
        tmp_path,
        "echo.py",
        """
        import json, sys
        args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
        print(json.dumps({"loss": float(args["--lr"]) * int(args["--filters"])}))
        """,
    )
    cli(
        "random",
        "-n",
        "20",
        "-p",
        "2",
        "--seed",
        "1",
        "--name",
        "r",
        "--param",
        "conv2_filter=16:128:int",
        "--param",
        "lr=0.0001:0.1:log",
        "--",
        PY,
        echo,
        "--filters",
        ":conv2_filter:",
        "--lr",
        ":lr:",
        cwd=tmp_path,
        check=True,
    )
    trials = study_of(tmp_path, "r").trials
    assert len(trials) == 20 and all(t.state is TrialState.COMPLETE for t in trials)
    for t in trials:
        assert isinstance(t.params["conv2_filter"], int) and 16 <= t.params["conv2_filter"] <= 128
        assert isinstance(t.params["lr"], float) and 1e-4 <= t.params["lr"] <= 0.1
        assert t.value == pytest.approx(t.params["lr"] * t.params["conv2_filter"])
    # log scale: about a third of the draws fall in each decade
    low = sum(t.params["lr"] < 1e-3 for t in trials)
    assert 2 <= low <= 14


# -- acceptance 2: metric sources and aggregation ---------------------------------------------

SERIES_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
import hypersearch
form = sys.argv[1]
for step, value in enumerate([0.5, 0.2, 0.4]):
    if form == "keras":
        print(f"Epoch {{step + 1}}/3")
        print(f"10/10 [====] - 0s 1ms/step - val_loss: {{value + 1:.4f}} - loss: {{value:.4f}}")
    elif form == "json":
        print(json.dumps({{"metric": "loss", "value": value, "step": step}}))
    elif form == "client":
        hypersearch.report(step=step, loss=value, accuracy=1 - value)
"""


@pytest.mark.parametrize("form", ["keras", "json", "client"])
@pytest.mark.parametrize(
    ("agg", "expected"), [("last", 0.4), ("min", 0.2), ("max", 0.5), ("avg", 1.1 / 3)]
)
def test_metric_forms_and_aggregation(tmp_path: Path, form: str, agg: str, expected: float) -> None:
    path = script(tmp_path, "series.py", SERIES_SCRIPT.format(root=str(ROOT)))
    study = hs.create_study(  # the aggregation is part of the study's definition
        {"form": hs.choice([form])}, storage=f"sqlite:///{tmp_path}/m.db", name="m", metric_agg=agg
    )
    study.optimize(
        hs.Command([PY, path, ":form:"], metric="loss", metric_agg=agg), max_trials=1, verbose=False
    )
    trial = study.trials[0]
    assert trial.state is TrialState.COMPLETE, trial.failure_detail
    assert trial.value == pytest.approx(expected)
    points = [(p.step, p.value) for p in study.storage.get_metrics(trial.id) if p.name == "loss"]  # type: ignore[arg-type]
    # Keras numbers epochs from 1 ("Epoch 1/3"); the other forms gave steps from 0
    assert [step for step, _ in points] == ([1, 2, 3] if form == "keras" else [0, 1, 2])
    assert [value for _, value in points] == pytest.approx([0.5, 0.2, 0.4])
    if form == "client":
        assert trial.metrics["accuracy"] == pytest.approx(0.6)


# -- acceptance 3: failures, timeouts, garbage, huge output ------------------------------------


def run_one(tmp_path: Path, body: str, **command: Any) -> Any:
    path = script(tmp_path, "job.py", body)
    study = hs.create_study({"x": hs.choice([1])}, storage=f"sqlite:///{tmp_path}/f.db", name="f")
    study.optimize(hs.Command([PY, path, ":x:"], **command), max_trials=1, verbose=False)
    return study, study.trials[0]


def test_failing_command_keeps_exit_code_and_stderr_tail(tmp_path: Path) -> None:
    _, trial = run_one(
        tmp_path,
        """
        import sys
        print("loss=0.5")
        print("CUDA out of memory", file=sys.stderr)
        sys.exit(3)
        """,
    )
    assert trial.state is TrialState.FAILED and trial.failure_reason == "exit_code"
    assert (
        "exited with code 3" in trial.failure_detail
        and "CUDA out of memory" in trial.failure_detail
    )


def test_missing_executable_is_this_hosts_failure_and_ends_the_run_here(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11: a missing executable is the machine's fault, not the configuration's: the trial
    is queued again for another worker and this one stops at once (not 20 failures)."""
    study = hs.create_study({"x": hs.choice([1, 2])}, storage=f"sqlite:///{tmp_path}/n.db",
                            name="n")
    study.optimize(hs.Command(["no-such-program-xyz", ":x:"]), max_trials=5, verbose=False)
    first, again = study.trials
    assert first.failure_reason == "infrastructure"
    assert "command not found: 'no-such-program-xyz'" in first.failure_detail
    assert f"on host {socket.gethostname()}" in first.failure_detail
    assert (again.state, again.parent_number) == (TrialState.WAITING, 0), "queued for elsewhere"
    assert study.quarantined()
    assert any("quarantines itself" in r.getMessage() and "command not found" in r.getMessage()
               for r in caplog.records)


def test_hanging_command_is_terminated_then_killed(tmp_path: Path) -> None:
    start = time.monotonic()
    _, trial = run_one(
        tmp_path,
        """
        import signal, subprocess, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # stubborn: only SIGKILL works
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # a grandchild
        print("loss=1.0", flush=True)
        time.sleep(60)
        """,
        timeout=1.0,
        grace=0.5,
    )
    assert time.monotonic() - start < 15
    assert trial.state is TrialState.FAILED and trial.failure_reason == "timeout"
    assert "--timeout 1s" in trial.failure_detail


def test_exit_zero_without_metric_is_no_metric(tmp_path: Path) -> None:
    _, trial = run_one(tmp_path, 'print("accuracy=0.9")\n', metric="loss")
    assert trial.failure_reason == "no_metric"
    assert "loss=0.123" in trial.failure_detail


def test_garbage_metric_lines_never_break_the_runner(tmp_path: Path) -> None:
    study, trial = run_one(
        tmp_path,
        """
        import os, sys
        print("loss=")
        print("loss=nan")
        print("x" * 1_000_000)
        sys.stdout.flush()
        os.write(1, bytes(range(256)) + b"\\n")
        print("loss=0.25")
        """,
    )
    assert trial.state is TrialState.COMPLETE, trial.failure_detail
    assert trial.value == 0.25  # the last value; the NaN was recorded but not last
    values = [p.value for p in study.storage.get_metrics(trial.id)]
    assert len(values) == 2 and values[1] == 0.25


def test_nan_as_final_value_fails_the_trial(tmp_path: Path) -> None:
    _, trial = run_one(tmp_path, 'print("loss=0.3")\nprint("loss=nan")\n')
    assert trial.failure_reason == "invalid_value"


def test_stop_condition_prunes_a_diverging_trial(tmp_path: Path) -> None:
    start = time.monotonic()
    _, trial = run_one(
        tmp_path,
        """
        import time
        for step in range(100):
            print(f"loss={step * 5}", flush=True)
            time.sleep(0.1)
        """,
        stop_conditions=["loss > 10"],
        grace=1.0,
    )
    assert time.monotonic() - start < 8
    assert trial.state is TrialState.PRUNED
    assert "loss > 10" in trial.failure_detail


def test_gigabyte_of_output_keeps_memory_bounded(tmp_path: Path) -> None:
    """A command printing 1 GB: the runner streams it, stores only head and tail lines."""
    name = "big"
    body = (
        "import sys\n"
        "line = b'y' * 1023 + b'\\n'\n"
        "chunk = line * 1024\n"
        "for _ in range(1024):\n"
        "    sys.stdout.buffer.write(chunk)\n"
        "print('loss=0.5')\n"
    )
    path = script(tmp_path, "big.py", body)
    # a fresh process runs the CLI, so its children's peak RSS is the CLI's (or the command's)
    wrapper = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:])\n"
        "print(done.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    result = subprocess.run(
        [
            PY,
            "-c",
            wrapper,
            PY,
            "-m",
            "hypersearch.cli.main",
            "grid",
            "--param",
            "x=1",
            "--name",
            name,
            "--",
            PY,
            path,
            ":x:",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    code, peak_kib = map(int, result.stdout.split()[-2:])
    assert code == 0, result.stderr
    assert peak_kib < 200 * 1024, f"peak RSS {peak_kib} KiB"
    study = study_of(tmp_path, name)
    trial = study.trials[0]
    assert trial.state is TrialState.COMPLETE and trial.value == 0.5
    lines = study.storage.get_logs(trial.id, "stdout")  # type: ignore[arg-type]
    assert len(lines) <= 1100
    assert any("lines omitted" in line.text for line in lines)
    assert lines[-1].text == "loss=0.5"


# -- acceptance 4: SIGKILL the CLI, then resume ------------------------------------------------


def test_sigkill_cli_then_resume_reaches_budget(tmp_path: Path) -> None:
    job = script(
        tmp_path,
        "slow.py",
        """
        import sys, time
        time.sleep(0.3)
        print(f"loss={float(sys.argv[1]) ** 2}")
        """,
    )
    args = [
        "random",
        "-n",
        "16",
        "-p",
        "2",
        "--seed",
        "3",
        "--name",
        "k",
        "--param",
        "x=-1.0:1.0",
        "--",
        PY,
        job,
        ":x:",
    ]
    process = subprocess.Popen(
        [PY, "-m", "hypersearch.cli.main", *args],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    db = tmp_path / "hypersearch.db"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db, timeout=10) as conn:
                done = conn.execute(
                    "SELECT count(*) FROM trials WHERE state = 'COMPLETE'"
                ).fetchone()[0]
            if done >= 5:
                break
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert len(study_of(tmp_path, "k").trials) < 16
    result = cli("resume", "k", cwd=tmp_path, check=True)
    assert "best loss" in result.stdout
    trials = study_of(tmp_path, "k").trials
    stale = [t for t in trials if t.failure_reason == "stale"]
    assert stale, "the kill should have caught trials in flight"
    # each stale trial is re-run once (retry policy): 16 trials ran to their end
    assert len(trials) == 16 + len(stale)
    assert [t.number for t in trials] == list(range(len(trials)))
    assert sum(t.state is TrialState.COMPLETE for t in trials) == 16
    assert len({t.params["x"] for t in trials if t.failure_reason != "stale"}) == 16
    for lost in stale:
        (again,) = [t for t in trials if t.parent_number == lost.number]
        assert again.params == lost.params and again.state is TrialState.COMPLETE


# -- R3: a killed driver takes the whole process group of every trial with it -----------------

needs_supervisor = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and SUPERVISED),
    reason="the trial supervisor and /proc are Linux-only",
)


def pid_alive(pid: int) -> bool:
    """Running (a zombie is dead: it only waits to be reaped by whoever adopted it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@needs_supervisor
def test_sigkill_driver_kills_grandchildren_of_every_trial(tmp_path: Path) -> None:
    """R3: grandchildren (one ignoring SIGTERM) must not outlive a SIGKILLed driver and hold
    its GPUs; each trial's supervisor ends the whole group within about a second."""
    pids_dir = tmp_path / "pids"
    pids_dir.mkdir()
    job = script(
        tmp_path,
        "spawner.py",
        """
        import os, subprocess, sys, time
        stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \\
            "print('ready', flush=True); time.sleep(1000)"
        kids = [
            subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE),
            subprocess.Popen(["sleep", "1000"]),
        ]
        kids[0].stdout.readline()  # it ignores SIGTERM now: only SIGKILL ends it
        path = os.path.join(sys.argv[2], os.environ["HYPERSEARCH_TRIAL"])
        with open(path + ".tmp", "w") as f:
            f.write(" ".join(str(p) for p in [os.getpid()] + [k.pid for k in kids]))
        os.rename(path + ".tmp", path + ".pid")
        print("loss=1.0", flush=True)
        time.sleep(1000)
        """,
    )
    args = ["random", "-n", "4", "-p", "2", "--name", "g", "--param", "x=0.0:1.0"]
    process = subprocess.Popen(
        [PY, "-m", "hypersearch.cli.main", *args, "--", PY, job, ":x:", str(pids_dir)],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pids: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(list(pids_dir.glob("*.pid"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        files = sorted(pids_dir.glob("*.pid"))
        assert len(files) == 2, "both trials should have started their grandchildren"
        pids = [int(p) for f in files for p in f.read_text().split()]
        assert len(pids) == 6 and all(pid_alive(pid) for pid in pids)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at = time.monotonic()
        while any(pid_alive(pid) for pid in pids) and time.monotonic() < killed_at + 10:
            time.sleep(0.05)
        left = [pid for pid in pids if pid_alive(pid)]
        elapsed = time.monotonic() - killed_at
        assert not left, f"still running {elapsed:.1f}s after the driver died: {left}"
        assert elapsed < 4, f"took {elapsed:.1f}s (poll 0.25s + grace 1s expected)"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@needs_supervisor
def test_supervised_command_sees_what_it_saw_without_a_supervisor(tmp_path: Path) -> None:
    """Only stdin, stdout, stderr and the report descriptor are open; the signal mask and the
    ignored signals are the runner's own (a shell started under nohup ignores SIGHUP, and so do
    its children; the supervisor must add nothing); the command's group is the supervisor's."""
    own = dict(line.split(":\t", 1) for line in Path("/proc/self/status").read_text().splitlines())
    blocked, ignored = int(own["SigBlk"], 16), int(own["SigIgn"], 16)  # Python: SIGPIPE, SIGXFSZ
    _, trial = run_one(
        tmp_path,
        f"""
        import os
        def is_open(fd):
            try:
                return os.fstat(fd) is not None
            except OSError:
                return False

        listed = [int(fd) for fd in os.listdir("/proc/self/fd")]  # and that listing's own fd
        fds = {{fd for fd in listed if is_open(fd)}}
        status = dict(
            line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines()
        )
        report = int(os.environ["HYPERSEARCH_REPORT_FD"])
        assert os.getpgrp() == os.getppid() != os.getpid(), (os.getpgrp(), os.getppid())
        assert int(status["SigBlk"], 16) == {blocked}, status["SigBlk"]
        assert int(status["SigIgn"], 16) == {ignored}, status["SigIgn"]
        assert fds == {{0, 1, 2, report}}, (fds, report)
        print("loss=0.25")
        """,
    )
    assert trial.state is TrialState.COMPLETE, trial.failure_detail
    assert trial.value == 0.25


@needs_supervisor
def test_command_killed_by_a_signal_is_reported_as_such(tmp_path: Path) -> None:
    _, trial = run_one(tmp_path, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    assert trial.failure_reason == "exit_code"
    assert "killed by signal SIGKILL" in trial.failure_detail


@needs_supervisor
def test_supervisor_forwards_outside_signals_and_exits_like_its_command() -> None:
    """A SIGTERM sent to the supervisor alone (not by the runner) reaches the command, and the
    supervisor then dies of the same signal, as the command did."""
    read_fd, write_fd = os.pipe()
    supervisor = subprocess.Popen(
        [*supervisor_argv(write_fd, 1.0), "sleep", "60"],
        pass_fds=(write_fd,),
        start_new_session=True,
    )
    os.close(write_fd)
    children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children")
    try:
        deadline = time.monotonic() + 30
        while not children.read_text().split() and time.monotonic() < deadline:
            time.sleep(0.01)
        (command,) = map(int, children.read_text().split())
        time.sleep(0.1)  # let it exec `sleep`
        subprocess.run(["kill", "-TERM", str(supervisor.pid)], check=True)  # not the parent
        assert supervisor.wait(timeout=10) == -signal.SIGTERM
        assert not pid_alive(command)
        assert os.read(read_fd, 100) == b""  # it had started the command
    finally:
        os.close(read_fd)
        if supervisor.poll() is None:
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()


# -- acceptance 5: usage errors exit 2 with the problem named ----------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["random", "-n", "2", "--param", "lr=0.1:0.01:log", "--", "echo", ":lr:"],
            "must be less than",
        ),
        (["random", "-n", "2", "--param", "lr=0:1:log", "--", "echo", ":lr:"], "MIN > 0"),
        (["random", "-n", "2", "--param", "lr=0.1:1", "--", "echo", ":lrr:"], ":lrr:"),
        (["random", "--param", "lr=0.1:1", "--", "echo", ":lr:"], "-n/--num-runs"),
        (["grid", "--param", "lr=0.1:1", "--", "echo", ":lr:"], "resolution"),
        (["random", "-n", "2", "--param", "lr=0.1:1"], "after --"),
        (
            [
                "random",
                "-n",
                "2",
                "--param",
                "lr=0.1:1",
                "--stop-condition",
                "loss >> 3",
                "--",
                "echo",
                ":lr:",
            ],
            "loss >> 3",
        ),
        (["annealing", "--param", "lr=0.1:1", "--", "echo"], "No such command 'annealing'"),
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_yaml_wrong_type_deep_down_exits_2(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(
        textwrap.dedent(
            """
            name: y
            command: "echo :optimizer/momentum:"
            max_trials: 2
            space:
              optimizer:
                choice:
                  - {name: adam}
                  - {name: sgd, momentum: {uniform: [0, "high"]}}
            """
        )
    )
    result = cli("run", "study.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert "space.optimizer.choice[1].momentum" in result.stderr
    assert "Traceback" not in result.stderr


def test_yaml_study_runs_a_command(tmp_path: Path) -> None:
    job = script(tmp_path, "y.py", "import sys\nprint(f'loss={abs(float(sys.argv[1]) - 0.3)}')\n")
    (tmp_path / "study.yaml").write_text(
        textwrap.dedent(
            f"""
            name: yaml-study
            strategy: sobol
            max_trials: 8
            parallel: 2
            seed: 0
            command: [{PY!r}, {job!r}, ":x:"]
            space:
              x: {{uniform: [0, 1]}}
            """
        )
    )
    cli("run", "study.yaml", cwd=tmp_path, check=True)
    study = study_of(tmp_path, "yaml-study")
    assert len(study.trials) == 8 and study.best_value < 0.1


@pytest.mark.parametrize(("command", "strategy"), [("tpe", "tpe"), ("bayesian", "gp")])
def test_model_based_strategies_from_the_cli(tmp_path: Path, command: str, strategy: str) -> None:
    job = script(tmp_path, "q.py", "import sys\nprint(f'loss={(float(sys.argv[1]) - 0.3) ** 2}')\n")
    cli(
        command,
        "-n",
        "14",
        "-p",
        "2",
        "--seed",
        "0",
        "--name",
        "m",
        "--param",
        "x=0:1",
        "--",
        PY,
        job,
        ":x:",
        cwd=tmp_path,
        check=True,
    )
    study = study_of(tmp_path, "m")
    assert study.sampler.name == strategy
    assert len(study.trials) == 14 and all(t.state is TrialState.COMPLETE for t in study.trials)


def test_every_trial_failing_exits_1(tmp_path: Path) -> None:
    result = cli(
        "random",
        "-n",
        "2",
        "--param",
        "x=1,2",
        "--",
        PY,
        "-c",
        "import sys; sys.exit(1)",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert "no trial completed" in result.stderr


# -- acceptance 6 and the read commands --------------------------------------------------------


def test_demo_then_studies_best_trials_export_logs(tmp_path: Path) -> None:
    result = cli("demo", "-n", "4", "-p", "2", cwd=tmp_path, timeout=300, check=True)
    assert "best val_acc" in result.stdout and "hypersearch best demo-digits-mlp" in result.stdout
    assert "hypersearch dashboard" in result.stdout
    listing = cli("studies", cwd=tmp_path, check=True).stdout
    assert "demo-digits-mlp" in listing and "maximize" in listing
    best = json.loads(cli("best", "demo-digits-mlp", "--json", cwd=tmp_path, check=True).stdout)
    assert 0.5 < best["value"] <= 1.0 and set(best["params"]) >= {"hidden", "lr", "activation"}
    table = cli("trials", "demo-digits-mlp", "--sort", "value", cwd=tmp_path, check=True).stdout
    assert table.count("COMPLETE") == 4
    exported = cli("export", "demo-digits-mlp", "--format", "json", cwd=tmp_path, check=True).stdout
    assert len(json.loads(exported)) == 4
    csv_text = cli("export", "demo-digits-mlp", "--format", "csv", cwd=tmp_path, check=True).stdout
    assert csv_text.splitlines()[0].startswith("number,state,value")
    log = cli("logs", "demo-digits-mlp", str(best["number"]), cwd=tmp_path, check=True).stdout
    assert "val_acc" in log and log.count("epoch") >= 10


def test_stop_ends_a_running_study(tmp_path: Path) -> None:
    job = script(tmp_path, "sleepy.py", "import time\ntime.sleep(30)\nprint('loss=1')\n")
    process = subprocess.Popen(
        [
            PY,
            "-m",
            "hypersearch.cli.main",
            "random",
            "-n",
            "50",
            "-p",
            "2",
            "--name",
            "s",
            "--param",
            "x=1:2",
            "--",
            PY,
            job,
            ":x:",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    db = tmp_path / "hypersearch.db"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db, timeout=10) as conn:
                if (
                    conn.execute("SELECT count(*) FROM trials WHERE state='RUNNING'").fetchone()[0]
                    == 2
                ):
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    cli("stop", "s", cwd=tmp_path, check=True)
    _, err = process.communicate(timeout=30)
    assert "stop requested" in err
    trials = study_of(tmp_path, "s").trials
    interrupted = [t for t in trials if t.failure_reason == "interrupted"]
    assert len(interrupted) == 2
    # the stop was not the configurations' fault: they wait to be re-run by the next run
    waiting = [t for t in trials if t.state is TrialState.WAITING]
    assert sorted(t.parent_number for t in waiting) == sorted(t.number for t in interrupted)


def test_output_dir_env_and_params_file(tmp_path: Path) -> None:
    job = script(
        tmp_path,
        "env.py",
        """
        import json, os
        params = json.load(open(os.environ["HYPERSEARCH_PARAMS_FILE"]))
        assert os.environ["HS_PARAM_OPT_NAME"] == params["opt"]["name"]
        open(os.path.join(os.environ["HYPERSEARCH_OUTPUT_DIR"], "model.txt"), "w").write("ok")
        print(f"loss={len(params['opt']['name'])}")
        """,
    )
    space = {"opt": hs.choice([{"name": "adam"}, {"name": "sgd"}])}
    study = hs.create_study(space, storage=f"sqlite:///{tmp_path}/e.db", name="e", strategy="grid")
    study.optimize(
        hs.Command([PY, job, ":opt/name:"], output_dir=str(tmp_path / "runs")), verbose=False
    )
    assert [t.value for t in study.trials] == [4.0, 3.0]
    assert (tmp_path / "runs" / "e" / "0" / "model.txt").read_text() == "ok"


def test_gpus_are_shared_out(tmp_path: Path) -> None:
    job = script(
        tmp_path,
        "gpu.py",
        """
        import os, time
        time.sleep(0.3)
        print("loss=" + os.environ["CUDA_VISIBLE_DEVICES"].replace(",", ""))
        """,
    )
    study = hs.create_study(
        {"x": hs.integer(1, 6)}, storage=f"sqlite:///{tmp_path}/g.db", name="g", strategy="grid"
    )
    study.optimize(
        hs.Command([PY, job, ":x:"], gpus=[0, 1, 2, 3], gpus_per_trial=2), n_jobs=4, verbose=False
    )
    values = {t.value for t in study.trials}
    assert values <= {1.0, 23.0}  # "01" and "23": two trials at a time, each with its own pair
    assert len(study.trials) == 6 and all(t.state is TrialState.COMPLETE for t in study.trials)


def test_environment_variable_names_the_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    study = hs.create_study(
        {"x": hs.choice([1, 2])}, storage=f"sqlite:///{tmp_path}/t.db", name="t", strategy="grid"
    )
    study.optimize(
        hs.Command(
            [PY, "-c", "import os; print('loss=' + os.environ['HYPERSEARCH_TRIAL'])", ":x:"]
        ),
        verbose=False,
    )
    assert [t.value for t in study.trials] == [0.0, 1.0]
    assert os.path.isdir(tmp_path / "hypersearch-runs" / "t" / "1")


# -- hs.Command round-trips through its config -------------------------------------------------

FULL_COMMAND: dict[str, Any] = {
    "command": ["python", "train.py", "--lr=:lr:", "out/:lr:/m.pt"],
    "shell": False,
    "metric": "keras/val_accuracy",
    "metric_agg": "max",
    "stop_conditions": ["keras/val_loss > 5.0", "loss >= inf", "acc != -0.5"],
    "timeout": 120.5,
    "grace": 0.0,
    "gpus": [3, 1, 0],
    "gpus_per_trial": 2,
    "output_dir": "/scratch/runs",
    "cwd": "/work/project",
    "env": {"OMP_NUM_THREADS": "1", "EMPTY": "", "WEIRD": "a b=c 'd'"},
}


def test_defect_command_to_config_drops_env() -> None:
    """Defect: `to_config` left `env` out, so a resumed study ran without it."""
    command = Command("python train.py", env={"OMP_NUM_THREADS": "1"})
    assert command.to_config()["env"] == {"OMP_NUM_THREADS": "1"}
    assert Command.from_config(command.to_config()).env == {"OMP_NUM_THREADS": "1"}


def test_command_round_trips_every_field_through_json() -> None:
    command = Command(
        FULL_COMMAND["command"], **{k: v for k, v in FULL_COMMAND.items() if k != "command"}
    )
    config = command.to_config()
    assert config == FULL_COMMAND  # every constructor argument is in the config
    assert set(config) == set(inspect.signature(Command).parameters)
    text = json.dumps(config, allow_nan=False)  # JSON-safe: no tuples, no NaN or inf
    again = Command.from_config(json.loads(text))
    assert again == command and again.to_config() == config
    assert again.template.argv == command.template.argv and again.template.shell is False
    assert again.stop_conditions == command.stop_conditions
    assert again.gpus == (3, 1, 0) and again.timeout == 120.5 and again.grace == 0.0


@pytest.mark.parametrize(
    ("key", "other"),
    [
        ("command", ["python", "other.py"]),
        ("shell", True),
        ("metric", "val_loss"),
        ("metric_agg", "min"),
        ("stop_conditions", ["loss > 1"]),
        ("timeout", 3),
        ("grace", 2.5),
        ("gpus", [0, 1, 2]),
        ("gpus_per_trial", 1),
        ("output_dir", "elsewhere"),
        ("cwd", None),
        ("env", {}),
    ],
)
def test_command_equality_sees_each_field(key: str, other: Any) -> None:
    base = Command.from_config(FULL_COMMAND)
    changed = Command.from_config({**FULL_COMMAND, key: other})
    assert changed != base
    assert Command.from_config(changed.to_config()) == changed


def test_command_defaults_round_trip_and_old_configs_load() -> None:
    plain = Command("echo :x:")
    assert Command.from_config(plain.to_config()) == plain
    old = plain.to_config()
    del old["env"]  # stored before env was kept
    assert Command.from_config(old) == plain
    assert Command.from_config({"command": "echo :x:"}) == plain
    shell = Command("echo :x: > out.txt", shell=True)
    assert Command.from_config(json.loads(json.dumps(shell.to_config()))) == shell
    assert Command("echo hi") != "echo hi"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"command": "x", "envs": {}}, "unknown key 'envs'"),
        ({"metric": "loss"}, "'command' is missing"),
        ({"command": 3}, "command must be a string or a list of strings"),
        ({"command": ["python", 3]}, "3 is not one"),
        ({"command": []}, "the command is empty"),
        ({"command": "x", "shell": "yes"}, "shell must be true or false"),
        ({"command": "x", "metric": ""}, "metric must be a non-empty name"),
        ({"command": "x", "metric": "val acc"}, "metric 'val acc' is invalid"),
        ({"command": "x", "metric_agg": "median"}, "metric_agg: unknown aggregation"),
        ({"command": "x", "metric_agg": 3}, "metric_agg must be a name"),
        ({"command": "x", "stop_conditions": ["loss >> 1"]}, "stop_conditions: stop condition"),
        ({"command": "x", "stop_conditions": [3]}, "stop_conditions: 3 is not a condition"),
        ({"command": "x", "stop_conditions": 3}, "stop_conditions must be a list"),
        ({"command": "x", "timeout": 0}, "timeout must be a positive finite number"),
        ({"command": "x", "timeout": "5"}, "timeout must be a positive finite number"),
        ({"command": "x", "timeout": math.inf}, "timeout must be a positive finite number"),
        ({"command": "x", "timeout": True}, "timeout must be"),
        ({"command": "x", "grace": -1}, "grace must be a non-negative finite number"),
        ({"command": "x", "gpus": "0,1"}, "gpus must be a list of GPU indices"),
        ({"command": "x", "gpus": []}, "gpus must be a list of GPU indices"),
        ({"command": "x", "gpus": [0, -1]}, "gpus must be a list of GPU indices"),
        ({"command": "x", "gpus": [True]}, "gpus must be a list of GPU indices"),
        ({"command": "x", "gpus": [0, 0]}, "gpus lists GPU 0 twice"),
        ({"command": "x", "gpus_per_trial": 0}, "gpus_per_trial must be a positive integer"),
        ({"command": "x", "gpus_per_trial": 1.5}, "gpus_per_trial must be a positive integer"),
        ({"command": "x", "gpus": [0], "gpus_per_trial": 2}, "gpus_per_trial 2 is more than"),
        ({"command": "x", "output_dir": ""}, "output_dir must be a non-empty folder path"),
        ({"command": "x", "output_dir": None}, "output_dir must be a non-empty folder path"),
        ({"command": "x", "cwd": 3}, "cwd must be a non-empty folder path"),
        ({"command": "x", "env": ["A=1"]}, "env must be a mapping"),
        ({"command": "x", "env": {"A=B": "1"}}, "env: 'A=B' is not an environment variable"),
        ({"command": "x", "env": {"A": 1}}, "env: the value of A must be a string"),
        ({"command": "x", "env": {"A": "a\x00b"}}, "env: the value of A must be a string"),
    ],
)
def test_command_from_config_names_the_bad_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        Command.from_config(config)
    assert str(raised.value).startswith("command config: ") and message in str(raised.value)


def test_command_from_config_refuses_what_is_not_a_mapping() -> None:
    with pytest.raises(ValueError, match="must be a mapping"):
        Command.from_config(["python", "x"])  # type: ignore[arg-type]


def test_command_keeps_path_likes_and_one_stop_condition_as_text(tmp_path: Path) -> None:
    command = Command("x", output_dir=tmp_path, cwd=tmp_path, stop_conditions="loss > 3")
    assert command.output_dir == str(tmp_path) and command.cwd == str(tmp_path)
    assert command.stop_conditions == (parse_stop_condition("loss > 3"),)
    json.dumps(command.to_config(), allow_nan=False)


# -- defect: Keras progress lines redrawn with \r -----------------------------------------------

KERAS_PROGRESS_SCRIPT = r"""
import sys, time
epochs = [([0.9, 0.5], 0.3, 0.4), ([0.85, 0.4], 0.25, 0.35)]
for epoch, (partial, loss, val_loss) in enumerate(epochs, 1):
    sys.stdout.write(f"Epoch {epoch}/2\n")
    for i, value in enumerate(partial, 1):
        sys.stdout.write(f"{i}/10 [{'=' * i}>...] - loss: {value}\r")
        sys.stdout.flush()
        time.sleep(0.05)
    sys.stdout.write(f"10/10 [======] - loss: {loss} - val_loss: {val_loss}\n")
    sys.stdout.flush()
"""


def test_defect_keras_carriage_return_segments_count_once(tmp_path: Path) -> None:
    """Defect: every \r-segment of a Keras progress line counted as a value: `max` took a
    mid-epoch 0.9 and `--stop-condition "loss > 0.8"` pruned on it. Only the line the terminal
    finally shows counts: one value per epoch."""
    path = script(tmp_path, "keras_progress.py", KERAS_PROGRESS_SCRIPT)
    study = hs.create_study(
        {"x": hs.choice([1])}, storage=f"sqlite:///{tmp_path}/k.db", name="k", metric_agg="max"
    )
    command = hs.Command(
        [PY, path, ":x:"], metric="loss", metric_agg="max", stop_conditions=["loss > 0.8"]
    )
    study.optimize(command, max_trials=1, verbose=False)
    trial = study.trials[0]
    assert trial.state is TrialState.COMPLETE, trial.failure_detail
    assert trial.value == pytest.approx(0.3)  # max over epochs (0.3, 0.25), not 0.9
    points = [(p.step, p.value) for p in study.storage.get_metrics(trial.id) if p.name == "loss"]
    assert points == [(1, 0.3), (2, 0.25)]
    logged = [line.text for line in study.storage.get_logs(trial.id, "stdout")]
    assert logged == [
        "Epoch 1/2",
        "10/10 [======] - loss: 0.3 - val_loss: 0.4",
        "Epoch 2/2",
        "10/10 [======] - loss: 0.25 - val_loss: 0.35",
    ]


# -- defect: Spell's framework-prefixed metric names -------------------------------------------


def test_defect_spell_keras_metric_name_is_recognised(tmp_path: Path) -> None:
    """Defect: `--metric keras/val_accuracy` (Spell's name for Keras's val_accuracy) found no
    value in Keras's own `val_accuracy: 0.91` lines, so every trial failed with no_metric."""
    job = script(
        tmp_path,
        "keras_job.py",
        """
        import sys
        x = float(sys.argv[1])
        print("Epoch 1/2")
        print(f"10/10 [====] - loss: 0.5 - val_loss: 0.6 - val_accuracy: {x / 2}")
        print("Epoch 2/2")
        print(f"10/10 [====] - loss: 0.4 - val_loss: 0.5 - val_accuracy: {x}")
        """,
    )
    cli(
        "grid",
        "--param",
        "x=0.5,0.75",
        "--metric",
        "keras/val_accuracy",
        "--maximize",
        "--metric-agg",
        "max",
        "--stop-condition",
        "keras/val_loss > 5",
        "--name",
        "spell",
        "--",
        PY,
        job,
        ":x:",
        cwd=tmp_path,
        check=True,
    )
    study = study_of(tmp_path, "spell")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert sorted(t.value for t in study.trials) == [0.5, 0.75]
    assert study.best_value == 0.75
    names = {p.name for p in study.storage.get_metrics(study.trials[0].id)}
    assert names == {"keras/val_accuracy", "keras/val_loss"}


# -- defect: numbers too large for a float ------------------------------------------------------


def test_defect_objective_returning_10_to_the_400_fails_the_trial(tmp_path: Path) -> None:
    """Defect: `float(10**400)` raised OverflowError inside the result parser, which crashed
    the driver and left the trial RUNNING (n_jobs=1)."""
    results = iter([10**400, {"loss": 10**400}, {"loss": 1.0, "acc": -(10**400)}, 10**5000])
    study = hs.create_study({"x": hs.uniform(0, 1)}, storage=f"sqlite:///{tmp_path}/b.db")
    study.optimize(lambda params: next(results), max_trials=4, n_jobs=1, verbose=False)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.FAILED] * 4
    assert {t.failure_reason for t in trials} == {"invalid_value"}
    assert all("too large for a float" in t.failure_detail for t in trials)
    assert "int <401 digits>" in trials[0].failure_detail
    assert "'acc'" in trials[2].failure_detail
    assert "int <5001 digits>" in trials[3].failure_detail


def test_defect_parse_result_never_raises_on_numbers_no_float_holds() -> None:
    from fractions import Fraction

    for result in (10**400, -(10**400), Fraction(10**400), {"value": 10**400}):
        outcome = parse_result(result, None)
        assert outcome.state is TrialState.FAILED and outcome.failure_reason == "invalid_value"
        assert "too large for a float" in (outcome.failure_detail or "")
    # a value no repr can show is still described, not raised on
    outcome = parse_result([10**5000], None)
    assert outcome.failure_reason == "invalid_value" and "list" in (outcome.failure_detail or "")
    assert parse_result({"loss": 2, 5: 1.0}, None).metrics == {"5": 1.0, "loss": 2.0}
    assert parse_result(10**300, None).value == 1e300  # big but a float holds it


def test_defect_report_of_10_to_the_400_is_a_clear_error() -> None:
    """The sibling in reports: `clean_metrics` (trial.report) raised a bare OverflowError."""
    with pytest.raises(ValueError, match="metric 'loss' is int <401 digits>: too large"):
        clean_metrics({"loss": 10**400}, "trial.report")
    assert clean_metrics({"loss": 10**300}, "trial.report") == {"loss": 1e300}


def test_defect_command_printing_huge_numbers_reads_them_as_inf(tmp_path: Path) -> None:
    """Metric lines with numbers beyond a float read as inf (as float('1e999') does)."""
    study, trial = run_one(
        tmp_path,
        f"""
        print("loss=1e999")
        print("loss=-{"9" * 400}")
        print('@hypersearch {{"step": 2, "metrics": {{"loss": {"9" * 400}}}}}')
        print("loss=0.5")
        """,
    )
    assert trial.state is TrialState.COMPLETE, trial.failure_detail
    assert trial.value == 0.5
    values = [p.value for p in study.storage.get_metrics(trial.id)]  # type: ignore[arg-type]
    assert values == [math.inf, -math.inf, math.inf, 0.5]


# -- output folders from a safe form of the study name -----------------------------------------


@pytest.mark.parametrize("name", ["../x", "a/b", "a\x00b", "..", ".", ".hidden", "", "é", "a b"])
def test_defect_unsafe_study_names_get_safe_folders(tmp_path: Path, name: str) -> None:
    """Defect: the folder was `<root>/<study name>/<trial>`, so `../x` or `a/b` wrote outside
    the output root (or somewhere unexpected inside it)."""
    folder = safe_name(name)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]*", folder), folder
    assert folder != name and re.search(r"-?[0-9a-f]{10}$", folder)  # the hash names the original
    root = tmp_path / "runs"
    path = Path(trial_output_dir(str(root), name, 7))
    assert path.parent.parent == root and path.name == "7"


def test_safe_names_keep_safe_names_and_never_collide() -> None:
    for name in ("mnist", "mnist-v2.1", "A_b-c.d", "x" * MAX_NAME):
        assert safe_name(name) == name
    names = ["a/b", "a b", "a_b", "a\x00b", "a:b", "x" * 1000, "x" * 1001, "x" * MAX_NAME + "y"]
    folders = [safe_name(n) for n in names]
    assert len(set(folders)) == len(names)
    assert all(len(f) <= MAX_NAME + 11 for f in folders)  # + "-" and 10 hex digits


def test_output_folder_must_resolve_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    (root / "linked").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ValueError, match="outside the output root"):
        contained(str(root), "linked", "0")
    with pytest.raises(ValueError, match="outside the output root"):
        contained(str(root), "..", "x")
    assert contained(str(root), "study", "3") == str(root / "study" / "3")


class _Sink:
    def __init__(self) -> None:
        self.reports: list[tuple[int | None, dict[str, float]]] = []

    def report_metrics(self, trial: Any, step: int | None, metrics: dict[str, float]) -> None:
        self.reports.append((step, metrics))

    def append_logs(self, trial: Any, stream: str, lines: Any) -> None:
        pass


def run_executor(spec: CommandSpec, space: Any, flat: dict[str, Any]) -> Any:
    executor = CommandExecutor(spec, hs.Space(space), _Sink(), capacity=1)
    try:
        executor.submit(FrozenTrial(number=0, state=TrialState.RUNNING, flat_params=flat))
        deadline = time.monotonic() + 60
        done: list[Any] = []
        while not done and time.monotonic() < deadline:
            done = executor.wait(0.5)
        return done[0].outcome
    finally:
        executor.close()


@pytest.mark.parametrize("name", ["../../escape", "a/../../b", "x" * 5000, ".."])
def test_defect_executor_never_writes_outside_its_output_root(tmp_path: Path, name: str) -> None:
    root = tmp_path / "inner" / "runs"
    job = script(
        tmp_path,
        "where.py",
        """
        import os
        open(os.path.join(os.environ["HYPERSEARCH_OUTPUT_DIR"], "out.txt"), "w").write("x")
        print("loss=1")
        """,
    )
    spec = CommandSpec(
        template=CommandTemplate([PY, job, ":x:"]), output_root=str(root), study_name=name
    )
    outcome = run_executor(spec, {"x": hs.choice([1])}, {"x": 0})
    assert outcome.state is TrialState.COMPLETE, outcome.failure_detail
    written = [p for p in tmp_path.rglob("out.txt")]
    assert len(written) == 1 and root in written[0].parents
    assert written[0].parent == root / safe_name(name) / "0"


def test_symlinked_study_folder_outside_the_root_fails_the_trial(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    (root / "s").symlink_to(tmp_path, target_is_directory=True)
    spec = CommandSpec(
        template=CommandTemplate([PY, "-c", "print('loss=1')"]),
        output_root=str(root),
        study_name="s",
    )
    outcome = run_executor(spec, {"x": hs.choice([1])}, {"x": 0})
    assert outcome.state is TrialState.FAILED and outcome.failure_reason == "infrastructure"
    assert "outside the output root" in outcome.failure_detail


def test_stop_one_trial_of_a_running_command_study(tmp_path: Path) -> None:
    job = script(tmp_path, "steps.py", (
        "import os, time\n"
        "first = os.path.basename(os.environ['HYPERSEARCH_OUTPUT_DIR']) == '0'\n"
        "for step in range(300 if first else 2):\n"
        "    print(f'step={step} loss={1 / (step + 1)}', flush=True)\n"
        "    time.sleep(0.05)\n"
    ))
    process = subprocess.Popen(
        [PY, "-m", "hypersearch.cli.main", "grid", "--name", "s", "--param", "k=[0,1]", "--",
         PY, job, ":k:"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    db = tmp_path / "hypersearch.db"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(db, timeout=10) as conn:
                if conn.execute("SELECT count(*) FROM metrics").fetchone()[0] >= 3:
                    break
        except sqlite3.Error:
            pass
        time.sleep(0.1)
    done = cli("stop", "s", "--trial", "0", cwd=tmp_path, check=True)
    assert "stops at its next report" in done.stdout
    process.communicate(timeout=60)
    first = study_of(tmp_path, "s").trial(0)
    assert first.state is TrialState.PRUNED and "asked to stop" in (first.failure_detail or "")
    refused = cli("stop", "s", "--trial", "0", cwd=tmp_path)
    assert refused.returncode == 2 and "not RUNNING" in refused.stderr


def test_a_shell_command_objective_is_stored_as_one_string(tmp_path: Path) -> None:
    """Command(shell=True).to_config() gave a list, which the stored definition refuses."""
    command = hs.Command("echo loss=:x:", shell=True)
    assert command.to_config()["command"] == "echo loss=:x:"
    assert hs.Command.from_config(command.to_config()) == command
    study = hs.minimize(command, {"x": hs.uniform(0, 1)}, max_trials=2, metric="loss",
                        storage=f"sqlite:///{tmp_path / 'sh.db'}", name="sh", verbose=False,
                        output_dir=str(tmp_path / "runs"))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


def test_command_workers_are_named_after_free_slots(tmp_path: Path) -> None:
    """The worker name was the count of runs in flight, so with 2 slots every trial after the
    first two ran in 'slot1'; a trial takes the lowest free slot."""
    job = script(tmp_path, "quick.py", "import sys, time\ntime.sleep(0.05 * int(sys.argv[1]))\n"
                 "print('loss=1')\n")
    study = hs.minimize(hs.Command([PY, job, ":k:"]), {"k": hs.choice([1, 3])}, max_trials=8,
                        n_jobs=2, metric="loss", storage=f"sqlite:///{tmp_path / 'w.db'}",
                        name="w", verbose=False, output_dir=str(tmp_path / "runs"))
    slots = [t.worker.rsplit(":", 1)[1] for t in study.trials]
    assert set(slots) == {"slot0", "slot1"}, slots
    spans: dict[str, list[tuple[float, float]]] = {}
    for trial in study.trials:
        spans.setdefault(trial.worker, []).append((trial.started_at, trial.finished_at))
    for runs in spans.values():  # one trial at a time in each slot
        runs.sort()
        assert all(a[1] <= b[0] + 0.05 for a, b in itertools.pairwise(runs)), runs
