"""The scheduler's own cost per report, in memory: a tight loop, hypersearch only.

    .venv/bin/python bench/scheduler_cost.py

For N = 100, 1,000 and 10,000 completed trials with 27-step curves, 40 new trials each make 26
reports that are never stopped (their loss beats every other trial's), timed without the first
report (which reads the stored rankings once). Printed: the median µs per report with no
scheduler, with `median` and with `asha`, and the difference: what the scheduler adds. The
multi-library table is bench/multifidelity.py --overhead-only; this one is steadier, for the
few microseconds the bar is about.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hypersearch as hs


def study_with(scheduler: str | None, n: int, options: dict[str, Any]) -> hs.Study:
    study = hs.create_study(
        {"x": hs.uniform(0, 1)}, storage="memory", strategy="random", seed=0,
        scheduler=scheduler, scheduler_options=options,
    )  # fmt: skip
    for _ in range(n):
        trial = study.ask()
        for step in range(1, 28):
            trial.report(step, loss=trial.params["x"] + 1 / step)
        study.tell(trial, trial.params["x"])
    return study


def per_report(study: hs.Study, trials: int = 40) -> float:
    times = []
    for _ in range(trials):
        trial = study.ask()
        trial.report(1, loss=-1.0)
        started = time.perf_counter()
        for step in range(2, 28):
            trial.report(step, loss=-1.0 - step)
        times.append((time.perf_counter() - started) / 26)
        study.tell(trial, -30.0)
    return statistics.median(times) * 1e6


def main() -> None:
    print(f"{'N':>6} {'none':>9} {'median':>18} {'asha':>18}")
    for n in (100, 1000, 10000):
        none = per_report(study_with(None, n, {}))
        median = per_report(study_with("median", n, {}))
        asha = per_report(study_with("asha", n, {"max_resource": 27}))
        print(f"{n:>6} {none:>7.1f}µs {median:>7.1f}µs (+{median - none:4.1f}) "
              f"{asha:>7.1f}µs (+{asha - none:4.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
