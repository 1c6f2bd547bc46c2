"""Build the dashboard's scale study through the public storage API (issue 10, Scale).

    .venv/bin/python bench/dashboard_study.py --trials 2000 --out /tmp/hs-dash/study-2000.db
    .venv/bin/python bench/dashboard_study.py --trials 100000 --out /tmp/hs-dash/study-100000.db \
        --optuna /tmp/hs-dash/optuna-100000.db

One study named ``dashboard-N`` (N trials, default 100,000) with 20 parameters (8 floats, 3 of
them log-scaled; 6 integers, one log-scaled; 6 choices) and up to 100 steps of two metrics per
trial (``loss``, the study's metric, minimised, and ``accuracy``). States: about 73% COMPLETE
(100 steps), 25% PRUNED at an ASHA-like rung (step 1, 3, 9, 27 or 81; keeping their last
loss), 2% FAILED at a random step (an error with a traceback), and the last 5 RUNNING (a long
lease, so no sweep fails them while the dashboard reads). Every 10th trial has 20 stdout lines,
and every FAILED trial a stderr traceback. Trials come from 8 simulated workers (``worker``).

Written as a worker writes: `claim` (one transaction per trial, as every worker pays),
`report_many` (one transaction for a chunk of trials: the batched path the report buffer
uses), `append_logs` (one per trial with logs) and `finish` (one fenced statement per trial).
So the timestamps are real database times (durations are milliseconds). Times per phase are
printed with the progress.

Targets: the SQLite file at ``--out`` (built at OUT.partial and renamed when complete, so a
complete file is a cache: a second run with the same OUT and N only brings its schema up to
date, as the read-only dashboard needs), and PostgreSQL at
``--postgres`` (default: database ``bench_dashboard_N`` on 127.0.0.1:5432, created if missing;
kept when complete, rebuilt when partial; ``--no-postgres`` skips it; after the build it runs
VACUUM ANALYZE, which autovacuum would have done on a study that grew over days).
``--drop-postgres`` drops that database and exits.

``--optuna PATH`` also converts the SQLite study to Optuna's RDB storage (SQLite) for the
optuna-dashboard comparison. Optuna's public path (``study.add_trials``, one ORM transaction
per trial) is timed on the first ``--optuna-api-trials`` trials (default 500) and extrapolated;
the full study is then written with bulk INSERTs into the schema Optuna itself created (same
rows as add_trials writes: trials, params with their distribution JSON, values, intermediate
values, user attributes). Optuna keeps one intermediate curve per trial: ``loss``;
``accuracy`` becomes the user attribute ``accuracy`` (the final value).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import hypersearch as hs
from hypersearch.storage import Storage, get_storage
from hypersearch.storage.base import make_owner
from hypersearch.trial import FailureReason, Outcome, TrialState

STEPS = 100
RUNNING = 5  # the last trials stay RUNNING
CHUNK = 250  # trials per report_many transaction (25,000 metric rows... 50,000 values)
LEASE = 10 * 365 * 86400.0  # RUNNING trials outlive any benchmark
WORKERS = 8
RUNGS = (1, 3, 9, 27, 81)
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


def space() -> dict[str, Any]:
    """20 parameters: 8 floats (3 log), 6 integers (1 log), 6 choices."""
    return {
        "lr": hs.loguniform(1e-5, 1e-1),
        "weight_decay": hs.loguniform(1e-6, 1e-2),
        "grad_clip": hs.loguniform(0.1, 10.0),
        "dropout": hs.uniform(0.0, 0.6),
        "momentum": hs.uniform(0.8, 0.999),
        "warmup": hs.uniform(0.0, 0.2),
        "label_smoothing": hs.uniform(0.0, 0.3),
        "beta2": hs.uniform(0.9, 0.9999),
        "batch_size": hs.integer(16, 512, log=True),
        "layers": hs.integer(1, 12),
        "units": hs.integer(32, 1024),
        "heads": hs.integer(1, 16),
        "patience": hs.integer(1, 20),
        "seed_offset": hs.integer(0, 1000),
        "optimizer": hs.choice(["adam", "adamw", "sgd", "rmsprop"]),
        "activation": hs.choice(["relu", "gelu", "tanh", "silu"]),
        "schedule": hs.choice(["cosine", "step", "linear", "none"]),
        "norm": hs.choice(["batch", "layer", "none"]),
        "augment": hs.choice([True, False]),
        "init": hs.choice(["he", "xavier", "orthogonal"]),
    }


def study_name(n: int) -> str:
    return f"dashboard-{n}"


@dataclass
class Plan:
    """One trial to write: its parameters, state, curves and logs."""

    number: int
    params: dict[str, Any]
    state: TrialState
    loss: list[float]
    accuracy: list[float]
    logs: list[tuple[int, str]] = field(default_factory=list)
    stderr: list[tuple[int, str]] = field(default_factory=list)


def plan_trial(number: int, n: int, params: dict[str, Any], rng: np.random.Generator) -> Plan:
    """Curves that depend on the parameters (so importance and slices show something)."""
    lr = params["lr"]
    floor = (
        0.05
        + 0.08 * (math.log10(lr) + 3) ** 2  # best near lr = 1e-3
        + 0.3 * (params["dropout"] - 0.2) ** 2
        + 0.02 * abs(params["layers"] - 6) / 6
        + (0.03 if params["optimizer"] == 2 else 0.0)  # sgd
        + 0.01 * rng.standard_normal() ** 2
    )
    start = 2.3 + 0.2 * rng.random()
    tau = 5 + 30 * rng.random()
    if number >= n - RUNNING:
        state, last = TrialState.RUNNING, int(rng.integers(1, STEPS))
    else:
        draw = rng.random()
        if draw < 0.02:
            state, last = TrialState.FAILED, int(rng.integers(1, STEPS + 1))
        elif draw < 0.27:
            state, last = TrialState.PRUNED, RUNGS[int(rng.integers(0, len(RUNGS)))]
        else:
            state, last = TrialState.COMPLETE, STEPS
    steps = np.arange(1, last + 1)
    loss = floor + (start - floor) * np.exp(-steps / tau) + 0.01 * rng.standard_normal(last)
    accuracy = np.clip(1.0 - loss / 2.5, 0.0, 1.0)
    plan = Plan(number, params, state, [float(x) for x in loss], [float(x) for x in accuracy])
    if number % 10 == 0:
        plan.logs = [(i, f"epoch {s}: loss={loss[s - 1]:.4f} acc={accuracy[s - 1]:.4f}")
                     for i, s in enumerate(range(1, last + 1, max(1, last // 20)))]
    if state is TrialState.FAILED:
        plan.stderr = [
            (0, "Traceback (most recent call last):"),
            (1, '  File "train.py", line 88, in <module>'),
            (2, "    loss.backward()"),
            (3, "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"),
        ]
    return plan


def plans(n: int, start: int, seed: int = 0) -> Iterator[Plan]:
    """Trials `start`.. in number order, each from its own seeded generator (so a resumed or a
    smaller build draws the same trials)."""
    sp = hs.Space(space())
    for number in range(start, n):
        rng = np.random.default_rng([seed, number])
        yield plan_trial(number, n, sp.sample(rng), rng)


def outcome(plan: Plan) -> Outcome:
    last = {"loss": plan.loss[-1], "accuracy": plan.accuracy[-1]}
    if plan.state is TrialState.COMPLETE:
        return Outcome(TrialState.COMPLETE, plan.loss[-1], last)
    if plan.state is TrialState.PRUNED:
        return Outcome(TrialState.PRUNED, plan.loss[-1], last)
    return Outcome(
        TrialState.FAILED, None, last, FailureReason.ERROR.value,
        "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB",
    )  # fmt: skip


def build(storage: Storage, n: int, label: str) -> dict[str, float]:
    """Write the study into `storage`; seconds per phase."""
    study = hs.create_study(
        space(), name=study_name(n), storage=storage, metric="loss", direction="minimize",
        strategy="random", seed=0, scheduler="asha", scheduler_options={"max_resource": 100},
        message=f"bench/dashboard_study.py: {n:,} trials, 20 parameters, {STEPS} steps",
    )  # fmt: skip
    study_id = study.id
    owner = make_owner()
    times = dict.fromkeys(("claim", "report", "logs", "finish"), 0.0)
    began = last_print = time.perf_counter()
    pending = plans(n, 0)
    done = 0
    while done < n:
        chunk = [p for _, p in zip(range(CHUNK), pending, strict=False)]
        t = time.perf_counter()
        claimed = []
        for plan in chunk:
            params = plan.params

            def propose(history: Any, number: int, params: dict[str, Any] = params) -> Any:
                return params

            trial = storage.claim(
                study_id, owner, propose=propose, uses_history=False, max_trials=None,
                lease_seconds=LEASE, worker=f"worker-{plan.number % WORKERS}",
            )  # fmt: skip
            assert trial is not None and trial.number == plan.number, (trial, plan.number)
            claimed.append(trial)
        times["claim"] += time.perf_counter() - t
        t = time.perf_counter()
        rows = [
            (trial.id, owner, trial.lease_epoch, step, {"loss": loss, "accuracy": acc}, 0.0)
            for trial, plan in zip(claimed, chunk, strict=True)
            for step, (loss, acc) in enumerate(zip(plan.loss, plan.accuracy, strict=True), 1)
        ]
        assert all(storage.report_many(rows))
        times["report"] += time.perf_counter() - t
        t = time.perf_counter()
        for trial, plan in zip(claimed, chunk, strict=True):
            if plan.logs:
                assert storage.append_logs(trial.id, owner, trial.lease_epoch, "stdout", plan.logs)
            if plan.stderr:
                assert storage.append_logs(
                    trial.id, owner, trial.lease_epoch, "stderr", plan.stderr
                )
        times["logs"] += time.perf_counter() - t
        t = time.perf_counter()
        for trial, plan in zip(claimed, chunk, strict=True):
            if plan.state is not TrialState.RUNNING:
                assert storage.finish(trial.id, owner, trial.lease_epoch, outcome(plan))
        times["finish"] += time.perf_counter() - t
        done += len(chunk)
        now = time.perf_counter()
        if now - last_print > 10 or done == n:
            last_print = now
            rate = done / (now - began)
            print(f"  {label}: {done:,}/{n:,} trials, {now - began:.0f} s, {rate:,.0f} trials/s, "
                  f"eta {(n - done) / rate:.0f} s ("
                  + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + ")",
                  flush=True)  # fmt: skip
    study.close()
    times["total"] = time.perf_counter() - began
    return times


def complete_in(storage: Storage, n: int) -> bool:
    """Whether `storage` holds the whole study (N trials, the last RUNNING ones included)."""
    record = storage.get_study(study_name(n))
    if record is None:
        return False
    counts = storage.summary(record.id, record.direction).counts
    return sum(counts.values()) == n and counts.get("RUNNING", 0) == RUNNING


def build_sqlite(out: Path, n: int) -> None:
    if out.exists():
        # opened read-write: a cache built by an older hypersearch is migrated forward here,
        # since the dashboard opens it read-only and refuses an old schema
        storage = get_storage(f"sqlite:///{out}")
        ok = complete_in(storage, n)
        storage.close()
        if ok:
            print(f"sqlite: {out} already holds {study_name(n)} ({_size(out)}); kept")
            return
        raise SystemExit(f"{out} exists but does not hold a complete {study_name(n)}; remove it")
    partial = out.with_name(out.name + ".partial")
    for suffix in ("", "-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"sqlite: building {study_name(n)} in {partial}", flush=True)
    storage = get_storage(f"sqlite:///{partial}")
    times = build(storage, n, "sqlite")
    storage.close()
    # fold the WAL in, so the cached file stands alone
    with sqlite3.connect(partial) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.replace(partial, out)
    for suffix in ("-wal", "-shm"):
        Path(str(partial) + suffix).unlink(missing_ok=True)
    print(f"sqlite: built in {times['total']:.0f} s ({n / times['total']:,.0f} trials/s, "
          f"{n * STEPS * 2 / times['report'] if times['report'] else 0:,.0f} metric values/s "
          f"in report_many); {out}: {_size(out)}", flush=True)  # fmt: skip


def pg_database(url: str) -> str:
    return url.rsplit("/", 1)[1].split("?")[0]


def build_postgres(url: str, n: int) -> None:
    import psycopg

    name = pg_database(url)
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    if exists:
        storage = get_storage(url)  # read-write: migrates an older cache forward (see above)
        ok = complete_in(storage, n)
        storage.close()
        if ok:
            print(f"postgres: {name} already holds {study_name(n)}; kept")
            return
        print(f"postgres: {name} holds no complete {study_name(n)}: rebuilding it")
        drop_postgres(url)
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    print(f"postgres: building {study_name(n)} in database {name}", flush=True)
    storage = get_storage(url)
    times = build(storage, n, "postgres")
    storage.close()
    t = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        size = conn.execute("SELECT pg_size_pretty(pg_database_size(%s))", (name,)).fetchone()
    print(f"postgres: built in {times['total']:.0f} s ({n / times['total']:,.0f} trials/s), "
          f"VACUUM ANALYZE {time.perf_counter() - t:.0f} s; database size {size[0]}", flush=True)


def drop_postgres(url: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{pg_database(url)}" WITH (FORCE)')


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:,.0f} MiB"


# -- Optuna ------------------------------------------------------------------------------------


def optuna_distributions() -> dict[str, Any]:
    """The same 20 parameters as Optuna distributions (choices by their options)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, dist in space().items():
        data = dist.to_json()
        if data["type"] == "float":
            out[name] = FloatDistribution(data["low"], data["high"], log=bool(data.get("log")))
        elif data["type"] == "int":
            out[name] = IntDistribution(data["low"], data["high"], log=bool(data.get("log")))
        else:
            out[name] = CategoricalDistribution(dist.options)
    return out


