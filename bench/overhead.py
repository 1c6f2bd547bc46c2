"""Sampler overhead: milliseconds per trial at a given history size, hypersearch vs Optuna vs hyperopt.

All libraries run side by side in one invocation (the machines are shared and noisy: quote the
ratio, not the absolute numbers), on the same 5-parameter mixed space as bench/throughput.py
(uniform float, log-uniform float, float, int 1-100, categorical of 4) and the same cheap analytic
objective (a few microseconds; not constant, so the models have something to fit).

One measurement = one method, one history size n, one seed, in a fresh spawned process:

1. pre-fill the method's own study with n random trials:
       hs-*          hs.minimize(f, space, strategy="random", max_trials=n, seed=s,
                     storage=MemoryStorage() instance, name="overhead")
       optuna-*      a RandomSampler(seed=s) study optimised for n trials, whose trials are
                     copied with study.add_trials(...) into a fresh study with the timed sampler
       hyperopt-*    fmin(algo=rand.suggest, max_evals=n, trials=Trials())
2. go on with the timed strategy for T+1 more trials on the same history:
       hs-tpe/hs-gp  hs.minimize(f, space, strategy="tpe"|"gp", max_trials=n+T+1, the same
                     storage instance and name: a resume with another strategy)
       optuna-tpe    TPESampler(seed=s)  (Optuna 5's defaults: multivariate, constant liar)
       optuna-gp     GPSampler(seed=s)
       hyperopt-tpe  fmin(algo=tpe.suggest, max_evals=n+T+1, trials=the same Trials)
3. ms per trial = the median gap between the starts of consecutive objective calls of step 2
   (T gaps: the first call's gap, which holds the switch of sampler, is left out). Everything
   the library does between two calls counts: sampling, its bookkeeping and its storage.

T is --timed (default 40) for TPE-like and random methods, --timed-gp (default 20) for the GP
methods, and --timed-slow (default 10) for Optuna's GPSampler at n >= 500 (each of its trials
takes seconds there); --skip-slow leaves that row out. Sizes: TPE-like methods
(and random ones) at 100, 300, 1000, 3000; GP methods at 100, 300, 500 (--sizes overrides both).
Each measurement is repeated for --repeat seeds (default 3), alternating the order of the
methods. The table gives the median over seeds of each seed's median gap; "p90/med" pools the
gaps of all seeds (p90 of all gaps / median of all gaps: stability across seeds); "spread" is
the range of the per-seed medians.

Threads: by default each library runs with its own defaults (Optuna's GPSampler uses torch with
all cores; hypersearch's gp limits BLAS threads itself), which is what a user sees; --threads N
caps BLAS/OpenMP/torch threads at N in every measuring process for a like-for-like CPU budget.
On a loaded machine the default makes Optuna's GPSampler several times slower (torch's threads
compete for busy cores: at n=300 on 2 cores at load ~6, 3.5 s per trial with default threads
against 0.5 s with --threads 1), so quote a --threads 1 run beside the default one.

Correctness is checked in the same run: each study must end with exactly n+T+1 trials, all
complete, the objective must have run exactly n times in step 1 and T+1 times in step 2, and for
hypersearch the resumed study must have kept the n pre-filled trials.

The bars (PERFORMANCE.md): hs-tpe at n=1000 <= 1/5 of Optuna TPE's ms/trial; hs-gp at n=300 <=
1/3 of Optuna GPSampler's, with p90/median <= 2.

Usage::

    python bench/overhead.py [--methods hs-tpe,hs-gp,optuna-tpe,optuna-gp,hyperopt-tpe]
                             [--sizes 100,300] [--repeat 3] [--timed 40] [--timed-gp 20]
                             [--timed-slow 10]
                             [--skip-slow] [--threads N] [--markdown] [--timeout 600]

hypersearch strategies that are not registered yet are skipped with a warning; any
"hs-<strategy>" (hs-random, hs-sobol) and optuna-random / hyperopt-random work too, to check the
harness. Exit status 1 when a correctness check fails or hypersearch's source changed mid-run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchinfo import (  # bench/ is the script folder
    available_methods,
    git_revision,
    run_isolated,
    source_fingerprint,
)

DEFAULT_METHODS = ["hs-tpe", "hs-gp", "optuna-tpe", "optuna-gp", "hyperopt-tpe"]
OTHER_METHODS = ["optuna-random", "hyperopt-random"]
TPE_SIZES = [100, 300, 1000, 3000]
GP_SIZES = [100, 300, 500]
SLOW_SIZE = 500  # Optuna's GPSampler from here on: --timed-slow trials, or --skip-slow
CHOICES = ["a", "b", "c", "d"]
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
KIND_OFFSET = {"a": 0.0, "b": 0.1, "c": 0.2, "d": 0.3}


@dataclass
class Measurement:
    method: str
    size: int
    seed: int
    timed: int  # trials timed (gaps = timed)
    gaps: list[float] = field(default_factory=list)  # seconds
    prefill_s: float = math.nan
    timed_wall_s: float = math.nan
    problems: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.problems

    @property
    def median_ms(self) -> float:
        return 1000 * statistics.median(self.gaps) if self.gaps else math.nan


# -- the objective and the space, per library ----------------------------------------------------


def value_of(x: float, lr: float, dropout: float, units: int, kind: str) -> float:
    return (
        (x - 1.0) ** 2
        + (math.log10(lr) + 3.0) ** 2
        + (dropout - 0.5) ** 2
        + (units - 50) ** 2 / 1000.0
        + KIND_OFFSET[kind]
    )


class Recorder:
    """The objective of every library: records the start time of each call."""

    def __init__(self) -> None:
        self.starts: list[float] = []

    def __call__(self, p: dict[str, Any]) -> float:
        self.starts.append(time.perf_counter())
        return value_of(p["x"], p["lr"], p["dropout"], int(p["units"]), p["kind"])


def hs_space() -> dict[str, Any]:
    import hypersearch as hs

    return {
        "x": hs.uniform(-5.0, 5.0),
        "lr": hs.loguniform(1e-5, 1e-1),
        "dropout": hs.uniform(0.0, 1.0),
        "units": hs.integer(1, 100),
        "kind": hs.choice(CHOICES),
    }


def optuna_params(trial: Any) -> dict[str, Any]:
    return {
        "x": trial.suggest_float("x", -5.0, 5.0),
        "lr": trial.suggest_float("lr", 1e-5, 1e-1, log=True),
        "dropout": trial.suggest_float("dropout", 0.0, 1.0),
        "units": trial.suggest_int("units", 1, 100),
        "kind": trial.suggest_categorical("kind", CHOICES),
    }


def hyperopt_space() -> dict[str, Any]:
    from hyperopt import hp
    from hyperopt.pyll import scope

    return {
        "x": hp.uniform("x", -5.0, 5.0),
        "lr": hp.loguniform("lr", math.log(1e-5), math.log(1e-1)),  # bounds in log space
        "dropout": hp.uniform("dropout", 0.0, 1.0),
        "units": scope.int(hp.quniform("units", 0.5, 100.5, 1)),
        "kind": hp.choice("kind", CHOICES),
    }


# -- one measurement per library -------------------------------------------------------------------


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    from threadpoolctl import threadpool_limits

    _KEEP.append(threadpool_limits(limits=threads))


_KEEP: list[Any] = []


def measure_hypersearch(
    strategy: str, n: int, timed: int, seed: int, threads: int | None
) -> Measurement:
    import hypersearch as hs
    from hypersearch.storage import MemoryStorage

    _set_threads(threads)
    m = Measurement(f"hs-{strategy}", n, seed, timed)
    storage = MemoryStorage()
    space = hs_space()
    fill, run = Recorder(), Recorder()
    started = time.perf_counter()
    first = hs.minimize(
        fill,
        space,
        strategy="random",
        max_trials=n,
        storage=storage,
        name="overhead",
        seed=seed,
        verbose=False,
    )
    prefill_numbers = [t.number for t in first.trials]
    first.close()
    m.prefill_s = time.perf_counter() - started
    started = time.perf_counter()
    study = hs.minimize(
        run,
        space,
        strategy=strategy,
        max_trials=n + timed + 1,
        storage=storage,
        name="overhead",
        seed=seed,
        verbose=False,
    )
    m.timed_wall_s = time.perf_counter() - started
    trials = study.trials
    study.close()
    if study.sampler.name != strategy:
        m.problems.append(f"resumed study ran sampler {study.sampler!r}, not {strategy!r}")
    complete = [t for t in trials if t.state.value == "COMPLETE"]
    if len(trials) != n + timed + 1 or len(complete) != len(trials):
        m.problems.append(
            f"{len(trials)} trials ({len(complete)} complete), expected {n + timed + 1}"
        )
    if prefill_numbers != list(range(n)) or [t.number for t in trials[:n]] != prefill_numbers:
        m.problems.append("the pre-filled trials were not kept")
    _finish(m, fill, run, n, timed)
    return m


def measure_optuna(kind: str, n: int, timed: int, seed: int, threads: int | None) -> Measurement:
    import optuna

    _set_threads(threads)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    m = Measurement(f"optuna-{kind}", n, seed, timed)
    if kind == "tpe":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(seed=seed)
    elif kind == "gp":
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        sampler = optuna.samplers.GPSampler(seed=seed)
    elif kind == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        raise ValueError(f"unknown Optuna method {kind!r}")
    fill, run = Recorder(), Recorder()
    started = time.perf_counter()
    warm = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    warm.optimize(lambda t: fill(optuna_params(t)), n_trials=n)
    study = optuna.create_study(sampler=sampler)
    study.add_trials(warm.trials)
    m.prefill_s = time.perf_counter() - started
    started = time.perf_counter()
    study.optimize(lambda t: run(optuna_params(t)), n_trials=timed + 1)
    m.timed_wall_s = time.perf_counter() - started
    trials = study.trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(trials) != n + timed + 1 or len(complete) != len(trials):
        m.problems.append(
            f"{len(trials)} trials ({len(complete)} complete), expected {n + timed + 1}"
        )
    _finish(m, fill, run, n, timed)
    return m


def measure_hyperopt(kind: str, n: int, timed: int, seed: int, threads: int | None) -> Measurement:
    import numpy as np
    from hyperopt import STATUS_OK, Trials, fmin, rand, tpe

    _set_threads(threads)
    m = Measurement(f"hyperopt-{kind}", n, seed, timed)
    algo = {"tpe": tpe.suggest, "random": rand.suggest}[kind]
    space = hyperopt_space()
    fill, run = Recorder(), Recorder()
    trials = Trials()
    started = time.perf_counter()
    fmin(
        fill,
        space,
        algo=rand.suggest,
        max_evals=n,
        trials=trials,
        rstate=np.random.default_rng(seed),
        show_progressbar=False,
    )
    m.prefill_s = time.perf_counter() - started
    started = time.perf_counter()
    fmin(
        run,
        space,
        algo=algo,
        max_evals=n + timed + 1,
        trials=trials,
        rstate=np.random.default_rng(seed + 1_000_003),
        show_progressbar=False,
    )
    m.timed_wall_s = time.perf_counter() - started
    ok = [r for r in trials.results if r.get("status") == STATUS_OK]
    if len(trials.trials) != n + timed + 1 or len(ok) != len(trials.trials):
        m.problems.append(f"{len(trials.trials)} trials ({len(ok)} ok), expected {n + timed + 1}")
    _finish(m, fill, run, n, timed)
    return m


def _finish(m: Measurement, fill: Recorder, run: Recorder, n: int, timed: int) -> None:
    if len(fill.starts) != n:
        m.problems.append(f"pre-fill ran the objective {len(fill.starts)} times, expected {n}")
    if len(run.starts) != timed + 1:
        m.problems.append(
            f"timed phase ran the objective {len(run.starts)} times, expected {timed + 1}"
        )
    m.gaps = [b - a for a, b in zip(run.starts, run.starts[1:], strict=False)]


def measure_in_process(
    method: str, n: int, timed: int, seed: int, threads: int | None
) -> Measurement:
    library, _, kind = method.partition("-")
    if library == "hs":
        return measure_hypersearch(kind, n, timed, seed, threads)
    if library == "optuna":
        return measure_optuna(kind, n, timed, seed, threads)
    if library == "hyperopt":
        return measure_hyperopt(kind, n, timed, seed, threads)
    raise ValueError(f"unknown method {method!r}")


# -- isolation: every measurement in a fresh process ---------------------------------------------


def measure(
    method: str, n: int, timed: int, seed: int, threads: int | None, timeout: float
) -> Measurement:
    answer = run_isolated(measure_in_process, (method, n, timed, seed, threads), timeout)
    if isinstance(answer, Measurement):
        return answer
    return Measurement(method, n, seed, timed, error=str(answer).strip())


# -- the report ------------------------------------------------------------------------------------


def fmt_ms(value: float) -> str:
    if value != value:
        return "n/a"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


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


def quantile(values: Sequence[float], q: float) -> float:
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class Cell:
    median_ms: float  # median over seeds of the per-seed median gap
    p90_ratio: float  # pooled p90 / pooled median
    low_ms: float  # per-seed medians: min
    high_ms: float  # and max
    seeds: int
    timed: int
    ok: bool


def summarise(runs: Sequence[Measurement]) -> Cell:
    good = [m for m in runs if m.error is None and m.gaps]
    medians = [m.median_ms for m in good]
    pooled = [g for m in good for g in m.gaps]
    med = statistics.median(pooled) if pooled else math.nan
    return Cell(
        statistics.median(medians) if medians else math.nan,
        quantile(pooled, 0.9) / med if pooled and med > 0 else math.nan,
        min(medians, default=math.nan),
        max(medians, default=math.nan),
        len(good),
        max((m.timed for m in good), default=0),
        all(m.ok for m in runs),
    )


def family(method: str) -> str:
    return "gp" if method.endswith("-gp") else "tpe"


def peer_of(method: str) -> str | None:
    return {"hs-tpe": "optuna-tpe", "hs-gp": "optuna-gp"}.get(method)


def check_text(m: Measurement) -> str:
    if m.error is not None:
        return "ERROR: " + m.error.strip().splitlines()[-1][:140]
    if m.problems:
        return "; ".join(m.problems)
    return f"ok: {m.size + m.timed + 1} trials, all complete"


def environment(fingerprint: str, threads: int | None) -> list[str]:
    from importlib import metadata

    versions = []
    for name in ("hypersearch", "optuna", "hyperopt", "numpy", "scipy", "torch"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    return [
        f"hypersearch source: git {git_revision()}, files sha1 {fingerprint}",
        f"date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"machine: {os.cpu_count()} cores (nproc), {platform.platform()}, "
        f"python {platform.python_version()}",
        "versions: " + ", ".join(versions),
        "threads: "
        + ("library defaults" if threads is None else f"capped at {threads} per process"),
        "load average before the run (1/5/15 min): "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated; hs-<strategy> for any hypersearch strategy; also "
        + ",".join(OTHER_METHODS),
    )
    parser.add_argument(
        "--sizes",
        default=None,
        help="history sizes for every method (default: TPE-like "
        + ",".join(map(str, TPE_SIZES))
        + "; GP "
        + ",".join(map(str, GP_SIZES))
        + ")",
    )
    parser.add_argument("--repeat", type=int, default=3, help="seeds per measurement")
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--timed", type=int, default=40, help="timed trials, TPE-like/random")
    parser.add_argument("--timed-gp", type=int, default=20, help="timed trials, GP methods")
    parser.add_argument(
        "--timed-slow", type=int, default=10, help=f"timed trials, Optuna GP at n >= {SLOW_SIZE}"
    )
    parser.add_argument(
        "--skip-slow", action="store_true", help=f"leave out Optuna GP at n >= {SLOW_SIZE}"
    )
    parser.add_argument("--threads", type=int, default=None, help="cap BLAS/torch threads")
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    parser.add_argument("--timeout", type=float, default=600.0, help="per measurement, seconds")
    args = parser.parse_args(argv)
    if args.repeat < 1 or min(args.timed, args.timed_gp, args.timed_slow) < 2:
        parser.error("--repeat must be >= 1 and --timed/--timed-gp/--timed-slow >= 2")
    sizes = None if args.sizes is None else [int(s) for s in args.sizes.split(",") if s.strip()]
    requested = [m.strip() for m in args.methods.split(",") if m.strip()]
    methods = available_methods(requested, DEFAULT_METHODS + OTHER_METHODS)
    if args.threads is not None:
        for name in THREAD_ENV:  # inherited by the spawned measuring processes
            os.environ[name] = str(args.threads)

    plan: list[tuple[str, int, int]] = []  # (method, size, timed)
    for method in methods:
        for n in sizes or (GP_SIZES if family(method) == "gp" else TPE_SIZES):
            slow = method == "optuna-gp" and n >= SLOW_SIZE
            if slow and args.skip_slow:
                continue
            timed = args.timed_gp if family(method) == "gp" else args.timed
            plan.append((method, n, args.timed_slow if slow else timed))

    fingerprint = source_fingerprint()
    print("\n".join(environment(fingerprint, args.threads)))
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    runs: dict[tuple[str, int], list[Measurement]] = {}
    started = time.perf_counter()
    for repeat in range(args.repeat):
        seed = args.seed + repeat
        order = plan if repeat % 2 == 0 else plan[::-1]
        for method, n, timed in order:
            m = measure(method, n, timed, seed, args.threads, args.timeout)
            runs.setdefault((method, n), []).append(m)
            print(
                f"  [{time.perf_counter() - started:6.1f}s] seed {seed} {method:14s} n={n:<5d} "
                f"{fmt_ms(m.median_ms):>8s} ms/trial  (pre-fill {m.prefill_s:.1f} s, "
                f"timed {m.timed_wall_s:.1f} s)  {check_text(m)}",
                file=sys.stderr,
                flush=True,
            )
    total = time.perf_counter() - started
    cells = {key: summarise(ms) for key, ms in runs.items()}
    all_ok = all(c.ok for c in cells.values())
    print(
        f"\nload average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"total {total:.0f} s"
    )
    if source_fingerprint() != fingerprint:
        all_ok = False
        print("WARNING: hypersearch's source files changed during the run; numbers are mixed")

    # table 1: ms/trial by method and size
    all_sizes = sorted({n for _, n in cells})
    rows = []
    for method in methods:
        row = [method]
        for n in all_sizes:
            c = cells.get((method, n))
            row.append("" if c is None else fmt_ms(c.median_ms) + ("" if c.ok else " (!)"))
        rows.append(row)
    print(
        f"\nms per trial (median gap between objective calls; median over {args.repeat} seed(s)):\n"
    )
    print(render(["method", *[f"n={n}" for n in all_sizes]], rows, args.markdown))
    rows = []
    for method in methods:
        row = [method]
        for n in all_sizes:
            c = cells.get((method, n))
            row.append(
                "" if c is None else f"{c.p90_ratio:.2f} ({fmt_ms(c.low_ms)}-{fmt_ms(c.high_ms)})"
            )
        rows.append(row)
    print(
        "\nstability: p90/median of the gaps pooled over seeds (range of the per-seed medians, "
        "ms):\n"
    )
    print(render(["method", *[f"n={n}" for n in all_sizes]], rows, args.markdown))

    # table 2: ours vs theirs, with the bars
    rows = []
    for method in methods:
        peer = peer_of(method)
        if peer is None:
            continue
        for n in all_sizes:
            ours, theirs = cells.get((method, n)), cells.get((peer, n))
            if ours is None:
                continue
            ratio = (
                ours.median_ms / theirs.median_ms
                if theirs is not None and theirs.median_ms > 0
                else math.nan
            )
            bar, meets = "", ""
            if method == "hs-tpe" and n == 1000:
                bar, meets = "<= 0.20", "yes" if ratio <= 0.2 else "NO"
            elif method == "hs-gp" and n == 300:
                bar = "<= 0.33, p90/med <= 2"
                meets = "yes" if ratio <= 1 / 3 and ours.p90_ratio <= 2 else "NO"
            rows.append(
                [
                    method,
                    f"n={n}",
                    fmt_ms(ours.median_ms),
                    f"{fmt_ms(ours.low_ms)}-{fmt_ms(ours.high_ms)}",
                    f"{ours.p90_ratio:.2f}",
                    peer,
                    "n/a" if theirs is None else fmt_ms(theirs.median_ms),
                    "n/a" if theirs is None else f"{theirs.p90_ratio:.2f}",
                    "n/a" if ratio != ratio else f"{ratio:.3f}",
                    bar,
                    meets,
                ]
            )
    if rows:
        print("\nours / theirs (ratio of ms per trial; bars from PERFORMANCE.md):\n")
        headers = [
            "ours",
            "size",
            "ms/trial",
            "seed spread",
            "p90/med",
            "theirs",
            "ms/trial",
            "p90/med",
            "ratio",
            "bar",
            "meets",
        ]
        print(render(headers, rows, args.markdown))

    # table 3: every measurement
    rows = []
    for (method, n), ms in runs.items():
        for m in ms:
            rows.append(
                [
                    method,
                    str(n),
                    str(m.seed),
                    str(m.timed),
                    fmt_ms(m.median_ms),
                    fmt_ms(1000 * quantile(m.gaps, 0.9)) if m.gaps else "n/a",
                    f"{m.prefill_s:.1f}",
                    f"{m.timed_wall_s:.1f}",
                    check_text(m),
                ]
            )
    print("\nEvery measurement (p90 of this seed's gaps; pre-fill and timed phase wall seconds):\n")
    print(
        render(
            [
                "method",
                "n",
                "seed",
                "timed",
                "median ms",
                "p90 ms",
                "pre-fill s",
                "timed s",
                "check",
            ],
            rows,
            args.markdown,
        )
    )
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
