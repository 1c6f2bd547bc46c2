"""`hypersearch doctor`: check a study against the invariants every scenario must keep
(ANCHORS.md), after sweeping the leases of dead workers.

Invariants: trial numbers unique and dense; nothing RUNNING without a live lease (the sweep
fails those); COMPLETE exactly when a value is present; the trials charged equal the study's
count (and stay within its budget); the database sound (SQLite quick_check).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hypersearch.trial import TrialState

if TYPE_CHECKING:
    from hypersearch.study.study import Study


@dataclass
class Checkup:
    """What `check` found: `problems` break an invariant; `notes` are worth knowing."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def check(study: Study) -> Checkup:
    """Sweep stale leases of `study`, then check its invariants."""
    found = Checkup()
    swept = study._leases.sweep()
    if swept:
        found.notes.append(f"swept {len(swept)} trial(s) left running by stopped workers: "
                           f"{_numbers(swept)} (now FAILED stale)")
    trials = study.storage.get_trials(study.id)
    numbers = [t.number for t in trials]
    if numbers != list(range(len(numbers))):
        missing = sorted(set(range(max(numbers, default=-1) + 1)) - set(numbers))
        twice = sorted(n for n, count in Counter(numbers).items() if count > 1)
        found.problems.append(
            "trial numbers are not dense and unique"
            + (f"; missing {_numbers(missing)}" if missing else "")
            + (f"; repeated {_numbers(twice)}" if twice else "")
        )
    for trial in trials:
        has_value = trial.value is not None and not (
            isinstance(trial.value, float) and math.isnan(trial.value))
        if trial.state is TrialState.COMPLETE and not has_value:
            found.problems.append(f"trial {trial.number} is COMPLETE without a value")
        if trial.state in (TrialState.RUNNING, TrialState.WAITING, TrialState.FAILED) and (
                trial.value is not None):
            found.problems.append(f"trial {trial.number} is {trial.state.value} with a value")
    rerun = {t.parent_number for t in trials if t.parent_number is not None}
    charged = len(trials) - len(rerun)  # a re-run stops its original counting
    summary = study.summary()
    if charged != summary.n_trials:
        found.problems.append(f"the study counts {summary.n_trials} trial(s) against its "
                              f"budget, but {charged} are charged")
    budget = study.definition.max_trials
    if budget is not None and summary.n_trials > budget:
        found.problems.append(f"{summary.n_trials} trials charged, over the budget of {budget}")
    running = summary.counts.get(TrialState.RUNNING.value, 0)
    if running:
        found.notes.append(f"{running} trial(s) running now, each under a live lease")
    damaged = study.storage.integrity_problems()
    if damaged:
        found.problems.append("the database reports damage: " + "; ".join(damaged[:5]))
    return found


def _numbers(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:20])
    return shown + (f" and {len(numbers) - 20} more" if len(numbers) > 20 else "")
