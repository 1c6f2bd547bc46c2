"""Storage: the contract on every backend, plus several processes on one SQL database."""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sqlite3
from collections import Counter
from contextlib import closing
from typing import Any

import pytest
import storage_workers
from conftest import PostgresServer, StorageHandle
from storage_contract import StorageContract

from hypersearch.errors import StorageError
from hypersearch.storage import get_storage
from hypersearch.storage.base import owner_is_dead
from hypersearch.storage.memory import MemoryStorage
from hypersearch.trial import Outcome, TrialState

SPAWN = multiprocessing.get_context("spawn")
CHILD_TIMEOUT = 120.0


class TestStorageContract(StorageContract):
    """Every contract test, on memory, SQLite and PostgreSQL (see conftest.storage_handle)."""


# -- helpers ----------------------------------------------------------------------------------


def _gather(processes: list[Any], results: Any, expected: int) -> list[dict[str, Any]]:
    """Start the processes, collect one result from each, and make sure they all exit."""
    for process in processes:
        process.start()
    out = []
    try:
        for _ in range(expected):
            out.append(results.get(timeout=CHILD_TIMEOUT))
    except queue.Empty:
        pytest.fail(f"only {len(out)} of {expected} child processes answered")
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()
    return out


def _integrity_ok(handle: StorageHandle) -> None:
    if handle.kind != "sqlite":
        return
    assert handle.url is not None
    path = handle.url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"


def _run_claimers(
    handle: StorageHandle, n_processes: int, max_trials: int | None, n_points: int | None
) -> list[dict[str, Any]]:
    assert handle.url is not None
    barrier = SPAWN.Barrier(n_processes)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(
            target=storage_workers.claim_loop,
            args=(handle.url, "parallel", max_trials, n_points, barrier, results, index),
        )
        for index in range(n_processes)
    ]
    answers = _gather(processes, results, n_processes)
    for answer in answers:
        assert answer["errors"] == [], answer["errors"][0]
        assert answer["refused"] == 0, "a worker's own lease was refused"
        locked = [m for m in answer["warnings"] if "locked" in m or "busy" in m]
        assert locked == [], f"worker {answer['index']} hit lock errors: {locked[:3]}"
    return answers


# -- several processes on one database ----------------------------------------------------------


def test_parallel_claims_respect_the_budget_exactly(sql_storage_handle: StorageHandle) -> None:
    handle = sql_storage_handle
    storage = handle.storage
    study, _ = storage.create_study("parallel", "minimize", None, None, {})
    n_processes = 8 if handle.kind == "sqlite" else 4
    answers = _run_claimers(handle, n_processes, max_trials=200, n_points=None)

    claimed = [number for answer in answers for number in answer["numbers"]]
    assert sorted(claimed) == list(range(200)), "every number exactly once"
    trials = storage.get_trials(study.id)
    assert [t.number for t in trials] == list(range(200))
    assert all(t.state is TrialState.COMPLETE and t.value == t.number for t in trials)
    assert [t.flat_params for t in trials] == [{"x": n} for n in range(200)]
    summary = storage.summary(study.id, "minimize")
    assert summary.n_trials == 200
    assert summary.counts == {"COMPLETE": 200}
    assert summary.best_number == 0
    assert len({t.worker for t in trials}) > 1, "the work should have been shared"
    _integrity_ok(handle)


def test_parallel_grid_points_each_taken_once(sql_storage_handle: StorageHandle) -> None:
    handle = sql_storage_handle
    storage = handle.storage
    study, _ = storage.create_study("parallel", "minimize", None, None, {})
    answers = _run_claimers(handle, 4, max_trials=None, n_points=48)

    points = [t.flat_params["point"] for t in storage.get_trials(study.id)]
    duplicated = [p for p, n in Counter(points).items() if n > 1]
    assert duplicated == [], f"grid points handed out twice: {duplicated}"
    assert sorted(points) == list(range(48))
    assert sum(len(answer["numbers"]) for answer in answers) == 48
    assert storage.summary(study.id, "minimize").counts == {"COMPLETE": 48}
    _integrity_ok(handle)


