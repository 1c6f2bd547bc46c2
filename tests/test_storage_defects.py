"""Regression tests for the storage defects of issue 8: one pool per URL, one back-off policy,
not-a-database files, read-only opening, study names (the last also in storage_contract.py)."""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing, suppress
from typing import Any

import pytest
from conftest import PostgresServer

from hypersearch.errors import StorageError
from hypersearch.storage import get_storage
from hypersearch.storage.retry import PATIENCE_ENV, patience_seconds
from hypersearch.storage.sql import SQLStorage, engines
from hypersearch.trial import Outcome, TrialState

FORK = multiprocessing.get_context("fork")
POOL_BOUND = engines.POSTGRES_POOL_SIZE + engines.POSTGRES_MAX_OVERFLOW
CLOSED_PORT_URL = "postgresql://postgres@127.0.0.1:1/test"


def _by_number(history: Any, number: int) -> dict[str, int]:
    return {"x": number}


def _write_a_trial(storage: Any, study_id: int) -> None:
    trial = storage.claim(
        study_id, "o", propose=_by_number, uses_history=True, max_trials=None, lease_seconds=600
    )
    assert trial is not None and trial.id is not None
    assert storage.report(trial.id, "o", trial.lease_epoch, 0, {"loss": 1.0})
    assert storage.finish(trial.id, "o", trial.lease_epoch, Outcome(TrialState.COMPLETE, 1.0))


# -- 1. one pool per URL per process --------------------------------------------------------------


