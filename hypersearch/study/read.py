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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypersearch.errors import HypersearchError, StudyNotFoundError
from hypersearch.space import Space
from hypersearch.space.distributions import Choice, Float, Integer
from hypersearch.storage import Storage, get_storage
from hypersearch.storage.base import LogLine
from hypersearch.storage.queries import Note, TrialOutline, TrialQuery
from hypersearch.study.health import process_name
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
MAX_SERIES_TRIALS = 1000  # curves per series request
DEFAULT_SERIES_TRIALS = 200  # curves when the request names no trials (the latest ones)
MAX_POINTS = 1000  # points per curve after downsampling
DEFAULT_POINTS = 300
MAX_LOG_LINES = 2000  # lines per log request
MAX_INT = 2**31 - 1  # any integer argument (trial numbers are 32-bit in PostgreSQL)
MAX_TIMELINE = 2000  # trials in the timeline
MAX_EXPORT = 100_000  # rows of one export
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
    notes: dict[int, str] = field(default_factory=dict)  # trial number -> its latest note


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
    first, last = store.time_span(record.id)
    return dataclasses.replace(_row(store, record), started_at=first, last_finished_at=last)


@dataclass(frozen=True)
class Activity:
    """What a live view polls: when `version` moves, trials were created, claimed or finished
    (or the definition changed); when `reports` moves, a running trial reported."""

    version: int
    reports: int
    running: int


def activity(storage: Storage | str, name: str) -> Activity:
    """The study's change markers (two cheap queries)."""
    store = _storage(storage)
    record = _record(store, name)
    return Activity(*store.activity(record.id))


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
    if value < low or value > (MAX_INT if high is None else high):
        bound = f"from {low} to {high}" if high is not None else f"at least {low}"
        raise ReadError(f"{name} must be {bound}, got {value}")
    return value


PARAM_NAME_SAMPLE = 200  # trials of a define-by-run study whose parameter names are shown


def param_names(store: Storage, record: Any, space: Space | None) -> list[str]:
    """The study's flat parameter names: the space's, or (define-by-run) those of its latest
    trials."""
    if space is not None:
        return list(space.params)
    latest, _ = store.query_trials(
        record.id, TrialQuery(sort="number", descending=True, limit=PARAM_NAME_SAMPLE)
    )
    return sorted({k for t in latest for k in t.flat_params})


@dataclass(frozen=True)
class TrialFilter:
    """Which trials a page, a chart or an export shows: states, and inclusive ranges of
    ``value``, ``duration``, a numeric parameter or ``metrics.NAME`` (None: unbounded)."""

    states: tuple[str, ...] = ()
    ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)


def _field_name(name: str, params: Sequence[str], use: str = "sort") -> str:
    """The storage field of a user's sort or range name (``lr``, ``params.lr``, ``value``)."""
    if name in SORT_FIXED:
        return name
    if name.startswith("metrics.") and len(name) > len("metrics."):
        return name
    bare = name[len("params."):] if name.startswith("params.") else name
    if bare in params:
        return f"params.{bare}"
    choices = ", ".join((*SORT_FIXED, *params) if use == "sort" else ("value", "duration",
                                                                      *params, "metrics.NAME"))
    raise ReadError(f"cannot {use} by {name!r}; use one of: {choices}")


@dataclass(frozen=True)
class _Opened:
    """What a read of a study's trials needs, read once: the storage, the study (its space),
    its stored record and its parameter names."""

    store: Storage
    study: Any
    record: Any
    params: list[str]


def _open(storage: Storage | str, name: str) -> _Opened:
    store = _storage(storage)
    study = load_study(name, store)
    record = _record(store, name)
    return _Opened(store, study, record, param_names(store, record, study.space))


def _query(opened: _Opened, wanted: TrialFilter, **window: Any) -> TrialQuery:
    params, space = opened.params, opened.study.space
    ranges = []
    for name, (low, high) in wanted.ranges.items():
        target = _field_name(name, params, "filter")
        if target == "state":
            raise ReadError("filter states with state=..., not a range")
        bare = target[len("params."):]
        if (target.startswith("params.") and space is not None
                and isinstance(space.params[bare].dist, Choice)):
            raise ReadError(f"{bare} is a choice: a range cannot filter it; sort by it instead")
        ranges.append((target, low, high))
    return TrialQuery(
        states=tuple(TrialState(s) for s in _states(wanted.states)),
        ranges=tuple(ranges),
        **window,
    )


