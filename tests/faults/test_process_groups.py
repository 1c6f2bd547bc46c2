"""R3 for workers: `kill -9` of a worker whose command trials started grandchildren (one of
them ignoring SIGTERM). Each trial's supervisor ends its whole process group, so nothing of a
dead worker keeps running (or holds its GPU); its trials are re-run by the next worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import hypersearch as hs
from faults.harness import PY, check_invariants, finish, start_worker

SPAWNER = '''
import os, subprocess, sys, time
stubborn = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(1000)")
kid = subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE)
kid.stdout.readline()
folder = sys.argv[2]
if not os.path.exists(os.path.join(folder, "done")):  # the first worker's trials hang
    path = os.path.join(folder, os.environ["HYPERSEARCH_TRIAL"])
    with open(path + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {kid.pid}")
    os.rename(path + ".tmp", path + ".pid")
    time.sleep(1000)
kid.kill()
print("loss=" + sys.argv[1])
'''


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc").exists(), reason="reads /proc (Linux)")
def test_a_killed_workers_trials_take_their_grandchildren_with_them(
    url: str, workdir: Path
) -> None:
    (workdir / "spawner.py").write_text(SPAWNER)
    pids_dir = workdir / "pids"
    pids_dir.mkdir()
    hs.create_study({"x": hs.uniform(0, 1)}, name="groups", storage=url, max_trials=4,
                    command=[PY, "spawner.py", ":x:", str(pids_dir)], metric="loss",
                    n_jobs=2, cwd=str(workdir))
    worker = start_worker(url, "groups", workdir)
    deadline = time.monotonic() + 60
    while len(list(pids_dir.glob("*.pid"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(p) for f in pids_dir.glob("*.pid") for p in f.read_text().split()]
    assert len(pids) == 4 and all(_alive(p) for p in pids)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [p for p in pids if _alive(p)], "grandchildren outlived their worker"
    (pids_dir / "done").write_text("")
    ((code, err),) = finish([start_worker(url, "groups", workdir)])
    assert code == 0, err[-2000:]
    trials = check_invariants(url, "groups", 4)
    assert sum(t.failure_reason == "stale" for t in trials) == 2