def test_killed_owner_is_swept_as_dead(sql_storage_handle: StorageHandle) -> None:
    handle = sql_storage_handle
    study, _ = handle.storage.create_study("parallel", "minimize", None, None, {})
    results = SPAWN.Queue()
    child = SPAWN.Process(target=storage_workers.hold_claim, args=(handle.url, "parallel", results))
    child.start()
    try:
        answer = results.get(timeout=CHILD_TIMEOUT)
        assert "error" not in answer, answer.get("error")
        owner = answer["owner"]
        other = handle.open()  # an independent storage object, as another worker would have
        assert other.running_owners(study.id) == {owner}
        assert not owner_is_dead(owner), "the child is still running"
        assert other.sweep_stale(study.id) == [], "its lease is still valid"
        os.kill(child.pid, signal.SIGKILL)
        child.join(timeout=30)
        assert child.exitcode == -signal.SIGKILL
    finally:
        if child.is_alive():
            child.kill()
            child.join()

    dead = [o for o in other.running_owners(study.id) if owner_is_dead(o)]
    assert dead == [owner]
    assert other.sweep_stale(study.id, retry=True, dead_owners=dead) == [answer["number"]]
    trials = other.get_trials(study.id)
    assert trials[0].state is TrialState.FAILED
    assert trials[0].failure_reason == "stale"
    assert (trials[1].state, trials[1].parent_number) == (TrialState.WAITING, answer["number"])
    assert other.running_owners(study.id) == set()
    _integrity_ok(handle)


def test_many_processes_open_a_new_database_at_once(
    request: pytest.FixtureRequest, tmp_path: Any, backend: str
) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path}/fresh.db"
    else:
        url = request.getfixturevalue("postgres_url")
    n_processes = 6
    barrier = SPAWN.Barrier(n_processes)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(target=storage_workers.open_and_create, args=(url, barrier, results, i))
        for i in range(n_processes)
    ]
    answers = _gather(processes, results, n_processes)
    for answer in answers:
        assert "error" not in answer, answer.get("error")
    assert sum(answer["created"] for answer in answers) == 1
    assert len({answer["id"] for answer in answers}) == 1
    storage = get_storage(url)
    try:
        assert [s.name for s in storage.list_studies()] == ["shared"]
    finally:
        storage.close()
    if backend == "sqlite":
        with closing(sqlite3.connect(str(tmp_path / "fresh.db"))) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


# -- opening storages ---------------------------------------------------------------------------


def test_two_storage_objects_share_one_database(sql_storage_handle: StorageHandle) -> None:
    first = sql_storage_handle.storage
    second = sql_storage_handle.open()
    study, _ = first.create_study("shared", "minimize", None, None, {})
    record, created = second.create_study("shared", "maximize", None, None, {})
    assert not created and record.id == study.id
    a = first.claim(
        study.id,
        "a",
        propose=lambda h, n: {"x": n},
        uses_history=True,
        max_trials=2,
        lease_seconds=60,
    )
    seen: list[int] = []

    def propose(history: Any, number: int) -> dict[str, int]:
        seen.extend(t.number for t in history)
        return {"x": number}

    b = second.claim(
        study.id, "b", propose=propose, uses_history=True, max_trials=2, lease_seconds=60
    )
    assert a is not None and b is not None and (a.number, b.number) == (0, 1)
    assert seen == [0], "the second object sees the first one's trial in its history"
    assert (
        first.claim(
            study.id, "a", propose=propose, uses_history=True, max_trials=2, lease_seconds=60
        )
        is None
    )


def test_history_of_a_deleted_study_never_leaks_into_a_new_one(
    sql_storage_handle: StorageHandle,
) -> None:
    """A storage object caches finished trials by study id; after another object deletes the
    study and creates a new one, the cache must not hand the old trials to `propose`."""
    first = sql_storage_handle.storage
    second = sql_storage_handle.open()
    old, _ = first.create_study("old", "minimize", None, None, {})

    def by_number(history: Any, number: int) -> dict[str, int]:
        return {"x": number}

    for _ in range(2):
        trial = first.claim(
            old.id, "o", propose=by_number, uses_history=True, max_trials=None, lease_seconds=60
        )
        assert trial is not None and trial.id is not None
        assert first.finish(trial.id, "o", 1, Outcome(TrialState.COMPLETE, 1.0))
    assert second.delete_study("old")
    new, created = second.create_study("new", "minimize", None, None, {})
    assert created
    seen: list[tuple[int, dict[str, Any]]] = []

    def record(history: Any, number: int) -> dict[str, int]:
        seen.extend((t.number, t.flat_params) for t in history)
        return {"y": number}

    trial = first.claim(
        new.id, "o", propose=record, uses_history=True, max_trials=None, lease_seconds=60
    )
    assert trial is not None and trial.number == 0
    assert seen == [], f"the new study's history shows the deleted study's trials: {seen}"
    assert new.id != old.id, "a deleted study's id must not be reused"


def test_get_storage_forms(tmp_path: Any) -> None:
    memory = MemoryStorage()
    assert get_storage(memory) is memory
    assert isinstance(get_storage("memory"), MemoryStorage)
    with pytest.raises(StorageError, match="not a URL"):
        get_storage(str(tmp_path / "x.db"))
    with pytest.raises(StorageError, match="unsupported database"):
        get_storage("mysql://localhost/db")
    with pytest.raises(StorageError, match="in-memory SQLite"):
        get_storage("sqlite:///:memory:")
    with pytest.raises(StorageError, match="does not exist"):
        get_storage(f"sqlite:///{tmp_path}/missing-dir/x.db")
    sqlite = get_storage(f"sqlite:///{tmp_path}/x.db")
    try:
        assert sqlite.url.endswith("x.db")
        assert sqlite.list_studies() == []
    finally:
        sqlite.close()


