"""R30: the dashboard reading a SQLite study while 8 worker processes write it never makes a
worker fail, and reads it without writing.

Eight spawned processes write ONE SQLite file: four run ask/tell with reports and log lines,
four run ``hs.minimize`` of a shell command (its output is the trial's log). Each has no
storage patience (``HYPERSEARCH_STORAGE_PATIENCE=0``), so a single "database is locked" that
SQLite's own busy wait did not absorb fails the worker instead of being retried away. Meanwhile
two reader threads hammer the dashboard's pages and JSON API, built by `create_app` on the
file's URL as ``hypersearch dashboard`` serves it. Every trial must end COMPLETE and every read
answer 2xx (404 only for a trial not created yet).

The read-only SQLite open (``engines.acquire(url, read_only=True)``, or ``?mode=ro`` in the
URL) is tested here too: it never creates, migrates or writes, never blocks a writer, and a
write through it raises ReadOnlyStorageError.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import random
import re
import sqlite3
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

import hypersearch as hs
from hypersearch.dashboard import create_app
from hypersearch.errors import StorageError
from hypersearch.storage import get_storage
from hypersearch.storage.sql import engines
from hypersearch.storage.sql.engines import ReadOnlyStorageError
from hypersearch.trial import TrialState

ASK_TELL = "ask-tell"
COMMANDS = "commands"
ASK_TELL_TRIALS = 1000  # shared by 4 workers
COMMAND_TRIALS = 200  # shared by 4 workers
STEPS = 5
SPACE = {"x": hs.uniform(0.0, 1.0), "act": hs.choice(["relu", "tanh"])}


# -- the workers (module level: spawned processes import them) ---------------------------------


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _start_worker() -> _Warnings:
    os.environ["HYPERSEARCH_STORAGE_PATIENCE"] = "0"  # a busy database fails, never waits
    caught = _Warnings()
    logging.getLogger("hypersearch").addHandler(caught)
    return caught


def ask_tell_worker(url: str, index: int) -> dict[str, Any]:
    caught = _start_worker()
    study = hs.load_study(ASK_TELL, storage=url)
    done = 0
    while True:
        try:
            trial = study.ask()
        except hs.StudyExhausted:
            break
        record = study.trial(trial.number)
        x = trial.params["x"]
        for step in range(STEPS):
            trial.report(step, loss=x / (step + 1), acc=step / STEPS)
            time.sleep(0.002)
        study.storage.append_logs(record.id, record.owner, record.lease_epoch, "stdout",
                                  [(k, f"worker {index} trial {trial.number} line {k}")
                                   for k in range(3)])
        study.tell(trial, x)
        done += 1
    study.close()
    return {"done": done, "warnings": caught.messages}


def command_worker(url: str, index: int, runs: str) -> dict[str, Any]:
    caught = _start_worker()
    command = hs.Command(["sh", "-c", "for i in 0 1 2; do echo epoch $i loss=$0; done", ":x:"],
                         output_dir=runs)
    hs.minimize(command, SPACE, name=COMMANDS, storage=url, max_trials=COMMAND_TRIALS,
                n_jobs=1, strategy="random", verbose=False)
    return {"done": -1, "warnings": caught.messages}


# -- the reader ---------------------------------------------------------------------------------


def _paths(name: str, newest: int) -> list[str]:
    s = f"/studies/{quote(name, safe='')}"
    number = random.randint(0, max(newest, 0))
    return [
        "/", s, f"{s}/trials/{number}",
        "/api/v1/studies", f"/api/v1{s}", f"/api/v1{s}/version",
        f"/api/v1{s}/trials?sort=value&limit=50", f"/api/v1{s}/trials?state=running",
        f"/api/v1{s}/trials/{number}", f"/api/v1{s}/trials/{number}/logs",
        f"/api/v1{s}/series?metric=loss", f"/api/v1{s}/history", f"/api/v1{s}/timeline",
        f"/api/v1{s}/points",
    ]


def _hammer(app: Any, stop: threading.Event, seen: Counter[tuple[str, int]],
            versions: list[int], errors: list[str]) -> None:
    client = TestClient(app, base_url="http://127.0.0.1:8080")
    rng = random.Random(threading.get_ident())
    newest = {ASK_TELL: 0, COMMANDS: 0}
    while not stop.is_set():
        name = rng.choice([ASK_TELL, COMMANDS])
        for path in _paths(name, newest[name]):
            response = client.get(path)
            route = re.sub(r"/trials/[0-9]+", "/trials/{number}",
                           path.split("?")[0].replace(quote(name, safe=""), "{name}"))
            seen[(route, response.status_code)] += 1
            if response.status_code == 404 and "/trials/" in path:
                continue  # a trial number the workers have not reached yet
            if not 200 <= response.status_code < 300:
                errors.append(f"GET {path}: {response.status_code} {response.text[:300]}")
            elif path == f"/api/v1/studies/{quote(name, safe='')}":
                newest[name] = max(response.json()["n_trials"] - 1, 0)
                versions.append(response.json()["version"])


# -- the test -----------------------------------------------------------------------------------


def test_dashboard_reading_never_fails_eight_writing_workers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hammer.db'}"
    runs = str(tmp_path / "runs")
    hs.create_study(SPACE, name=ASK_TELL, storage=url, max_trials=ASK_TELL_TRIALS,
                    strategy="random", seed=1).close()
    hs.create_study(SPACE, name=COMMANDS, storage=url, max_trials=COMMAND_TRIALS,
                    strategy="random", seed=2).close()

    app = create_app(url)  # as `hypersearch dashboard --storage URL` opens it
    reads_only = [key for key in engines.open_engines() if key.endswith("hammer.db?mode=ro")]
    assert reads_only, f"the dashboard should read SQLite read-only: {engines.open_engines()}"

    stop = threading.Event()
    seen: Counter[tuple[str, int]] = Counter()
    versions: list[int] = []
    errors: list[str] = []
    readers = [threading.Thread(target=_hammer, args=(app, stop, seen, versions, errors))
               for _ in range(2)]
    for reader in readers:
        reader.start()
    started = time.monotonic()
    try:
        with ProcessPoolExecutor(8, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(ask_tell_worker, url, i) for i in range(4)]
            futures += [pool.submit(command_worker, url, i, runs) for i in range(4)]
            results = [f.result(timeout=240) for f in futures]  # a worker's exception: here
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=60)
    elapsed = time.monotonic() - started

    assert not errors, f"{len(errors)} failed reads, e.g. {errors[:5]}"
    assert all(not r["warnings"] for r in results), [r["warnings"] for r in results]
    assert sum(r["done"] for r in results[:4]) == ASK_TELL_TRIALS
    total = sum(seen.values())
    assert total >= 100, f"only {total} reads in {elapsed:.0f} s: {seen}"
    assert len(set(versions)) > 3, "the reader should have watched the study change"

    store = get_storage(url, create=False)
    for name, budget, logs in ((ASK_TELL, ASK_TELL_TRIALS, 3), (COMMANDS, COMMAND_TRIALS, 3)):
        study = hs.load_study(name, storage=store)
        states = Counter(t.state for t in study.trials)
        assert states == {TrialState.COMPLETE: budget}, (name, states)
        last = study.trials[-1]
        assert len(store.get_logs(last.id, None, -1)) == logs
        assert store.get_metrics(last.id), "its reports were stored"


# -- the read-only open itself ------------------------------------------------------------------


@pytest.fixture
def written(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ro.db'}"
    study = hs.create_study(SPACE, name="ro", storage=url, max_trials=3, strategy="random")
    study.optimize(lambda p: p["x"], verbose=False)
    study.close()
    return url


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_read_only_open_reads_and_refuses_every_write(written: str) -> None:
    path = written.removeprefix("sqlite:///")
    before = _digest(path)
    store = get_storage(written + "?mode=ro", create=False)
    record = store.get_study("ro")
    assert record is not None and len(store.get_trials(record.id)) == 3
    for write in (lambda: store.enqueue(record.id, {"x": 0.5, "act": 0}),
                  lambda: store.heartbeat("someone", 10.0),
                  lambda: store.create_study("new", "minimize", None, None, {})):
        with pytest.raises(ReadOnlyStorageError, match="was opened read-only"):
            write()
    store.close()
    assert _digest(path) == before, "the database file is untouched"
    again = get_storage(written, create=False)
    assert [s.name for s in again.list_studies()] == ["ro"], "nothing was created"


def test_read_only_open_takes_no_write_lock(written: str) -> None:
    """A reader in the middle of a read transaction does not delay a writer's transaction."""
    path = written.removeprefix("sqlite:///")
    shared = engines.acquire(written, create=False, read_only=True)
    try:
        assert shared.read_only
        with shared.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # what SQLStorage issues; here a read only
            conn.exec_driver_sql("SELECT count(*) FROM trials").fetchall()
            writer = sqlite3.connect(path, timeout=0, isolation_level=None)  # no waiting at all
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("UPDATE studies SET version = version")
            writer.execute("COMMIT")
            writer.close()
            conn.exec_driver_sql("COMMIT")
            with pytest.raises((ReadOnlyStorageError, sa.exc.OperationalError)):
                conn.exec_driver_sql("PRAGMA journal_mode = DELETE")  # SQLite refuses it
        check = sqlite3.connect(path)
        assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        check.close()
    finally:
        engines.release(shared)


