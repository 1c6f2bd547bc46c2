"""A simulated clock and executor for schedulers: `workers` workers, epochs whose duration
depends on the configuration (10x between the fastest and the slowest), thousands of trials in
seconds. Used by tests/test_schedulers.py and bench/utilisation.py."""

from __future__ import annotations

import heapq
from typing import Any

import hypersearch as hs
from hypersearch.trial import Decision, TrialState

SPACE = {"x": hs.uniform(0.0, 1.0)}


def epoch_time(trial: Any) -> float:
    return 0.1 + trial.params["x"]  # 0.1 to 1.1: configurations differ 10x in speed


def simulate(scheduler: str, trials: int, workers: int = 8, **options: Any) -> dict[str, float]:
    """Run `trials` trials of a study with `scheduler` (and `options`) on `workers` simulated
    workers; returns the busy fraction of the workers, the trials pruned and complete, and the
    epochs trained. A free worker starts a new trial at once: it never waits for a rung."""
    study = hs.create_study(
        SPACE, strategy="random", seed=0, storage="memory",
        scheduler=scheduler, scheduler_options=options,
    )  # fmt: skip
    max_epochs = options.get("max_resource", 27)
    clock, busy, started = 0.0, 0.0, 0
    events: list[tuple[float, int, int, Any]] = []  # (time, seq, epoch, trial)
    seq = 0

    def start(now: float) -> None:
        nonlocal started, seq
        trial = study.ask()
        started += 1
        heapq.heappush(events, (now + epoch_time(trial), seq, 1, trial))
        seq += 1

    for _ in range(workers):
        start(0.0)
    epochs = 0
    while events:
        clock, _, epoch, trial = heapq.heappop(events)
        busy += epoch_time(trial)
        epochs += 1
        x = trial.params["x"]
        loss = (x - 0.3) ** 2 + 1.0 / epoch + 0.01 * ((trial.number * 7919) % 13) / 13
        if trial.report(epoch, loss=loss) is Decision.STOP:
            study.tell(trial, state="pruned")
        elif epoch == max_epochs:
            study.tell(trial, loss)
        else:
            heapq.heappush(events, (clock + epoch_time(trial), seq, epoch + 1, trial))
            seq += 1
            continue
        if started < trials:
            start(clock)
    states = [t.state for t in study.trials]
    return {
        "busy": busy / (clock * workers),
        "pruned": states.count(TrialState.PRUNED),
        "complete": states.count(TrialState.COMPLETE),
        "epochs": epochs,
    }
