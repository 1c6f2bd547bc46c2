"""Shared fixtures: throw-away PostgreSQL databases and one fresh storage per backend.

PostgreSQL comes from ``$HYPERSEARCH_TEST_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Each fixture creates its own uniquely named
database on that server and drops it afterwards. If the server cannot be reached the tests are
skipped, except under ``CI=true``, where they fail: CI must never silently skip PostgreSQL.

This module imports only the space and storage layers (and the standard library), so it stays
usable while the layers above are being written.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from hypersearch.storage.base import Storage
from hypersearch.storage.memory import MemoryStorage

POSTGRES_ENV = "HYPERSEARCH_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SQL_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


class PostgresServer:
    """The PostgreSQL server the tests may create databases on."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        parsed = sa.engine.make_url(url)
        self.url = parsed  # as given; databases are made by swapping the database name
        self._libpq = parsed.set(drivername="postgresql")

    def _admin_candidates(self) -> list[str]:
        names = [self._libpq.database or "postgres", "postgres", "template1"]
        seen: list[str] = []
        for name in names:
            url = self._libpq.set(database=name).render_as_string(hide_password=False)
            if url not in seen:
                seen.append(url)
        return seen

    def admin(self) -> Any:
        """An autocommit psycopg connection to an existing database on the server."""
        import psycopg

        error: Exception | None = None
        for url in self._admin_candidates():
            try:
                return psycopg.connect(url, autocommit=True, connect_timeout=5)
            except psycopg.OperationalError as exc:  # that database may not exist: try the next
                error = exc
        assert error is not None
        raise error

    def connections(self, url: str) -> int:
        """Client connections open on the database of `url`, not counting the one asking."""
        import sqlalchemy as sa

        database = sa.engine.make_url(url).database
        with self.admin() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone()
        return int(row[0])

    def url_for(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    def create_database(self) -> tuple[str, str]:
        """A fresh database; returns (name, SQLAlchemy URL)."""
        name = f"hs_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name, self.url_for(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')

    def truncate(self, url: str) -> None:
        """Empty every table of a test database but the migration marker (fast isolation)."""
        import psycopg
        import sqlalchemy as sa

        libpq = sa.engine.make_url(url).set(drivername="postgresql")
        with psycopg.connect(
            libpq.render_as_string(hide_password=False), autocommit=True, connect_timeout=5
        ) as conn:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            ]
            if tables:
                quoted = ", ".join(f'"{table}"' for table in tables)
                conn.execute(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """The reachable PostgreSQL server, or a skip (a failure under CI=true)."""
    url = os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL
    try:
        import psycopg  # noqa: F401

        server = PostgresServer(url)
        server.admin().close()
    except Exception as error:
        message = f"PostgreSQL at {url} is not usable ({type(error).__name__}: {error})"
        if _in_ci():
            pytest.fail(
                f"{message}. CI=true: PostgreSQL tests must run, not skip. Start the server or "
                f"set {POSTGRES_ENV}.",
                pytrace=False,
            )
        pytest.skip(f"{message}; set {POSTGRES_ENV} to run the PostgreSQL tests")
    return server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test only; dropped afterwards."""
    name, url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="module")
def postgres_module_url(postgres_server: PostgresServer) -> Iterator[str]:
    """One PostgreSQL database shared by the tests of a module (creation costs ~0.3 s)."""
    name, url = postgres_server.create_database()
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@dataclass
class StorageHandle:
    """One test's storage: what to pass to ``get_storage`` (`target`), the opened `storage`, and
    `open()` for another independent storage object on the same database (SQL only)."""

    kind: str
    target: str | Storage
    storage: Storage
    _opened: list[Storage] = field(default_factory=list)

    @property
    def url(self) -> str | None:
        return self.target if isinstance(self.target, str) else None

    def open(self) -> Storage:
        if self.url is None:
            pytest.skip("an in-memory storage cannot be opened a second time")
        from hypersearch.storage.sql import SQLStorage

        storage = SQLStorage(self.url)
        self._opened.append(storage)
        return storage

    def close(self) -> None:
        for storage in [self.storage, *self._opened]:
            storage.close()


def _make_target(kind: str, request: pytest.FixtureRequest, tmp_path: Any) -> str | Storage:
    if kind == "memory":
        return MemoryStorage()
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/s.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url: str = request.getfixturevalue("postgres_module_url")
    server.truncate(url)  # shared per module, emptied per test
    return url


@pytest.fixture(params=BACKENDS)
def storage_handle(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[StorageHandle]:
    """A fresh, empty storage of each backend (memory, SQLite file, PostgreSQL)."""
    from hypersearch.storage import get_storage

    target = _make_target(request.param, request, tmp_path)
    handle = StorageHandle(request.param, target, get_storage(target))
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture(params=SQL_BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A new study database on each SQL backend: an SQLite file in the test's folder (the
    folder the `workdir` fixtures use), or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/hs.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=SQL_BACKENDS)
def sql_storage_handle(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[StorageHandle]:
    """Like `storage_handle`, for the backends several processes can share (SQLite, PostgreSQL)."""
    from hypersearch.storage import get_storage

    target = _make_target(request.param, request, tmp_path)
    handle = StorageHandle(request.param, target, get_storage(target))
    try:
        yield handle
    finally:
        handle.close()


@pytest.fixture
def storage_url(storage_handle: StorageHandle) -> str | Storage:
    """What ``get_storage`` accepts for a fresh storage: a URL, or a MemoryStorage instance."""
    return storage_handle.target


@pytest.fixture
def storage(storage_handle: StorageHandle) -> Storage:
    """The opened fresh storage of `storage_handle`."""
    return storage_handle.storage


@pytest.fixture
def open_storage(storage_handle: StorageHandle) -> Callable[[], Storage]:
    """Open a second independent storage object on the same database (skips for memory)."""
    return storage_handle.open
