"""What the fault scenarios share: real worker processes, the invariant check every scenario
ends with (ANCHORS.md), and a private PostgreSQL server a test may stop and start.

The invariants: trial numbers unique and dense; nothing RUNNING without a live lease; finished
trials never change; COMPLETE exactly when a value is present; trials charged == budget; every
trial lost to the machine (stale, interrupted, infrastructure) re-run with its parameters while
retries last; SQLite's full integrity_check ok. `hypersearch doctor`'s own check is part of it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hypersearch as hs
from hypersearch.study import doctor
from hypersearch.trial import TrialState

PY = sys.executable
LOST = ("stale", "interrupted", "infrastructure")  # the machine's fault: re-run


def hs_cli(args: list[str], cwd: Path, timeout: float = 240, **kwargs: Any
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "hypersearch.cli.main", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=timeout, **kwargs)


def start_worker(url: str, study: str, cwd: Path, *extra: str,
                 env: dict[str, str] | None = None, host: str | None = None
                 ) -> subprocess.Popen[str]:
    """`hypersearch worker --study STUDY` in its own session (a kill reaches only it); with
    `host`, as if on the machine of that name."""
    argv = [PY, "-m", "hypersearch.cli.main", "worker", "--study", study, "--storage", url,
            *extra]
    return subprocess.Popen(
        argv if host is None else on_host(host, argv), cwd=cwd, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
        start_new_session=True)


def finish(workers: list[subprocess.Popen[str]], timeout: float = 240) -> list[tuple[int, str]]:
    """Wait for `workers`; (exit code, stderr) of each."""
    ended = []
    for worker in workers:
        _, err = worker.communicate(timeout=timeout)
        ended.append((worker.returncode, err))
    return ended


class Watch:
    """Remembers every finished trial seen, to show later that none changed."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.seen: dict[int, tuple[Any, ...]] = {}
        self.changed: list[str] = []

    def look(self) -> set[int]:
        """Record the finished trials; the pids of the workers running a trial now."""
        study = hs.load_study(self.name, self.url)
        running: set[int] = set()
        try:
            for trial in study.trials:
                if trial.state is TrialState.RUNNING and trial.worker:
                    running.add(int(trial.worker.rsplit(":", 1)[1]))
                if trial.state in (TrialState.RUNNING, TrialState.WAITING):
                    continue
                now = (trial.state, trial.value, trial.flat_params, trial.failure_reason,
                       trial.finished_at)
                before = self.seen.setdefault(trial.number, now)
                if before != now:
                    self.changed.append(f"trial {trial.number}: {before} -> {now}")
        finally:
            study.close()
        return running


def check_invariants(url: str, name: str, budget: int | None, watch: Watch | None = None,
                     retries: int = 3) -> list[hs.FrozenTrial]:
    """Assert the invariants on a study no process serves any more; its trials."""
    study = hs.load_study(name, url)
    try:
        checkup = doctor.check(study)  # sweeps what dead workers left RUNNING
        assert checkup.healthy, checkup.problems
        trials = study.trials
        assert not [t.number for t in trials if t.state is TrialState.RUNNING], "RUNNING left"
        assert [t.number for t in trials] == list(range(len(trials))), "numbers dense, unique"
        for trial in trials:
            has_value = trial.value is not None
            assert (trial.state is TrialState.COMPLETE) == has_value or (
                trial.state is TrialState.PRUNED), (trial.number, trial.state, trial.value)
        by_number = {t.number: t for t in trials}
        rerun = {t.parent_number: t for t in trials if t.parent_number is not None}
        for trial in trials:
            if trial.state is TrialState.FAILED and trial.failure_reason in LOST:
                again = rerun.get(trial.number)
                if again is not None:
                    assert again.flat_params == trial.flat_params, trial.number
                else:  # its retries are used up, or it failed so on two machines
                    chain = _chain(by_number, trial)
                    hosts = {t.host for t in chain if t.failure_reason == "infrastructure"}
                    assert len(chain) > retries or len(hosts) >= 2, (
                        f"trial {trial.number} not re-run")
        if budget is not None:
            assert study.summary().n_trials == budget, "trials charged == budget"
            assert len(trials) - len(rerun) == budget
        if watch is not None:
            watch.look()
            assert not watch.changed, watch.changed
        if url.startswith("sqlite"):
            path = url.removeprefix("sqlite:///")
            with sqlite3.connect(path) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        return trials
    finally:
        study.close()


def _chain(by_number: dict[int, hs.FrozenTrial], trial: hs.FrozenTrial) -> list[hs.FrozenTrial]:
    """`trial` and the earlier runs of its parameters."""
    chain = [trial]
    while chain[-1].parent_number is not None:
        chain.append(by_number[chain[-1].parent_number])
    return chain


def on_host(name: str, argv: list[str]) -> list[str]:
    """`argv` run as if on another machine: its own hostname (a UTS namespace)."""
    if shutil.which("unshare") is None or subprocess.run(
            ["unshare", "--uts", "true"], capture_output=True).returncode != 0:
        _cannot("cannot make a UTS namespace here (unshare --uts): no second host to stage")
    return ["unshare", "--uts", "sh", "-c", f'hostname {name} && exec "$@"', "sh", *argv]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivatePostgres:
    """A PostgreSQL server of the test's own, on a free port: it may be stopped and restarted
    (never the shared one)."""

    def __init__(self, root: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or (
            [shutil.which("initdb")] if shutil.which("initdb") else [])
        if not found:
            _cannot("no initdb on this machine: cannot start a private PostgreSQL")
        self.bin = Path(found[-1]).parent
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            if shutil.which("runuser") is None:
                _cannot("running as root without runuser: cannot start PostgreSQL")
            self._as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(root, "postgres")
        done = self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        if done.returncode != 0:
            _cannot(f"initdb failed here: {done.stderr.strip()[-300:]}")
        self.start()

    def _pg(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self._as, str(self.bin / program), *args], text=True,
                              capture_output=True, timeout=60)

    def start(self) -> None:
        done = self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                        "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                        "-c max_connections=200 -c fsync=off", "start")
        assert done.returncode == 0, done.stderr + (self.root / "log").read_text()[-2000:]

    def stop(self, mode: str = "immediate") -> None:
        """Stop the server; "immediate" is a crash to the clients (no goodbye)."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def restart(self, down_seconds: float) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def terminate_clients(self) -> int:
        """Drop every client connection (the server stays up); how many were dropped."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE backend_type = 'client backend' "
                               "AND pid <> pg_backend_pid()").fetchone()
        return int(row[0]) if row else 0


def _cannot(why: str) -> None:
    """Skip a scenario this machine cannot stage; in CI that is a failure, not a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"CI must run this fault scenario: {why}")
    pytest.skip(why)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="hs-private-pg-"))  # not under pytest's 0700 folders
    try:
        server = PrivatePostgres(root)
        try:
            yield server
        finally:
            server.stop("fast")
    finally:
        shutil.rmtree(root, ignore_errors=True)
