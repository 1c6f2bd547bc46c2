"""Command trials and the `hypersearch` CLI, with real subprocesses."""

from __future__ import annotations

import contextlib
import json
import os
import signal
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
    SUPERVISED,
    CommandTemplate,
    TemplateError,
    _supervisor_argv,
)
from hypersearch.trial import TrialState

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
    study = hs.create_study(
        {"form": hs.choice([form])}, storage=f"sqlite:///{tmp_path}/m.db", name="m"
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


def test_missing_executable_is_a_clear_failure(tmp_path: Path) -> None:
    study = hs.create_study({"x": hs.choice([1])}, storage=f"sqlite:///{tmp_path}/n.db", name="n")
    study.optimize(hs.Command(["no-such-program-xyz", ":x:"]), max_trials=1, verbose=False)
    trial = study.trials[0]
    assert trial.failure_reason == "exit_code"
    assert "command not found: 'no-such-program-xyz'" in trial.failure_detail


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
    assert [t.number for t in trials] == list(range(16))
    assert all(t.state.is_finished for t in trials)
    assert len({t.params["x"] for t in trials}) == 16
    assert sum(t.failure_reason == "stale" for t in trials) >= 1


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
        [*_supervisor_argv(write_fd, 1.0), "sleep", "60"],
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
    assert len(trials) == 2 and all(t.failure_reason == "interrupted" for t in trials)


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
