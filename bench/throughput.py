"""Storage throughput: trials per second, random search, no-op objective, hypersearch vs Optuna.

Both libraries run side by side in one invocation (the machines are shared and noisy: quote the
ratio, not the absolute numbers), on the same 5-parameter space (uniform float, log-uniform float,
float, int 1-100, categorical of 4) and a no-op objective:

    row       hypersearch                                Optuna 5
    memory    hs.minimize(storage=None, n_jobs=1)        InMemoryStorage, optimize(n_jobs=1)
    sqlite1   hs.minimize("sqlite:///f.db", n_jobs=1)    RDBStorage("sqlite:///f.db"), 1 process
    sqlite4   hs.minimize("sqlite:///f.db", n_jobs=4)    4 spawned processes, load_study().optimize
    pg1       hs.minimize("postgresql://...", n_jobs=1)  RDBStorage(postgresql+psycopg), 1 process
    pg4       hs.minimize("postgresql://...", n_jobs=4)  4 spawned processes, load_study().optimize
    sqlite-wK K worker processes, hs.run_worker          K spawned processes, load_study().optimize
    pg-wK     (K = 1, 2, 4, 8, 16; -10ms: a 10 ms objective)

hypersearch with n_jobs=k is one ``hs.minimize(..., n_jobs=k, max_trials=N)`` call (k objective
processes behind one driver that alone talks to storage): the "n_jobs=4, one driver" rows.
hypersearch with K worker processes is what ``hypersearch worker`` runs on K machines: the study
is created first (objective ``benchobjectives:noop``, stored by name), then K spawned processes
each call ``hs.run_worker(url, name)``; they share the one budget. Optuna with k processes is how
Optuna users run processes: k OS processes (multiprocessing spawn) each calling
``optuna.load_study(...).optimize(objective, n_trials=N // k)`` on the same RDB URL. Both meet at a
barrier after importing and loading the study, so process start-up is not timed. Optuna's
SQLite storage is ``RDBStorage("sqlite:///f.db")`` with default settings except a 60 s SQLite busy
timeout (``engine_kwargs={"connect_args": {"timeout": 60}}``); storage errors such as "database is
locked" are counted and reported, and the worker carries on with its remaining budget.

Timing (steady state): trials/s = completed trials / (last trial end - first trial start), both
taken from each library's own trial records (hypersearch ``started_at``/``finished_at``, database
clock on SQL storage; Optuna ``datetime_start``/``datetime_complete``). Storage creation, schema
migration and study creation happen before the first trial starts and are therefore excluded for
both. Each measurement runs in a fresh spawned process, on a fresh SQLite file or a fresh
PostgreSQL database (CREATE DATABASE with a unique name, dropped afterwards). The details table also
gives the rate between the 10th and 90th percentile of completions ("steady 10-90%", which also
leaves out hypersearch's objective-process start-up with n_jobs > 1) and the wall time of the
optimize call (hypersearch: the whole ``hs.minimize`` call, storage creation included).

Correctness is checked in the same run: hypersearch's study must hold exactly the requested number
of trials, all COMPLETE, numbered 0..N-1 without duplicates. Optuna's budget is per worker, so its
actual trial count and states are reported.

Usage::

    python bench/throughput.py [--trials-scale 1.0] [--rows memory,sqlite1,sqlite4,pg1,pg4]
                               [--repeat 1] [--markdown] [--pg-url URL] [--tmpdir DIR]
                               [--seed 0] [--timeout 600]

The script prints the git revision and a hash of hypersearch's source files, and warns when those
files change during the run (the numbers would then mix two versions). Exit status 1 when a
hypersearch correctness check fails or the source changed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import logging
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from benchinfo import git_revision, run_isolated, source_fingerprint  # bench/: script folder

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    import optuna

DEFAULT_PG_URL = os.environ.get(
    "HYPERSEARCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
STUDY_NAME = "throughput"
MAX_WORKER_ERRORS = 50  # storage errors one Optuna worker tolerates before giving up
CHOICES = ["a", "b", "c", "d"]


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    backend: str  # "memory" | "sqlite" | "postgresql"
    workers: int
    hs_trials: int  # at --trials-scale 1
    optuna_trials: int  # total across workers, at --trials-scale 1
    separate: bool = False  # hypersearch as `workers` separate worker processes (run_worker)
    sleep: float = 0.0  # seconds the objective sleeps
    strategy: str = "random"  # "gp": Optuna's GPSampler beside it; the bar is slots kept busy


ROWS = {
    row.key: row
    for row in (
        Row("memory", "in-memory, 1 process", "memory", 1, 20_000, 5_000),
        Row("sqlite1", "SQLite file, 1 process", "sqlite", 1, 2_000, 2_000),
        Row("sqlite4", "SQLite file, n_jobs=4, one driver", "sqlite", 4, 2_000, 2_000),
        Row("pg1", "PostgreSQL, 1 process", "postgresql", 1, 2_000, 2_000),
        Row("pg4", "PostgreSQL, n_jobs=4, one driver", "postgresql", 4, 2_000, 2_000),
        *(Row(f"{key}-w{k}", f"{label}, {k} worker process{'es' if k > 1 else ''}", backend, k,
              2_000, 2_000, separate=True)
          for key, label, backend in (("sqlite", "SQLite file", "sqlite"),
                                      ("pg", "PostgreSQL", "postgresql"))
          for k in (1, 2, 4, 8, 16)),
        *(Row(f"{key}-w{k}-10ms", f"{label}, {k} worker processes, 10 ms objective", backend,
              k, 2_000, 2_000, separate=True, sleep=0.010)
          for key, label, backend in (("sqlite", "SQLite file", "sqlite"),
                                      ("pg", "PostgreSQL", "postgresql"))
          for k in (4, 8)),
        *(Row(f"{key}-w8-gp-2s", f"{label}, 8 worker processes, GP, 2 s objective", backend, 8,
              200, 200, separate=True, sleep=2.0, strategy="gp")
          for key, label, backend in (("sqlite", "SQLite file", "sqlite"),
                                      ("pg", "PostgreSQL", "postgresql"))),
    )
}
DEFAULT_ROWS = ("memory", "sqlite1", "sqlite4", "pg1", "pg4")


@dataclass
class Measurement:
    library: str  # "hypersearch" | "optuna"
    row: str
    expected: int  # trials asked for in total
    n_trials: int = 0
    n_complete: int = 0
    states: dict[str, int] = field(default_factory=dict)
    span_s: float = float("nan")  # first trial start -> last trial end
    rate: float = float("nan")  # completed trials / span
    busy: float = float("nan")  # objective time / (processes x span): slots kept busy
    steady_rate: float = float("nan")  # between the 10th and 90th percentile completions
    wall_s: float = float("nan")  # the optimize call(s)
    storage_errors: list[str] = field(default_factory=list)  # Optuna: exceptions caught
    warnings: int = 0  # hypersearch: warnings logged (e.g. storage retries)
    problems: list[str] = field(default_factory=list)  # correctness failures
    error: str | None = None  # the run itself failed

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems


# -- the objectives (same space for both libraries) -------------------------------------------


def hs_space() -> dict[str, Any]:
    import hypersearch as hs

    return {
        "x": hs.uniform(-5.0, 5.0),
        "lr": hs.loguniform(1e-5, 1e-1),
        "dropout": hs.uniform(0.0, 1.0),
        "units": hs.integer(1, 100),
        "kind": hs.choice(CHOICES),
    }


def hs_objective(params: dict[str, Any]) -> float:
    return 0.0


def optuna_objective(trial: optuna.Trial, sleep: float = 0.0) -> float:
    trial.suggest_float("x", -5.0, 5.0)
    trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    trial.suggest_float("dropout", 0.0, 1.0)
    trial.suggest_int("units", 1, 100)
    trial.suggest_categorical("kind", CHOICES)
    if sleep:
        time.sleep(sleep)
    return 0.0


# -- timing from trial records -----------------------------------------------------------------


def rates(starts: Sequence[float], ends: Sequence[float]) -> tuple[float, float, float]:
    """(span, completed/span, steady rate between the 10th and 90th percentile completion)."""
    if not ends:
        return float("nan"), float("nan"), float("nan")
    span = max(ends) - min(starts)
    done = sorted(ends)
    lo, hi = len(done) // 10, (len(done) * 9) // 10
    steady = (hi - lo) / (done[hi] - done[lo]) if hi > lo and done[hi] > done[lo] else float("nan")
    return span, (len(ends) / span if span > 0 else float("nan")), steady


def busy(row: Row, completed: int, span: float) -> float:
    """The share of the processes' time spent running the objective (its known sleep; not the
    trial's recorded duration, which for Optuna includes the sampler's suggestion)."""
    if not row.sleep or span != span or span <= 0:
        return float("nan")
    return completed * row.sleep / (row.workers * span)


# -- hypersearch ---------------------------------------------------------------------------------


class _CountWarnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def _hs_result(row: Row, n: int, trials: Sequence[Any], started: float) -> Measurement:
    """The measurement and correctness checks of a finished hypersearch study."""
    result = Measurement("hypersearch", row.key, n)
    result.wall_s = time.perf_counter() - started
    result.n_trials = len(trials)
    result.states = dict(Counter(t.state.value for t in trials))
    complete = [t for t in trials if t.state.value == "COMPLETE"]
    result.n_complete = len(complete)
    result.span_s, result.rate, result.steady_rate = rates(
        [t.started_at for t in complete if t.started_at is not None],
        [t.finished_at for t in complete if t.finished_at is not None],
    )
    result.busy = busy(row, result.n_complete, result.span_s)
    numbers = [t.number for t in trials]
    if len(trials) != n:
        result.problems.append(f"{len(trials)} trials, expected exactly {n}")
    if result.n_complete != len(trials):
        result.problems.append(f"not all COMPLETE: {result.states}")
    if len(set(numbers)) != len(numbers):
        result.problems.append(f"{len(numbers) - len(set(numbers))} duplicate trial numbers")
    elif sorted(numbers) != list(range(len(numbers))):
        result.problems.append("trial numbers are not 0..N-1")
    return result


def hs_worker(url: str, barrier: Any, conn: Connection) -> None:
    """One `hypersearch worker` process: open the study, wait for the others, serve it."""
    counter = _CountWarnings()
    try:
        import hypersearch as hs

        logging.getLogger("hypersearch").addHandler(counter)
        hs.load_study(STUDY_NAME, url).storage.close()  # import and open before the barrier
        barrier.wait()
        ran = hs.run_worker(url, STUDY_NAME, verbose=False)
        conn.send({"ran": ran.get(STUDY_NAME, 0), "warnings": counter.count, "error": None})
    except Exception:
        conn.send({"ran": 0, "warnings": counter.count, "error": traceback.format_exc()})
    conn.close()


def run_hypersearch_workers(row: Row, n: int, url: str, seed: int) -> Measurement:
    import hypersearch as hs

    objective = {0.0: "noop", 0.010: "sleep10ms", 2.0: "sleep2s"}[row.sleep]
    hs.create_study(hs_space(), name=STUDY_NAME, storage=url, strategy=row.strategy,
                    max_trials=n, seed=seed, objective=f"benchobjectives:{objective}"
                    ).storage.close()
    reports, wall = spawn_workers(hs_worker, [(url,)] * row.workers)
    started = time.perf_counter() - wall  # when the workers started
    study = hs.load_study(STUDY_NAME, url)  # a fresh storage object: everything read back
    result = _hs_result(row, n, study.trials, started)
    study.storage.close()
    result.warnings = sum(r["warnings"] for r in reports)
    errors = [r["error"] for r in reports if r["error"]]
    if errors:
        result.problems.append("a worker failed: " + errors[0].strip().splitlines()[-1])
    if sum(r["ran"] for r in reports) != n:
        result.problems.append(f"the workers report {sum(r['ran'] for r in reports)} trials")
    return result


def run_hypersearch(row: Row, n: int, url: str | None, seed: int) -> Measurement:
    import hypersearch as hs

    if hs_objective.__module__ != "__main__":
        # we run in a spawned process, where this script is `__mp_main__`: ship the objective by
        # value, as cloudpickle does for a function defined in a script's `__main__`
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[hs_objective.__module__])
    counter = _CountWarnings()
    logging.getLogger("hypersearch").addHandler(counter)
    started = time.perf_counter()
    study = hs.minimize(
        hs_objective,
        hs_space(),
        strategy="random",
        max_trials=n,
        n_jobs=row.workers,
        storage=url,
        name=STUDY_NAME,
        seed=seed,
        verbose=False,
    )
    trials = study.trials
    study.close()
    study.storage.close()
    result = _hs_result(row, n, trials, started)
    result.warnings = counter.count
    return result


# -- Optuna --------------------------------------------------------------------------------------


def _quiet_optuna() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    optuna.logging.disable_default_handler()
    warnings.filterwarnings("ignore", module="optuna")


def optuna_storage(url: str) -> Any:
    import optuna

    if url.startswith("sqlite"):
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return optuna.storages.RDBStorage(url)


def _optuna_measurement(
    row: Row, expected: int, trials: Sequence[optuna.trial.FrozenTrial]
) -> Measurement:
    result = Measurement("optuna", row.key, expected)
    result.n_trials = len(trials)
    result.states = dict(Counter(t.state.name for t in trials))
    complete = [
        t for t in trials if t.state.name == "COMPLETE" and t.datetime_start and t.datetime_complete
    ]
    result.n_complete = len(complete)
    result.span_s, result.rate, result.steady_rate = rates(
        [t.datetime_start.timestamp() for t in complete],  # type: ignore[union-attr]
        [t.datetime_complete.timestamp() for t in complete],  # type: ignore[union-attr]
    )
    result.busy = busy(row, result.n_complete, result.span_s)
    return result


def run_optuna_memory(row: Row, n: int, seed: int) -> Measurement:
    import optuna

    _quiet_optuna()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    started = time.perf_counter()
    study.optimize(optuna_objective, n_trials=n, n_jobs=1)
    wall = time.perf_counter() - started
    result = _optuna_measurement(row, n, study.get_trials(deepcopy=False))
    result.wall_s = wall
    return result


def spawn_workers(target: Callable[..., None], args: Sequence[tuple[Any, ...]]
                  ) -> tuple[list[Any], float]:
    """Start one spawned process per `args` running ``target(*args, barrier, conn)``; once
    all have met at the barrier, wait for each one's report on `conn`. (reports, seconds
    from the barrier to the last report.)"""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(args) + 1)
    workers = []
    for given in args:
        receive, send = ctx.Pipe(duplex=False)
        process = ctx.Process(target=target, args=(*given, barrier, send), daemon=True)
        process.start()
        send.close()
        workers.append((process, receive))
    barrier.wait(timeout=300)
    started = time.perf_counter()
    reports = [receive.recv() for _, receive in workers]
    wall = time.perf_counter() - started
    for process, _ in workers:
        process.join()
    return reports, wall


def optuna_sampler(strategy: str, seed: int) -> Any:
    import optuna

    if strategy == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def optuna_worker(
    url: str, n: int, seed: int, sleep: float, strategy: str, barrier: Any, conn: Connection
) -> None:
    """One Optuna process: load the study, wait for the others, run its n trials."""
    errors: list[str] = []
    done = 0
    try:
        import optuna

        _quiet_optuna()
        study = optuna.load_study(
            study_name=STUDY_NAME,
            storage=optuna_storage(url),
            sampler=optuna_sampler(strategy, seed),
        )

        def count(_study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
            nonlocal done
            done += 1

        barrier.wait()
        while done < n and len(errors) < MAX_WORKER_ERRORS:
            try:
                study.optimize(functools.partial(optuna_objective, sleep=sleep),
                               n_trials=n - done, callbacks=[count])
            except Exception as error:  # "database is locked" and the like: count, go on
                errors.append(f"{type(error).__name__}: {str(error).strip().splitlines()[0]}")
    except Exception:
        errors.append(traceback.format_exc())
    conn.send({"done": done, "errors": errors})
    conn.close()


def run_optuna_rdb(row: Row, n: int, url: str, seed: int) -> Measurement:
    import optuna

    _quiet_optuna()
    storage = optuna_storage(url)  # creates the tables: not timed
    optuna.create_study(
        study_name=STUDY_NAME, storage=storage, sampler=optuna.samplers.RandomSampler(seed=seed)
    )
    storage.engine.dispose()
    per_worker = n // row.workers
    reports, wall = spawn_workers(
        optuna_worker,
        [(url, per_worker, seed + 1 + index, row.sleep, row.strategy)
         for index in range(row.workers)],
    )
    # a fresh storage object: nothing cached, every trial read back from the database
    trials = optuna.load_study(study_name=STUDY_NAME, storage=optuna_storage(url)).get_trials(
        deepcopy=False
    )
    result = _optuna_measurement(row, per_worker * row.workers, trials)
    result.wall_s = wall
    result.storage_errors = [e for report in reports for e in report["errors"]]
    return result


# -- isolation: every measurement in a fresh process, on a fresh database ------------------------


def isolated(
    target: Callable[..., Measurement],
    args: tuple[Any, ...],
    library: str,
    row: Row,
    expected: int,
    timeout: float,
) -> Measurement:
    answer = run_isolated(target, args, timeout)
    if isinstance(answer, Measurement):
        return answer
    return Measurement(library, row.key, expected, error=str(answer).strip())


@contextlib.contextmanager
def fresh_database(row: Row, library: str, pg_url: str, tmpdir: str | None) -> Iterator[str | None]:
    """The storage URL for one measurement: None, a new SQLite file, or a new PG database."""
    if row.backend == "memory":
        yield None
    elif row.backend == "sqlite":
        directory = tempfile.mkdtemp(prefix=f"throughput-{library}-{row.key}-", dir=tmpdir)
        try:
            yield f"sqlite:///{os.path.join(directory, 'bench.db')}"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    else:
        import psycopg
        import sqlalchemy as sa

        base = sa.engine.make_url(pg_url)
        admin = base.set(drivername="postgresql").render_as_string(hide_password=False)
        name = f"hsbench_{library[:2]}_{row.key}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        driver = "postgresql" if library == "hypersearch" else "postgresql+psycopg"
        try:
            yield base.set(drivername=driver, database=name).render_as_string(hide_password=False)
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def measure(
    library: str, row: Row, scale: float, seed: int, pg_url: str, tmpdir: str | None, timeout: float
) -> Measurement:
    base = row.hs_trials if library == "hypersearch" else row.optuna_trials
    n = max(row.workers, round(base * scale))
    try:
        with fresh_database(row, library, pg_url, tmpdir) as url:
            if library == "hypersearch":
                run = run_hypersearch_workers if row.separate else run_hypersearch
                return isolated(run, (row, n, url, seed), library, row, n, timeout)
            if url is None:
                return isolated(run_optuna_memory, (row, n, seed), library, row, n, timeout)
            return isolated(run_optuna_rdb, (row, n, url, seed), library, row, n, timeout)
    except Exception as error:  # e.g. PostgreSQL unreachable: report the row, go on
        return Measurement(library, row.key, n, error=f"{type(error).__name__}: {error}")


# -- the bar from PERFORMANCE.md and the report --------------------------------------------------


def bar_for(row: Row, hs_rates: dict[str, float]) -> tuple[str, float]:
    """(text, threshold) for hypersearch trials/s on this row."""
    if row.key == "memory":
        return ">= 10,000", 10_000.0
    if row.key == "sqlite1":
        return ">= 500", 500.0
    if row.key == "sqlite4":
        one = hs_rates.get("sqlite1")
        if one is not None and one == one:
            return f"no collapse: >= 50% of sqlite1 ({0.5 * one:,.0f})", 0.5 * one
        return "no collapse: >= 250 (half the 1-process bar)", 250.0
    if row.key == "pg1":
        return ">= 200", 200.0
    if not row.separate:
        return ">= 400", 400.0
    if row.strategy == "gp":  # issue 11: 8 workers keep >= 80% of their slots busy
        return ">= 80% of slots busy", 80.0
    if row.sleep:  # the objective bounds it: K / sleep at most
        ideal = row.workers / row.sleep
        return f">= 80% of {ideal:,.0f} (K / 10 ms)", 0.8 * ideal
    family, k = row.key.split("-w")[0], row.workers
    if k == 4:  # issue 11, acceptance 3
        return (">= 1,000", 1000.0) if family == "pg" else (">= 1,500", 1500.0)
    fewer = hs_rates.get(f"{family}-w{k // 2}")
    if k > 1 and fewer is not None and fewer == fewer:
        if k == 16:  # more processes than cores: no collapse
            return f"no collapse: >= 50% of {k // 2} ({0.5 * fewer:,.0f})", 0.5 * fewer
        return f"rising: >= {k // 2} processes ({fewer:,.0f})", fewer
    return (">= 200", 200.0) if family == "pg" else (">= 500", 500.0)


def median(values: Sequence[float]) -> float:
    finite = [v for v in values if v == v]
    return statistics.median(finite) if finite else float("nan")


def fmt(value: float, digits: int = 0) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def check_text(m: Measurement) -> str:
    if m.error is not None:
        return "ERROR: " + m.error.splitlines()[-1][:120]
    if m.library == "hypersearch":
        text = "ok: exact budget, all COMPLETE, unique" if m.ok else "; ".join(m.problems)
        return text + (f"; {m.warnings} warnings logged" if m.warnings else "")
    others = {s: c for s, c in m.states.items() if s != "COMPLETE"}
    text = f"{m.n_complete:,} of {m.expected:,} COMPLETE"
    if others:
        text += f", other states {others}"
    if m.storage_errors:
        kinds = Counter(e.splitlines()[0][:80] for e in m.storage_errors)
        text += f"; {len(m.storage_errors)} storage errors: {dict(kinds)}"
    return text


def environment(fingerprint: str) -> list[str]:
    import optuna
    import sqlalchemy

    import hypersearch

    return [
        f"hypersearch source: git {git_revision()}, files sha1 {fingerprint}",
        f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {os.cpu_count()} cores (nproc), {platform.platform()}",
        f"python {platform.python_version()}, hypersearch {hypersearch.__version__}, "
        f"optuna {optuna.__version__}, sqlalchemy {sqlalchemy.__version__}",
        "load average before the run (1/5/15 min): "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials-scale", type=float, default=1.0, help="multiply every N")
    parser.add_argument(
        "--rows", default=",".join(DEFAULT_ROWS),
        help=f"comma-separated subset of {','.join(ROWS)} (default {','.join(DEFAULT_ROWS)})"
    )
    parser.add_argument("--repeat", type=int, default=1, help="median of R runs")
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (admin DB)")
    parser.add_argument("--tmpdir", default=None, help="where the SQLite files go")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=600.0, help="per measurement, seconds")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.rows.split(",") if k.strip()]
    unknown = [k for k in keys if k not in ROWS]
    if unknown or not keys:
        parser.error(f"unknown rows {unknown}; choose from {','.join(ROWS)}")
    if args.trials_scale <= 0 or args.repeat < 1:
        parser.error("--trials-scale must be > 0 and --repeat >= 1")
    rows = [ROWS[k] for k in keys]

    fingerprint = source_fingerprint()
    print("\n".join(environment(fingerprint)))
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    runs: dict[tuple[str, str], list[Measurement]] = {}
    started = time.perf_counter()
    for repeat in range(args.repeat):
        for row in rows:
            order = ["hypersearch", "optuna"] if repeat % 2 == 0 else ["optuna", "hypersearch"]
            for library in order:
                seed = args.seed + 1000 * repeat
                m = measure(
                    library, row, args.trials_scale, seed, args.pg_url, args.tmpdir, args.timeout
                )
                runs.setdefault((row.key, library), []).append(m)
                print(
                    f"  [{time.perf_counter() - started:6.1f}s] run {repeat + 1}/{args.repeat} "
                    f"{row.key:8s} {library:12s} {fmt(m.rate):>8s} trials/s  "
                    f"({m.n_complete:,} trials in {fmt(m.span_s, 2)} s, "
                    f"{fmt(100 * m.busy)}% busy)  {check_text(m)}",
                    file=sys.stderr,
                    flush=True,
                )

    hs_rates = {k: median([m.rate for m in runs[(k, "hypersearch")]]) for k in keys}
    table, details, all_ok = [], [], True
    for row in rows:
        hs_runs, op_runs = runs[(row.key, "hypersearch")], runs[(row.key, "optuna")]
        hs_rate, op_rate = hs_rates[row.key], median([m.rate for m in op_runs])
        text, threshold = bar_for(row, hs_rates)
        hs_ok = all(m.ok for m in hs_runs)
        judged = 100 * median([m.busy for m in hs_runs]) if row.strategy == "gp" else hs_rate
        meets = judged == judged and judged >= threshold
        all_ok &= hs_ok
        table.append(
            [
                row.label,
                fmt(hs_rate),
                fmt(op_rate),
                "n/a" if hs_rate != hs_rate or op_rate != op_rate else f"{hs_rate / op_rate:.1f}x",
                text,
                ("yes" if meets else "NO") + ("" if hs_ok else " (check failed)"),
            ]
        )
        for m in [*hs_runs, *op_runs]:
            details.append(
                [
                    row.key,
                    m.library,
                    f"{m.n_trials:,}/{m.expected:,}",
                    fmt(m.span_s, 2),
                    fmt(m.rate),
                    fmt(m.steady_rate),
                    fmt(100 * m.busy),
                    fmt(m.wall_s, 2),
                    check_text(m),
                ]
            )
    print(
        f"\nload average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"total {time.perf_counter() - started:.0f} s"
    )
    if source_fingerprint() != fingerprint:
        all_ok = False
        print("WARNING: hypersearch's source files changed during the run; numbers are mixed")
    scale = "" if args.trials_scale == 1 else f", trials x{args.trials_scale:g}"
    print(f"\nStorage throughput, trials/s (median of {args.repeat} run(s){scale}):\n")
    print(
        render(
            [
                "row",
                "hypersearch trials/s",
                "Optuna trials/s",
                "ratio",
                "bar (hypersearch)",
                "meets bar",
            ],
            table,
            args.markdown,
        )
    )
    print(
        "\nEvery run (trials/s = completed / (last end - first start); steady = 10th-90th "
        "percentile completions; wall = optimize call):\n"
    )
    print(
        render(
            ["row", "library", "trials", "span s", "trials/s", "steady 10-90%", "busy %",
             "wall s", "check"],
            details,
            args.markdown,
        )
    )
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