def test_sqlite_reopen_keeps_everything(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path}/keep.db"
    storage = get_storage(url)
    study, _ = storage.create_study("kept", "maximize", "acc", None, {"k": 1})
    trial = storage.claim(
        study.id,
        "o",
        propose=lambda h, n: {"x": n},
        uses_history=False,
        max_trials=None,
        lease_seconds=60,
    )
    assert trial is not None and trial.id is not None
    storage.report(trial.id, "o", 1, 0, {"acc": 0.5})
    storage.close()
    again = get_storage(url)
    try:
        record = again.get_study("kept")
        assert record is not None and record.config == {"k": 1} and record.n_trials == 1
        assert [p.value for p in again.get_metrics(trial.id)] == [0.5]
    finally:
        again.close()


@pytest.mark.postgres
def test_postgres_url_fixture_gives_a_fresh_database(
    postgres_url: str, postgres_server: PostgresServer
) -> None:
    storage = get_storage(postgres_url)
    try:
        assert storage.list_studies() == []
        storage.create_study("only-here", "minimize", None, None, {})
        assert [s.name for s in storage.list_studies()] == ["only-here"]
    finally:
        storage.close()


# -- proposals outside the study lock (issue 11) ------------------------------------------------


def _claim_in_thread(storage: Any, study_id: int, propose: Any) -> tuple[Any, Any]:
    """Claim on another thread; (the thread, a one-slot queue that gets the trial)."""
    import threading

    got: queue.Queue[Any] = queue.Queue(maxsize=1)

    def work() -> None:
        got.put(storage.claim(study_id, "slow", propose=propose, uses_history=True,
                              max_trials=None, lease_seconds=60))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, got


def test_a_slow_proposal_holds_no_lock(sql_storage_handle: StorageHandle) -> None:
    """While one worker's sampler thinks (a GP fit), another worker claims at once."""
    import threading

    slow_storage, fast_storage = sql_storage_handle.storage, sql_storage_handle.open()
    study, _ = slow_storage.create_study("s", "minimize", None, None, {})
    thinking, release = threading.Event(), threading.Event()

    def slow(history: Any, number: int) -> dict[str, Any]:
        thinking.set()
        assert release.wait(30)
        return {"x": 0.5}

    thread, got = _claim_in_thread(slow_storage, study.id, slow)
    assert thinking.wait(30)
    fast = fast_storage.claim(study.id, "fast", propose=lambda h, n: {"x": 0.25},
                              uses_history=True, max_trials=None, lease_seconds=60)
    assert fast is not None and fast.number == 0, "claimed while the other proposal ran"
    release.set()
    thread.join(30)
    slow_trial = got.get(timeout=5)
    assert (slow_trial.number, slow_trial.flat_params) == (1, {"x": 0.5})


def test_the_same_point_from_one_snapshot_is_proposed_again(
    sql_storage_handle: StorageHandle,
) -> None:
    """Two workers proposing from the same snapshot propose the same point (a grid's next
    one, a seeded sampler's): the later claim sees it taken and proposes again, from a
    snapshot that holds the other's trial; the budget stays exact."""
    import threading

    slow_storage, fast_storage = sql_storage_handle.storage, sql_storage_handle.open()
    study, _ = slow_storage.create_study("s", "minimize", None, None, {})
    thinking, release = threading.Event(), threading.Event()
    seen: list[list[dict[str, Any]]] = []

    def first_free(history: Any, number: int) -> dict[str, Any] | None:
        taken = {t.flat_params["x"] for t in history}
        seen.append([t.flat_params for t in history])
        if len(seen) == 1:
            thinking.set()
            assert release.wait(30)
        free = [x for x in range(3) if x not in taken]
        return {"x": free[0]} if free else None

    thread, got = _claim_in_thread(slow_storage, study.id, first_free)
    assert thinking.wait(30)
    fast = fast_storage.claim(study.id, "fast", propose=first_free, uses_history=True,
                              max_trials=2, lease_seconds=60)
    assert fast is not None and fast.flat_params == {"x": 0}
    release.set()
    thread.join(30)
    slow_trial = got.get(timeout=5)
    assert slow_trial.flat_params == {"x": 1}, "proposed anew, not the taken point"
    assert seen[0] == [] and seen[-1] == [{"x": 0}]
    assert [t.flat_params["x"] for t in fast_storage.get_trials(study.id)] == [0, 1]
