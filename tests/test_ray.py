"""Issue 11: trials as Ray tasks on a local multi-node Ray cluster (a head and a second node,
each its own raylet process), from Python, from the command line and from ``worker --ray``;
and a study that loses a node mid-trial keeps its budget exact."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hypersearch as hs
from hypersearch.trial import TrialState

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

PY = sys.executable
OBJECTIVE = '''
import os, socket, time
from pathlib import Path
import hypersearch as hs

def curve(params):
    for step in range(3):
        hs.report(step, loss=params["x"] + step)
    return {"loss": params["x"], "pid": float(os.getpid())}

def marks_and_sleeps(params):
    """Leaves a file saying it started, then runs for a while."""
    folder = Path(os.environ["MARKS"])
    (folder / f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}").write_text("")
    time.sleep(float(os.environ.get("SLEEP", "6")))
    return params["x"]
'''


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "rayobj.py").write_text(OBJECTIVE)
    (tmp_path / "marks").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MARKS", str(tmp_path / "marks"))
    return tmp_path


@pytest.fixture
def cluster(workdir: Path) -> Iterator[Any]:
    """A head node and a second node, one CPU each: two trials at once run on two nodes."""
    small = 80 * 2**20  # object store bytes per node: these tests move almost nothing
    made = Cluster(initialize_head=True,
                   head_node_args={"num_cpus": 1, "object_store_memory": small})
    made.second = made.add_node(num_cpus=1, object_store_memory=small)
    made.wait_for_nodes()
    ray.init(address=made.address, log_to_driver=False)
    try:
        yield made
    finally:
        ray.shutdown()
        made.shutdown()


def test_a_python_study_runs_on_both_nodes_and_stores_where_each_trial_ran(
    cluster: Any, url: str
) -> None:
    from rayobj import curve  # type: ignore[import-not-found]

    study = hs.minimize(curve, {"x": hs.uniform(0, 1)}, max_trials=6, n_jobs=2, seed=3,
                        executor="ray", storage=url, name="r")
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 6
    assert all(t.value == t.params["x"] for t in trials)
    for trial in trials:  # the Ray worker process that ran it, not this driver
        assert trial.worker is not None and trial.worker.endswith(f":{int(trial.metrics['pid'])}")
        assert int(trial.metrics["pid"]) != os.getpid()
        points = [p for p in study.storage.get_metrics(trial.id) if p.name == "loss"]
        assert [p.step for p in points] == [0, 1, 2]


def test_resources_that_fit_no_node_are_refused_with_what_the_cluster_has(
    cluster: Any, workdir: Path
) -> None:
    from rayobj import curve

    with pytest.raises(hs.HypersearchError, match=r"gpu=1.*fits no node.*2 node"):
        hs.minimize(curve, {"x": hs.uniform(0, 1)}, max_trials=1, executor="ray",
                    resources_per_trial={"cpu": 1, "gpu": 1})


def test_cli_ray_and_worker_ray_run_commands_on_the_cluster(cluster: Any, workdir: Path) -> None:
    url = f"sqlite:///{workdir}/hs.db"
    # six steps; the threshold stops each trial once loss passes 1.5 (at step 1 or 2): the
    # reports reach this process's scheduler and its STOP ends the process on its node
    steps = ("import sys, time\nfor s in range(6):\n"
             "    print(f'step={s} loss={float(sys.argv[1]) + s}', flush=True); time.sleep(0.4)")
    run = subprocess.run(
        [PY, "-m", "hypersearch.cli.main", "random", "--ray", cluster.address, "-n", "3",
         "-p", "2", "--name", "cli", "--storage", url, "--param", "x=0:1", "--scheduler",
         "threshold", "--scheduler-opt", "upper=1.5", "--", PY, "-c", steps, ":x:"],
        cwd=workdir, text=True, capture_output=True, timeout=180)
    assert run.returncode == 0, run.stderr
    study = hs.load_study("cli", url)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 3
    for trial in study.trials:
        reported = [p.step for p in study.storage.get_metrics(trial.id) if p.name == "loss"]
        assert reported and max(reported) <= 3, reported  # stopped, not run to step 5
    assert study.definition.executor == "ray"

    train = "import sys; print('loss=%s' % sys.argv[1])"
    # a stored study, then a worker that sends its trials to the cluster
    hs.create_study({"x": hs.uniform(0, 1)}, name="w", storage=url, max_trials=3,
                    command=[PY, "-c", train, ":x:"], metric="loss")
    served = subprocess.run(
        [PY, "-m", "hypersearch.cli.main", "worker", "--study", "w", "--storage", url,
         "--slots", "2", "--ray", cluster.address],
        cwd=workdir, text=True, capture_output=True, timeout=180)
    assert served.returncode == 0, served.stderr
    worked = hs.load_study("w", url)
    assert [t.state for t in worked.trials] == [TrialState.COMPLETE] * 3
    assert all(t.value == t.params["x"] for t in worked.trials)
    assert worked.definition.executor == "auto", "worker --ray is this worker's, not stored"
    assert all(t.worker and t.worker != "ray" for t in worked.trials)


@pytest.mark.parametrize("retry", [True, False], ids=["retried", "failed"])
def test_losing_a_node_mid_trial_retries_or_fails_the_trial_and_keeps_the_budget(
    cluster: Any, workdir: Path, retry: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from rayobj import marks_and_sleeps

    marks = workdir / "marks"

    def kill_second_node_once_both_run() -> None:
        deadline = time.monotonic() + 120
        while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        cluster.remove_node(cluster.second, allow_graceful=False)  # SIGKILL of its raylet

    monkeypatch.setenv("SLEEP", "3")  # seconds each trial runs
    killer = threading.Thread(target=kill_second_node_once_both_run, daemon=True)
    killer.start()
    retry_on = ("interrupted", "stale", "infrastructure") if retry else ("interrupted",)
    study = hs.minimize(marks_and_sleeps, {"x": hs.uniform(0, 1)}, max_trials=3, n_jobs=2,
                        executor="ray", retry_on=retry_on, seed=1,
                        storage=f"sqlite:///{workdir}/hs.db", name="lossy")
    killer.join(5)
    trials = study.trials
    assert [t.number for t in trials] == list(range(len(trials))), "numbers dense and unique"
    failed = [t for t in trials if t.state is TrialState.FAILED]
    assert len(failed) == 1, [(t.number, t.state, t.failure_detail) for t in trials]
    assert failed[0].failure_reason == "infrastructure"
    assert "node" in (failed[0].failure_detail or "")
    complete = [t for t in trials if t.state is TrialState.COMPLETE]
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAILED) for t in trials)
    if retry:  # the lost trial's parameters ran again; the lost run is not charged
        assert len(complete) == 3
        again = [t for t in complete if t.parent_number == failed[0].number]
        assert len(again) == 1 and again[0].flat_params == failed[0].flat_params
    else:
        assert len(complete) == 2, "the budget of 3 holds the failed trial"
    assert study.summary().n_trials == 3, "charged == budget"
