"""Worker utilisation under early stopping: 8 simulated workers, hypersearch's schedulers and
Optuna's pruners side by side, in one run.

    .venv/bin/python bench/utilisation.py             # 2,000 trials per rule (~1 min)
    .venv/bin/python bench/utilisation.py --trials 500

The simulated clock and executor are tests/simulation.py's: a configuration's epochs last 0.1 to
1.1 time units (10x between the fastest and slowest), a free worker starts the next trial at
once, each trial reports its loss every epoch up to 27. hypersearch runs ask/tell with the named
scheduler (random sampling); Optuna runs the same loop with ``study.ask()`` / ``trial.report`` /
``trial.should_prune()`` and RandomSampler, its pruners with the same options. "busy" is the
share of worker time spent training (1.0: no worker ever idle); "epochs" the compute the
trials took; "complete" how many trained all 27 epochs.
"""

from __future__ import annotations

import argparse
import heapq
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.simulation import simulate

RULES = {  # hypersearch scheduler and options, and the Optuna pruner it is compared with
    "none": ({}, "NopPruner", {}),
    "median": ({"n_startup_trials": 5}, "MedianPruner", {"n_startup_trials": 5}),
    "asha": ({"max_resource": 27, "reduction_factor": 3}, "SuccessiveHalvingPruner",
             {"min_resource": 1, "reduction_factor": 3}),
    "hyperband": ({"max_resource": 27, "reduction_factor": 3}, "HyperbandPruner",
                  {"min_resource": 1, "max_resource": 27, "reduction_factor": 3}),
}  # fmt: skip


def simulate_optuna(pruner: str, options: dict[str, Any], trials: int, workers: int = 8) -> dict:
    """tests/simulation.py's loop, with Optuna's ask/tell and pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=getattr(optuna.pruners, pruner)(**options),
    )
    clock, busy, started, seq, epochs = 0.0, 0.0, 0, 0, 0
    events: list[tuple[float, int, int, Any, float]] = []

    def start(now: float) -> None:
        nonlocal started, seq
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        started += 1
        heapq.heappush(events, (now + 0.1 + x, seq, 1, trial, x))
        seq += 1

    for _ in range(workers):
        start(0.0)
    pruned = complete = 0
    while events:
        clock, _, epoch, trial, x = heapq.heappop(events)
        busy += 0.1 + x
        epochs += 1
        loss = (x - 0.3) ** 2 + 1.0 / epoch + 0.01 * ((trial.number * 7919) % 13) / 13
        trial.report(loss, epoch)
        if trial.should_prune():
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            pruned += 1
        elif epoch == 27:
            study.tell(trial, loss)
            complete += 1
        else:
            heapq.heappush(events, (clock + 0.1 + x, seq, epoch + 1, trial, x))
            seq += 1
            continue
        if started < trials:
            start(clock)
    return {"busy": busy / (clock * workers), "pruned": pruned, "complete": complete,
            "epochs": epochs}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    print(f"{args.workers} simulated workers, {args.trials} trials per rule, 27 epochs at most")
    print(f"{'library':<8} {'rule':<24} {'busy':>6} {'epochs':>8} {'complete':>9} {'pruned':>7} "
          f"{'seconds':>8}")  # fmt: skip
    for rule, (hs_options, pruner, optuna_options) in RULES.items():
        rows = []
        started = time.perf_counter()
        if rule == "none":
            result = simulate_none(args.trials, args.workers)
        else:
            result = simulate(rule, args.trials, args.workers, **hs_options)
        rows.append(("hs", rule, result, time.perf_counter() - started))
        started = time.perf_counter()
        result = simulate_optuna(pruner, optuna_options, args.trials, args.workers)
        rows.append(("optuna", pruner, result, time.perf_counter() - started))
        for library, name, r, seconds in rows:
            print(f"{library:<8} {name:<24} {r['busy']:>6.1%} {r['epochs']:>8} "
                  f"{r['complete']:>9} {r['pruned']:>7} {seconds:>8.1f}")  # fmt: skip


def simulate_none(trials: int, workers: int) -> dict[str, Any]:
    """No early stopping: a threshold no loss reaches, so every trial trains all 27 epochs."""
    return simulate("threshold", trials, workers, upper=1e9)


if __name__ == "__main__":
    main()