@pytest.mark.postgres
def test_defect_101st_study_does_not_exhaust_postgres_connections(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    """200 studies opened through the public API, all kept alive, each with a trial written:
    no "too many clients", and the process holds a bounded number of connections."""
    from hypersearch.study import create_study

    studies = []
    try:
        for index in range(200):
            study = create_study(
                {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
                name=f"s{index}",
                strategy="random",
                storage=postgres_url,
            )
            trial = study.ask()
            study.tell(trial, 0.5)
            studies.append(study)
        assert postgres_server.connections(postgres_url) <= POOL_BOUND
        assert len({id(study.storage._shared) for study in studies}) == 1, "one pool per URL"
        assert all(s.trials[0].state is TrialState.COMPLETE for s in studies[::50])
    finally:
        for study in studies:
            study.close()


@pytest.mark.postgres
def test_defect_many_storages_on_one_url_share_one_bounded_pool(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    storages = [get_storage(postgres_url) for _ in range(200)]
    try:
        for index, storage in enumerate(storages):
            record, _ = storage.create_study(f"s{index}", "minimize", "loss", None, {})
            _write_a_trial(storage, record.id)
        assert postgres_server.connections(postgres_url) <= POOL_BOUND
        assert len({id(s._shared) for s in storages}) == 1  # type: ignore[attr-defined]
    finally:
        for storage in storages:
            storage.close()
    # the last user closed the pool: its idle connections are gone
    deadline = time.monotonic() + 5
    while postgres_server.connections(postgres_url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert postgres_server.connections(postgres_url) == 0


def test_defect_idle_pool_is_released_when_its_storages_are_collected(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/gc.db"
    storage = get_storage(url)
    storage.list_studies()
    assert str(tmp_path / "gc.db") in " ".join(engines.open_engines())
    del storage
    gc.collect()
    assert str(tmp_path / "gc.db") not in " ".join(engines.open_engines())


def test_defect_storage_is_usable_after_close(tmp_path: Any) -> None:
    storage = get_storage(f"sqlite:///{tmp_path}/reuse.db")
    storage.create_study("kept", "minimize", None, None, {})
    storage.close()
    storage.close()  # twice is harmless
    assert [s.name for s in storage.list_studies()] == ["kept"]
    storage.close()


def _child_uses_inherited_storage(storage: Any, study_id: int, kind: str, results: Any) -> None:
    try:
        _write_a_trial(storage, study_id)
        pid = _backend_pid(storage) if kind == "postgres" else None
        results.put({"backend_pid": pid, "n": len(storage.get_trials(study_id))})
    except BaseException as error:
        results.put({"error": f"{type(error).__name__}: {error}"})


def _backend_pid(storage: Any) -> int:
    import sqlalchemy as sa

    with storage._engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_defect_forked_child_does_not_reuse_the_parents_connections(
    kind: str, tmp_path: Any, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path}/fork.db"
        if kind == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    storage = get_storage(url)
    try:
        record, _ = storage.create_study("forked", "minimize", "loss", None, {})
        _write_a_trial(storage, record.id)  # the parent's pool now holds a connection
        parent_pid = _backend_pid(storage) if kind == "postgres" else None
        results = FORK.Queue()
        child = FORK.Process(
            target=_child_uses_inherited_storage, args=(storage, record.id, kind, results)
        )
        child.start()
        answer = results.get(timeout=60)
        child.join(timeout=30)
        assert "error" not in answer, answer.get("error")
        assert answer["n"] == 2
        if kind == "postgres":
            assert answer["backend_pid"] != parent_pid, "the child used the parent's connection"
            assert _backend_pid(storage) == parent_pid, "the parent's connection was kept"
        _write_a_trial(storage, record.id)  # and still works after the child exited
        assert len(storage.get_trials(record.id)) == 3
    finally:
        storage.close()


# -- 2. one back-off policy ------------------------------------------------------------------------


def test_defect_process_started_while_database_is_down_waits_like_running_workers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Opening used to give up after 5 s while running workers waited 120 s; now both follow
    one policy, and the wait is logged."""
    caplog.set_level(logging.WARNING, logger="hypersearch")
    started = time.monotonic()
    with pytest.raises(StorageError) as raised:
        SQLStorage(CLOSED_PORT_URL, patience=2.0)
    waited = time.monotonic() - started
    assert 1.9 <= waited < 15, waited
    message = str(raised.value)
    assert "\n" not in message
    assert "127.0.0.1:1" in message and "unreachable for 2 s" in message
    assert PATIENCE_ENV in message
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "database at postgresql://postgres@127.0.0.1:1/test unreachable (" in w
        and "retrying for up to 2 s" in w
        for w in warnings
    ), warnings


def test_defect_patience_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PATIENCE_ENV, "0.5")
    assert patience_seconds() == 0.5
    assert patience_seconds(3) == 3.0
    started = time.monotonic()
    with pytest.raises(StorageError, match="unreachable for 0 s"):
        get_storage(CLOSED_PORT_URL)
    assert 0.4 <= time.monotonic() - started < 12
    monkeypatch.setenv(PATIENCE_ENV, "soon")
    with pytest.raises(StorageError, match=f"{PATIENCE_ENV} must be a number of seconds"):
        get_storage(CLOSED_PORT_URL)
    monkeypatch.delenv(PATIENCE_ENV)
    assert patience_seconds() == 120.0
    with pytest.raises(StorageError, match="finite number of seconds"):
        patience_seconds(-1)


class _Proxy:
    """A TCP forwarder to PostgreSQL that can be taken down and brought back on one port, so a
    test can make the database unreachable under an open storage."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._sockets: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        """Refuse new connections and cut the open ones, as a stopped server does."""
        if self._listener is not None:
            with suppress(OSError):  # wakes the accepting thread; close() alone would not
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for sock in self._sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass


@pytest.fixture
def proxied_url(postgres_url: str) -> Iterator[tuple[str, _Proxy]]:
    import sqlalchemy as sa

    parsed = sa.engine.make_url(postgres_url)
    proxy = _Proxy(parsed.host or "127.0.0.1", parsed.port or 5432)
    try:
        url = parsed.set(host="127.0.0.1", port=proxy.port)
        yield url.render_as_string(hide_password=False), proxy
    finally:
        proxy.down()


@pytest.mark.postgres
def test_defect_running_worker_backs_off_and_resumes_when_postgres_returns(
    proxied_url: tuple[str, _Proxy], caplog: pytest.LogCaptureFixture
) -> None:
    """R10: the server goes away under an open storage and comes back within the patience:
    the write waits (logged), then lands; no trial is failed by it."""
    url, proxy = proxied_url
    caplog.set_level(logging.WARNING, logger="hypersearch")
    storage = SQLStorage(url, patience=30.0)
    try:
        record, _ = storage.create_study("r10", "minimize", "loss", None, {})
        trial = storage.claim(
            record.id,
            "o",
            propose=_by_number,
            uses_history=False,
            max_trials=None,
            lease_seconds=600,
        )
        assert trial is not None and trial.id is not None
        proxy.down()
        threading.Timer(1.5, proxy.up).start()
        started = time.monotonic()
        assert storage.finish(trial.id, "o", trial.lease_epoch, Outcome(TrialState.COMPLETE, 2.0))
        assert time.monotonic() - started >= 1.0
        assert any("unreachable" in r.getMessage() for r in caplog.records)
        (stored,) = storage.get_trials(record.id)
        assert (stored.state, stored.value, stored.failure_reason) == (
            TrialState.COMPLETE,
            2.0,
            None,
        )
    finally:
        storage.close()


@pytest.mark.postgres
def test_defect_running_worker_gives_up_with_the_same_policy(
    proxied_url: tuple[str, _Proxy], caplog: pytest.LogCaptureFixture
) -> None:
    url, proxy = proxied_url
    caplog.set_level(logging.WARNING, logger="hypersearch")
    storage = SQLStorage(url, patience=1.0)
    try:
        storage.create_study("gone", "minimize", None, None, {})
        proxy.down()
        with pytest.raises(StorageError, match="unreachable for 1 s"):
            storage.list_studies()
        assert any("retrying for up to 1 s" in r.getMessage() for r in caplog.records)
    finally:
        storage.close()


# -- 3. not an SQLite file -------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)


@pytest.mark.parametrize(
    "content",
    [b"just some notes\n", PNG, b"SQLite format 3\x00" + bytes(range(256)) * 20],
    ids=["text", "png", "garbage-after-header"],
)
def test_defect_file_that_is_not_a_database_is_a_one_line_storage_error(
    tmp_path: Any, content: bytes
) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(content)
    for create in (True, False):
        with pytest.raises(StorageError) as raised:
            get_storage(f"sqlite:///{path}", create=create)
        message = str(raised.value)
        assert "\n" not in message
        assert f"{path} " in message
        assert "not an SQLite database" in message or "cannot be read as an SQLite" in message
    assert path.read_bytes() == content, "the file was left as it was"


def test_defect_directory_given_as_sqlite_storage(tmp_path: Any) -> None:
    (tmp_path / "d.db").mkdir()
    with pytest.raises(StorageError, match="is a directory, not an SQLite database"):
        get_storage(f"sqlite:///{tmp_path}/d.db")


# -- 4. opening without creating -------------------------------------------------------------------


def test_defect_read_only_open_does_not_create_a_database(tmp_path: Any) -> None:
    path = tmp_path / "hypersearch.db"
    with pytest.raises(StorageError) as raised:
        get_storage(f"sqlite:///{path}", create=False)
    assert str(raised.value) == f"no database at {path} (nothing has run there yet?)"
    assert not path.exists()
    assert os.listdir(tmp_path) == []
    with pytest.raises(StorageError, match="no database at"):
        get_storage(f"sqlite:///{tmp_path}/missing-dir/x.db", create=False)
    path.write_bytes(b"")
    with pytest.raises(StorageError, match="no database at"):
        get_storage(f"sqlite:///{path}", create=False)
    assert path.read_bytes() == b""


def test_defect_read_only_open_does_not_add_tables_to_another_sqlite_file(tmp_path: Any) -> None:
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE things (x INTEGER)")
        conn.commit()
    with pytest.raises(StorageError, match="without hypersearch tables"):
        get_storage(f"sqlite:///{path}", create=False)
    with closing(sqlite3.connect(path)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert tables == ["things"]
    assert mode.lower() != "wal", "the file's journal mode was changed"


def test_read_only_open_of_an_existing_database_reads_it(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    writer = get_storage(url)
    writer.create_study("there", "minimize", None, None, {})
    writer.close()
    reader = get_storage(url, create=False)
    try:
        assert [s.name for s in reader.list_studies()] == ["there"]
    finally:
        reader.close()


def test_read_only_open_of_memory_is_refused() -> None:
    with pytest.raises(StorageError, match="in-memory storage"):
        get_storage("memory", create=False)


@pytest.mark.postgres
def test_defect_read_only_open_does_not_create_postgres_tables(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    with pytest.raises(StorageError, match="no hypersearch tables") as raised:
        get_storage(postgres_url, create=False)
    assert "\n" not in str(raised.value)
    import psycopg
    import sqlalchemy as sa

    libpq = sa.engine.make_url(postgres_url).set(drivername="postgresql")
    with psycopg.connect(libpq.render_as_string(hide_password=False)) as conn:
        tables = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname='public'"
        ).fetchall()
    assert tables == []
    writer = get_storage(postgres_url)
    writer.create_study("there", "minimize", None, None, {})
    reader = get_storage(postgres_url, create=False)
    try:
        assert [s.name for s in reader.list_studies()] == ["there"]
    finally:
        reader.close()
        writer.close()


@pytest.mark.postgres
def test_defect_read_only_open_of_a_missing_postgres_database(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.url_for("hs_test_never_created_here")
    with pytest.raises(StorageError, match=r"^no database at .*nothing has run there yet"):
        get_storage(url, create=False, patience=5)


# -- 6. R10: a dropped connection never turns a stored result into a "lost lease" -----------------


class _DropsAfterCommit:
    """Replaces a storage's `_transaction`: the first transaction commits, then the connection
    "drops" before the caller hears of it (an ambiguous COMMIT)."""

    def __init__(self, storage: Any) -> None:
        self.real = storage._transaction
        self.armed = True

    @contextlib.contextmanager
    def __call__(self, write: bool) -> Iterator[Any]:
        import sqlalchemy as sa

        with self.real(write) as conn:
            yield conn
        if self.armed:
            self.armed = False
            raise sa.exc.OperationalError("COMMIT", {}, Exception("server closed the connection"))


def _claim(storage: Any, study_id: int) -> Any:
    trial = storage.claim(
        study_id, "o", propose=_by_number, uses_history=False, max_trials=None, lease_seconds=600
    )
    assert trial is not None and trial.id is not None
    return trial


def test_defect_finish_retried_after_its_commit_was_lost_is_not_reported_as_fenced(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection drops after the result was committed but before we heard so: the retry
    finds the trial finished by us and must say True, not "lease lost"."""
    storage = SQLStorage(url, patience=10.0)
    try:
        record, _ = storage.create_study("ack", "minimize", None, None, {})
        for value in (3.0, float("nan")):
            trial = _claim(storage, record.id)
            drop = _DropsAfterCommit(storage)
            monkeypatch.setattr(storage, "_transaction", drop)
            outcome = Outcome(TrialState.COMPLETE, value)
            assert storage.finish(trial.id, "o", trial.lease_epoch, outcome), value
            assert not drop.armed
            monkeypatch.undo()
        # a real second finish is still refused (the contract)
        assert not storage.finish(trial.id, "o", trial.lease_epoch, Outcome(TrialState.COMPLETE, 1))
        assert [t.state for t in storage.get_trials(record.id)] == [TrialState.COMPLETE] * 2
    finally:
        storage.close()


def test_defect_claim_retried_after_its_commit_was_lost_leaves_no_orphan_trial(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim whose COMMIT landed unheard used to be retried into a second trial; the first
    stayed RUNNING under our owner, its lease renewed by our heartbeat forever."""
    storage = SQLStorage(url, patience=10.0)
    try:
        record, _ = storage.create_study("ack", "minimize", None, None, {})
        storage.enqueue(record.id, {"x": -1})
        for expected in (0, 1):  # the WAITING trial first, then a new one
            drop = _DropsAfterCommit(storage)
            monkeypatch.setattr(storage, "_transaction", drop)
            trial = _claim(storage, record.id)
            monkeypatch.undo()
            assert not drop.armed
            assert trial.number == expected
            assert storage.finish(trial.id, "o", trial.lease_epoch, Outcome(TrialState.COMPLETE, 1))
        stored = storage.get_trials(record.id)
        assert [(t.number, t.state) for t in stored] == [
            (0, TrialState.COMPLETE),
            (1, TrialState.COMPLETE),
        ]
        assert storage.get_study("ack").n_trials == 2  # type: ignore[union-attr]
    finally:
        storage.close()