_OPTUNA_STATE = {"COMPLETE": "COMPLETE", "PRUNED": "PRUNED", "FAILED": "FAIL",
                 "RUNNING": "RUNNING", "WAITING": "WAITING"}  # fmt: skip


def _when(ts: float | None) -> Any:
    import datetime

    return None if ts is None else datetime.datetime.fromtimestamp(ts)


def _optuna_trial(trial: Any, points: list[Any], dists: dict[str, Any]) -> Any:
    """A hypersearch FrozenTrial and its loss points as an Optuna FrozenTrial."""
    import optuna

    state = optuna.trial.TrialState[_OPTUNA_STATE[trial.state.value]]
    finished = state.is_finished()
    return optuna.trial.FrozenTrial(
        number=trial.number,
        state=state,
        value=trial.value if finished and state != optuna.trial.TrialState.FAIL else None,
        values=None,
        datetime_start=_when(trial.started_at),
        datetime_complete=_when(trial.finished_at) if finished else None,
        params={k: dists[k].to_external_repr(v) for k, v in trial.flat_params.items()},
        distributions=dists,
        user_attrs={"accuracy": trial.metrics.get("accuracy")},
        system_attrs={},
        intermediate_values={p.step: p.value for p in points},
        trial_id=0,
    )


def build_optuna(source: Path, out: Path, n: int, api_trials: int) -> None:
    import optuna
    from optuna.distributions import distribution_to_json

    if out.exists():
        print(f"optuna: {out} exists ({_size(out)}); kept")
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = get_storage(f"sqlite:///{source}", create=False)
    record = storage.get_study(study_name(n))
    if record is None:
        raise SystemExit(f"{source} holds no {study_name(n)}")
    dists = optuna_distributions()
    t = time.perf_counter()
    trials = storage.get_trials(record.id)
    print(f"optuna: read {len(trials):,} trials from {source} in {time.perf_counter() - t:.1f} s",
          flush=True)  # fmt: skip

    # the public path, timed on a sample in its own file
    sample = out.with_name(out.name + ".api-sample")
    sample.unlink(missing_ok=True)
    api = optuna.create_study(storage=f"sqlite:///{sample}", study_name=study_name(n))
    some = trials[:api_trials]
    points = storage.get_metrics_many([t.id for t in some], "loss")
    frozen = [_optuna_trial(t, points.get(t.id, []), dists) for t in some]
    t = time.perf_counter()
    api.add_trials(frozen)
    per = (time.perf_counter() - t) / max(1, len(frozen))
    print(f"optuna: study.add_trials: {len(frozen)} trials in {per * len(frozen):.1f} s = "
          f"{per * 1000:.1f} ms/trial, so {per * n / 60:.0f} min for {n:,} trials",
          flush=True)  # fmt: skip
    del api
    sample.unlink(missing_ok=True)

    partial = out.with_name(out.name + ".partial")
    partial.unlink(missing_ok=True)
    optuna.create_study(storage=f"sqlite:///{partial}", study_name=study_name(n),
                        direction="minimize")  # fmt: skip
    t = time.perf_counter()
    conn = sqlite3.connect(partial)
    conn.execute("PRAGMA journal_mode = WAL")
    (study_id,) = conn.execute("SELECT study_id FROM studies").fetchone()
    dist_json = {k: distribution_to_json(d) for k, d in dists.items()}
    (first_id,) = conn.execute("SELECT coalesce(max(trial_id), 0) + 1 FROM trials").fetchone()
    for start in range(0, len(trials), 1000):
        chunk = trials[start : start + 1000]
        points = storage.get_metrics_many([t.id for t in chunk], "loss")
        rows, params, values, inter, attrs = [], [], [], [], []
        for offset, trial in enumerate(chunk):
            trial_id = first_id + start + offset
            state = _OPTUNA_STATE[trial.state.value]
            finished = state in ("COMPLETE", "PRUNED", "FAIL")
            rows.append((trial_id, trial.number, study_id, state, _when(trial.started_at),
                         _when(trial.finished_at) if finished else None))  # fmt: skip
            for name, raw in trial.flat_params.items():
                internal = float(raw)  # choices: the index, as Optuna stores them
                params.append((trial_id, name, internal, dist_json[name]))
            if state in ("COMPLETE", "PRUNED") and trial.value is not None:
                values.append((trial_id, 0, trial.value, "FINITE"))
            for point in points.get(trial.id, []):
                inter.append((trial_id, point.step, point.value, "FINITE"))
            attrs.append((trial_id, "accuracy", json.dumps(trial.metrics.get("accuracy"))))
        conn.executemany(
            "INSERT INTO trials (trial_id, number, study_id, state, datetime_start, "
            "datetime_complete) VALUES (?,?,?,?,?,?)",
            [(*r[:4], _iso(r[4]), _iso(r[5])) for r in rows],
        )
        conn.executemany(
            "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json) "
            "VALUES (?,?,?,?)", params,
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO trial_values (trial_id, objective, value, value_type) VALUES (?,?,?,?)",
            values,
        )
        conn.executemany(
            "INSERT INTO trial_intermediate_values (trial_id, step, intermediate_value, "
            "intermediate_value_type) VALUES (?,?,?,?)", inter,
        )  # fmt: skip
        conn.executemany(
            "INSERT INTO trial_user_attributes (trial_id, key, value_json) VALUES (?,?,?)", attrs
        )
        conn.commit()
        if (start // 1000) % 10 == 9:
            print(f"  optuna: {start + len(chunk):,}/{len(trials):,} trials, "
                  f"{time.perf_counter() - t:.0f} s", flush=True)  # fmt: skip
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.close()
    storage.close()
    _check_optuna(partial, trials[: min(50, len(trials))], study_name(n), dists)
    os.replace(partial, out)
    print(f"optuna: bulk INSERT of {len(trials):,} trials in {time.perf_counter() - t:.0f} s; "
          f"{out}: {_size(out)}", flush=True)  # fmt: skip


def _iso(value: Any) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _check_optuna(path: Path, expected: list[Any], name: str, dists: dict[str, Any]) -> None:
    """Optuna reads the bulk-written rows back as the trials we meant (first few compared)."""
    import optuna

    study = optuna.load_study(study_name=name, storage=f"sqlite:///{path}")
    storage = study._storage
    study_id = study._study_id
    for trial in expected:
        got = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study_id,
                                                                                 trial.number))
        want = {k: dists[k].to_external_repr(v) for k, v in trial.flat_params.items()}
        assert got.params == want, (got.params, want)
        assert got.state.name == _OPTUNA_STATE[trial.state.value], (got.state, trial.state)
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            assert got.value == trial.value
        assert len(got.intermediate_values) >= 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--out", type=Path, help="the SQLite file (a cache: kept when complete)")
    parser.add_argument("--postgres", help=f"URL (default {PG_SERVER}/bench_dashboard_N)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--drop-postgres", action="store_true", help="drop the database, exit")
    parser.add_argument("--optuna", type=Path, help="also convert to Optuna's storage here")
    parser.add_argument("--optuna-api-trials", type=int, default=500)
    args = parser.parse_args()
    n = args.trials
    if n <= RUNNING:
        raise SystemExit(f"--trials must be more than {RUNNING}")
    pg_url = args.postgres or f"{PG_SERVER}/bench_dashboard_{n}"
    if args.drop_postgres:
        drop_postgres(pg_url)
        print(f"postgres: dropped {pg_database(pg_url)}")
        return
    out = args.out or Path(f"/tmp/hs-dash/study-{n}.db")
    began = time.perf_counter()
    build_sqlite(out, n)
    if not args.no_postgres:
        build_postgres(pg_url, n)
    if args.optuna:
        build_optuna(out, args.optuna, n, args.optuna_api_trials)
    print(f"done in {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
