"""In-process storage: the same contract as the SQL backend, held in dicts under one lock."""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from hypersearch.errors import StudyFull
from hypersearch.storage.base import (
    LogLine,
    MetricPoint,
    Propose,
    RanOn,
    Storage,
    StudyRecord,
    StudySummary,
    check_study_name,
    host_id,
)
from hypersearch.storage.queries import Note
from hypersearch.trial import FailureReason, FrozenTrial, Outcome, TrialState


class MemoryStorage(Storage):
    url = "memory"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._studies: dict[str, StudyRecord] = {}
        self._trials: dict[int, list[FrozenTrial]] = {}  # study id -> trials by number
        self._charged: dict[int, set[int]] = {}  # study id -> numbers charged to the budget
        self._leases: dict[int, float] = {}  # RUNNING trial id -> lease expiry
        self._where: dict[int, tuple[int, int]] = {}  # trial id -> (study id, number)
        self._waiting: dict[int, list[int]] = {}  # study id -> WAITING numbers, oldest first
        self._metrics: dict[int, list[MetricPoint]] = {}
        self._spans: dict[int, tuple[int, int]] = {}  # trial id -> (points, step span)
        self._logs: dict[int, list[LogLine]] = {}
        self._notes: dict[int, list[Note]] = {}  # study id -> notes
        self._caches: dict[tuple[int, str], str] = {}  # (study id, name) -> JSON
        self._changes: dict[int, int] = {}  # study id -> trial changes (part of its version)
        self._next_id = 1

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    # -- studies -------------------------------------------------------------------------------

    def create_study(
        self,
        name: str,
        direction: str,
        metric: str | None,
        space_json: str | None,
        config: dict[str, Any],
    ) -> tuple[StudyRecord, bool]:
        check_study_name(name)
        with self._lock:
            if name in self._studies:
                return self._record(self._studies[name]), False
            record = StudyRecord(
                self._new_id(), name, direction, metric, space_json, dict(config), time.time()
            )
            self._studies[name] = record
            self._trials[record.id] = []
            self._charged[record.id] = set()
            self._waiting[record.id] = []
            return self._record(record), True

    def _record(self, record: StudyRecord) -> StudyRecord:
        return dataclasses.replace(
            record,
            n_trials=len(self._charged[record.id]),
            config=copy.deepcopy(record.config),
            version=record.version + self._changes.get(record.id, 0),
        )

    def _touch(self, study_id: int) -> None:
        """A trial was created, claimed or finished: the study's version moves on."""
        self._changes[study_id] = self._changes.get(study_id, 0) + 1

    def get_study(self, name: str) -> StudyRecord | None:
        check_study_name(name)
        with self._lock:
            record = self._studies.get(name)
            return None if record is None else self._record(record)

    def list_studies(self) -> list[StudyRecord]:
        with self._lock:
            return [self._record(r) for r in self._studies.values()]

    def delete_study(self, name: str) -> bool:
        check_study_name(name)
        with self._lock:
            record = self._studies.pop(name, None)
            if record is None:
                return False
            for trial in self._trials.pop(record.id):
                self._metrics.pop(trial.id, None)  # type: ignore[arg-type]
                self._spans.pop(trial.id, None)  # type: ignore[arg-type]
                self._logs.pop(trial.id, None)  # type: ignore[arg-type]
                self._leases.pop(trial.id, None)  # type: ignore[arg-type]
                self._where.pop(trial.id, None)  # type: ignore[arg-type]
            self._charged.pop(record.id)
            self._waiting.pop(record.id)
            self._notes.pop(record.id, None)
            for key in [k for k in self._caches if k[0] == record.id]:
                del self._caches[key]
            return True

    def update_study_config(
        self, study_id: int, config: dict[str, Any], space_json: str | None = None
    ) -> None:
        with self._lock:
            for name, record in self._studies.items():
                if record.id == study_id:
                    self._studies[name] = dataclasses.replace(
                        record, config=dict(config), version=record.version + 1,
                        space_json=record.space_json if space_json is None else space_json,
                    )

    # -- trials --------------------------------------------------------------------------------

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
        with self._lock:
            trials = self._trials[study_id]
            if max_running is not None and sum(
                    t.state is TrialState.RUNNING for t in trials) >= max_running:
                raise StudyFull(max_running)
            now = time.time()
            lease = {
                "state": TrialState.RUNNING,
                "owner": owner,
                "started_at": now,
                "host": host_id(),
                "worker": worker,
                "gpus": gpus,
            }
            if self._waiting[study_id]:
                queue = self._waiting[study_id]
                first = min(queue, key=lambda n: (_queue_place(trials[n]), n))
                queue.remove(first)
                waiting = trials[first]
                claimed = dataclasses.replace(waiting, lease_epoch=waiting.lease_epoch + 1, **lease)
            else:
                if max_trials is not None and len(self._charged[study_id]) >= max_trials:
                    return None
                number = len(trials)
                params = propose(list(trials) if uses_history else [], number)
                if params is None:
                    return None
                claimed = FrozenTrial(
                    number=number,
                    flat_params=dict(params),
                    created_at=now,
                    id=self._new_id(),
                    lease_epoch=1,
                    **lease,
                )
                trials.append(claimed)
                self._charged[study_id].add(number)
                self._where[claimed.id] = (study_id, number)  # type: ignore[index]
            trials[claimed.number] = claimed
            self._leases[claimed.id] = now + lease_seconds  # type: ignore[index]
            self._touch(study_id)
            return claimed

    def enqueue(
        self, study_id: int, flat_params: dict[str, Any], lineage: dict[str, Any] | None = None
    ) -> int:
        with self._lock:
            trials = self._trials[study_id]
            number = len(trials)
            trial_id = self._new_id()
            trials.append(
                FrozenTrial(
                    number=number,
                    state=TrialState.WAITING,
                    flat_params=dict(flat_params),
                    created_at=time.time(),
                    id=trial_id,
                    lineage=copy.deepcopy(lineage),
                )
            )
            self._charged[study_id].add(number)
            self._waiting[study_id].append(number)
            self._where[trial_id] = (study_id, number)
            self._touch(study_id)
            return number

    def retry(self, study_id: int, number: int) -> int | None:
        with self._lock:
            trials = self._trials[study_id]
            if not 0 <= number < len(trials):
                return None
            failed = trials[number]
            if failed.state is not TrialState.FAILED or number not in self._charged[study_id]:
                return None
            self._charged[study_id].discard(number)
            again = self.enqueue(study_id, failed.flat_params, failed.lineage)  # re-entrant lock
            trials[again] = dataclasses.replace(trials[again], parent_number=number)
            return again

    def _leased(
        self, trial_id: int, owner: str, epoch: int
    ) -> tuple[list[FrozenTrial], FrozenTrial] | None:
        if trial_id not in self._leases:
            return None
        study_id, number = self._where[trial_id]
        trials = self._trials[study_id]
        trial = trials[number]
        if trial.owner != owner or trial.lease_epoch != epoch:
            return None
        return trials, trial

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
        with self._lock:
            found = self._leased(trial_id, owner, epoch)
            if found is None:
                return False
            trials, trial = found
            trials[trial.number] = dataclasses.replace(
                trial,
                state=outcome.state,
                value=outcome.value,
                metrics=dict(outcome.metrics),
                failure_reason=outcome.failure_reason,
                failure_detail=outcome.failure_detail,
                finished_at=time.time(),
                flat_params=dict(flat_params) if flat_params is not None else trial.flat_params,
                distributions=distributions if distributions is not None else trial.distributions,
                user_attrs={**trial.user_attrs, **(user_attrs or {})},
                **({} if ran_on is None else {
                    "host": ran_on.host, "worker": ran_on.worker, "gpus": ran_on.gpus}),
            )
            self._leases.pop(trial_id, None)
            self._touch(self._where[trial_id][0])
            return True

    def report(
        self, trial_id: int, owner: str, epoch: int, step: int | None, metrics: dict[str, float]
    ) -> bool:
        with self._lock:
            if self._leased(trial_id, owner, epoch) is None:
                return False
            now = time.time()
            points = self._metrics.setdefault(trial_id, [])
            points.extend(MetricPoint(name, step, value, now) for name, value in metrics.items())
            return True

    def report_many(
        self, rows: Sequence[tuple[int, str, int, int | None, dict[str, float], float]]
    ) -> list[bool]:
        with self._lock:  # all rows at once, as one transaction would
            now = time.time()
            leased: dict[tuple[int, str, int], bool] = {}
            out = []
            for trial_id, owner, epoch, step, metrics, age in rows:
                key = (trial_id, owner, epoch)
                if key not in leased:
                    leased[key] = self._leased(trial_id, owner, epoch) is not None
                if leased[key]:
                    points = self._metrics.setdefault(trial_id, [])
                    ts = now - max(age, 0.0)
                    points.extend(MetricPoint(name, step, v, ts) for name, v in metrics.items())
                out.append(leased[key])
            return out

    def append_logs(
        self,
        trial_id: int,
        owner: str,
        epoch: int,
        stream: str,
        lines: Sequence[tuple[int, str]],
    ) -> bool:
        with self._lock:
            if self._leased(trial_id, owner, epoch) is None:
                return False
            self._logs.setdefault(trial_id, []).extend(
                LogLine(stream, seq, text) for seq, text in lines
            )
            return True

    def get_logs(
        self, trial_id: int, stream: str | None = None, after_seq: int = -1
    ) -> list[LogLine]:
        with self._lock:
            lines = list(self._logs.get(trial_id, []))
        return [
            line
            for line in lines
            if (stream is None or line.stream == stream) and line.seq > after_seq
        ]

    def get_trial(self, study_id: int, number: int) -> FrozenTrial | None:
        with self._lock:
            trials = self._trials.get(study_id, [])
            return trials[number] if 0 <= number < len(trials) else None

    def heartbeat(self, owner: str, lease_seconds: float) -> int:
        with self._lock:
            renewed = 0
            for trial_id in self._leases:
                study_id, number = self._where[trial_id]
                if self._trials[study_id][number].owner == owner:
                    self._leases[trial_id] = time.time() + lease_seconds
                    renewed += 1
            return renewed

    def sweep_stale(
        self, study_id: int, *, retry: bool = False, dead_owners: Iterable[str] = ()
    ) -> list[int]:
        dead = set(dead_owners)
        with self._lock:
            now = time.time()
            trials = self._trials[study_id]
            swept = []
            for trial in self._running(study_id):
                expired = self._leases.get(trial.id, 0.0) < now  # type: ignore[arg-type]
                if not (expired or trial.owner in dead):
                    continue
                trials[trial.number] = dataclasses.replace(
                    trial,
                    state=TrialState.FAILED,
                    failure_reason=FailureReason.STALE.value,
                    failure_detail=stale_detail(trial.owner, expired),
                    finished_at=now,
                )
                self._leases.pop(trial.id, None)  # type: ignore[arg-type]
                self._touch(study_id)
                swept.append(trial.number)
                if retry and trial.parent_number is None:
                    self._charged[study_id].discard(trial.number)
                    number = self.enqueue(study_id, trial.flat_params, trial.lineage)
                    trials[number] = dataclasses.replace(trials[number], parent_number=trial.number)
            return swept

    def running_owners(self, study_id: int) -> set[str]:
        with self._lock:
            return {t.owner for t in self._running(study_id) if t.owner}

    def _running(self, study_id: int) -> list[FrozenTrial]:
        where = (self._where[trial_id] for trial_id in self._leases)
        return [self._trials[study][number] for study, number in where if study == study_id]

    def get_trials(
        self, study_id: int, states: Sequence[TrialState] | None = None
    ) -> list[FrozenTrial]:
        with self._lock:
            trials = list(self._trials.get(study_id, []))
        if states is not None:
            wanted = set(states)
            trials = [t for t in trials if t.state in wanted]
        return trials

    def get_metrics(self, trial_id: int) -> list[MetricPoint]:
        with self._lock:
            return list(self._metrics.get(trial_id, []))

    def get_metrics_many(
        self, trial_ids: Sequence[int], name: str | None = None
    ) -> dict[int, list[MetricPoint]]:
        with self._lock:  # one consistent snapshot, as one query would give
            out: dict[int, list[MetricPoint]] = {}
            for trial_id in dict.fromkeys(trial_ids):
                points = [
                    p for p in self._metrics.get(trial_id, []) if name is None or p.name == name
                ]
                if points:
                    out[trial_id] = points
            return out

    def resource_used(self, study_id: int) -> int:
        with self._lock:
            total = 0
            for trial in self._trials[study_id]:
                points = self._metrics.get(trial.id, [])  # type: ignore[arg-type]
                cached = self._spans.get(trial.id)  # type: ignore[arg-type]
                if cached is None or cached[0] != len(points):  # points are only appended
                    steps = [p.step for p in points if p.step is not None]
                    span = max(steps) - min(steps) + 1 if steps else 0
                    cached = self._spans[trial.id] = (len(points), span)  # type: ignore[index]
                total += cached[1]
            return total

    def summary(self, study_id: int, direction: str) -> StudySummary:
        with self._lock:
            return summarize(self._trials[study_id], len(self._charged[study_id]), direction)

    def get_cache(self, study_id: int, name: str) -> dict[str, Any] | None:
        with self._lock:
            text = self._caches.get((study_id, name))
        return None if text is None else json.loads(text)

    def put_cache(self, study_id: int, name: str, data: dict[str, Any]) -> None:
        text = json.dumps(data, allow_nan=False)  # a copy, and JSON as SQL storage keeps it
        with self._lock:
            if study_id not in self._trials:
                raise KeyError(f"no study with id {study_id}")
            self._caches[(study_id, name)] = text

    def add_note(self, study_id: int, trial_number: int | None, text: str) -> None:
        with self._lock:
            self._notes.setdefault(study_id, []).append(Note(trial_number, text, time.time()))
            self._touch(study_id)

    def get_notes(self, study_id: int, trial_number: int | None = None) -> list[Note]:
        with self._lock:
            return [n for n in self._notes.get(study_id, []) if n.trial_number == trial_number]


def _queue_place(trial: FrozenTrial) -> int:
    """Where a WAITING trial is claimed: a re-run takes the place of the trial it re-runs."""
    return trial.number if trial.parent_number is None else trial.parent_number


def stale_detail(owner: str | None, expired: bool) -> str:
    why = "its lease expired" if expired else "its worker process is gone"
    return f"worker {owner} stopped answering: {why}"


def summarize(trials: Sequence[FrozenTrial], n_charged: int, direction: str) -> StudySummary:
    """A StudySummary computed from trial records (used where no SQL does it)."""
    counts: dict[str, int] = {}
    best: FrozenTrial | None = None
    sign = 1.0 if direction == "minimize" else -1.0
    for trial in trials:
        counts[trial.state.value] = counts.get(trial.state.value, 0) + 1
        if trial.state is TrialState.COMPLETE and (
            best is None or sign * trial.value < sign * best.value  # type: ignore[operator]
        ):
            best = trial
    since = 0
    if best is not None:
        since = sum(
            1
            for t in trials
            if t.state is TrialState.COMPLETE and (t.finished_at or 0.0) > (best.finished_at or 0.0)
        )
    return StudySummary(
        n_charged,
        counts,
        None if best is None else best.number,
        None if best is None else best.value,
        since,
    )
