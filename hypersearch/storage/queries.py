"""Read queries over many trials (the dashboard's and the CLI's): one page of trials sorted and
filtered, light rows for charts, notes. `select_trials` is the reference semantics; the SQL
backend gives the same answers with ORDER BY / LIMIT in the database.

Sort and filter fields: ``number``, ``value``, ``duration``, ``state``, ``params.NAME`` (the
stored value: a choice sorts in the order of its options) and, for filters, ``metrics.NAME``
(the trial's final metric). Ascending: numbers, then text; ties in number order. Descending
is the exact reverse (ties too, so the newest first), except that trials without the field
(NaN included) come last in either order.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hypersearch.trial import FrozenTrial, TrialState

FIXED_FIELDS = ("number", "value", "duration", "state")


@dataclass(frozen=True)
class TrialQuery:
    """Which trials, in which order, which window of them."""

    states: tuple[TrialState, ...] = ()  # all when empty
    numbers: tuple[int, ...] = ()  # only these trials, when given
    ranges: tuple[tuple[str, float | None, float | None], ...] = ()  # (field, low, high) inclusive
    sort: str = "number"
    descending: bool = False
    limit: int | None = None  # all when None
    offset: int = 0


@dataclass(frozen=True)
class TrialOutline:
    """A trial without its parameters and metrics: what history and timeline charts need."""

    number: int
    state: TrialState
    value: float | None
    started_at: float | None
    finished_at: float | None
    host: str | None
    worker: str | None
    owner: str | None = None  # the lease owner: the driver or worker process that ran it


@dataclass(frozen=True)
class Note:
    trial_number: int | None  # None: a note on the study
    text: str
    created_at: float


def field_value(trial: FrozenTrial, name: str) -> Any:
    """The trial's value of a sort/filter field, None where it has none (NaN included)."""
    if name == "number":
        return trial.number
    if name == "state":
        return trial.state.value
    if name == "duration":
        value: Any = trial.duration
    elif name == "value":
        value = trial.value
    elif name.startswith("params."):
        value = trial.flat_params.get(name[len("params."):])
    elif name.startswith("metrics."):
        value = trial.metrics.get(name[len("metrics."):])
    else:
        raise ValueError(f"unknown trial field {name!r}")
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _order_key(value: Any) -> tuple[int, Any]:
    """Numbers before text, as SQLite orders mixed values."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


def _in_range(value: Any, low: float | None, high: float | None) -> bool:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def select_trials(
    trials: Sequence[FrozenTrial], query: TrialQuery
) -> tuple[list[FrozenTrial], int]:
    """(the window of `trials` that `query` asks for, how many matched in all)."""
    wanted, numbers = set(query.states), set(query.numbers)
    matched = [
        t for t in trials
        if (not wanted or t.state in wanted)
        and (not query.numbers or t.number in numbers)
        and all(_in_range(field_value(t, f), lo, hi) for f, lo, hi in query.ranges)
    ]
    matched.sort(key=lambda t: t.number)
    keyed = [(field_value(t, query.sort), t) for t in matched]
    present = [(k, t) for k, t in keyed if k is not None]
    present.sort(key=lambda pair: (_order_key(pair[0]), pair[1].number),
                 reverse=query.descending)
    missing = [t for k, t in keyed if k is None]
    ordered = [t for _, t in present] + (missing[::-1] if query.descending else missing)
    end = None if query.limit is None else query.offset + query.limit
    return ordered[query.offset:end], len(ordered)


def outline(trial: FrozenTrial) -> TrialOutline:
    return TrialOutline(trial.number, trial.state, trial.value, trial.started_at,
                        trial.finished_at, trial.host, trial.worker, trial.owner)
