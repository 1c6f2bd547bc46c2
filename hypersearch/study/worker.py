"""`hypersearch worker`: run stored studies on this machine, beside any other workers.

A worker needs only the storage URL and, optionally, a study's name: everything else is the
stored definition. Any number of workers (and the driver that created the study) serve one
study at once; the storage keeps the budget exact and hands each grid point out once. What a
worker sets for itself (its slots, its GPUs, how many trials it runs) is never stored.

Example::

    hs.run_worker("postgresql://db/hs", "mnist", slots=2, gpus=[0, 1])
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hypersearch.errors import HypersearchError, StorageUnreachable
from hypersearch.study.driver import HOLD_RESULTS_FOR, Here, run
from hypersearch.study.objectives import resolve_objective
from hypersearch.study.schema import BY_NAME
from hypersearch.trial import TrialState

if TYPE_CHECKING:
    from hypersearch.storage import Storage
    from hypersearch.study.study import Study

log = logging.getLogger("hypersearch")
POLL_SECONDS = 1.0  # between looks for new work while idle (with jitter: workers spread out)


def has_work(study: Study) -> bool:
    """Whether `study` has trials to hand out now: queued ones, or budget left (a search
    without a budget always has). A grid that is used up shows only when claimed."""
    from hypersearch.study.driver import process_owner

    control = study.refresh()
    if control.get("stop") or not runs_anywhere(study):
        return False
    if process_owner() in control.get("quarantined", {}):
        return False  # until lifted (hypersearch workers STUDY --lift HOST:PID)
    summary = study.summary()
    budget = study.definition.max_trials
    if summary.counts.get(TrialState.WAITING.value, 0) or budget is None or (
            summary.n_trials < budget):
        return True
    # the budget is spent, but a dead worker's trial, once swept and re-queued, is work
    return bool(study._leases.sweep()) and bool(
        study.summary().counts.get(TrialState.WAITING.value, 0))


def runs_anywhere(study: Study) -> bool:
    """Whether any process can run `study` from its definition alone (a command or an
    importable objective; not an in-process function, not an ask/tell study)."""
    return study.definition.objective_kind in ("command", "python")


def run_worker(
    storage: str | Storage | None,
    study: str | None = None,
    *,
    slots: int | None = None,
    gpus: Sequence[int] | None = None,
    gpus_per_trial: int | None = None,
    max_trials_here: int | None = None,
    idle_exit: float | None = None,
    executor: str | None = None,
    verbose: bool = True,
) -> dict[str, int]:
    """Run trials of the study named `study` (every study with work left, in turn, when
    None) until none has work; {study name: trials run here}.

    `idle_exit` seconds: wait that long for new work (a raised budget, enqueued or re-queued
    trials) before leaving; None leaves as soon as there is none. `max_trials_here` caps the
    trials this worker runs, over all studies. `executor` runs them another way than the
    stored definition says (e.g. "ray": as tasks on the Ray cluster this machine joins)."""
    from hypersearch.storage import get_storage
    from hypersearch.study.study import load_study

    for name, value in (("n_jobs", slots), ("gpus", gpus), ("gpus_per_trial", gpus_per_trial),
                        ("executor", executor)):
        if value is not None:
            BY_NAME[name].check(value)  # the schema's message for a bad value
    if max_trials_here is not None and max_trials_here < 1:
        raise HypersearchError(f"max_trials_here must be at least 1, got {max_trials_here}")
    if idle_exit is not None and idle_exit < 0:
        raise HypersearchError(f"idle_exit is seconds to wait (>= 0), got {idle_exit}")
    store = get_storage(storage)
    if study is not None:  # a study this worker cannot run is an error, not an idle worker
        named = load_study(study, store)
        resolve_objective(None, named, Here(slots, _tuple(gpus), gpus_per_trial,
                                            executor=executor).apply(named.definition))
    ran: dict[str, int] = {}
    idle_since = time.monotonic()
    unreachable_since: float | None = None
    opened: dict[str, Study] = {}
    while max_trials_here is None or sum(ran.values()) < max_trials_here:
        busy = False
        try:
            names = [study] if study is not None else [r.name for r in store.list_studies()]
            for name in _fair_order(names, ran):
                current = opened.get(name) or opened.setdefault(name, load_study(name, store))
                if not has_work(current):
                    continue
                left = None if max_trials_here is None else max_trials_here - sum(ran.values())
                # one study at a time; serving every study, a turn is one round of slots, so
                # studies share this worker in turn
                turn = left if study is not None else min(left or 10**9, _slots(current, slots))
                here = Here(slots, _tuple(gpus), gpus_per_trial, turn, executor)
                started = _serve(current, here, verbose)
                ran[name] = ran.get(name, 0) + started
                busy = busy or started > 0
                break
            unreachable_since = None
        except StorageUnreachable as error:  # between trials: wait for it, as a run does
            now = time.monotonic()
            unreachable_since = unreachable_since or now
            if now - unreachable_since > HOLD_RESULTS_FOR:
                raise
            log.warning("worker: %s; trying again", error)
            time.sleep(POLL_SECONDS * random.uniform(1.0, 3.0))
            idle_since = time.monotonic()
            continue
        if busy:
            idle_since = time.monotonic()
            continue
        if idle_exit is None or time.monotonic() - idle_since >= idle_exit:
            break
        time.sleep(POLL_SECONDS * random.uniform(0.5, 1.5))
    for opened_study in opened.values():
        opened_study.close()
    return ran


def _fair_order(names: list[str], ran: dict[str, int]) -> list[str]:
    """Studies this worker served least first (ties in storage order)."""
    return sorted(names, key=lambda n: ran.get(n, 0))


def _slots(study: Study, slots: int | None) -> int:
    from hypersearch.study.schema import jobs_here

    return slots if slots is not None else jobs_here(study.definition.n_jobs)


def _tuple(gpus: Sequence[int] | None) -> tuple[int, ...] | None:
    return None if gpus is None else tuple(gpus)


def _serve(study: Study, here: Here, verbose: bool) -> int:
    """Run `study`'s stored objective under this worker's settings; trials started."""
    local = here.apply(study.definition)
    objective, _, _ = resolve_objective(None, study, local)
    log.info("worker: serving study %r", study.name)
    reason, started = run(study, objective, None, verbose, here)
    log.info("worker: study %r: %s (%d trial(s) here)", study.name, reason, started)
    return started

