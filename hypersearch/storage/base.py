"""The storage contract every backend honours (memory, SQLite, PostgreSQL).

The rules that make parallel search exact live here, not in the workers:

- `claim` is one transaction: lock the study, take a WAITING trial or (budget permitting) ask the
  sampler for new parameters with the history in view, insert the trial as RUNNING with a lease.
- Every later write names the lease (owner, epoch) and is refused once the lease has moved on.
- `sweep_stale` fails RUNNING trials whose lease expired (or whose owner is known dead), and can
  re-queue their parameters once.
"""

from __future__ import annotations

import functools
import os
import socket
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypersearch.errors import HypersearchError
from hypersearch.storage.queries import Note, TrialOutline, TrialQuery, outline, select_trials
from hypersearch.trial import FrozenTrial, Outcome, TrialState

# propose(history, number) -> flat params, or None when the sampler has nothing left
Propose = Callable[[Sequence[FrozenTrial], int], "dict[str, Any] | None"]


MAX_STUDY_NAME_CHARS = 200
MAX_STUDY_NAME_BYTES = 255  # the name is a directory name under the output root
STUDY_NAME_RULE = (
    "a study name is 1 to 200 characters (at most 255 bytes in UTF-8), without '/', '\\', "
    "control characters or surrounding spaces, and not '.' or '..'"
)


class StudyNameError(HypersearchError, ValueError):
    """A study name that cannot be stored or used as a directory name."""


def check_study_name(name: object) -> str:
    """`name` if it is a valid study name, else StudyNameError saying what is wrong.

    Every backend checks names here on create and lookup, so an invalid name never reaches
    the database (a too-long name was a raw DataError on PostgreSQL) nor a path (the name
    becomes a directory of trial outputs)."""
    if not isinstance(name, str):
        raise StudyNameError(
            f"study name must be a string, got {type(name).__name__}; {STUDY_NAME_RULE}"
        )
    problem = _name_problem(name)
    if problem:
        shown = repr(name if len(name) <= 60 else name[:57] + "...")
        raise StudyNameError(f"invalid study name {shown}: {problem}; {STUDY_NAME_RULE}")
    return name


def _name_problem(name: str) -> str | None:
    if not name.strip():
        return "it is empty" if not name else "it is only whitespace"
    if len(name) > MAX_STUDY_NAME_CHARS:
        return f"it is {len(name)} characters long"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_STUDY_NAME_BYTES:
        return f"it is {len(name.encode('utf-8', 'surrogatepass'))} bytes long in UTF-8"
    for char in name:
        if char in "/\\":
            return f"it contains {char!r} (a path separator)"
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            return f"it contains the control character U+{ord(char):04X}"
    if name != name.strip():
        return "it starts or ends with whitespace"
    if name in (".", ".."):
        return "'.' and '..' mean this and the parent directory in a path"
    return None


@dataclass(frozen=True)
class StudyRecord:
    id: int
    name: str
    direction: str  # "minimize" | "maximize"
    metric: str | None
    space_json: str | None  # None: define-by-run
    config: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None
    n_trials: int = 0  # trials charged to the budget
    version: int = 0


@dataclass(frozen=True)
class StudySummary:
    n_trials: int  # charged to the budget
    counts: dict[str, int]  # per state
    best_number: int | None
    best_value: float | None
    complete_since_best: int  # completed trials finished after the best one


@dataclass(frozen=True)
class LogLine:
    stream: str  # "stdout" | "stderr"
    seq: int  # line number within the stream (gaps mark omitted lines)
    text: str


@dataclass(frozen=True)
class MetricPoint:
    name: str
    step: int | None
    value: float
    ts: float


