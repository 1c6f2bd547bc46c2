"""Read models: what the CLI and the dashboard show of stored studies, every read bounded.

    from hypersearch.study import read
    rows = read.list_studies(storage)                       # counts by state and best, per study
    page = read.trial_page(storage, "mnist", sort="value", limit=50, offset=0)
    curves = read.metric_series(storage, "mnist", "loss", [0, 1, 2], max_points=200)
    lines = read.trial_logs(storage, "mnist", 3, after=120)
    points = read.history(storage, "mnist")                  # (number, value, best so far)

Functions take a `Storage` (or a URL) and a study name; an unknown study raises
StudyNotFoundError, an unknown trial TrialNotFoundError, a bad argument ReadError (a
ValueError), each message naming the accepted values. Sorting, filtering and paging happen here
on the server side, so a caller never receives more than `MAX_PAGE` trials, `MAX_SERIES_TRIALS`
curves of `MAX_POINTS` points or `MAX_LOG_LINES` lines at once.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypersearch.errors import HypersearchError, StudyNotFoundError
from hypersearch.storage import Storage, get_storage
from hypersearch.storage.base import LogLine
from hypersearch.study.study import load_study
from hypersearch.trial import FrozenTrial, TrialState


def json_safe(value: Any) -> Any:
    """A value as JSON can hold it: +-inf become the strings "inf"/"-inf", NaN null, unknown
    objects their str; so every output of the CLI and the dashboard is valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)

MAX_PAGE = 500  # trials per page
DEFAULT_PAGE = 50
MAX_SERIES_TRIALS = 200  # curves per series request
MAX_POINTS = 1000  # points per curve after downsampling
DEFAULT_POINTS = 300
MAX_LOG_LINES = 2000  # lines per log request
SORT_FIXED = ("number", "value", "duration", "state")
STATES = tuple(s.value for s in TrialState)


class ReadError(HypersearchError, ValueError):
    """A read request with an argument out of range (sort key, limit, state...)."""


class TrialNotFoundError(HypersearchError, KeyError):
    """No trial of that number in the study."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class StudyRow:
    """One study as the studies list shows it."""

    name: str
    direction: str
    metric: str | None
    strategy: str
    scheduler: str | None
    message: str | None
    created_at: float | None
    version: int
    n_trials: int  # charged to the budget
    counts: dict[str, int]  # per state, every state present
    best_number: int | None
    best_value: float | None
    started_at: float | None = None  # first trial started
    last_finished_at: float | None = None

    @property
    def running(self) -> int:
        return self.counts.get("RUNNING", 0)


@dataclass(frozen=True)
class TrialPage:
    """One page of a study's trials, sorted and filtered."""

    study: StudyRow
    trials: list[FrozenTrial]
    total: int  # trials matching the filter, on all pages
    offset: int
    limit: int
    sort: str
    order: str  # "asc" | "desc"
    states: tuple[str, ...]
    param_names: list[str] = field(default_factory=list)  # of every matching trial


@dataclass(frozen=True)
class LogPage:
    """Output lines past a sequence number, at most `limit` of them."""

    lines: list[LogLine]
    next_after: dict[str, int]  # per stream: the last seq returned (pass it back as `after`)
    more: bool  # lines were left out by the limit (later ones; with `tail`, earlier ones)
    finished: bool  # the trial has ended: no new lines will come


def _storage(storage: Storage | str) -> Storage:
    return get_storage(storage, create=False) if isinstance(storage, str) else storage


def _record(storage: Storage, name: str) -> Any:
    record = storage.get_study(name)
    if record is None:
        raise StudyNotFoundError(f"no study named {name!r} in {storage.url or 'this storage'}")
    return record


def _row(storage: Storage, record: Any) -> StudyRow:
    summary = storage.summary(record.id, record.direction)
    settings = record.config.get("settings", {})
    return StudyRow(
        name=record.name,
        direction=record.direction,
        metric=record.metric,
        strategy=str(settings.get("strategy") or ""),
        scheduler=settings.get("scheduler"),
        message=settings.get("message"),
        created_at=record.created_at,
        version=record.version,
        n_trials=summary.n_trials,
        counts={state: summary.counts.get(state, 0) for state in STATES},
        best_number=summary.best_number,
        best_value=summary.best_value,
    )


def list_studies(storage: Storage | str) -> list[StudyRow]:
    """Every study with its counts by state and best value, in creation order."""
    store = _storage(storage)
    return [_row(store, record) for record in store.list_studies()]


