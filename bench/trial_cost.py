"""Per-trial storage cost as a study grows: 1k, 10k and 100k trials (issue 11, acceptance 3).

One process writes trials the way a worker does (claim with a random 20-parameter proposal,
one report, finish with two metrics) and times them: 500 trials after the study holds 1,000,
then 10,000 (the same study, grown), then 100,000 (a copy of the dashboard benchmark's study,
built by bench/dashboard_study.py). Bar: the cost at 100k is at most twice the cost at 1k.

    .venv/bin/python bench/trial_cost.py --sqlite /tmp/hs-dash/study-100000.db \
        [--postgres-template bench_dashboard_100000]

The 100k measurements write into copies (a copied SQLite file, a PostgreSQL database made
from the benchmark's as a template), so the dashboard benchmark's study stays as built.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypersearch.storage import get_storage
from hypersearch.trial import Outcome, TrialState

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
TIMED = 500
OWNER = "trial-cost:1:0:0"


def params(rng: random.Random) -> dict[str, Any]:
    return {f"p{i}": rng.random() for i in range(20)}


def write(storage: Any, study_id: int, n: int, rng: random.Random) -> list[float]:
    """Write `n` trials as a worker does; seconds each took."""
    costs = []
    for _ in range(n):
        started = time.perf_counter()
        trial = storage.claim(study_id, OWNER, propose=lambda h, k: params(rng),
                              uses_history=False, max_trials=None, lease_seconds=600)
        storage.report(trial.id, OWNER, trial.lease_epoch, 0, {"loss": rng.random()})
        storage.finish(trial.id, OWNER, trial.lease_epoch,
                       Outcome(TrialState.COMPLETE, rng.random(), {"loss": 0.5, "acc": 0.5}))
        costs.append(time.perf_counter() - started)
    return costs


def grown(url: str, rng: random.Random) -> dict[int, float]:
    """{study size: median µs per trial} for a fresh study grown to 1k, then 10k trials."""
    storage = get_storage(url)
    record, _ = storage.create_study("cost", "minimize", "loss", None, {})
    out = {}
    for size in (1_000, 10_000):
        have = storage.summary(record.id, "minimize").n_trials
        write(storage, record.id, size - have, rng)
        out[size] = 1e6 * statistics.median(write(storage, record.id, TIMED, rng))
    storage.close()
    return out


def at_100k(url: str, rng: random.Random) -> float:
    storage = get_storage(url)
    record = next(s for s in storage.list_studies() if s.name.startswith("dashboard-"))
    cost = 1e6 * statistics.median(write(storage, record.id, TIMED, rng))
    storage.close()
    return cost


def postgres(command: str, database: str = "postgres") -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/{database}", autocommit=True) as conn:
        conn.execute(command)  # type: ignore[arg-type]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sqlite", type=Path, required=True, help="the 100k study file")
    parser.add_argument("--postgres-template", default=None,
                        help="the 100k study's PostgreSQL database (default: skip PostgreSQL)")
    args = parser.parse_args()
    rng = random.Random(0)
    rows = []
    work = tempfile.mkdtemp(prefix="trial-cost-")
    try:
        small = grown(f"sqlite:///{work}/grown.db", rng)
        shutil.copy(args.sqlite, f"{work}/big.db")
        rows.append(("SQLite", small, at_100k(f"sqlite:///{work}/big.db", rng)))
        if args.postgres_template:
            fresh, big = (f"hs_cost_{uuid.uuid4().hex[:8]}" for _ in range(2))
            postgres(f'CREATE DATABASE "{fresh}"')
            postgres(f'CREATE DATABASE "{big}" TEMPLATE "{args.postgres_template}"')
            try:
                small = grown(f"{PG_SERVER}/{fresh}", rng)
                rows.append(("PostgreSQL", small, at_100k(f"{PG_SERVER}/{big}", rng)))
            finally:
                for name in (fresh, big):
                    postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nPer-trial storage cost (claim + report + finish, median of {TIMED}; load "
          f"{os.getloadavg()[0]:.1f}):\n")
    print("| storage | at 1k trials | at 10k | at 100k | 100k / 1k | bar (<= 2x) |")
    print("|---|---|---|---|---|---|")
    ok = True
    for name, small, big in rows:
        ratio = big / small[1_000]
        ok &= ratio <= 2.0
        print(f"| {name} | {small[1_000]:,.0f} µs | {small[10_000]:,.0f} µs | {big:,.0f} µs | "
              f"{ratio:.2f}x | {'yes' if ratio <= 2.0 else 'NO'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