class Storage(ABC):
    """Abstract storage. Backends must pass tests/storage_contract.py."""

    url: str = ""

    # -- studies -------------------------------------------------------------------------------

    @abstractmethod
    def create_study(
        self,
        name: str,
        direction: str,
        metric: str | None,
        space_json: str | None,
        config: dict[str, Any],
    ) -> tuple[StudyRecord, bool]:
        """Create the study, or return the stored one of that name. The bool is True if created."""

    @abstractmethod
    def get_study(self, name: str) -> StudyRecord | None: ...

    @abstractmethod
    def list_studies(self) -> list[StudyRecord]: ...

    @abstractmethod
    def delete_study(self, name: str) -> bool: ...

    @abstractmethod
    def update_study_config(
        self, study_id: int, config: dict[str, Any], space_json: str | None = None
    ) -> None:
        """Replace the study's definition document (and its space, when given: a space that
        grew on resume)."""

    # -- trials --------------------------------------------------------------------------------

    @abstractmethod
    def claim(
        self,
        study_id: int,
        owner: str,
        *,
        propose: Propose,
        uses_history: bool,
        max_trials: int | None,
        lease_seconds: float,
        worker: str | None = None,
        gpus: str | None = None,
        max_running: int | None = None,
    ) -> FrozenTrial | None:
        """Start the next trial as RUNNING under a lease held by `owner`, recording where it
        runs (`worker`, `gpus`: "0,1"). Raises StudyFull when `max_running` trials of the study
        run already (counted under the study lock: exact across every process).

        Takes the oldest WAITING trial first; otherwise, if fewer than `max_trials` trials are
        charged, calls `propose(history, number)` under the study lock (history holds every
        trial when `uses_history`, else is empty) and inserts its parameters. Returns None when
        the budget is spent or `propose` returns None.
        """

    @abstractmethod
    def enqueue(
        self, study_id: int, flat_params: dict[str, Any], lineage: dict[str, Any] | None = None
    ) -> int:
        """Add a WAITING trial with fixed parameters (charged to the budget) and, for a trial
        that continues another's checkpoint, its `lineage` (a JSON object); its number.
        WAITING trials are claimed in number order, a re-run (`retry`) at the place of the
        trial it re-runs, so an interrupted trial runs again before those queued after it."""

    @abstractmethod
    def retry(self, study_id: int, number: int) -> int | None:
        """Queue FAILED trial `number`'s parameters again as a WAITING trial whose
        `parent_number` is `number` (its lineage kept); the failed one stops counting against the budget. Returns
        the new number, or None if `number` is not a failed trial still charged (already
        retried)."""

    @abstractmethod
    def finish(
        self,
        trial_id: int,
        owner: str,
        epoch: int,
        outcome: Outcome,
        *,
        flat_params: dict[str, Any] | None = None,
        distributions: dict[str, Any] | None = None,
        user_attrs: dict[str, Any] | None = None,
        ran_on: RanOn | None = None,
    ) -> bool:
        """Write a RUNNING trial's result if (owner, epoch) still holds its lease; False if
        fenced. `ran_on` replaces where the claim said it would run, when an executor learns
        that only as it ends (a cluster places the trial itself)."""

    @abstractmethod
    def report(
        self,
        trial_id: int,
        owner: str,
        epoch: int,
        step: int | None,
        metrics: dict[str, float],
    ) -> bool:
        """Store intermediate metrics of a RUNNING trial; False if the lease was lost."""

    def report_many(
        self, rows: Sequence[tuple[int, str, int, int | None, dict[str, float], float]]
    ) -> list[bool]:
        """Store many reports at once, in order, each fenced like `report`; one bool per row.

        A row is ``(trial_id, owner, epoch, step, metrics, age)``: `age` is how many seconds
        before this call the report was made, so its timestamp is the database clock minus
        `age`. Backends override this to write all rows in one transaction; this default
        (one `report` per row, stamped at write time) keeps other backends correct.
        """
        return [self.report(t, owner, epoch, step, m) for t, owner, epoch, step, m, _ in rows]

    @abstractmethod
    def append_logs(
        self,
        trial_id: int,
        owner: str,
        epoch: int,
        stream: str,
        lines: Sequence[tuple[int, str]],
    ) -> bool:
        """Store (seq, text) lines of a RUNNING trial's output; False if the lease was lost."""

    @abstractmethod
    def get_logs(
        self, trial_id: int, stream: str | None = None, after_seq: int = -1
    ) -> list[LogLine]:
        """Stored output lines in order (per stream by seq), optionally those past `after_seq`."""

    @abstractmethod
    def get_trial(self, study_id: int, number: int) -> FrozenTrial | None: ...

    @abstractmethod
    def heartbeat(self, owner: str, lease_seconds: float) -> int:
        """Extend every lease held by `owner`; the number of trials renewed."""

    @abstractmethod
    def sweep_stale(
        self, study_id: int, *, retry: bool = False, dead_owners: Iterable[str] = ()
    ) -> list[int]:
        """Fail RUNNING trials whose lease expired or whose owner is in `dead_owners` (reason
        ``stale``). With `retry`, a trial that is not itself a retry is re-queued once with the
        same parameters and stops counting against the budget. Returns the numbers failed."""

    @abstractmethod
    def running_owners(self, study_id: int) -> set[str]: ...

    @abstractmethod
    def get_trials(
        self, study_id: int, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        """Trials in number order (without the space attached)."""

    @abstractmethod
    def get_metrics(self, trial_id: int) -> list[MetricPoint]: ...

    @abstractmethod
    def summary(self, study_id: int, direction: str) -> StudySummary: ...

    def get_metrics_many(
        self, trial_ids: Sequence[int], name: str | None = None
    ) -> dict[int, list[MetricPoint]]:
        """{trial id: its metric points in report order} for many trials (only metric `name`
        when given); trials without points are absent. The dashboard draws many curves from
        this; SQL backends override it with one query."""
        out: dict[int, list[MetricPoint]] = {}
        for trial_id in dict.fromkeys(trial_ids):
            points = [p for p in self.get_metrics(trial_id) if name is None or p.name == name]
            if points:
                out[trial_id] = points
        return out

    def metric_at_step(
        self,
        study_id: int,
        name: str,
        step: int,
        *,
        at: str = "exact",
        states: Sequence[TrialState] | None = None,
    ) -> dict[int, float]:
        """{trial number: value} of metric `name` for the study's trials (those in `states`),
        one query for all of them: the value reported at `step` (``at="exact"``), at the first
        step >= `step` (``"after"``: the resource at which a trial crossed a rung) or at the
        latest step <= `step` (``"before"``). The last report wins where a step repeats; trials
        without such a report are absent. Backends override this with one indexed query."""
        pick = _STEP_PICKS[at]
        out: dict[int, float] = {}
        for trial in self.get_trials(study_id, states):
            points = [(p.step, p.value) for p in self.get_metrics(trial.id)  # type: ignore[arg-type]
                      if p.name == name and p.step is not None]
            found = pick(points, step)
            if found is not None:
                out[trial.number] = found
        return out

    def resource_used(self, study_id: int) -> int:
        """The compute the study's trials reported, in steps: per trial, the span of the steps
        it reported (last - first + 1; a trial continuing another's checkpoint counts from its
        own first report), summed. Backends override this with one query."""
        total = 0
        for trial in self.get_trials(study_id):
            steps = [p.step for p in self.get_metrics(trial.id) if p.step is not None]  # type: ignore[arg-type]
            if steps:
                total += max(steps) - min(steps) + 1
        return total

    # -- reads for the dashboard and the CLI (backends override them with indexed queries) ---

    def query_trials(self, study_id: int, query: TrialQuery) -> tuple[list[FrozenTrial], int]:
        """(one window of the study's trials, sorted and filtered as `query` says, how many
        matched in all); semantics in storage/queries.py."""
        return select_trials(self.get_trials(study_id), query)

    def completed_values(self, study_id: int) -> list[tuple[int, float | None]]:
        """(number, value) of the study's COMPLETE trials in number order: the history."""
        return [(t.number, t.value) for t in self.get_trials(study_id, [TrialState.COMPLETE])]

    def trial_outlines(
        self, study_id: int, states: Sequence[TrialState] | None = None, *,
        latest: int | None = None,
    ) -> list[TrialOutline]:
        """Outlines of the study's trials (those in `states`) in number order; only the
        `latest` started ones when given."""
        trials = self.get_trials(study_id, states)
        if latest is not None:
            started = [t for t in trials if t.started_at is not None]
            started.sort(key=lambda t: (t.started_at, t.number))
            trials = sorted(started[-latest:] if latest else [], key=lambda t: t.number)
        return [outline(t) for t in trials]

    def activity(self, study_id: int) -> tuple[int, int, int]:
        """(a number that grows whenever a trial is created, claimed or finished or the
        definition changes, a number that grows whenever a RUNNING trial reports, how many
        trials run): what a live view polls to know whether to read more. Cheap: no scan of
        the study's trials."""
        record = next(r for r in self.list_studies() if r.id == study_id)
        running = self.get_trials(study_id, [TrialState.RUNNING])
        reports = sum(len(self.get_metrics(t.id)) for t in running if t.id is not None)
        return (record.version, reports, len(running))

    def time_span(self, study_id: int) -> tuple[float | None, float | None]:
        """(when the study's first trial started, when its last one finished)."""
        trials = self.get_trials(study_id)
        starts = [t.started_at for t in trials if t.started_at is not None]
        ends = [t.finished_at for t in trials if t.finished_at is not None]
        return (min(starts, default=None), max(ends, default=None))

    def integrity_problems(self) -> list[str]:
        """What the database itself finds damaged (SQLite's quick_check); [] when sound."""
        return []

    @abstractmethod
    def get_cache(self, study_id: int, name: str) -> dict[str, Any] | None:
        """The cache `name` of a study (what a sampler keeps warm), or None."""

    @abstractmethod
    def put_cache(self, study_id: int, name: str, data: dict[str, Any]) -> None:
        """Store (replace) a study's cache `name`: a JSON object. Not a revision of the study
        (its version stays): a cache never changes a result."""

    @abstractmethod
    def add_note(self, study_id: int, trial_number: int | None, text: str) -> None:
        """Store a note on the study (`trial_number` None) or on one of its trials."""

    @abstractmethod
    def get_notes(self, study_id: int, trial_number: int | None = None) -> list[Note]:
        """The notes of one trial (or, with None, of the study itself), oldest first."""

    def latest_notes(self, study_id: int, numbers: Sequence[int]) -> dict[int, str]:
        """{trial number: its latest note} for those of `numbers` that have notes (a page of
        the trial table). SQL backends override this with one query."""
        out = {}
        for number in numbers:
            found = self.get_notes(study_id, number)
            if found:
                out[number] = found[-1].text
        return out

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


@functools.lru_cache(maxsize=1)
@dataclass(frozen=True)
class RanOn:
    """Where a trial actually ran: its machine (`host_id()` there), "host:pid", GPUs "0,1"."""

    host: str
    worker: str
    gpus: str | None = None


def host_id() -> str:
    """This machine: its hostname plus the kernel boot id, since container hostnames repeat."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()[:8]
    except OSError:
        import psutil

        boot = f"{psutil.boot_time():.0f}"
    return f"{socket.gethostname()}/{boot}"


def make_owner() -> str:
    """A lease owner id that names this process, so a dead one on this host is recognisable."""
    import psutil

    pid = os.getpid()
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        started = 0.0
    return f"{host_id()}:{pid}:{started:.3f}:{os.urandom(3).hex()}"


def owner_is_dead(owner: str) -> bool:
    """True when `owner` was a process on this host that no longer runs (pid gone or reused)."""
    import psutil

    try:
        host, pid, started, _ = owner.rsplit(":", 3)
        pid_number, started_at = int(pid), float(started)
    except ValueError:
        return False
    if host != host_id():
        return False
    try:
        process = psutil.Process(pid_number)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        return abs(process.create_time() - started_at) > 0.01
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def _exact(points: Sequence[tuple[int, float]], step: int) -> float | None:
    found = [v for s, v in points if s == step]
    return found[-1] if found else None


def _first_after(points: Sequence[tuple[int, float]], step: int) -> float | None:
    later = [s for s, _ in points if s >= step]
    return None if not later else _exact(points, min(later))


def _latest_before(points: Sequence[tuple[int, float]], step: int) -> float | None:
    earlier = [s for s, _ in points if s <= step]
    return None if not earlier else _exact(points, max(earlier))


# how `Storage.metric_at_step` picks a trial's report: (step, value) pairs in report order
_STEP_PICKS = {"exact": _exact, "after": _first_after, "before": _latest_before}