def trial_page(
    storage: Storage | str,
    name: str,
    *,
    states: Sequence[str] | None = None,
    sort: str = "number",
    order: str = "asc",
    limit: int = DEFAULT_PAGE,
    offset: int = 0,
    ranges: dict[str, tuple[float | None, float | None]] | None = None,
) -> TrialPage:
    """Trials of study `name` in `states` (all when empty) and inside `ranges` ({field: (low,
    high)}), sorted by `sort` (number, value, duration, state or a parameter name, also written
    ``params.NAME``; a choice sorts in the order of its options) in `order` (asc or desc;
    trials without that value come last either way; ties in number order, reversed by desc),
    the `limit` (1 to MAX_PAGE) starting at `offset`. Sorting and paging happen in the
    database."""
    opened = _open(storage, name)
    store, study, record = opened.store, opened.study, opened.record
    limit = _int_in("limit", limit, 1, MAX_PAGE)
    offset = _int_in("offset", offset, 0, None)
    if order not in ("asc", "desc"):
        raise ReadError(f"order must be 'asc' or 'desc', got {order!r}")
    wanted = TrialFilter(_states(states), dict(ranges or {}))
    query = _query(opened, wanted, sort=_field_name(sort, opened.params),
                   descending=order == "desc", limit=limit, offset=offset)
    trials, total = store.query_trials(record.id, query)
    return TrialPage(
        study=_row(store, record),
        trials=study.as_seen(trials),
        total=total,
        offset=offset,
        limit=limit,
        sort=sort,
        order=order,
        states=wanted.states,
        param_names=opened.params,
        notes=store.latest_notes(record.id, [t.number for t in trials]),
    )


def trial(storage: Storage | str, name: str, number: int) -> FrozenTrial:
    """One trial of study `name`, with the study's space attached (choices shown as options)."""
    study = load_study(name, _storage(storage))
    found = study.storage.get_trial(study.id, _int_in("trial number", number, 0, None))
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
    for number, value in store.completed_values(record.id):
        if value is None or not math.isfinite(value):
            continue
        best = value if not out else better(out[-1][2], value)
        out.append((number, value, best))
    return downsample(out, max_points)


def downsample(points: Sequence[Any], max_points: int) -> list[Any]:
    """At most `max_points` of `points`, evenly spaced, the first and last always kept."""
    if len(points) <= max_points:
        return list(points)
    if max_points == 1:
        return [points[-1]]
    step = (len(points) - 1) / (max_points - 1)
    return [points[round(i * step)] for i in range(max_points)]


@dataclass(frozen=True)
class Curve:
    number: int
    state: str
    points: list[tuple[int | None, float]]


def metric_series(
    storage: Storage | str,
    name: str,
    metric: str | None = None,
    trials: Sequence[int] | None = None,
    *,
    max_points: int = DEFAULT_POINTS,
) -> dict[int, list[tuple[int | None, float]]]:
    """{trial number: [(step, value), ...]} of `metric` (default: the study's metric, else
    ``value``) for the trial numbers `trials` (at most MAX_SERIES_TRIALS; default: the latest
    DEFAULT_SERIES_TRIALS), read in one
    storage query, each curve downsampled to `max_points` (1 to MAX_POINTS) in report order.
    Trials that reported nothing of it are absent; unknown numbers are ignored."""
    return {c.number: c.points for c in curves(storage, name, metric, trials,
                                                max_points=max_points)}


def curves(
    storage: Storage | str,
    name: str,
    metric: str | None = None,
    trials: Sequence[int] | None = None,
    *,
    max_points: int = DEFAULT_POINTS,
) -> list[Curve]:
    """`metric_series` with each trial's state (to mark pruned curves), in number order."""
    store = _storage(storage)
    record = _record(store, name)
    max_points = _int_in("max_points", max_points, 1, MAX_POINTS)
    if trials is not None and len(trials) > MAX_SERIES_TRIALS:
        raise ReadError(f"at most {MAX_SERIES_TRIALS} trials per series request, got {len(trials)}")
    if trials is None:
        query = TrialQuery(sort="number", descending=True, limit=DEFAULT_SERIES_TRIALS)
    else:
        numbers = (_int_in("a trial number", n, 0, None) for n in trials)
        query = TrialQuery(numbers=tuple(dict.fromkeys(numbers)))
    chosen, _ = store.query_trials(record.id, query)
    by_id = {t.id: t for t in chosen if t.id is not None}
    points = store.get_metrics_many(list(by_id), metric or record.metric or "value")
    found = [
        Curve(by_id[i].number, by_id[i].state.value,
              downsample([(p.step, p.value) for p in pts], max_points))
        for i, pts in points.items()
    ]
    return sorted(found, key=lambda c: c.number)


METRIC_NAME_SAMPLE = 20  # latest trials whose reported metric names the charts offer


def metric_names(storage: Storage | str, name: str) -> list[str]:
    """Names of the metrics the study's latest trials reported, the study's metric first."""
    store = _storage(storage)
    record = _record(store, name)
    latest, _ = store.query_trials(
        record.id, TrialQuery(sort="number", descending=True, limit=METRIC_NAME_SAMPLE))
    points = store.get_metrics_many([t.id for t in latest if t.id is not None])
    names = sorted({p.name for pts in points.values() for p in pts})
    first = record.metric or "value"
    return ([first] if first in names else []) + [n for n in names if n != first]


MAX_SEARCH_POINTS = 5000  # trials in the parallel-coordinates, slice and contour charts
DEFAULT_SEARCH_POINTS = 2000


