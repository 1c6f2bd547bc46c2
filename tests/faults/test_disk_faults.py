"""R11: the disk under an SQLite study fills up, or turns read-only. The worker stops with a
clear error naming the file (no crash loop, no traceback), the database stays sound, and once
the disk is back the study resumes to its exact budget. Staged on a small tmpfs mounted by the
test (root only; elsewhere skipped with the reason, and CI must be able to)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import hypersearch as hs
from faults.harness import _cannot, check_invariants, finish, start_worker


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        _cannot(f"cannot mount a small tmpfs here: {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _fill(folder: Path, leave: int) -> Path:
    """A file taking all but `leave` bytes of the file system of `folder`."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    filler = folder / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_stops_the_worker_with_the_path_and_resume_finishes(
    small_disk: Path, workdir: Path
) -> None:
    url = f"sqlite:///{small_disk}/hs.db"
    budget = 400
    hs.create_study({"x": hs.uniform(0, 1), "tag": hs.choice(["a" * 200, "b" * 200])},
                    name="full", storage=url, max_trials=budget, objective="fobj:quick",
                    strategy="random", seed=1)
    filler = _fill(small_disk, leave=96 * 1024)
    ((code, err),) = finish([start_worker(url, "full", workdir)], timeout=120)
    assert code == 1, "the worker cannot go on with a full disk: exit 1, not a usage error"
    assert str(small_disk / "hs.db") in err and "full" in err, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    filler.unlink()
    ((code, err),) = finish([start_worker(url, "full", workdir)], timeout=240)
    assert code == 0, err[-2000:]
    check_invariants(url, "full", budget)


def test_a_read_only_disk_stops_the_worker_with_the_path_and_resume_finishes(
    small_disk: Path, workdir: Path
) -> None:
    url = f"sqlite:///{small_disk}/hs.db"
    hs.create_study({"x": hs.uniform(0, 1)}, name="ro", storage=url, max_trials=20,
                    objective="fobj:quick", strategy="random", seed=2)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        ((code, err),) = finish([start_worker(url, "ro", workdir)], timeout=120)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert code == 1, "exit 1: the disk failed, not the usage"
    assert str(small_disk / "hs.db") in err and "read" in err.lower(), err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    ((code, err),) = finish([start_worker(url, "ro", workdir)], timeout=240)
    assert code == 0, err[-2000:]
    check_invariants(url, "ro", 20)
