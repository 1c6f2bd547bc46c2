"""Reports and log lines of running trials, written to storage in batches by a background thread.

Every report of a trial — ``trial.report`` in a Python objective (in process or in a pool
child), ``hs.report()`` inside one, the client line or a metric line of a shell command — ends
in `ReportBuffer.report_metrics`, the one function that stores a report and answers with a
`Decision`. Storing means queueing: a writer thread writes what is queued in one transaction
(`Storage.report_many`) at least every `interval` seconds, as soon as `batch_size` rows wait,
and `flush` writes what is queued on the calling thread. The driver calls ``flush(trial)`` before it writes the trial's
finish, so a finished trial's curve is complete, and ``close()`` at the end, which writes the
rest. The queue is bounded: a producer that outruns the writer waits for it; nothing is dropped
on a clean run. Rows refused because the trial's lease moved on are logged (once per trial, with
a total at its flush); a storage error is logged with the number of rows it cost.

Example::

    buffer = ReportBuffer(study.storage)
    executor = CommandExecutor(spec, space, sink=buffer, capacity=2)
    ...
    buffer.flush(finished.trial)   # then study.record_finished(finished)
    ...
    buffer.close()
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

from hypersearch.errors import HypersearchError
from hypersearch.space import Distribution
from hypersearch.storage.base import Storage
from hypersearch.trial import Decision, FrozenTrial

log = logging.getLogger("hypersearch.reports")

# decide(trial, step, metrics) -> Decision, or an answer with `.decision` and `.reason` (a
# scheduler's Verdict): where the study's scheduler answers a report
Decide = Callable[[FrozenTrial, "int | None", "dict[str, float]"], Any]


def always_continue(trial: FrozenTrial, step: int | None, metrics: dict[str, float]) -> Decision:
    """The decision while no scheduler is configured."""
    return Decision.CONTINUE


class ReportBuffer:
    """The sink running trials report to: queues reports and log lines, writes them in batches.

    `decide` is asked about every report on the caller's thread, after the report is queued;
    its answer is returned to the trial. It must be quick (the driver thread waits for it).
    `suggest` answers define-by-run ``trial.suggest_*`` (``study.suggest_param``), so the buffer
    can be the whole sink of the Python executors.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        decide: Decide = always_continue,
        suggest: Callable[[FrozenTrial, str, Distribution], Any] | None = None,
        explain: Callable[[FrozenTrial], str | None] | None = None,
        interval: float = 0.5,
        batch_size: int = 5_000,
        max_pending: int = 50_000,
    ) -> None:
        if not 0 < batch_size <= max_pending:
            raise ValueError(f"need 0 < batch_size <= max_pending, got {batch_size}, {max_pending}")
        self.storage = storage
        self.decide = decide
        self._suggest = suggest
        self._explain = explain
        self.interval = interval
        self.batch_size = batch_size  # rows that wake the writer, and the most per transaction
        self.max_pending = max_pending  # rows (reports, log lines) queued before producers wait
        self._lock = threading.Lock()  # the hot path takes it bare: Condition's is Python code
        self._cond = threading.Condition(self._lock)
        # Two queues, each kept in arrival order: report chunks (trial id, owner, lease epoch,
        # [steps], [metrics], monotonic time: one chunk per call, its reports as columns, so
        # 50k queued reports are a few hundred objects for the garbage collector to follow,
        # not 50k) and log chunks (trial, stream, lines). Each trial's items are counted
        # (`_Counts`), so a flush knows when the items of one trial queued so far are written;
        # a trial's own items always keep their order, but a trial being flushed may go first
        # (`_take`).
        self._reports: collections.deque[_Chunk] = collections.deque()
        self._report_rows = 0  # reports in _reports
        self._logs: list[tuple[FrozenTrial, str, list[tuple[int, str]]]] = []
        self._log_rows = 0  # lines in _logs (memory is bounded in rows: reports + lines)
        self._counts: dict[int, _Counts] = {}  # trial id -> its items queued, taken, written
        self._urgent_ids: dict[int, int] = {}  # trial id -> flush(trial) calls waiting for it
        self._closed = False
        self._refused: dict[int, int] = {}  # trial id -> rows refused (lease lost)
        self._warned: dict[int, int] = {}  # trial id -> rows refused when last logged
        self.rows_written = 0  # metric rows (reports) stored
        self.rows_refused = 0
        self.rows_lost = 0  # reports and log lines a storage error cost
        self.last_error: BaseException | None = None
        self._write_lock = threading.Lock()  # one batch at a time reaches storage, in order
        self._thread = threading.Thread(target=self._run, name="hypersearch-reports", daemon=True)
        self._thread.start()
        _OPEN.add(self)  # a buffer nobody closed still writes what it holds at exit

    # -- the sink interface ---------------------------------------------------------------------

    def report_metrics(
        self, trial: FrozenTrial, step: int | None, metrics: dict[str, float]
    ) -> Decision:
        """Store one report (queued; the buffer keeps `metrics`) and return the decision."""
        # the hot path of Python objectives: one lock, one append, no function calls
        with self._lock:
            if self._report_rows + self._log_rows >= self.max_pending or self._closed:
                self._wait_for_room()
            at = time.monotonic()
            self._reports.append(
                (trial.id, trial.owner or "", trial.lease_epoch, [step], [metrics], at)
            )  # type: ignore[arg-type]
            self._report_rows += 1
            counts = self._counts.get(trial.id)  # type: ignore[arg-type]
            if counts is None:
                counts = self._counts[trial.id] = _Counts(trial)  # type: ignore[index]
            counts.reports += 1
            if self._report_rows == self.batch_size:
                self._cond.notify_all()
            closed = self._closed
        if closed:
            self._write_after_close()
        if self.decide is always_continue:
            return Decision.CONTINUE
        return self._decision(trial, step, metrics)

    def report_metrics_many(
        self,
        trial: FrozenTrial,
        steps: Sequence[int | None],
        metrics: Sequence[dict[str, float]],
    ) -> list[Decision] | None:
        """`report_metrics` of many reports of one trial, in order, as parallel lists of steps
        and metrics (a command's lines of one read): queued a batch at a time, each under one
        lock as one chunk. Returns the decisions in order, or None when every one is CONTINUE
        (no scheduler)."""
        now = time.monotonic()
        tid, owner, epoch = trial.id, trial.owner or "", trial.lease_epoch
        size, n = self.batch_size, len(steps)
        for start in range(0, n, size):  # a batch always fits in memory
            if n <= size:
                chunk = (tid, owner, epoch, list(steps), list(metrics), now)
            else:
                end = start + size
                chunk = (tid, owner, epoch, list(steps[start:end]), list(metrics[start:end]), now)
            rows = len(chunk[3])
            with self._lock:
                before = self._report_rows
                if before + self._log_rows + rows > self.max_pending or self._closed:
                    self._wait_for_room(rows)
                    before = self._report_rows
                self._reports.append(chunk)  # type: ignore[arg-type]
                self._report_rows += rows
                counts = self._counts.get(tid)  # type: ignore[arg-type]
                if counts is None:
                    counts = self._counts[tid] = _Counts(trial)  # type: ignore[index]
                counts.reports += rows
                if before < size <= before + rows:
                    self._cond.notify_all()
                closed = self._closed
            if closed:
                self._write_after_close()
        if self.decide is always_continue:
            return None
        return [self._decision(trial, s, m) for s, m in zip(steps, metrics, strict=True)]

    def _decision(
        self, trial: FrozenTrial, step: int | None, metrics: dict[str, float]
    ) -> Decision:
        try:
            answer = self.decide(trial, step, metrics)
        except Exception:  # a scheduler's bug must not end the trial
            log.exception("trial %d: deciding on the report at step %s failed", trial.number, step)
            return Decision.CONTINUE
        return answer if isinstance(answer, Decision) else answer.decision  # type: ignore[no-any-return]

    def stop_reason(self, trial: FrozenTrial) -> str | None:
        """Why the scheduler told `trial` to stop (None: it did not, or gave no reason)."""
        return None if self._explain is None else self._explain(trial)

    def append_logs(
        self, trial: FrozenTrial, stream: str, lines: Sequence[tuple[int, str]]
    ) -> None:
        """Store (seq, text) output lines of a trial (queued)."""
        if not lines:
            return
        with self._lock:
            if self._report_rows + self._log_rows >= self.max_pending or self._closed:
                self._wait_for_room()
            self._logs.append((trial, stream, list(lines)))
            self._log_rows += len(lines)
            counts = self._counts.get(trial.id)  # type: ignore[arg-type]
            if counts is None:
                counts = self._counts[trial.id] = _Counts(trial)  # type: ignore[index]
            counts.logs += 1
            closed = self._closed
        if closed:
            self._write_after_close()

    def suggest_param(self, trial: FrozenTrial, name: str, dist: Distribution) -> Any:
        """A define-by-run parameter for `trial`, from the `suggest` given at construction."""
        if self._suggest is None:
            raise HypersearchError(
                "this ReportBuffer was made without `suggest`; define-by-run objectives need "
                "ReportBuffer(storage, suggest=study.suggest_param)"
            )
        return self._suggest(trial, name, dist)

    def flush(self, trial: FrozenTrial | None = None) -> None:
        """Return once everything queued for `trial` (for every trial when None) is written.
        The caller writes what is still queued itself (that trial's rows first) rather than
        wake the writer thread and wait: a thread switch costs milliseconds, a tell should not."""
        tid = None if trial is None else trial.id
        with self._cond:
            # a snapshot: what is queued now, for this trial or for all
            if trial is None:
                chosen: Any = self._counts.values()
            else:
                chosen = [self._counts.get(tid)]  # type: ignore[arg-type]
            target = [(c, c.reports, c.logs) for c in chosen if c is not None]
            urgent = tid is not None and not _done(target)
            if urgent:  # whoever takes the next batch takes this trial's rows first
                self._urgent_ids[tid] = self._urgent_ids.get(tid, 0) + 1  # type: ignore[index]
        try:
            while not _done(target):
                with self._write_lock:  # one batch at a time, in the order they were taken
                    with self._cond:
                        if _done(target):
                            break
                        reports, logs, done = self._take()
                        self._cond.notify_all()  # producers waiting for room
                    if not (reports or logs):
                        break  # taken by another thread and written (or given up on) by it
                    self._write_batch(reports, logs, done)
        finally:
            if urgent:
                with self._cond:
                    self._urgent_ids[tid] -= 1
                    if not self._urgent_ids[tid]:
                        del self._urgent_ids[tid]
        if trial is not None and tid is not None:
            with self._cond:
                counts = self._counts.get(tid)
                if counts is not None and counts.idle():
                    del self._counts[tid]  # it ended: forget it
            self._summarise_refused(trial)

    def close(self) -> None:
        """Write everything queued and stop the writer. Later reports are written at once."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        _OPEN.discard(self)
        self._thread.join()
        self._write_after_close()  # whatever arrived while the writer stopped

    # -- queueing -------------------------------------------------------------------------------

    def _wait_for_room(self, rows: int = 1) -> None:
        """Bounded memory: wait for the writer rather than drop (it always makes progress:
        storage retries transient errors, then gives up with a logged error) until `rows` more
        fit (at most `batch_size`: they always do once the queue is empty). Lock held."""
        while (
            self._report_rows + self._log_rows + rows > self.max_pending
            and not self._closed
            and self._thread.is_alive()
        ):
            self._cond.notify_all()
            self._cond.wait(0.1)

    @property
    def pending_rows(self) -> int:
        """Reports and log lines queued, not yet taken by the writer."""
        return self._report_rows + self._log_rows

    def _take(self) -> tuple[list[_Chunk], list[Any], list[tuple[_Counts, int, int]]]:
        """The next batch (lock held): report chunks of up to `batch_size` reports in all and
        every queued log chunk (the command executor already bounds those: a head and a tail
        per stream), and how many items of which trial it holds. Reports go in arrival order,
        except that a trial somebody is flushing goes first (its own reports still in order):
        a short trial that ends beside a command printing 100k lines does not wait behind
        that one's backlog."""
        room = self.batch_size
        taken: list[_Chunk] = []
        if self._report_rows > room and self._urgent_ids:
            waiting = [c for t in self._urgent_ids if (c := self._counts.get(t)) is not None]
            in_queue = sum(c.reports - c.taken for c in waiting)
            if 0 < in_queue < self._report_rows:  # some of the queue is theirs, not all of it
                ids, kept = self._urgent_ids, collections.deque()
                for chunk in self._reports:
                    if room and chunk[0] in ids:
                        if len(chunk[3]) > room:
                            chunk, rest = _split(chunk, room)
                            kept.append(rest)
                        taken.append(chunk)
                        room -= len(chunk[3])
                    else:
                        kept.append(chunk)
                self._reports = kept
        queue = self._reports
        while room and queue:
            chunk = queue.popleft()
            if len(chunk[3]) > room:
                chunk, rest = _split(chunk, room)
                queue.appendleft(rest)
            taken.append(chunk)
            room -= len(chunk[3])
        self._report_rows -= self.batch_size - room
        logs, self._logs, self._log_rows = self._logs, [], 0
        per_trial: dict[Any, list[int]] = {}
        for chunk in taken:
            per_trial.setdefault(chunk[0], [0, 0])[0] += len(chunk[3])
        for trial, *_ in logs:
            per_trial.setdefault(trial.id, [0, 0])[1] += 1
        done = []
        for trial_id, (n_reports, n_logs) in per_trial.items():
            counts = self._counts.get(trial_id)
            if counts is not None:  # (always: a trial's counts stay while it has items)
                counts.taken += n_reports
                done.append((counts, n_reports, n_logs))
        return taken, logs, done

    def _write_after_close(self) -> None:
        """After close (the writer has stopped): write what is queued on this thread."""
        with self._write_lock:
            while True:
                with self._cond:
                    if self._thread.is_alive() or not (self._reports or self._logs):
                        return
                    reports, logs, done = self._take()
                self._write_batch(reports, logs, done)

    # -- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self.interval
                while not (self._closed or self._report_rows >= self.batch_size):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if not (self._reports or self._logs):
                    if self._closed:
                        return
                    continue
            # taken under the write lock, so batches reach storage in the order they were taken
            # (a flushing thread writes too); storage work outside the buffer's lock
            with self._write_lock:
                with self._cond:
                    reports, logs, done = self._take()
                    self._cond.notify_all()  # producers waiting for room
                if reports or logs:
                    self._write_batch(reports, logs, done)

    def _write_batch(
        self, reports: list[Any], logs: list[Any], done: list[tuple[_Counts, int, int]]
    ) -> None:
        try:
            self._write(reports, logs, done)
        except Exception as error:  # _write logs storage errors: this is a bug; keep going
            rows = sum(n_reports for _, n_reports, _ in done) + sum(len(c[2]) for c in logs)
            self._lost(error, rows, "rows", {c.trial.number for c, *_ in done})
        with self._cond:
            for counts, n_reports, n_logs in done:  # written (or given up on)
                counts.written += n_reports
                counts.written_logs += n_logs
            self._cond.notify_all()

    def _write(
        self, reports: list[Any], logs: list[Any], done: list[tuple[_Counts, int, int]]
    ) -> None:
        """Write one batch: its reports in one `report_many`, its logs grouped per stream.
        Storage errors are logged with what they cost, not raised."""
        if reports:
            now = time.monotonic()
            rows: list[tuple[int, str, int, int | None, dict[str, float], float]] = []
            for trial_id, owner, epoch, steps, metrics, at in reports:  # rows made in C
                ids, owners, epochs, ages = (
                    repeat(trial_id),
                    repeat(owner),
                    repeat(epoch),
                    repeat(now - at),
                )
                rows += zip(ids, owners, epochs, steps, metrics, ages, strict=False)
            trials = {c.trial.id: c.trial for c, n_reports, _ in done if n_reports}
            try:
                stored = self.storage.report_many(rows)
            except Exception as error:
                numbers = {trial.number for trial in trials.values()}
                self._lost(error, len(rows), "reports", numbers)
            else:
                self.rows_written += sum(stored)
                if not all(stored):
                    refused: dict[int, int] = {}
                    for row, ok in zip(reports, stored, strict=True):
                        if not ok:
                            refused[row[0]] = refused.get(row[0], 0) + 1
                    for trial_id, count in refused.items():
                        self._refuse(trials[trial_id], count)
        grouped: dict[tuple[int, str, int, str], tuple[int, list[tuple[int, str]]]] = {}
        for trial, stream, lines in logs:
            key = (trial.id, trial.owner or "", trial.lease_epoch, stream)
            grouped.setdefault(key, (trial.number, []))[1].extend(lines)
        for (trial_id, owner, epoch, stream), (number, lines) in grouped.items():
            try:
                if not self.storage.append_logs(trial_id, owner, epoch, stream, lines):
                    log.warning(
                        "trial %d lost its lease; %d %s lines not recorded",
                        number,
                        len(lines),
                        stream,
                    )
            except Exception as error:
                self._lost(error, len(lines), f"{stream} lines", {number})

    def _lost(self, error: Exception, count: int, what: str, trials: set[int]) -> None:
        self.rows_lost += count
        self.last_error = error
        log.error(
            "%d %s of trial(s) %s not stored: %s: %s",
            count,
            what,
            sorted(trials),
            type(error).__name__,
            error,
            exc_info=not isinstance(error, HypersearchError),  # not storage trouble: a bug
        )

    def _refuse(self, trial: FrozenTrial, count: int) -> None:
        self.rows_refused += count
        key = trial.id or 0
        total = self._refused[key] = self._refused.get(key, 0) + count
        if key not in self._warned:  # once per trial; the total comes at its flush
            self._warned[key] = total
            log.warning("trial %d lost its lease; %d reports not recorded", trial.number, count)

    def _summarise_refused(self, trial: FrozenTrial) -> None:
        total = self._refused.pop(trial.id or 0, 0)
        if total > self._warned.pop(trial.id or 0, total):
            log.warning(
                "trial %d lost its lease; in all %d reports not recorded", trial.number, total
            )


