"""A GP suggestion in a process that joins a study late: hypersearch (with and without the
stored warm state) vs Optuna's GPSampler, side by side in one run.

For each history size n (default 100 and 300) and seed:

1. hypersearch builds an SQLite study of n trials with strategy "gp" (its fits are stored with
   the study as they are made) on the 5-parameter mixed space of bench/throughput.py and a
   cheap analytic objective; then, in the same process, times one more suggestion: "there from
   the start" (warm caches in memory).
2. Fresh spawned processes, each on its own copy of the database file, time their first
   suggestion (``load_study(...).ask()``: the claim, the history read and the GP's proposal)
   after one warm-up suggestion on a small throwaway study (imports and first-call costs, which
   a new process pays once whatever study it joins, are not the study's):
   "joining, stored state" (what a ``hypersearch worker`` started at trial n does) and "joining,
   no state" (the stored warm state deleted first: the replay of every fit that the cache saves).
3. Optuna: an RDB SQLite study of n random trials (the objective's values), then fresh processes
   with ``GPSampler(seed=s)`` (after the same kind of warm-up) time their first ``study.ask()``
   ("joining") and, in the same process after telling it, the next one ("warm").

Usage::

    python bench/gp_join.py [--sizes 100,300] [--repeat 3] [--markdown]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(__file__))
from benchinfo import git_revision, source_fingerprint


def _objective(p: dict[str, Any]) -> float:
    bonus = {"a": 0.0, "b": 0.3, "c": 0.6, "d": 0.9}[p["cat"]]
    return ((p["u"] - 0.3) ** 2 + (abs(p["lg"] - 1e-2) * 10) + (p["f"] + 1) ** 2 / 4
            + abs(p["i"] - 42) / 100 + bonus)


def _space() -> Any:
    import hypersearch as hs

    return {"u": hs.uniform(0, 1), "lg": hs.loguniform(1e-4, 1), "f": hs.uniform(-2, 2),
            "i": hs.integer(1, 100), "cat": hs.choice(["a", "b", "c", "d"])}


def _build_hs(path: str, n: int, seed: int) -> float:
    """The study of n GP trials; then the next suggestion's seconds, warm in this process."""
    import hypersearch as hs

    study = hs.minimize(_objective, _space(), strategy="gp", max_trials=n, seed=seed,
                        storage=f"sqlite:///{path}", name="join", verbose=False)
    study.revise(max_trials=n + 10)  # room for the timed suggestions (here and in the copies)
    start = time.perf_counter()
    study.ask()
    return time.perf_counter() - start


def _warm_up_hs() -> None:
    """One GP suggestion on a small throwaway study: the imports (scipy) and first-call costs
    any new process pays once, whatever study it joins, are not timed."""
    import hypersearch as hs

    hs.minimize(_objective, _space(), strategy=hs.GP(n_startup=4), max_trials=6,
                seed=99, verbose=False)


def _join_hs(path: str, stored: bool) -> float:
    import hypersearch as hs

    _warm_up_hs()
    if not stored:
        with sqlite3.connect(path) as conn:
            conn.execute("DELETE FROM study_caches")
    study = hs.load_study("join", f"sqlite:///{path}")
    start = time.perf_counter()
    study.ask()
    return time.perf_counter() - start


def _build_optuna(path: str, n: int, seed: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{path}", study_name="join",
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(_optuna_objective, n_trials=n)


def _optuna_objective(trial: Any) -> float:
    return _objective({"u": trial.suggest_float("u", 0, 1),
                       "lg": trial.suggest_float("lg", 1e-4, 1, log=True),
                       "f": trial.suggest_float("f", -2, 2),
                       "i": trial.suggest_int("i", 1, 100),
                       "cat": trial.suggest_categorical("cat", ["a", "b", "c", "d"])})


def _join_optuna(path: str, seed: int) -> tuple[float, float]:
    """(first suggestion in this fresh process, the next one after telling it)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    throwaway = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=99, n_startup_trials=4))
    throwaway.optimize(_optuna_objective, n_trials=6)  # imports (torch), first-call costs
    study = optuna.load_study(study_name="join", storage=f"sqlite:///{path}",
                              sampler=optuna.samplers.GPSampler(seed=seed))
    times = []
    for _ in range(2):
        start = time.perf_counter()
        trial = study.ask()
        value = _optuna_objective(trial)  # the suggestions happen in the suggest_* calls
        times.append(time.perf_counter() - start)
        study.tell(trial, value)
    return times[0], times[1]


def _in_fresh_process(function: Any, *args: Any) -> Any:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def measure(n: int, seed: int, folder: str) -> dict[str, float]:
    built = os.path.join(folder, f"hs-{n}-{seed}.db")
    row = {"hs warm": _in_fresh_process(_build_hs, built, n, seed)}
    for label, stored in (("hs joining, stored state", True), ("hs joining, no state", False)):
        copy = os.path.join(folder, f"copy-{n}-{seed}-{stored}.db")
        shutil.copy(built, copy)
        row[label] = _in_fresh_process(_join_hs, copy, stored)
    optuna_db = os.path.join(folder, f"optuna-{n}-{seed}.db")
    _in_fresh_process(_build_optuna, optuna_db, n, seed)
    cold, warm = _in_fresh_process(_join_optuna, optuna_db, seed)
    row["optuna joining"], row["optuna warm"] = cold, warm
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,300")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    print(f"revision {git_revision()}, source {source_fingerprint()}")
    sizes = [int(s) for s in args.sizes.split(",")]
    columns = ["hs warm", "hs joining, stored state", "hs joining, no state", "optuna warm",
               "optuna joining"]
    with tempfile.TemporaryDirectory(prefix="gp-join-") as folder:
        results = {n: [measure(n, seed, folder) for seed in range(args.repeat)] for n in sizes}
    bar = "|" if args.markdown else " "
    print(f"\nfirst suggestion, ms (median of {args.repeat} seeds)")
    print(bar + bar.join(["n", *columns]) + bar)
    if args.markdown:
        print("|" + "---|" * (len(columns) + 1))
    for n, rows in results.items():
        cells = [f"{statistics.median(r[c] for r in rows) * 1000:.0f}" for c in columns]
        print(bar + bar.join([str(n), *cells]) + bar)


if __name__ == "__main__":
    main()
