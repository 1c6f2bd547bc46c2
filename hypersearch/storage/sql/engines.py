"""One SQLAlchemy engine (one connection pool) per database URL per process.

Every `SQLStorage` on the same URL in a process shares one engine, so a process holding many
studies holds a handful of connections, not a pool per study (the 101st study used to fail with
PostgreSQL's "too many clients"). The pools are small and bounded:

- PostgreSQL: 2 connections kept while idle, at most 8 at once (overflow ones close as soon as
  they are returned), connections recycled after 10 minutes (servers and proxies drop long-idle
  ones). A few idle connections per process is cheap; closing every connection after each
  statement (NullPool) would add a connect round trip (~ms, more with TLS) to every heartbeat.
- SQLite: at most 12 connections (file handles; there is no server limit).

Read-only engines (``acquire(url, read_only=True)``, or ``?mode=ro`` in an SQLite URL) are for
readers beside running workers (the dashboard): SQLite connections open with the URI
``mode=ro``, so they never create the database or its tables, never migrate, never set the
journal mode, never checkpoint and never take the write lock (their ``BEGIN IMMEDIATE`` is a
plain read transaction; SQLite may still create the -wal/-shm files that WAL readers share with
the writers); PostgreSQL sessions run with ``default_transaction_read_only``. A statement that
would write raises `ReadOnlyStorageError` instead of touching the database. A read-only engine
is never shared with a writing one on the same URL.

The engine is disposed when the last storage using it is closed or garbage collected, which
releases the idle connections too. After ``fork`` a child never touches the parent's
connections: its pools are replaced (``dispose(close=False)``) before first use.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from hypersearch.errors import StorageError, StorageFailure

log = logging.getLogger("hypersearch.storage")

POSTGRES_POOL_SIZE = 2
POSTGRES_MAX_OVERFLOW = 6
POSTGRES_CONNECT_TIMEOUT = 10  # seconds per connection attempt; the back-off retries after
POOL_RECYCLE = 600
SQLITE_POOL_SIZE = 4
SQLITE_MAX_OVERFLOW = 8
SQLITE_HEADER = b"SQLite format 3\x00"
_NETWORK_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb", "smbfs", "smb3", "fuse.sshfs", "9p", "afs"}


class ReadOnlyStorageError(StorageError):
    """A write through a storage opened read-only."""


class SharedEngine:
    """An engine shared by the storages of one URL, with the bookkeeping they share."""

    def __init__(
        self, key: str, engine: Engine, sqlite_path: str | None, read_only: bool = False
    ) -> None:
        self.key = key
        self.sqlite_path = sqlite_path
        self.read_only = read_only
        self.users = 0
        self._engine = engine
        self._pid = os.getpid()

    @property
    def engine(self) -> Engine:
        if self._pid != os.getpid():  # forked without the at-fork hook (e.g. a C-level fork)
            self.after_fork()
        return self._engine

    def after_fork(self) -> None:
        # close=False: the sockets belong to the parent, which still uses them
        self._engine.dispose(close=False)
        self._pid = os.getpid()


_lock = threading.RLock()  # re-entrant: a garbage-collected storage releases from inside acquire()
_shared: dict[str, SharedEngine] = {}


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()  # another thread may have held it at the fork
    for shared in _shared.values():
        shared.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def acquire(url: str, *, create: bool = True, read_only: bool = False) -> SharedEngine:
    """The shared engine for `url` (made on first use), counted as used once more.

    With ``create=False`` a missing or empty SQLite file is refused instead of created.
    ``read_only=True`` (implied by ``mode=ro`` in an SQLite URL's query, and implying
    ``create=False``): an engine whose connections cannot write (see the module docstring)."""
    parsed, sqlite_path, read_only = _parse(url, create=create, read_only=read_only)
    # the key stays a URL (open_engines parses it); mode=ro keeps the two kinds apart
    key = (parsed.update_query_dict({"mode": "ro"}) if read_only else parsed).render_as_string(
        hide_password=False
    )
    with _lock:
        shared = _shared.get(key)
        if shared is None:
            if sqlite_path:
                engine = _sqlite_engine(parsed, sqlite_path, read_only=read_only)
            else:
                engine = _postgres_engine(parsed, read_only=read_only)
            shared = _shared[key] = SharedEngine(key, engine, sqlite_path, read_only)
        shared.users += 1
        return shared


def release(shared: SharedEngine) -> None:
    """One user fewer; the last one disposes the engine, closing its idle connections."""
    with _lock:
        shared.users -= 1
        if shared.users > 0 or _shared.get(shared.key) is not shared:
            return
        del _shared[shared.key]
    shared.engine.dispose()


def release_when_collected(owner: object, shared: SharedEngine) -> weakref.finalize:
    """Release `shared` when `owner` is garbage collected, or when the returned finalizer is
    called (at most once either way)."""
    return weakref.finalize(owner, release, shared)


def open_engines() -> dict[str, int]:
    """Shared engines alive in this process: URL (password hidden) -> number of users."""
    with _lock:
        return {
            sa.engine.make_url(key).render_as_string(hide_password=True): shared.users
            for key, shared in _shared.items()
        }


# -- creating engines ---------------------------------------------------------------------------


def _parse(
    url: str, *, create: bool, read_only: bool
) -> tuple[sa.engine.URL, str | None, bool]:
    """The URL to connect to, the SQLite file's path (None for PostgreSQL), and whether the
    engine is read-only (the argument, or ``mode=ro`` in an SQLite URL)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise StorageError(
            f"storage URL {url!r} is not valid; use sqlite:///path.db or "
            "postgresql://user@host:5432/db"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        mode = parsed.query.get("mode")
        if mode is not None:
            if mode != "ro":
                raise StorageError(
                    f"storage URL {url!r}: mode={mode!r} is not supported; the only mode is "
                    "mode=ro (read-only)"
                )
            read_only = True
            parsed = parsed.difference_update_query(["mode"])
        path = _check_sqlite_path(parsed.database, create=create and not read_only,
                                  read_only=read_only)
        return parsed.set(database=path), path, read_only
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise StorageError(
                "PostgreSQL storage needs psycopg 3: pip install 'hypersearch[postgres]'"
            ) from None
        return parsed, None, read_only
    raise StorageError(
        f"storage URL {url!r}: unsupported database {backend!r}; use sqlite:///path.db or "
        "postgresql://..."
    )


def _postgres_engine(parsed: sa.engine.URL, *, read_only: bool = False) -> Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:  # else an unroutable host hangs for minutes
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT
    # no pre-ping: a dropped connection fails the statement, is discarded by the pool and the
    # work is retried by SQLStorage._run
    engine = sa.create_engine(
        parsed,
        pool_size=POSTGRES_POOL_SIZE,
        max_overflow=POSTGRES_MAX_OVERFLOW,
        pool_recycle=POOL_RECYCLE,
        connect_args=connect_args,
    )
    if read_only:

        @sa.event.listens_for(engine, "connect")
        def _read_only_session(dbapi_connection: Any, _record: Any) -> None:
            # the server refuses every write of this session, autocommit statements included
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET SESSION default_transaction_read_only = on")
            dbapi_connection.autocommit = autocommit

        _refuse_writes(engine, parsed.render_as_string(hide_password=True))
    return engine


def _refuse_writes(engine: Engine, where: str) -> None:
    """Turn the database's refusal of a write on a read-only engine into one clear error
    (instead of a retried OperationalError or a bare "attempt to write a readonly database")."""

    @sa.event.listens_for(engine, "handle_error")
    def _clear_error(context: Any) -> None:
        error = context.original_exception
        text = str(error).lower()
        if (
            "readonly database" in text  # SQLite, mode=ro
            or getattr(error, "sqlstate", None) == "25006"  # PostgreSQL: read_only_sql_transaction
            or "read-only transaction" in text
        ):
            statement = (context.statement or "").strip().split(None, 1)
            verb = statement[0].upper() if statement else "a write"
            raise ReadOnlyStorageError(
                f"{where} was opened read-only (a reader beside running workers, such as the "
                f"dashboard): it cannot run {verb}; open the storage without read_only "
                "(and without mode=ro) to change it"
            ) from None


def _check_sqlite_path(database: str | None, *, create: bool, read_only: bool = False) -> str:
    """The absolute path of an SQLite file we may use, or a StorageError saying why not.
    `read_only`: the file must exist with our tables, and need not be writable."""
    if not database or database == ":memory:":
        raise StorageError(
            "an in-memory SQLite database is private to one connection; use storage=None "
            "for in-memory studies, or sqlite:///path.db for a file"
        )
    path = os.path.abspath(os.path.expanduser(database))
    directory = os.path.dirname(path)
    exists = os.path.exists(path)
    if not create and (not exists or (os.path.isfile(path) and os.path.getsize(path) == 0)):
        raise StorageError(f"no database at {path} (nothing has run there yet?)")
    if not os.path.isdir(directory):
        raise StorageError(f"cannot create the SQLite file {path}: {directory} does not exist")
    if exists:
        _check_sqlite_file(path)
    if read_only:
        pass  # a reader needs no write access to the file (SQLite itself opens the -shm file)
    elif exists and not os.access(path, os.W_OK):
        raise StorageFailure(f"the SQLite file {path} is read-only; hypersearch needs to write it")
    elif not os.access(directory, os.W_OK):
        raise StorageFailure(
            f"cannot write in {directory}: SQLite needs to create {os.path.basename(path)} "
            "and its -wal/-shm files there"
        )
    filesystem = _filesystem_type(directory)
    if filesystem in _NETWORK_FILESYSTEMS:
        raise StorageError(
            f"{path} is on a network filesystem ({filesystem}); SQLite's locking is unsafe "
            "there. Put the file on a local disk or use PostgreSQL for several machines"
        )
    if not create and not _has_our_tables(path):
        raise StorageError(
            f"no hypersearch database at {path}: it is an SQLite file without hypersearch "
            "tables (nothing has run there yet?)"
        )
    return path


def _check_sqlite_file(path: str) -> None:
    """Refuse an existing path that is not an SQLite file (a directory, a text file, a PNG)."""
    if os.path.isdir(path):
        raise StorageError(f"{path} is a directory, not an SQLite database")
    try:
        with open(path, "rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except OSError as error:
        raise StorageError(f"cannot read {path}: {error.strerror or error}") from None
    if header and header != SQLITE_HEADER:  # an empty file is a new database to SQLite
        raise StorageError(
            f"{path} is not an SQLite database (it exists but lacks the SQLite header); "
            "give the path of a hypersearch database or of a new file"
        )


def _has_our_tables(path: str) -> bool:
    """Whether the SQLite file has hypersearch's schema, read without writing anything."""
    try:
        conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=60.0)
        try:
            row = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                ("alembic_version",),
            ).fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        raise StorageError(f"{path} cannot be read as an SQLite database ({error})") from None
    return row is not None