def study_row(storage: Storage | str, name: str) -> StudyRow:
    """One study's row, with the times of its first start and last finish."""
    store = _storage(storage)
    record = _record(store, name)
    row = _row(store, record)
    trials = store.get_trials(record.id)
    starts = [t.started_at for t in trials if t.started_at is not None]
    ends = [t.finished_at for t in trials if t.finished_at is not None]
    return dataclasses.replace(
        row,
        started_at=min(starts) if starts else None,
        last_finished_at=max(ends) if ends else None,
    )


def _states(states: Sequence[str] | None) -> tuple[str, ...]:
    if not states:
        return ()
    out = []
    for state in states:
        upper = str(state).strip().upper()
        if upper not in STATES:
            raise ReadError(f"unknown state {state!r}; use one of: {', '.join(STATES).lower()}")
        out.append(upper)
    return tuple(dict.fromkeys(out))


def _int_in(name: str, value: Any, low: int, high: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            raise ReadError(f"{name} must be an integer, got {value!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ReadError(f"{name} must be {bound}, got {value}")
    return value


def _param_key(value: Any) -> tuple[int, Any]:
    """Numbers sort as numbers, anything else by its text, numbers first."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (0, float(value))
    return (1, str(value))


def _sort_value(trial: FrozenTrial, sort: str) -> Any:
    """The trial's value for `sort`, or None to place it last in either order."""
    if sort == "number":
        return trial.number
    if sort == "value":  # NaN (a pruned trial's last report) would scramble the order
        return None if trial.value is None or math.isnan(trial.value) else trial.value
    if sort == "duration":
        return trial.duration
    if sort == "state":
        return trial.state.value
    value = trial.display_params().get(sort[len("params."):] if sort.startswith("params.") else sort)
    return None if value is None else _param_key(value)


def trial_page(
    storage: Storage | str,
    name: str,
    *,
    states: Sequence[str] | None = None,
    sort: str = "number",
    order: str = "asc",
    limit: int = DEFAULT_PAGE,
    offset: int = 0,
) -> TrialPage:
    """Trials of study `name` in `states` (all when empty), sorted by `sort` (number, value,
    duration, state or a parameter name, also written ``params.NAME``) in `order` (asc or
    desc; trials without that value come last either way, ties in number order), the `limit`
    (1 to MAX_PAGE) starting at `offset`."""
    store = _storage(storage)
    study = load_study(name, store)
    wanted = _states(states)
    limit = _int_in("limit", limit, 1, MAX_PAGE)
    offset = _int_in("offset", offset, 0, None)
    if order not in ("asc", "desc"):
        raise ReadError(f"order must be 'asc' or 'desc', got {order!r}")
    trials = study.get_trials(list(wanted) or None)
    param_names = list(dict.fromkeys(k for t in trials for k in t.display_params()))
    bare = sort[len("params."):] if sort.startswith("params.") else sort
    if sort not in SORT_FIXED and bare not in param_names:
        choices = ", ".join((*SORT_FIXED, *param_names))
        raise ReadError(f"cannot sort by {sort!r}; use one of: {choices}")
    keyed = [(_sort_value(t, sort), t) for t in trials]
    present = [(k, t) for k, t in keyed if k is not None]
    present.sort(key=lambda pair: pair[0], reverse=order == "desc")  # stable: ties by number
    ordered = [t for _, t in present] + [t for k, t in keyed if k is None]
    return TrialPage(
        study=_row(store, store.get_study(name)),
        trials=ordered[offset : offset + limit],
        total=len(ordered),
        offset=offset,
        limit=limit,
        sort=sort,
        order=order,
        states=wanted,
        param_names=param_names,
    )


def trial(storage: Storage | str, name: str, number: int) -> FrozenTrial:
    """One trial of study `name`, with the study's space attached (choices shown as options)."""
    study = load_study(name, _storage(storage))
    found = study.storage.get_trial(study.id, number)
    if found is None:
        raise TrialNotFoundError(f"study {name!r} has no trial {number}")
    return dataclasses.replace(found, space=study.space)


def history(
    storage: Storage | str, name: str, *, max_points: int = MAX_POINTS
) -> list[tuple[int, float, float]]:
    """Optimisation history: (number, value, best so far) of each COMPLETE trial with a finite
    value, in number order, downsampled to `max_points` (1 to MAX_POINTS; the best so far is
    computed over every trial before downsampling)."""
    store = _storage(storage)
    record = _record(store, name)
    max_points = _int_in("max_points", max_points, 1, MAX_POINTS)
    better = min if record.direction == "minimize" else max
    out: list[tuple[int, float, float]] = []
    for found in store.get_trials(record.id, [TrialState.COMPLETE]):
        value = found.value
        if value is None or not math.isfinite(value):
            continue
        best = value if not out else better(out[-1][2], value)
        out.append((found.number, value, best))
    return downsample(out, max_points)


def downsample(points: Sequence[Any], max_points: int) -> list[Any]:
    """At most `max_points` of `points`, evenly spaced, the first and last always kept."""
    if len(points) <= max_points:
        return list(points)
    if max_points == 1:
        return [points[-1]]
    step = (len(points) - 1) / (max_points - 1)
    return [points[round(i * step)] for i in range(max_points)]


def metric_series(
    storage: Storage | str,
    name: str,
    metric: str | None = None,
    trials: Sequence[int] | None = None,
    *,
    max_points: int = DEFAULT_POINTS,
) -> dict[int, list[tuple[int | None, float]]]:
    """{trial number: [(step, value), ...]} of `metric` (default: the study's metric, else
    ``value``) for the trial numbers `trials` (default: the latest MAX_SERIES_TRIALS), read in one
    storage query, each curve downsampled to `max_points` (1 to MAX_POINTS) in report order.
    Trials that reported nothing of it are absent; unknown numbers are ignored."""
    store = _storage(storage)
    record = _record(store, name)
    max_points = _int_in("max_points", max_points, 1, MAX_POINTS)
    if trials is not None and len(trials) > MAX_SERIES_TRIALS:
        raise ReadError(f"at most {MAX_SERIES_TRIALS} trials per series request, got {len(trials)}")
    stored = store.get_trials(record.id)
    if trials is None:
        chosen = stored[-MAX_SERIES_TRIALS:]
    else:
        wanted = set(trials)
        chosen = [t for t in stored if t.number in wanted]
    ids = {t.id: t.number for t in chosen if t.id is not None}
    points = store.get_metrics_many(list(ids), metric or record.metric or "value")
    return {
        ids[trial_id]: downsample([(p.step, p.value) for p in found], max_points)
        for trial_id, found in sorted(points.items(), key=lambda item: ids[item[0]])
    }


def trial_logs(
    storage: Storage | str,
    name: str,
    number: int,
    *,
    after: int = -1,
    stream: str | None = None,
    limit: int = MAX_LOG_LINES,
    tail: bool = False,
) -> LogPage:
    """Output lines of trial `number` whose seq is past `after` (in each stream, both unless
    `stream`: to follow both streams, follow each with its own `after`), at most `limit` (1 to MAX_LOG_LINES): the first ones, or with `tail`
    the last ones of each stream."""
    if stream not in (None, "stdout", "stderr"):
        raise ReadError(f"stream must be 'stdout' or 'stderr', got {stream!r}")
    after = _int_in("after", after, -1, None)
    limit = _int_in("limit", limit, 1, MAX_LOG_LINES)
    store = _storage(storage)
    found = trial(store, name, number)
    lines = store.get_logs(found.id, stream, after)  # type: ignore[arg-type]
    more = len(lines) > limit
    if more and tail:
        by_stream: dict[str, list[LogLine]] = {}
        for line in lines:
            by_stream.setdefault(line.stream, []).append(line)
        # each stream its share of the limit; what a short stream leaves goes to the others
        room, keep = limit, {}
        for left, (name, group) in enumerate(sorted(by_stream.items(), key=lambda g: len(g[1]))):
            keep[name] = min(len(group), room // (len(by_stream) - left))
            room -= keep[name]
        lines = [x for name, group in by_stream.items() for x in group[len(group) - keep[name]:]]
    elif more:
        lines = lines[:limit]
    next_after: dict[str, int] = {}
    for line in lines:
        next_after[line.stream] = max(line.seq, next_after.get(line.stream, -1))
    return LogPage(lines, next_after, more, found.state.is_finished)


__all__ = [
    "MAX_LOG_LINES",
    "MAX_PAGE",
    "MAX_POINTS",
    "MAX_SERIES_TRIALS",
    "LogPage",
    "ReadError",
    "StudyRow",
    "TrialNotFoundError",
    "TrialPage",
    "downsample",
    "history",
    "list_studies",
    "metric_series",
    "study_row",
    "trial",
    "trial_logs",
    "trial_page",
]
