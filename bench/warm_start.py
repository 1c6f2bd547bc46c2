"""Warm start (issue 12, acceptance 3): does a follow-up study reach the first study's best in
fewer trials when it learns from the first?

For each problem and seed: a first TPE study of FIRST trials; then follow-ups of FOLLOW trials
with another seed, cold and warm (hypersearch: ``warm_start=first``; Optuna: the first study's
trials copied in with ``study.add_trials``, its way to reuse them). Printed: the mean number of
follow-up trials until one is as good as the first study's best (FOLLOW + 1 when none is), and
how many follow-ups got there at all.

    .venv/bin/python bench/warm_start.py [--seeds 10]
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Callable

import hypersearch as hs

FIRST, FOLLOW = 40, 25


def bowl(p: dict[str, float]) -> float:
    return (p["x"] - 1.3) ** 2 + (p["y"] + 2.1) ** 2 + 0.5 * (p["z"] - 0.4) ** 2


def branin(p: dict[str, float]) -> float:
    x, y = p["x"], p["y"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x**2 + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


PROBLEMS: dict[str, tuple[Callable[[dict[str, float]], float], dict[str, tuple[float, float]]]] = {
    "bowl-3d": (bowl, {"x": (-5, 5), "y": (-5, 5), "z": (-5, 5)}),
    "branin": (branin, {"x": (-5, 10), "y": (0, 15)}),
}


def reached(values: list[float], goal: float) -> int:
    for k, value in enumerate(values, start=1):
        if value <= goal:
            return k
    return len(values) + 1


def ours(problem: str, seed: int) -> tuple[int, int]:
    f, bounds = PROBLEMS[problem]
    space = {k: hs.uniform(*b) for k, b in bounds.items()}
    first = hs.minimize(f, space, max_trials=FIRST, seed=seed, verbose=False)
    goal = first.best_value
    runs = []
    for warm in (None, first):
        follow = hs.minimize(f, space, max_trials=FOLLOW, seed=1000 + seed, verbose=False,
                             **({"warm_start": warm} if warm is not None else {}))
        runs.append(reached([t.value for t in follow.trials], goal))  # type: ignore[misc]
    return runs[0], runs[1]


def optuna_run(problem: str, seed: int) -> tuple[int, int]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    f, bounds = PROBLEMS[problem]

    def objective(trial: optuna.Trial) -> float:
        return f({k: trial.suggest_float(k, *b) for k, b in bounds.items()})

    first = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    first.optimize(objective, n_trials=FIRST)
    goal = first.best_value
    runs = []
    for warm in (False, True):
        follow = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=1000 + seed))
        if warm:
            follow.add_trials(first.trials)
        follow.optimize(objective, n_trials=FOLLOW)
        own = follow.trials[len(first.trials) if warm else 0:]
        runs.append(reached([t.value for t in own], goal))  # type: ignore[misc]
    return runs[0], runs[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    args = parser.parse_args()
    print(f"first study {FIRST} trials, follow-ups {FOLLOW}; seeds 0-{args.seeds - 1}")
    print(f"{'problem':<10} {'library':<12} {'cold: trials (got there)':>26} "
          f"{'warm: trials (got there)':>26}")
    for problem in PROBLEMS:
        for library, run in (("hypersearch", ours), ("optuna", optuna_run)):
            cold, warm = zip(*(run(problem, s) for s in range(args.seeds)), strict=True)
            cells = [f"{statistics.mean(r):6.1f} ({sum(k <= FOLLOW for k in r):2d}/{len(r)})"
                     for r in (cold, warm)]
            print(f"{problem:<10} {library:<12} {cells[0]:>26} {cells[1]:>26}")


if __name__ == "__main__":
    main()
