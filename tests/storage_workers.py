"""Worker functions for the multi-process storage tests (run in spawned child processes).

Kept apart from the test modules so a child imports only what it needs. Each worker sends one
dict to the `results` queue; exceptions are sent as text rather than lost with the process.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Sequence
from functools import partial
from typing import Any

from hypersearch.storage.base import make_owner
from hypersearch.trial import FrozenTrial, Outcome, TrialState

LOGGER = "hypersearch.storage"


class _Capture(logging.Handler):
    """Keeps the storage layer's warnings (e.g. "database is locked; retrying")."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _open(url: str) -> Any:
    from hypersearch.storage.sql import SQLStorage

    return SQLStorage(url)


def _by_number(history: Sequence[FrozenTrial], number: int) -> dict[str, Any]:
    return {"x": number}


def _first_free_point(n_points: int, history: Sequence[FrozenTrial], number: int) -> dict | None:
    """A grid sampler in miniature: the first point no trial (of any state) has taken."""
    taken = {trial.flat_params["point"] for trial in history}
    for point in range(n_points):
        if point not in taken:
            return {"point": point}
    return None


def claim_loop(
    url: str,
    study_name: str,
    max_trials: int | None,
    n_points: int | None,
    barrier: Any,
    results: Any,
    index: int,
) -> None:
    """Claim, report and finish trials until the storage says there is nothing left."""
    capture = _Capture()
    logger = logging.getLogger(LOGGER)
    logger.addHandler(capture)
    logger.setLevel(logging.DEBUG)
    numbers: list[int] = []
    errors: list[str] = []
    refused = 0
    try:
        storage = _open(url)
        study = storage.get_study(study_name)
        owner = make_owner()
        if n_points is None:
            propose: Any = _by_number
            uses_history = False
        else:
            propose = partial(_first_free_point, n_points)
            uses_history = True
        barrier.wait(120)
        while True:
            trial = storage.claim(
                study.id,
                owner,
                propose=propose,
                uses_history=uses_history,
                max_trials=max_trials,
                lease_seconds=300,
                worker=f"w{index}",
            )
            if trial is None:
                break
            numbers.append(trial.number)
            if not storage.report(trial.id, owner, trial.lease_epoch, 0, {"loss": 1.0 * index}):
                refused += 1
            outcome = Outcome(TrialState.COMPLETE, float(trial.number))
            if not storage.finish(trial.id, owner, trial.lease_epoch, outcome):
                refused += 1
        storage.close()
    except BaseException:
        errors.append(traceback.format_exc())
    results.put(
        {
            "index": index,
            "numbers": numbers,
            "errors": errors,
            "refused": refused,
            "warnings": capture.messages,
        }
    )


def hold_claim(url: str, study_name: str, results: Any) -> None:
    """Claim one trial under a long lease, say who owns it, then wait to be killed."""
    try:
        storage = _open(url)
        study = storage.get_study(study_name)
        owner = make_owner()
        trial = storage.claim(
            study.id,
            owner,
            propose=_by_number,
            uses_history=False,
            max_trials=None,
            lease_seconds=3600,
        )
        results.put({"owner": owner, "number": trial.number, "id": trial.id})
    except BaseException:
        results.put({"error": traceback.format_exc()})
        return
    time.sleep(600)


def open_and_create(url: str, barrier: Any, results: Any, index: int) -> None:
    """Open a (possibly brand-new) database and create one study, all at once with others."""
    capture = _Capture()
    logging.getLogger(LOGGER).addHandler(capture)
    try:
        barrier.wait(120)
        storage = _open(url)
        record, created = storage.create_study("shared", "minimize", None, None, {})
        storage.close()
        results.put(
            {"index": index, "id": record.id, "created": created, "warnings": capture.messages}
        )
    except BaseException:
        results.put({"index": index, "error": traceback.format_exc()})
