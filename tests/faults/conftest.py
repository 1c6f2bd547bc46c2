"""Fixtures of the fault scenarios (tests/faults/harness.py holds the rest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from faults.harness import private_postgres  # noqa: F401  (a fixture)

# The objectives the scenarios' workers import (`fobj:NAME`): each takes a little time and
# reports, so kills land in the middle of trials and of their writes.
OBJECTIVES = '''
import errno, os, random, time
import hypersearch as hs

def steady(params):
    rng = random.Random(params["x"])
    for step in range(2):
        hs.report(step, loss=params["x"] + step)
        time.sleep(rng.uniform(0.02, 0.25))
    return params["x"]

def broken_here(params):
    """Fails on a worker started with BROKEN set (that machine's disk is full)."""
    if os.environ.get("BROKEN"):
        raise OSError(errno.ENOSPC, "No space left on device", "/scratch/ckpt")
    time.sleep(0.05)
    return params["x"]

def quick(params):
    return params["x"]

def clock(params):
    """What this process believes the time is, beside the value."""
    time.sleep(0.05)
    return {"loss": params["x"], "clock": time.time()}

def misbehaves(params):
    """R13/R16: each way an objective goes wrong, chosen by the parameter `how`."""
    how = params["how"]
    if how == "raise":
        raise RuntimeError("a bug in the objective")
    if how == "exit":
        os._exit(3)
    if how == "segv":
        import ctypes
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    if how == "hang":
        time.sleep(600)
    return 1.0
'''


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The scenario's folder, holding fobj.py; also the working directory."""
    (tmp_path / "fobj.py").write_text(OBJECTIVES)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path