def _sqlite_engine(parsed: sa.engine.URL, path: str, *, read_only: bool = False) -> Engine:
    options: dict[str, Any] = {}
    if read_only:
        # SQLite's own read-only open: SQLITE_OPEN_READONLY, so no write, lock, checkpoint or
        # journal-mode change is even possible (quote: a path may hold '?' or '#')
        uri = f"file:{quote(path)}?mode=ro"
        options["creator"] = lambda: sqlite3.connect(
            uri, uri=True, timeout=60.0, check_same_thread=False
        )
    else:
        options["connect_args"] = {"timeout": 60.0, "check_same_thread": False}
    engine = sa.create_engine(
        parsed,
        isolation_level="AUTOCOMMIT",  # we issue BEGIN IMMEDIATE ourselves
        poolclass=sa.pool.QueuePool,
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=SQLITE_MAX_OVERFLOW,
        **options,
    )
    if read_only:

        @sa.event.listens_for(engine, "connect")
        def _configure_reader(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout = 60000")
            # no "PRAGMA query_only": mode=ro already refuses writes, and query_only would also
            # refuse BEGIN IMMEDIATE, which on a mode=ro connection is only a read transaction
            mode = cursor.execute("PRAGMA journal_mode").fetchone()  # asks, never sets
            if mode and str(mode[0]).lower() != "wal":
                log.warning("%s is not in WAL mode (%s): its readers delay writers' commits",
                            path, mode[0])
            cursor.close()

        _refuse_writes(engine, path)
        return engine

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 60000")
        mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()
        if mode and str(mode[0]).lower() != "wal":
            log.warning("SQLite could not switch %s to WAL (got %s)", path, mode[0])
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    return engine


def _filesystem_type(directory: str) -> str | None:
    """The filesystem type of the mount holding `directory` (Linux), or None if unknown."""
    try:
        with open("/proc/mounts") as f:
            mounts = [line.split()[1:3] for line in f if len(line.split()) >= 3]
    except OSError:
        return None
    best = ("", None)
    real = os.path.realpath(directory)
    for mount_point, fs_type in mounts:
        if (real == mount_point or real.startswith(mount_point.rstrip("/") + "/")) and len(
            mount_point
        ) > len(best[0]):
            best = (mount_point, fs_type)
    return best[1]