@dataclass(frozen=True)
class ParamInfo:
    name: str
    kind: str  # "float" | "int" | "choice" | "other"
    log: bool = False
    low: float | None = None
    high: float | None = None
    options: list[Any] | None = None


@dataclass(frozen=True)
class SearchPoints:
    """Parameters and values of completed trials: what the search charts draw."""

    total: int  # matching trials, of which the latest `limit` are in `trials`
    params: list[ParamInfo]
    trials: list[FrozenTrial]


def _param_info(name: str, space: Space | None) -> ParamInfo:
    dist = None if space is None else space.params[name].dist
    if isinstance(dist, Choice):
        shown = [o if isinstance(o, str | int | float | bool | type(None)) else i
                 for i, o in enumerate(dist.options)]
        return ParamInfo(name, "choice", options=shown)
    if isinstance(dist, Integer):
        return ParamInfo(name, "int", dist.log, dist.low, dist.high)
    if isinstance(dist, Float):
        return ParamInfo(name, "float", dist.log, dist.low, dist.high)
    return ParamInfo(name, "other")


def search_points(
    storage: Storage | str,
    name: str,
    wanted: TrialFilter | None = None,
    *,
    limit: int = DEFAULT_SEARCH_POINTS,
) -> SearchPoints:
    """The latest `limit` (1 to MAX_SEARCH_POINTS) COMPLETE trials in `wanted`, with the
    study's parameters described."""
    opened = _open(storage, name)
    space = opened.study.space
    limit = _int_in("limit", limit, 1, MAX_SEARCH_POINTS)
    wanted = TrialFilter(("COMPLETE",), dict((wanted or TrialFilter()).ranges))
    query = _query(opened, wanted, sort="number", descending=True, limit=limit)
    trials, total = opened.store.query_trials(opened.record.id, query)
    return SearchPoints(
        total,
        [_param_info(n, space) for n in opened.params],
        opened.study.as_seen(list(reversed(trials))),
    )


def timeline(storage: Storage | str, name: str, *, limit: int = MAX_TIMELINE) -> list[TrialOutline]:
    """The latest `limit` (1 to MAX_TIMELINE) started trials, in number order: when each ran,
    where, in which state it ended."""
    store = _storage(storage)
    record = _record(store, name)
    return store.trial_outlines(record.id, latest=_int_in("limit", limit, 1, MAX_TIMELINE))


@dataclass(frozen=True)
class WorkerRow:
    """One process (a driver or a `hypersearch worker`) that ran trials of a study."""

    process: str  # host:pid
    trials: int
    running: int
    complete: int
    pruned: int
    failed: int
    last_active: float | None  # when it last started or finished a trial


def workers(storage: Storage | str, name: str) -> list[WorkerRow]:
    """The processes that ran the study's trials, most recently active first."""
    store = _storage(storage)
    record = _record(store, name)
    grouped: dict[str, list[TrialOutline]] = {}
    for outline in store.trial_outlines(record.id):
        if outline.owner:
            grouped.setdefault(process_name(outline.owner), []).append(outline)
    rows = []
    for process, ran in grouped.items():
        states = [o.state for o in ran]
        times = [t for o in ran for t in (o.started_at, o.finished_at) if t is not None]
        rows.append(WorkerRow(process, len(ran), states.count(TrialState.RUNNING),
                              states.count(TrialState.COMPLETE), states.count(TrialState.PRUNED),
                              states.count(TrialState.FAILED), max(times, default=None)))
    return sorted(rows, key=lambda r: -(r.last_active or 0.0))


def export_trials(
    storage: Storage | str, name: str, wanted: TrialFilter | None = None, *,
    sort: str = "number", order: str = "asc",
) -> list[dict[str, Any]]:
    """Flat rows (number, state, value, duration, params..., metrics...) of the trials in
    `wanted`, at most MAX_EXPORT of them."""
    opened = _open(storage, name)
    query = _query(opened, wanted or TrialFilter(), sort=_field_name(sort, opened.params),
                   descending=order == "desc", limit=MAX_EXPORT)
    trials, _ = opened.store.query_trials(opened.record.id, query)
    rows = []
    for found in opened.study.as_seen(trials):
        shown = found.display_params()
        row: dict[str, Any] = {"number": found.number, "state": found.state.value,
                               "value": found.value, "duration": found.duration}
        row.update({f"params.{k}": v for k, v in shown.items()})
        row.update({f"metrics.{k}": v for k, v in found.metrics.items()})
        rows.append(row)
    return rows


def definition(storage: Storage | str, name: str) -> dict[str, Any]:
    """The study's stored definition document (space, settings, revisions...)."""
    study = load_study(name, _storage(storage))
    return study.definition.to_document()


def notes(storage: Storage | str, name: str, number: int | None = None) -> list[Note]:
    """Notes on trial `number` (None: on the study), oldest first."""
    store = _storage(storage)
    record = _record(store, name)
    if number is not None:
        trial(store, name, number)  # 404 for an unknown trial
    return store.get_notes(record.id, number)


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
