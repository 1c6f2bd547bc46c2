"""SQL storage on SQLAlchemy Core: SQLite (the default, a file) and PostgreSQL (psycopg 3).

Concurrency: a claim locks the study row (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL:
``SELECT ... FOR UPDATE``), so budgets and grid points hold across processes and machines.
Times come from the database clock. Transient errors ("database is locked", a dropped
connection, a server that is down) are retried with the back-off policy of
hypersearch/storage/retry.py (120 s of patience by default, ``$HYPERSEARCH_STORAGE_PATIENCE``),
the same for the first open as for a running worker; they are never charged to a trial.
Storages on one URL share one small connection pool per process (see engines.py).

``SQLStorage(url, create=False)`` opens only a database hypersearch has already written: it
never creates the SQLite file nor the tables (read-only commands use it).
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hypersearch.errors import StorageError, StorageFailure, StudyFull
from hypersearch.storage.base import (
    LogLine,
    MetricPoint,
    Propose,
    RanOn,
    Storage,
    StudyRecord,
    StudySummary,
    check_study_name,
    host_id,
)
from hypersearch.storage.memory import stale_detail
from hypersearch.storage.queries import Note, TrialOutline, TrialQuery, select_trials
from hypersearch.storage.retry import Backoff, patience_seconds
from hypersearch.storage.sql import engines, schema
from hypersearch.storage.sql.schema import field_rows, metrics, notes, studies, trial_fields, trials
from hypersearch.trial import FailureReason, FrozenTrial, Outcome, TrialState

log = logging.getLogger("hypersearch.storage")
T = TypeVar("T")

_SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
_POSTGRES_NOW = "extract(epoch from clock_timestamp())"


# a trial's trial_fields rows (schema.field_rows) in one statement; the study id is the trial's
_INSERT_FIELDS = {
    "sqlite": sa.text(
        "INSERT INTO trial_fields (trial_id, study_id, field, value_num, value_text) SELECT "
        ":trial_id, study_id, :field, :value_num, :value_text FROM trials WHERE id = :trial_id"
    ),
    "postgresql": sa.text(  # one statement of arrays: a third of an executemany's cost
        "INSERT INTO trial_fields (trial_id, study_id, field, value_num, value_text) SELECT "
        "t.id, t.study_id, u.field, u.num, u.text FROM trials t, unnest(CAST(:field AS TEXT[]), "
        "CAST(:value_num AS DOUBLE PRECISION[]), CAST(:value_text AS TEXT[])) AS u(field, num, "
        "text) WHERE t.id = :trial_id"
    ),
}


# the columns a claim writes (SQLStorage.claim), bound by name in `_claim_in_one`
_CLAIM_COLUMNS = ("study_id", "number", "params_json", "metrics_json", "user_attrs_json",
                  "charged", "lease_epoch", "created_at", "started_at", "lease_expiry", "state",
                  "owner", "host", "worker", "gpus")


def _fields_of(written: Any) -> Any:
    """PostgreSQL: a CTE inserting the fields (bound as arrays f_field, f_num, f_text) of the
    trial that the CTE `written` returns (id, study_id), if it returns one: the row and its
    fields in one statement, one round trip."""
    from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION

    b = sa.bindparam
    rows = sa.func.unnest(
        b("f_field", type_=ARRAY(sa.Text)), b("f_num", type_=ARRAY(DOUBLE_PRECISION)),
        b("f_text", type_=ARRAY(sa.Text)),
    ).table_valued("field", "num", "text").render_derived(name="u")
    return trial_fields.insert().from_select(
        ["trial_id", "study_id", "field", "value_num", "value_text"],
        sa.select(written.c.id, written.c.study_id, rows.c.field, rows.c.num, rows.c.text)
        .select_from(written.join(rows, sa.true())),
    ).cte("fields")


def _field_arrays(prefix: str, values: dict[str, Any]) -> dict[str, list[Any]]:
    rows = field_rows(prefix, values)
    return {"f_field": [r["field"] for r in rows], "f_num": [r["value_num"] for r in rows],
            "f_text": [r["value_text"] for r in rows]}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


class SQLStorage(Storage):
    """Storage in a SQL database. ``SQLStorage("sqlite:///study.db")`` or a PostgreSQL URL.

    `create=False` refuses a database without hypersearch's tables instead of creating them;
    `patience` (seconds) overrides the back-off patience of hypersearch/storage/retry.py;
    `read_only=True` opens connections that cannot write (a viewer beside running workers:
    no lock taken, nothing migrated; a write raises ReadOnlyStorageError)."""

    def __init__(
        self, url: str, *, create: bool = True, patience: float | None = None,
        read_only: bool = False,
    ) -> None:
        self.url = url
        self._read_only = read_only
        self._create = create and not read_only
        self._patience = patience_seconds(patience)
        self._history: dict[int, tuple[dict[int, FrozenTrial], int]] = {}
        self._history_lock = threading.Lock()
        self._shared = engines.acquire(url, create=self._create, read_only=read_only)
        self._release = engines.release_when_collected(self, self._shared)
        self._sqlite = self._shared.sqlite_path is not None
        self._now = sa.literal_column(_SQLITE_NOW if self._sqlite else _POSTGRES_NOW)
        self._prepare_statements()
        try:  # checked on every open (one short transaction): the file may have been replaced
            self._run(self._migrate, write=True)
        except BaseException:
            self.close()
            raise

    @property
    def _engine(self) -> Engine:
        if not self._release.alive:  # used again after close(): take the shared pool again
            self._shared = engines.acquire(self.url, create=False, read_only=self._read_only)
            self._release = engines.release_when_collected(self, self._shared)
        return self._shared.engine

    def _prepare_statements(self) -> None:
        """Build the hot statements once; each call then only binds values."""
        b = sa.bindparam
        self._insert_trial = trials.insert()
        self._finish_trial = (
            trials.update()
            .where(self._fence(b("b_id"), b("b_owner"), b("b_epoch")))
            .values(
                state=b("b_state"),
                value=b("b_value", type_=sa.Float),
                metrics_json=b("b_metrics"),
                failure_reason=b("b_reason"),
                failure_detail=b("b_detail"),
                finished_at=self._now,
                lease_expiry=None,
                params_json=sa.func.coalesce(b("b_params", type_=sa.Text), trials.c.params_json),
                distributions_json=sa.func.coalesce(
                    b("b_distributions", type_=sa.Text), trials.c.distributions_json
                ),
                user_attrs_json=sa.func.coalesce(
                    b("b_attrs", type_=sa.Text), trials.c.user_attrs_json
                ),
                host=sa.func.coalesce(b("b_host", type_=sa.Text), trials.c.host),
                worker=sa.func.coalesce(b("b_worker", type_=sa.Text), trials.c.worker),
                gpus=sa.case((b("b_moved", type_=sa.Boolean), b("b_gpus", type_=sa.Text)),
                             else_=trials.c.gpus),
            )
        )
        self._insert_metric = (
            schema.metrics.insert()
            .from_select(
                ["trial_id", "name", "step", "value", "ts"],
                sa.select(
                    b("b_id", type_=sa.Integer),
                    b("b_name", type_=sa.String),
                    b("b_step", type_=sa.Integer),
                    b("b_value", type_=sa.Float),
                    self._now,
                ).where(sa.exists().where(self._fence(b("b_id"), b("b_owner"), b("b_epoch")))),
            )
            .execution_options(preserve_rowcount=True)
        )  # else INSERT rowcount is -1 (PostgreSQL)
        self._heartbeat = (
            trials.update()
            .where(trials.c.owner == b("b_owner"), trials.c.state == TrialState.RUNNING.value)
            .values(lease_expiry=self._now + b("b_lease", type_=sa.Float))
        )
        if not self._sqlite:  # PostgreSQL: a trial's row and its fields in one statement
            claimed = trials.insert().values(
                {name: b(name, type_=trials.c[name].type) for name in _CLAIM_COLUMNS}
            ).returning(trials.c.id, trials.c.study_id).cte("claimed")
            self._claim_in_one = sa.select(claimed.c.id).add_cte(_fields_of(claimed))
            done = self._finish_trial.returning(trials.c.id, trials.c.study_id).cte("done")
            self._finish_in_one = sa.select(sa.func.count()).select_from(done).add_cte(
                _fields_of(done))
        returning = (
            studies.c.next_number,
            studies.c.n_charged,
            studies.c.n_waiting,
            self._now.label("now"),
        )
        bump = studies.update().where(studies.c.id == b("b_study")).returning(*returning)
        self._lock_for_new = bump.values(
            version=studies.c.version + 1,
            next_number=studies.c.next_number + 1,
            n_charged=studies.c.n_charged + 1,
        )

    # -- connection --------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[Connection]:
        """write=True: one transaction holding the write lock (SQLite ``BEGIN IMMEDIATE``).
        write=False: autocommit, each statement atomic on its own (one round trip each)."""
        with self._engine.connect() as conn:
            if not write:
                if not self._sqlite:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                yield conn
            elif self._sqlite:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
                conn.exec_driver_sql("COMMIT")
            else:
                with conn.begin():
                    yield conn

    def _run(self, work: Callable[[Connection], T], write: bool) -> T:
        """Run `work` (in one transaction if `write`), retrying transient errors with the one
        back-off policy (retry.py). `work` may raise _Abort(result) to roll back and return
        `result`."""
        backoff: Backoff | None = None
        while True:
            try:
                with self._transaction(write) as conn:
                    return work(conn)
            except _Abort as abort:
                return abort.result  # type: ignore[no-any-return]
            except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError) as error:
                message = _first_line(error)
                if self._sqlite and _is_not_a_database(message):
                    raise self._not_a_database(message) from None
                if _is_permanent(error):
                    if not self._create and "does not exist" in message.lower():
                        raise StorageError(
                            f"no database at {self._safe_url()} (nothing has run there yet?): "
                            f"{message}"
                        ) from None
                    failed = StorageFailure if _is_disk_failure(message) else StorageError
                    raise failed(f"{self._safe_url()}: {message}") from error
                if backoff is None:
                    backoff = Backoff(self._safe_url(), self._patience)
                if not backoff.wait(message):
                    raise backoff.give_up(message) from error
            except sa.exc.DatabaseError as error:  # not IntegrityError & co: callers expect those
                message = _first_line(error)
                if self._sqlite and _is_not_a_database(message):
                    raise self._not_a_database(message) from None
                raise

    def _not_a_database(self, message: str) -> StorageError:
        return StorageError(
            f"{self._shared.sqlite_path} is not an SQLite database ({message}); give the path "
            "of a hypersearch database or of a new file"
        )

    def _safe_url(self) -> str:
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def _migrate(self, conn: Connection) -> None:
        from alembic.config import Config
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option(
            "script_location", os.path.join(os.path.dirname(__file__), "migrations")
        )
        script = ScriptDirectory.from_config(config)
        if not self._sqlite:  # serialise concurrent first opens of one database
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(727274)"))
        current = MigrationContext.configure(conn).get_current_revision()
        if current == script.get_current_head():
            return
        if self._read_only and current is not None:
            raise StorageError(
                f"{self._safe_url()} has schema revision {current!r}, older than this "
                "hypersearch's; open it once read-write (run any hypersearch command on it, "
                "e.g. hypersearch studies) to bring it forward, then read it read-only"
            )
        if current is None and not self._create:
            raise StorageError(
                f"no hypersearch database at {self._safe_url()}: it has no hypersearch tables "
                "(nothing has run there yet?)"
            )
        if current is not None and current not in {r.revision for r in script.walk_revisions()}:
            raise StorageError(
                f"{self._safe_url()} has schema revision {current!r}, which this hypersearch "
                "does not know: it was written by a newer hypersearch (upgrade hypersearch) or "
                "by another application"
            )
        from alembic import command

        config.attributes["connection"] = conn
        command.upgrade(config, "head")

    def close(self) -> None:
        """Stop using the shared pool; the last storage on this URL closes its connections."""
        self._release()

    # -- studies -------------------------------------------------------------------------------

    def _study(self, row: Any) -> StudyRecord:
        return StudyRecord(
            id=row.id,
            name=row.name,
            direction=row.direction,
            metric=row.metric,
            space_json=row.space_json,
            config=json.loads(row.config_json),
            created_at=row.created_at,
            n_trials=row.n_charged,
            version=row.version,
        )

    def create_study(
        self,
        name: str,
        direction: str,
        metric: str | None,
        space_json: str | None,
        config: dict[str, Any],
    ) -> tuple[StudyRecord, bool]:
        check_study_name(name)

        def work(conn: Connection) -> tuple[StudyRecord, bool]:
            row = conn.execute(sa.select(studies).where(studies.c.name == name)).first()
            if row is not None:
                return self._study(row), False
            conn.execute(
                studies.insert().values(
                    name=name,
                    direction=direction,
                    metric=metric,
                    space_json=space_json,
                    config_json=_dumps(config),
                    next_number=0,
                    n_charged=0,
                    n_waiting=0,
                    version=0,
                    created_at=self._now,
                )
            )
            row = conn.execute(sa.select(studies).where(studies.c.name == name)).one()
            return self._study(row), True

        try:
            return self._run(work, write=True)
        except sa.exc.IntegrityError:  # another process created it between our read and insert
            return self._run(work, write=True)

    def get_study(self, name: str) -> StudyRecord | None:
        check_study_name(name)

        def work(conn: Connection) -> StudyRecord | None:
            row = conn.execute(sa.select(studies).where(studies.c.name == name)).first()
            return None if row is None else self._study(row)

        return self._run(work, write=False)

    def list_studies(self) -> list[StudyRecord]:
        def work(conn: Connection) -> list[StudyRecord]:
            rows = conn.execute(sa.select(studies).order_by(studies.c.id)).all()
            return [self._study(row) for row in rows]

        return self._run(work, write=False)

    def delete_study(self, name: str) -> bool:
        check_study_name(name)

        def work(conn: Connection) -> bool:
            study_id = conn.execute(sa.select(studies.c.id).where(studies.c.name == name)).scalar()
            if study_id is None:
                return False
            trial_ids = sa.select(trials.c.id).where(trials.c.study_id == study_id)
            for table in (metrics, schema.logs, trial_fields):
                conn.execute(table.delete().where(table.c.trial_id.in_(trial_ids)))
            conn.execute(trials.delete().where(trials.c.study_id == study_id))
            for table in (schema.notes, schema.study_caches):
                conn.execute(table.delete().where(table.c.study_id == study_id))
            conn.execute(studies.delete().where(studies.c.id == study_id))
            return True

        with self._history_lock:
            self._history.clear()
        return self._run(work, write=True)

    def update_study_config(
        self, study_id: int, config: dict[str, Any], space_json: str | None = None
    ) -> None:
        values: dict[str, Any] = {"config_json": _dumps(config), "version": studies.c.version + 1}
        if space_json is not None:
            values["space_json"] = space_json

        def work(conn: Connection) -> None:
            conn.execute(studies.update().where(studies.c.id == study_id).values(**values))

        self._run(work, write=True)

    # -- trials --------------------------------------------------------------------------------

    def _trial(self, row: Any) -> FrozenTrial:
        return FrozenTrial(
            number=row.number,
            state=TrialState(row.state),
            value=row.value,
            flat_params=json.loads(row.params_json),
            metrics=json.loads(row.metrics_json),
            user_attrs=json.loads(row.user_attrs_json),
            failure_reason=row.failure_reason,
            failure_detail=row.failure_detail,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
            host=row.host,
            worker=row.worker,
            gpus=row.gpus,
            owner=row.owner,
            lease_epoch=row.lease_epoch,
            id=row.id,
            distributions=(
                json.loads(row.distributions_json) if row.distributions_json is not None else None
            ),
            parent_number=row.parent_number,
            lineage=json.loads(row.lineage_json) if row.lineage_json is not None else None,
        )

    def _lock_study(self, conn: Connection, study_id: int, **changes: Any) -> Any:
        """Lock the study row (the claim lock) by updating it; returns the counters *after* the
        update and the database clock."""
        values = {"version": studies.c.version + 1, **changes}
        row = conn.execute(
            studies.update()
            .where(studies.c.id == study_id)
            .values(**values)
            .returning(
                studies.c.next_number,
                studies.c.n_charged,
                studies.c.n_waiting,
                self._now.label("now"),
            )
        ).first()
        if row is None:
            raise StorageError(f"study id {study_id} no longer exists in {self._safe_url()}")
        return row

    def _load_history(self, conn: Connection, study_id: int) -> list[FrozenTrial]:
        """Every trial of the study. Finished trials never change, so they are read once and
        cached; each call reads only trials past the first unfinished one."""
        with self._history_lock:
            finished, watermark = self._history.get(study_id, ({}, -1))
            finished = dict(finished)
        rows = conn.execute(
            sa.select(trials)
            .where(trials.c.study_id == study_id, trials.c.number > watermark)
            .order_by(trials.c.number)
        ).all()
        fresh = [self._trial(row) for row in rows]
        for trial in fresh:
            if trial.state.is_finished:
                finished[trial.number] = trial
        while watermark + 1 in finished:
            watermark += 1
        with self._history_lock:
            self._history[study_id] = (finished, watermark)
        return [finished[n] for n in range(watermark + 1)] + [
            t for t in fresh if t.number > watermark
        ]

    def claim(
        self,
        study_id: int,
        owner: str,
        *,
        propose: Propose,
        uses_history: bool,
        max_trials: int | None,
        lease_seconds: float,
        worker: str | None = None,
        gpus: str | None = None,
        max_running: int | None = None,
    ) -> FrozenTrial | None:
        host = host_id()
        lease = {
            "state": TrialState.RUNNING.value,
            "owner": owner,
            "host": host,
            "worker": worker,
            "gpus": gpus,
        }

        # What the last try wrote, if its COMMIT may have landed unheard (a dropped
        # connection): the retry returns that trial rather than claim a second one that
        # nobody would ever finish (our heartbeat would keep its lease alive forever).
        tried: dict[str, Any] = {}
        # A sampler that reads the history proposes outside the study lock, from a snapshot
        # (running trials included) taken when the next number was `hint`: a slow suggestion
        # (a GP fit) never holds up the other workers' claims. (hint, its parameters.)
        proposed: list[tuple[int, dict[str, Any] | None]] = []

        def snapshot(conn: Connection) -> tuple[int, Any, list[FrozenTrial]]:
            """(the next number, the study's counters, the history) with no lock held; no
            history when a queued trial or the spent budget decides the claim anyway."""
            row = conn.execute(sa.select(studies.c.next_number, studies.c.n_charged,
                                         studies.c.n_waiting)
                               .where(studies.c.id == study_id)).first()
            if row is None:
                raise StorageError(f"study id {study_id} no longer exists in {self._safe_url()}")
            if row.n_waiting > 0 or (max_trials is not None and row.n_charged >= max_trials):
                return int(row.next_number), row, []
            # read after the hint: every trial numbered below it is committed, so is in here
            return int(row.next_number), row, self._load_history(conn, study_id)

        def full(conn: Connection) -> None:
            """Under the study lock: refuse the claim (rolled back) when `max_running` run."""
            if max_running is not None and conn.execute(
                sa.select(sa.func.count()).select_from(trials).where(
                    trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING.value)
            ).scalar_one() >= max_running:
                raise StudyFull(max_running)

        def new_trial(conn: Connection) -> FrozenTrial | None:
            if tried:
                mine = self._claimed_by_last_try(conn, tried, owner)
                if mine is not None:
                    return mine
                tried.clear()
            # optimistic: take the next number and budget slot; roll back if it can't be used
            locked = conn.execute(self._lock_for_new, {"b_study": study_id}).first()
            if locked is None:
                raise StorageError(f"study id {study_id} no longer exists in {self._safe_url()}")
            if locked.n_waiting > 0:
                raise _Abort(_TAKE_WAITING)
            if max_trials is not None and locked.n_charged > max_trials:
                raise _Abort(None)
            full(conn)
            number, now = locked.next_number - 1, float(locked.now)
            if uses_history:
                hint, params = proposed[-1]
                if params is not None and number != hint and self._proposed_since(
                        conn, study_id, hint, number, params):
                    raise _Abort(_PROPOSE_AGAIN)  # the same point as a claim since: anew
            else:  # history-free samplers are microseconds: under the lock, with the number
                params = propose([], number)
            if params is None:
                raise _Abort(None)
            params_json = _dumps(params)
            tried.update(study_id=study_id, number=number, now=now)
            row = {
                "study_id": study_id,
                "number": number,
                "params_json": params_json,
                "metrics_json": "{}",
                "user_attrs_json": "{}",
                "charged": True,
                "lease_epoch": 1,
                "created_at": now,
                "started_at": now,
                "lease_expiry": now + lease_seconds,
                **lease,
            }
            if self._sqlite:
                trial_id = self._write_fields(
                    conn, conn.execute(self._insert_trial, row).inserted_primary_key[0],
                    "params.", json.loads(params_json))
            else:
                trial_id = conn.execute(self._claim_in_one, {
                    **row, **_field_arrays("params.", json.loads(params_json))}).scalar_one()
            return FrozenTrial(
                number=number,
                state=TrialState.RUNNING,
                flat_params=json.loads(params_json),
                created_at=now,
                started_at=now,
                host=host,
                worker=worker,
                gpus=gpus,
                owner=owner,
                lease_epoch=1,
                id=trial_id,
            )

        def waiting_trial(conn: Connection) -> FrozenTrial | None:
            if tried:
                mine = self._claimed_by_last_try(conn, tried, owner)
                if mine is not None:
                    return mine
                tried.clear()
            locked = self._lock_study(conn, study_id, n_waiting=studies.c.n_waiting - 1)
            if locked.n_waiting < 0:
                raise _Abort(_NONE_WAITING)  # another worker took the last one
            full(conn)
            waiting = conn.execute(
                sa.select(trials.c.id)
                .where(trials.c.study_id == study_id, trials.c.state == TrialState.WAITING.value)
                .order_by(sa.func.coalesce(trials.c.parent_number, trials.c.number), trials.c.number)
                .limit(1)
            ).scalar_one()
            now = float(locked.now)
            tried.update(id=waiting, now=now)
            conn.execute(
                trials.update()
                .where(trials.c.id == waiting)
                .values(
                    lease_epoch=trials.c.lease_epoch + 1,
                    started_at=now,
                    lease_expiry=now + lease_seconds,
                    **lease,
                )
            )
            return self._trial(conn.execute(sa.select(trials).where(trials.c.id == waiting)).one())

        while True:
            if uses_history:
                hint, counters, history = self._run(snapshot, write=False)
                if max_running is not None and sum(
                        t.state is TrialState.RUNNING for t in history) >= max_running:
                    raise StudyFull(max_running)  # seen in the snapshot: no proposal wasted
                if counters.n_waiting > 0:
                    claimed = self._run(waiting_trial, write=True)
                    if claimed is not _NONE_WAITING:
                        return claimed
                    continue
                if max_trials is not None and counters.n_charged >= max_trials:
                    return None  # charges never go down but by a re-run, which queues a trial
                proposed.append((hint, propose(history, hint)))
            claimed = self._run(new_trial, write=True)
            if claimed is _TAKE_WAITING:
                claimed = self._run(waiting_trial, write=True)
            if claimed is not _NONE_WAITING and claimed is not _PROPOSE_AGAIN:
                return claimed

    def _proposed_since(
        self, conn: Connection, study_id: int, hint: int, number: int, params: dict[str, Any]
    ) -> bool:
        """Whether a trial claimed since the snapshot (numbers `hint` to `number` - 1) holds
        exactly `params`: two workers proposing from one snapshot propose the same point."""
        mine = json.loads(_dumps(params))
        rows = conn.execute(sa.select(trials.c.params_json).where(
            trials.c.study_id == study_id, trials.c.number >= hint, trials.c.number < number))
        return any(json.loads(row.params_json) == mine for row in rows)

    def _claimed_by_last_try(
        self, conn: Connection, tried: dict[str, Any], owner: str
    ) -> FrozenTrial | None:
        """The trial a previous try of this claim committed, if it did: RUNNING under `owner`
        and started at that try's database time (no other claim has both)."""
        where = (
            [trials.c.id == tried["id"]]
            if "id" in tried
            else [trials.c.study_id == tried["study_id"], trials.c.number == tried["number"]]
        )
        row = conn.execute(
            sa.select(trials).where(
                *where,
                trials.c.owner == owner,
                trials.c.state == TrialState.RUNNING.value,
                trials.c.started_at == tried["now"],
            )
        ).first()
        return None if row is None else self._trial(row)

    def enqueue(
        self, study_id: int, flat_params: dict[str, Any], lineage: dict[str, Any] | None = None
    ) -> int:
        def work(conn: Connection) -> int:
            return self._insert_waiting(conn, study_id, flat_params, None, lineage)

        return self._run(work, write=True)

    def retry(self, study_id: int, number: int) -> int | None:
        def work(conn: Connection) -> int | None:
            self._lock_study(conn, study_id)
            row = conn.execute(
                sa.select(trials.c.id, trials.c.params_json, trials.c.lineage_json).where(
                    trials.c.study_id == study_id,
                    trials.c.number == number,
                    trials.c.state == TrialState.FAILED.value,
                    trials.c.charged.is_(True),
                )
            ).first()
            if row is None:
                return None
            conn.execute(trials.update().where(trials.c.id == row.id).values(charged=False))
            self._lock_study(conn, study_id, n_charged=studies.c.n_charged - 1)
            lineage = None if row.lineage_json is None else json.loads(row.lineage_json)
            return self._insert_waiting(
                conn, study_id, json.loads(row.params_json), number, lineage
            )

        return self._run(work, write=True)

    def _insert_waiting(
        self,
        conn: Connection,
        study_id: int,
        flat_params: dict[str, Any],
        parent_number: int | None,
        lineage: dict[str, Any] | None = None,
    ) -> int:
        locked = self._lock_study(
            conn,
            study_id,
            next_number=studies.c.next_number + 1,
            n_charged=studies.c.n_charged + 1,
            n_waiting=studies.c.n_waiting + 1,
        )
        number = locked.next_number - 1
        result = conn.execute(
            trials.insert().values(
                study_id=study_id,
                number=number,
                state=TrialState.WAITING.value,
                params_json=(params_json := _dumps(flat_params)),
                metrics_json="{}",
                user_attrs_json="{}",
                parent_number=parent_number,
                lineage_json=None if lineage is None else _dumps(lineage),
                charged=True,
                lease_epoch=0,
                created_at=locked.now,
            )
        )
        self._write_fields(conn, result.inserted_primary_key[0], "params.",
                           json.loads(params_json))
        return number

    def _fence(self, trial_id: Any, owner: Any, epoch: Any) -> Any:
        return sa.and_(
            trials.c.id == trial_id,
            trials.c.owner == owner,
            trials.c.lease_epoch == epoch,
            trials.c.state == TrialState.RUNNING.value,
        )

    def finish(
        self,
        trial_id: int,
        owner: str,
        epoch: int,
        outcome: Outcome,
        *,
        flat_params: dict[str, Any] | None = None,
        distributions: dict[str, Any] | None = None,
        user_attrs: dict[str, Any] | None = None,
        ran_on: RanOn | None = None,
    ) -> bool:
        values = {
            "b_id": trial_id,
            "b_owner": owner,
            "b_epoch": epoch,
            "b_state": outcome.state.value,
            "b_value": outcome.value,
            "b_metrics": _dumps(outcome.metrics),
            "b_reason": outcome.failure_reason,
            "b_detail": outcome.failure_detail,
            "b_params": None if flat_params is None else _dumps(flat_params),
            "b_distributions": None if distributions is None else _dumps(distributions),
            "b_attrs": _dumps(user_attrs) if user_attrs else None,
            "b_host": None if ran_on is None else ran_on.host,
            "b_worker": None if ran_on is None else ran_on.worker,
            "b_gpus": None if ran_on is None else ran_on.gpus,
            "b_moved": ran_on is not None,  # gpus may become NULL: no coalesce for them
        }

        tries = 0
        if not self._sqlite and flat_params is None:  # one statement: atomic by itself

            def in_one(conn: Connection) -> bool:
                nonlocal tries
                tries += 1
                fields = _field_arrays("metrics.", json.loads(values["b_metrics"]))
                written = conn.execute(self._finish_in_one, {**values, **fields}).scalar_one()
                return written == 1 or (
                    tries > 1 and self._holds_outcome(conn, trial_id, owner, epoch, outcome))

            return self._run(in_one, write=False)

        def work(conn: Connection) -> bool:
            nonlocal tries
            tries += 1
            written = conn.execute(self._finish_trial, values).rowcount == 1
            if written:  # its final metrics (and define-by-run parameters) become fields
                if flat_params is not None:
                    conn.execute(trial_fields.delete().where(
                        trial_fields.c.trial_id == trial_id,
                        trial_fields.c.field.startswith("params.", autoescape=True)))
                    self._write_fields(conn, trial_id, "params.", json.loads(values["b_params"]))
                self._write_fields(conn, trial_id, "metrics.", json.loads(values["b_metrics"]))
            # a retry after a dropped connection may find our own write already committed
            # (fields included: one transaction): that is a success, not a lost lease. No
            # study-row lock here (live views count finished trials: activity), so a finish
            # never waits on other workers' claims.
            return written or (
                tries > 1 and self._holds_outcome(conn, trial_id, owner, epoch, outcome)
            )

        return self._run(work, write=True)

    def _write_fields(
        self, conn: Connection, trial_id: int, prefix: str, values: dict[str, Any]
    ) -> int:
        """Index a trial's parameters or final metrics as stored (schema.trial_fields);
        returns `trial_id`."""
        rows = field_rows(prefix, values)
        if rows and self._sqlite:  # a native executemany: no round trips
            conn.execute(_INSERT_FIELDS["sqlite"], [{"trial_id": trial_id, **row} for row in rows])
        elif rows:
            conn.execute(_INSERT_FIELDS["postgresql"], {"trial_id": trial_id, **{
                key: [row[key] for row in rows] for key in ("field", "value_num", "value_text")}})
        return trial_id

    def _holds_outcome(
        self, conn: Connection, trial_id: int, owner: str, epoch: int, outcome: Outcome
    ) -> bool:
        row = conn.execute(
            sa.select(
                trials.c.owner,
                trials.c.lease_epoch,
                trials.c.state,
                trials.c.value,
                trials.c.failure_reason,
            ).where(trials.c.id == trial_id)
        ).first()
        if row is None or (row.owner, row.lease_epoch, row.state) != (
            owner,
            epoch,
            outcome.state.value,
        ):
            return False
        stored, given = _nan_as_none(row.value), _nan_as_none(outcome.value)
        return stored == given and row.failure_reason == outcome.failure_reason

    def report(
        self, trial_id: int, owner: str, epoch: int, step: int | None, metrics: dict[str, float]
    ) -> bool:
        # one INSERT ... SELECT per metric, guarded by the lease: atomic without a transaction
        rows = [
            {
                "b_id": trial_id,
                "b_owner": owner,
                "b_epoch": epoch,
                "b_name": name,
                "b_step": step,
                "b_value": value,
            }
            for name, value in metrics.items()
        ]

        def work(conn: Connection) -> bool:
            return sum(conn.execute(self._insert_metric, row).rowcount for row in rows) == len(rows)

        return self._run(work, write=len(metrics) > 1)

    def report_many(
        self, rows: Sequence[tuple[int, str, int, int | None, dict[str, float], float]]
    ) -> list[bool]:
        # One transaction: read the leases of the trials named (locked, so none moves before
        # commit), then insert the rows still leased with few driver-level statements, the
        # per-row work done in C: SQLite multi-row VALUES, PostgreSQL unnest of arrays. 100k
        # rows through SQLAlchemy's per-row processing cost ~1.5 s of CPU. Few statements also
        # matter for threads: sqlite3 releases the GIL per statement and must then win it back
        # from a busy driver thread (up to the 5 ms switch interval each time).
        import itertools  # only this method needs these
        import sqlite3

        rows = list(rows)
        if not rows:
            return []
        ids = sorted({row[0] for row in rows})

        def work(conn: Connection) -> list[bool]:
            query = sa.select(trials.c.id, trials.c.owner, trials.c.lease_epoch).where(
                trials.c.id.in_(ids), trials.c.state == TrialState.RUNNING.value
            )
            if not self._sqlite:  # SQLite's BEGIN IMMEDIATE already locks everything
                query = query.with_for_update(read=True)
            leases = {(r.id, r.owner, r.lease_epoch) for r in conn.execute(query)}
            ok = [(t, owner, epoch) in leases for t, owner, epoch, *_ in rows]
            if not leases:
                return ok
            now = float(conn.execute(sa.select(self._now)).scalar_one())  # PostgreSQL: Decimal
            values = [
                (t, name, step, v, now - max(age, 0.0))
                for (t, _, _, step, metrics_, age), leased in zip(rows, ok, strict=True)
                if leased
                for name, v in metrics_.items()
            ]
            if not values:
                return ok
            if self._sqlite:
                # rows per INSERT: 5 bound values each, under SQLite's limit on bound values
                # (32766 since 3.32, 999 before)
                per = 6000 if sqlite3.sqlite_version_info >= (3, 32) else 190
                for start in range(0, len(values), per):
                    chunk = values[start : start + per]
                    conn.exec_driver_sql(
                        "INSERT INTO metrics (trial_id, name, step, value, ts) VALUES "
                        + ",".join(["(?,?,?,?,?)"] * len(chunk)),
                        tuple(itertools.chain.from_iterable(chunk)),
                    )
            else:
                conn.exec_driver_sql(
                    "INSERT INTO metrics (trial_id, name, step, value, ts) SELECT * FROM unnest("
                    "%s::integer[], %s::text[], %s::integer[], %s::float8[], %s::float8[])",
                    tuple(map(list, zip(*values, strict=True))),
                )
            return ok

        return self._run(work, write=True)

    def append_logs(
        self,
        trial_id: int,
        owner: str,
        epoch: int,
        stream: str,
        lines: Sequence[tuple[int, str]],
    ) -> bool:
        rows = [
            # PostgreSQL text cannot hold NUL bytes
            {
                "trial_id": trial_id,
                "stream": stream,
                "seq": seq,
                "text": text.replace("\x00", "\ufffd"),
            }
            for seq, text in lines
        ]

        def work(conn: Connection) -> bool:
            leased = sa.select(trials.c.id).where(self._fence(trial_id, owner, epoch))
            if not self._sqlite:  # SQLite's BEGIN IMMEDIATE already locks everything
                leased = leased.with_for_update()
            if conn.execute(leased).first() is None:
                return False
            if rows:
                conn.execute(schema.logs.insert(), rows)
            return True

        return self._run(work, write=True)

    def get_logs(
        self, trial_id: int, stream: str | None = None, after_seq: int = -1
    ) -> list[LogLine]:
        logs = schema.logs

        def work(conn: Connection) -> list[LogLine]:
            query = sa.select(logs.c.stream, logs.c.seq, logs.c.text).where(
                logs.c.trial_id == trial_id, logs.c.seq > after_seq
            )
            if stream is not None:
                query = query.where(logs.c.stream == stream)
            rows = conn.execute(query.order_by(logs.c.stream, logs.c.seq, logs.c.id)).all()
            return [LogLine(row.stream, row.seq, row.text) for row in rows]

        return self._run(work, write=False)

    def get_trial(self, study_id: int, number: int) -> FrozenTrial | None:
        def work(conn: Connection) -> FrozenTrial | None:
            row = conn.execute(
                sa.select(trials).where(trials.c.study_id == study_id, trials.c.number == number)
            ).first()
            return None if row is None else self._trial(row)

        return self._run(work, write=False)

    def heartbeat(self, owner: str, lease_seconds: float) -> int:
        def work(conn: Connection) -> int:
            return conn.execute(
                self._heartbeat, {"b_owner": owner, "b_lease": lease_seconds}
            ).rowcount

        return self._run(work, write=False)

    def sweep_stale(
        self, study_id: int, *, retry: bool = False, dead_owners: Any = ()
    ) -> list[int]:
        dead = sorted(set(dead_owners))

        def work(conn: Connection) -> list[int]:
            locked = self._lock_study(conn, study_id)
            expired = trials.c.lease_expiry < locked.now
            condition = sa.or_(expired, trials.c.owner.in_(dead)) if dead else expired
            rows = conn.execute(
                sa.select(trials).where(
                    trials.c.study_id == study_id,
                    trials.c.state == TrialState.RUNNING.value,
                    condition,
                )
            ).all()
            for row in rows:
                requeue = retry and row.parent_number is None
                conn.execute(
                    trials.update()
                    .where(trials.c.id == row.id)
                    .values(
                        state=TrialState.FAILED.value,
                        failure_reason=FailureReason.STALE.value,
                        failure_detail=stale_detail(row.owner, row.lease_expiry < locked.now),
                        finished_at=locked.now,
                        lease_expiry=None,
                        charged=not requeue,
                    )
                )
                if requeue:  # the copy takes over the budget slot of the stale trial
                    self._lock_study(conn, study_id, n_charged=studies.c.n_charged - 1)
                    lineage = None if row.lineage_json is None else json.loads(row.lineage_json)
                    self._insert_waiting(
                        conn, study_id, json.loads(row.params_json), row.number, lineage
                    )
            return [row.number for row in rows]

        if not self._has_expired(study_id, dead):
            return []
        return self._run(work, write=True)

    def _has_expired(self, study_id: int, dead: list[str]) -> bool:
        """A cheap read first, so the periodic sweep takes no write lock when nothing is stale."""

        def work(conn: Connection) -> bool:
            expired = trials.c.lease_expiry < self._now
            condition = sa.or_(expired, trials.c.owner.in_(dead)) if dead else expired
            query = sa.select(trials.c.id).where(
                trials.c.study_id == study_id,
                trials.c.state == TrialState.RUNNING.value,
                condition,
            )
            return conn.execute(query.limit(1)).first() is not None

        return self._run(work, write=False)

    def running_owners(self, study_id: int) -> set[str]:
        def work(conn: Connection) -> set[str]:
            rows = conn.execute(
                sa.select(trials.c.owner)
                .where(trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING.value)
                .distinct()
            ).all()
            return {row.owner for row in rows if row.owner}

        return self._run(work, write=False)

    def get_trials(
        self, study_id: int, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        def work(conn: Connection) -> list[FrozenTrial]:
            query = sa.select(trials).where(trials.c.study_id == study_id)
            if states is not None:
                query = query.where(trials.c.state.in_([s.value for s in states]))
            return [self._trial(row) for row in conn.execute(query.order_by(trials.c.number))]

        return self._run(work, write=False)

    def get_metrics(self, trial_id: int) -> list[MetricPoint]:
        def work(conn: Connection) -> list[MetricPoint]:
            rows = conn.execute(
                sa.select(metrics).where(metrics.c.trial_id == trial_id).order_by(metrics.c.id)
            ).all()
            return [
                MetricPoint(
                    row.name, row.step, math.nan if row.value is None else row.value, row.ts
                )
                for row in rows
            ]

        return self._run(work, write=False)

    def get_metrics_many(
        self, trial_ids: Sequence[int], name: str | None = None
    ) -> dict[int, list[MetricPoint]]:
        wanted = list(dict.fromkeys(int(t) for t in trial_ids))

        def work(conn: Connection) -> dict[int, list[MetricPoint]]:
            out: dict[int, list[MetricPoint]] = {}
            # chunks keep the bound parameters under SQLite's limit (32766; older builds 999)
            columns = (metrics.c.trial_id, metrics.c.name, metrics.c.step, metrics.c.value,
                       metrics.c.ts)
            for start in range(0, len(wanted), 900):
                query = sa.select(*columns).where(
                    metrics.c.trial_id.in_(wanted[start:start + 900]))
                if name is not None:
                    query = query.where(metrics.c.name == name)
                # plain tuples: Row attribute access costs more than the query at 100k points
                for trial_id, metric, step, value, ts in conn.execute(
                        query.order_by(metrics.c.id)).tuples():
                    out.setdefault(trial_id, []).append(
                        MetricPoint(metric, step, math.nan if value is None else value, ts))
            return out

        return self._run(work, write=False)

    def resource_used(self, study_id: int) -> int:
        m = metrics
        spans = (
            sa.select((sa.func.max(m.c.step) - sa.func.min(m.c.step) + 1).label("span"))
            .select_from(m.join(trials, trials.c.id == m.c.trial_id))
            .where(trials.c.study_id == study_id, m.c.step.is_not(None))
            .group_by(m.c.trial_id)
            .subquery()
        )
        query = sa.select(sa.func.coalesce(sa.func.sum(spans.c.span), 0))

        def work(conn: Connection) -> int:
            return int(conn.execute(query).scalar_one())

        return self._run(work, write=False)

    def metric_at_step(
        self,
        study_id: int,
        name: str,
        step: int,
        *,
        at: str = "exact",
        states: Sequence[TrialState] | None = None,
    ) -> dict[int, float]:
        if at not in ("exact", "after", "before"):
            raise ValueError(f"at must be 'exact', 'after' or 'before', got {at!r}")
        m = metrics
        ours = sa.and_(trials.c.study_id == study_id, m.c.name == name)
        if states is not None:
            ours = sa.and_(ours, trials.c.state.in_([s.value for s in states]))
        joined = m.join(trials, trials.c.id == m.c.trial_id)
        if at == "exact":
            chosen_step: Any = sa.literal(step)
            where = sa.and_(ours, m.c.step == step)
            last = sa.select(m.c.trial_id, sa.func.max(m.c.id).label("id")).select_from(joined)
            last = last.where(where).group_by(m.c.trial_id).subquery()
        else:
            # each trial's step of interest, then the last report at that step (index-only)
            edge = sa.func.min(m.c.step) if at == "after" else sa.func.max(m.c.step)
            near = m.c.step >= step if at == "after" else m.c.step <= step
            chosen = (
                sa.select(m.c.trial_id, edge.label("step"))
                .select_from(joined)
                .where(ours, near)
                .group_by(m.c.trial_id)
                .subquery()
            )
            chosen_step = chosen.c.step
            last = (
                sa.select(m.c.trial_id, sa.func.max(m.c.id).label("id"))
                .join(chosen, sa.and_(chosen.c.trial_id == m.c.trial_id, m.c.step == chosen_step))
                .where(m.c.name == name)
                .group_by(m.c.trial_id)
                .subquery()
            )
        query = (
            sa.select(trials.c.number, m.c.value)
            .select_from(last.join(m, m.c.id == last.c.id).join(trials, trials.c.id == m.c.trial_id))
        )

        def work(conn: Connection) -> dict[int, float]:
            return {
                number: math.nan if value is None else value
                for number, value in conn.execute(query)
            }

        return self._run(work, write=False)

    def summary(self, study_id: int, direction: str) -> StudySummary:
        def work(conn: Connection) -> StudySummary:
            n_charged = conn.execute(
                sa.select(studies.c.n_charged).where(studies.c.id == study_id)
            ).scalar_one()
            counts = dict(
                conn.execute(
                    sa.select(trials.c.state, sa.func.count())
                    .where(trials.c.study_id == study_id)
                    .group_by(trials.c.state)
                ).all()
            )
            order = trials.c.value.asc() if direction == "minimize" else trials.c.value.desc()
            complete = sa.and_(
                trials.c.study_id == study_id, trials.c.state == TrialState.COMPLETE.value
            )
            best = conn.execute(
                sa.select(trials.c.number, trials.c.value, trials.c.finished_at)
                .where(complete)
                .order_by(order, trials.c.number)
                .limit(1)
            ).first()
            since = 0
            if best is not None:
                since = conn.execute(
                    sa.select(sa.func.count()).where(
                        complete, trials.c.finished_at > best.finished_at
                    )
                ).scalar_one()
            return StudySummary(
                n_charged,
                counts,
                None if best is None else best.number,
                None if best is None else best.value,
                since,
            )

        return self._run(work, write=False)

    # -- reads for the dashboard and the CLI ---------------------------------------------------

    def _field(self, name: str, study_id: int, joins: list[tuple[Any, Any]]) -> tuple[Any, Any]:
        """(numeric expression for ranges, or None; expression to order by) of a query field.
        A parameter or metric is read from trial_fields (0005: no JSON parsed): its outer
        join goes to `joins`, and pages sorted by it are read by `_walk_field`."""
        if name.startswith(("params.", "metrics.")):
            found = trial_fields.alias(f"field_{len(joins)}")
            joins.append((found, sa.and_(found.c.trial_id == trials.c.id,
                                         found.c.study_id == study_id,
                                         found.c.field == name)))
            return found.c.value_num, found.c.value_num
        if name == "number":
            return trials.c.number, trials.c.number
        if name == "state":
            return None, trials.c.state
        if name == "value":
            value = sa.func.nullif(trials.c.value, sa.literal(math.nan, sa.Float))
            return value, value if not self._sqlite else trials.c.value
        if name == "duration":
            duration = trials.c.finished_at - trials.c.started_at
            return duration, duration
        raise ValueError(f"unknown trial field {name!r}")

    def query_trials(self, study_id: int, query: TrialQuery) -> tuple[list[FrozenTrial], int]:
        filtered: list[tuple[Any, Any]] = []  # the joins the ranges need
        ranges = [(self._field(f, study_id, filtered), lo, hi) for f, lo, hi in query.ranges]
        if any(numeric is None for (numeric, _), _, _ in ranges):  # e.g. state: not a number
            return select_trials(self.get_trials(study_id, query.states or None), query)
        where = [trials.c.study_id == study_id]
        if query.states:
            where.append(trials.c.state.in_([s.value for s in query.states]))
        if query.numbers:  # at most MAX_SERIES_TRIALS numbers: under every bound-parameter limit
            where.append(trials.c.number.in_(list(query.numbers)))
        for (numeric, _), low, high in ranges:
            where.append(numeric.is_not(None))
            if low is not None:
                where.append(numeric >= low)
            if high is not None:
                where.append(numeric <= high)

        def joined(pairs: list[tuple[Any, Any]]) -> Any:
            table: Any = trials
            for alias, on in pairs:
                table = table.outerjoin(alias, on)
            return table

        def work(conn: Connection) -> tuple[list[FrozenTrial], int]:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(joined(filtered)).where(*where)
            ).scalar_one()
            # sort ids only, then read the rows of the window: sorting whole rows (their JSON
            # columns) of a large study costs several times more
            if query.sort.startswith(("params.", "metrics.")):
                ids = self._walk_field(conn, study_id, query, joined(filtered), where)
            else:
                ids = [row.id for row in conn.execute(
                    self._sorted_ids(study_id, query, joined(filtered), where))]
            rows: dict[int, Any] = {}
            for start in range(0, len(ids), 900):  # under SQLite's bound-parameter limit
                chunk = ids[start:start + 900]
                rows.update((r.id, r) for r in conn.execute(
                    sa.select(trials).where(trials.c.id.in_(chunk))))
            return [self._trial(rows[i]) for i in ids if i in rows], total

        return self._run(work, write=False)

    def _sorted_ids(self, study_id: int, query: TrialQuery, source: Any, where: list[Any]) -> Any:
        """The window of trial ids sorted by a column of the trial (number, value...)."""
        _, key = self._field(query.sort, study_id, [])
        order: list[Any] = []
        if query.sort != "number":  # trials without the field last, either way (a number
            order.append(key.is_(None))  # is never missing: its index serves it)
        order += [e.desc() if query.descending else e.asc() for e in (key, trials.c.number)]
        page = sa.select(trials.c.id).select_from(source).where(*where).order_by(*order)
        return page.offset(query.offset).limit(query.limit)

    def _walk_field(
        self, conn: Connection, study_id: int, query: TrialQuery, source: Any, where: list[Any]
    ) -> list[int]:
        """The window of trial ids sorted by a parameter or final metric, read in index order
        (ix_trial_fields_study_field_num) instead of sorting every trial: the trials with a
        number, those with text, those without the field (last), one query each, as far as
        the window reaches."""
        found = trial_fields.alias("sorted")
        with_field = source.join(found, sa.and_(found.c.trial_id == trials.c.id,
                                                found.c.study_id == study_id,
                                                found.c.field == query.sort))
        direction = (lambda e: e.desc()) if query.descending else (lambda e: e.asc())
        # Python's str order is code point order: SQLite's BINARY, PostgreSQL's "C"
        text = found.c.value_text if self._sqlite else found.c.value_text.collate("C")
        numbers = (sa.select(found.c.trial_id).select_from(with_field)
                   .where(*where, found.c.value_num.is_not(None))
                   .order_by(direction(found.c.value_num), direction(found.c.trial_id)))
        texts = (sa.select(found.c.trial_id).select_from(with_field)
                 .where(*where, found.c.value_num.is_(None))
                 .order_by(direction(text), direction(found.c.trial_id)))
        has_field = sa.exists().where(trial_fields.c.trial_id == trials.c.id,
                                      trial_fields.c.field == query.sort)
        missing = (sa.select(trials.c.id).select_from(source).where(*where, ~has_field)
                   .order_by(direction(trials.c.number)))
        ids: list[int] = []
        skip, wanted = query.offset, query.limit
        for segment in ([texts, numbers] if query.descending else [numbers, texts]) + [missing]:
            if wanted is not None and wanted <= 0:
                break
            got = list(conn.execute(segment.offset(skip).limit(wanted)).scalars())
            ids += got
            if wanted is not None:
                wanted -= len(got)
            if got or not skip:
                skip = 0
            else:  # the window starts past this segment: how far past
                size = conn.execute(sa.select(sa.func.count()).select_from(
                    segment.order_by(None).subquery())).scalar_one()
                skip = max(0, skip - size)
        return ids

    def completed_values(self, study_id: int) -> list[tuple[int, float | None]]:
        query = (sa.select(trials.c.number, trials.c.value)  # from the index alone (0004)
                 .where(trials.c.study_id == study_id,
                        trials.c.state == TrialState.COMPLETE.value)
                 .order_by(trials.c.number))

        def work(conn: Connection) -> list[tuple[int, float | None]]:
            return [(r.number, r.value) for r in conn.execute(query)]

        return self._run(work, write=False)

    def trial_outlines(
        self, study_id: int, states: Sequence[TrialState] | None = None, *,
        latest: int | None = None,
    ) -> list[TrialOutline]:
        columns = (trials.c.number, trials.c.state, trials.c.value, trials.c.started_at,
                   trials.c.finished_at, trials.c.host, trials.c.worker, trials.c.owner)
        query = sa.select(*columns).where(trials.c.study_id == study_id)
        if states is not None:
            query = query.where(trials.c.state.in_([s.value for s in states]))
        if latest is not None:
            query = query.where(trials.c.started_at.is_not(None)).order_by(
                trials.c.started_at.desc(), trials.c.number.desc()).limit(latest)

        def work(conn: Connection) -> list[TrialOutline]:
            rows = conn.execute(query).all()
            out = [
                TrialOutline(r.number, TrialState(r.state), r.value, r.started_at,
                             r.finished_at, r.host, r.worker, r.owner)
                for r in rows
            ]
            return sorted(out, key=lambda o: o.number)

        return self._run(work, write=False)

    def activity(self, study_id: int) -> tuple[int, int, int]:
        running = sa.select(trials.c.id).where(
            trials.c.study_id == study_id, trials.c.state == TrialState.RUNNING.value
        )
        finished = sa.select(sa.func.count()).where(  # ix_trials_study_finished alone
            trials.c.study_id == study_id, trials.c.finished_at.is_not(None))
        query = sa.select(
            sa.select(studies.c.version).where(studies.c.id == study_id).scalar_subquery()
            + finished.scalar_subquery(),
            sa.select(sa.func.coalesce(sa.func.max(metrics.c.id), 0))
            .where(metrics.c.trial_id.in_(running)).scalar_subquery(),
            sa.select(sa.func.count()).select_from(running.subquery()).scalar_subquery(),
        )

        def work(conn: Connection) -> tuple[int, int, int]:
            version, reports, n_running = conn.execute(query).one()
            return int(version or 0), int(reports), int(n_running)

        return self._run(work, write=False)

    def integrity_problems(self) -> list[str]:
        if not self._sqlite:
            return []  # PostgreSQL checks its pages itself and reports damage as errors

        def work(conn: Connection) -> list[str]:
            rows = [str(r[0]) for r in conn.exec_driver_sql("PRAGMA quick_check")]
            return [] if rows == ["ok"] else rows

        return self._run(work, write=False)

    def time_span(self, study_id: int) -> tuple[float | None, float | None]:
        mine = trials.c.study_id == study_id
        query = sa.select(  # each an index seek (ix_trials_study_started / _finished)
            sa.select(sa.func.min(trials.c.started_at)).where(mine).scalar_subquery(),
            sa.select(sa.func.max(trials.c.finished_at)).where(mine).scalar_subquery(),
        )

        def work(conn: Connection) -> tuple[float | None, float | None]:
            first, last = conn.execute(query).one()
            return first, last

        return self._run(work, write=False)

    def get_cache(self, study_id: int, name: str) -> dict[str, Any] | None:
        caches = schema.study_caches
        query = sa.select(caches.c.data_json).where(caches.c.study_id == study_id,
                                                    caches.c.name == name)

        def work(conn: Connection) -> dict[str, Any] | None:
            text = conn.execute(query).scalar()
            return None if text is None else json.loads(text)

        return self._run(work, write=False)

    def put_cache(self, study_id: int, name: str, data: dict[str, Any]) -> None:
        from sqlalchemy.dialects import postgresql, sqlite

        caches = schema.study_caches
        text = json.dumps(data, allow_nan=False)
        insert = (sqlite if self._sqlite else postgresql).insert(caches).values(
            study_id=study_id, name=name, data_json=text, updated_at=self._now)
        upsert = insert.on_conflict_do_update(
            index_elements=[caches.c.study_id, caches.c.name],
            set_={"data_json": insert.excluded.data_json, "updated_at": insert.excluded.updated_at})

        def work(conn: Connection) -> None:
            conn.execute(upsert)

        self._run(work, write=True)

    def add_note(self, study_id: int, trial_number: int | None, text: str) -> None:
        def work(conn: Connection) -> None:
            conn.execute(notes.insert().values(study_id=study_id, trial_number=trial_number,
                                               text=text, created_at=self._now))
            conn.execute(studies.update().where(studies.c.id == study_id)
                         .values(version=studies.c.version + 1))

        self._run(work, write=True)

    def latest_notes(self, study_id: int, numbers: Sequence[int]) -> dict[int, str]:
        wanted = list(dict.fromkeys(int(n) for n in numbers))[:1000]  # a page is at most 500
        query = (sa.select(notes.c.trial_number, notes.c.text)
                 .where(notes.c.study_id == study_id, notes.c.trial_number.in_(wanted))
                 .order_by(notes.c.id))

        def work(conn: Connection) -> dict[int, str]:
            return {r.trial_number: r.text for r in conn.execute(query)} if wanted else {}

        return self._run(work, write=False)

    def get_notes(self, study_id: int, trial_number: int | None = None) -> list[Note]:
        match = (notes.c.trial_number.is_(None) if trial_number is None
                 else notes.c.trial_number == trial_number)
        query = (sa.select(notes.c.trial_number, notes.c.text, notes.c.created_at)
                 .where(notes.c.study_id == study_id, match).order_by(notes.c.id))

        def work(conn: Connection) -> list[Note]:
            return [Note(r.trial_number, r.text, r.created_at) for r in conn.execute(query)]

        return self._run(work, write=False)


class _Abort(Exception):
    """Roll back the transaction and make `_run` return `result`."""

    def __init__(self, result: Any) -> None:
        self.result = result


_TAKE_WAITING = object()  # claim found WAITING trials: take one in a second transaction
_PROPOSE_AGAIN = object()  # the point proposed from a snapshot was claimed since: propose anew
_NONE_WAITING = object()  # ...but another worker took the last one first


def _first_line(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


def _nan_as_none(value: float | None) -> float | None:
    """SQLite stores NaN as NULL, PostgreSQL as NaN (which equals nothing)."""
    return None if value is None or math.isnan(value) else value


def _is_not_a_database(message: str) -> bool:
    text = message.lower()
    return "file is not a database" in text or "disk image is malformed" in text


def _is_disk_failure(message: str) -> bool:
    """A database file that can no longer be written: its disk is full or read-only."""
    text = message.lower()
    return any(m in text for m in ("disk is full", "readonly database", "read-only"))


def _is_permanent(error: Exception) -> bool:
    """Errors no retry will fix: bad credentials, missing database, read-only file, disk full."""
    text = _first_line(error).lower()
    permanent = (
        "password authentication failed",
        "does not exist",
        "readonly database",
        "read-only",
        "disk is full",
        "database or disk is full",
        "unable to open database",
        "no such table",
    )
    return any(marker in text for marker in permanent)