def test_read_only_open_never_creates(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    with pytest.raises(StorageError, match="no database at"):
        get_storage(f"sqlite:///{missing}?mode=ro", create=False)
    with pytest.raises(StorageError, match="no database at"):
        engines.acquire(f"sqlite:///{missing}", read_only=True)  # create=True is overridden
    assert not missing.exists()
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(StorageError, match="no hypersearch database"):
        get_storage(f"sqlite:///{foreign}?mode=ro", create=False)
    with pytest.raises(StorageError, match="mode='rwc' is not supported"):
        get_storage(f"sqlite:///{foreign}?mode=rwc", create=False)


def test_read_only_and_writing_storages_of_one_file_are_kept_apart(written: str) -> None:
    """One process may hold both (a search with dashboard=True): each keeps its own pool."""
    writer = get_storage(written)
    reader = get_storage(written + "?mode=ro", create=False)
    path = written.removeprefix("sqlite:///")
    keys = [k for k in engines.open_engines() if k.split("?")[0].endswith(path)]
    assert len(keys) == 2 and any(k.endswith("?mode=ro") for k in keys), keys
    record = writer.get_study("ro")
    number = writer.enqueue(record.id, {"x": 0.25, "act": 1})
    assert reader.get_trial(record.id, number) is not None, "the reader sees the new trial"
    writer.close()
    reader.close()


@pytest.mark.postgres
def test_read_only_postgres_engine_refuses_writes(postgres_url: str) -> None:
    """The same seam on PostgreSQL: the session is read-only, a write is one clear error."""
    study = hs.create_study(SPACE, name="ro", storage=postgres_url, max_trials=2,
                            strategy="random")
    study.optimize(lambda p: p["x"], verbose=False)
    version = study.storage.get_study("ro").version
    study.close()
    shared = engines.acquire(postgres_url, read_only=True)
    try:
        assert shared.read_only
        with shared.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM trials").scalar() == 2
            with pytest.raises(ReadOnlyStorageError, match="cannot run UPDATE"):
                conn.exec_driver_sql("UPDATE studies SET version = version + 1")
    finally:
        engines.release(shared)
    assert get_storage(postgres_url).get_study("ro").version == version, "nothing was written"