class _Counts:
    """One trial's items in a buffer: reports queued, taken by the writer and written (or
    given up on), log chunks queued and written. Only ever grow; read and changed under the
    buffer's lock."""

    __slots__ = ("logs", "reports", "taken", "trial", "written", "written_logs")

    def __init__(self, trial: FrozenTrial) -> None:
        self.trial = trial  # the first one seen: for its number in messages
        self.reports = self.taken = self.written = self.logs = self.written_logs = 0

    def idle(self) -> bool:
        return self.written >= self.reports and self.written_logs >= self.logs


def _done(target: list[tuple[_Counts, int, int]]) -> bool:
    """Whether every (counts, reports, logs) snapshot of a flush is written."""
    return all(c.written >= r and c.written_logs >= n for c, r, n in target)


# a report chunk: trial id, owner, lease epoch, [steps], [metrics], monotonic time queued
_Chunk = tuple[int, str, int, list["int | None"], list["dict[str, float]"], float]


def _split(chunk: _Chunk, k: int) -> tuple[_Chunk, _Chunk]:
    """A chunk's first `k` reports, and the rest."""
    trial_id, owner, epoch, steps, metrics, at = chunk
    return (
        (trial_id, owner, epoch, steps[:k], metrics[:k], at),
        (trial_id, owner, epoch, steps[k:], metrics[k:], at),
    )


_OPEN: weakref.WeakSet[ReportBuffer] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    for buffer in list(_OPEN):
        buffer.close()
