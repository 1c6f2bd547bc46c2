"""Reports and log lines of running trials, written to storage in batches by a background thread.

Every report of a trial — ``trial.report`` in a Python objective (in process or in a pool
child), ``hs.report()`` inside one, the client line or a metric line of a shell command — ends
in `ReportBuffer.report_metrics`, the one function that stores a report and answers with a
`Decision`. Storing means queueing: a writer thread writes what is queued in one transaction
(`Storage.report_many`) at least every `interval` seconds, as soon as `batch_size` rows wait,
and whenever `flush` is called. The driver calls ``flush(trial)`` before it writes the trial's
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
import logging
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from hypersearch.errors import HypersearchError
from hypersearch.space import Distribution
from hypersearch.storage.base import Storage
from hypersearch.trial import Decision, FrozenTrial

log = logging.getLogger("hypersearch.reports")

# decide(trial, step, metrics) -> Decision: where a scheduler answers a report (a later issue)
Decide = Callable[[FrozenTrial, "int | None", "dict[str, float]"], Decision]


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
        interval: float = 0.5,
        batch_size: int = 5_000,
        max_pending: int = 50_000,
    ) -> None:
        if not 0 < batch_size <= max_pending:
            raise ValueError(f"need 0 < batch_size <= max_pending, got {batch_size}, {max_pending}")
        self.storage = storage
        self.decide = decide
        self._suggest = suggest
        self.interval = interval
        self.batch_size = batch_size  # rows that wake the writer, and the most per transaction
        self.max_pending = max_pending  # rows (reports, log lines) queued before producers wait
        self._lock = threading.Lock()  # the hot path takes it bare: Condition's is Python code
        self._cond = threading.Condition(self._lock)
        # Two queues, each kept in arrival order: reports (trial, step, metrics, monotonic time)
        # and log chunks (trial, stream, lines). Counters number their items, so a flush knows
        # when the items of one trial queued so far are written.
        self._reports: list[tuple[FrozenTrial, int | None, dict[str, float], float]] = []
        self._logs: list[tuple[FrozenTrial, str, list[tuple[int, str]]]] = []
        self._log_rows = 0  # lines in _logs (memory is bounded in rows: reports + lines)
        self._queued = [0, 0]  # reports, log chunks ever queued
        self._written = [0, 0]  # ... and written (or given up on)
        self._last: dict[int, list[int]] = {}  # trial id -> [its latest report, log chunk]
        self._urgent = 0  # flush() calls waiting: the writer does not wait for the interval
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
        # the hot path (100k lines of one command): one lock, one append, no function calls
        with self._lock:
            if len(self._reports) + self._log_rows >= self.max_pending or self._closed:
                self._wait_for_room()
            self._reports.append((trial, step, metrics, time.monotonic()))
            self._queued[0] += 1
            last = self._last.get(trial.id)  # type: ignore[arg-type]
            if last is None:
                self._last[trial.id] = [self._queued[0], 0]  # type: ignore[index]
            else:
                last[0] = self._queued[0]
            if len(self._reports) == self.batch_size:
                self._cond.notify_all()
            closed = self._closed
        if closed:
            self._write_after_close()
        if self.decide is always_continue:
            return Decision.CONTINUE
        try:
            return self.decide(trial, step, metrics)
        except Exception:  # a scheduler's bug must not end the trial
            log.exception("trial %d: deciding on the report at step %s failed", trial.number, step)
            return Decision.CONTINUE

    def append_logs(
        self, trial: FrozenTrial, stream: str, lines: Sequence[tuple[int, str]]
    ) -> None:
        """Store (seq, text) output lines of a trial (queued)."""
        if not lines:
            return
        with self._lock:
            if len(self._reports) + self._log_rows >= self.max_pending or self._closed:
                self._wait_for_room()
            self._logs.append((trial, stream, list(lines)))
            self._log_rows += len(lines)
            self._queued[1] += 1
            self._last.setdefault(trial.id, [0, 0])[1] = self._queued[1]  # type: ignore[arg-type]
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
        """Return once everything queued for `trial` (for every trial when None) is written."""
        with self._cond:
            # a snapshot: what is queued now, for this trial or for all
            target = list(self._queued if trial is None else self._last.get(trial.id, [0, 0]))  # type: ignore[arg-type]
            if not self._done(target) and self._thread.is_alive():
                self._urgent += 1
                self._cond.notify_all()
                try:
                    while not self._done(target) and self._thread.is_alive():
                        self._cond.wait(0.5)
                finally:
                    self._urgent -= 1
        if not self._done(target):  # closed: write on this thread
            self._write_after_close()
        if trial is not None and trial.id is not None:
            with self._cond:
                if self._done(self._last.get(trial.id, [0, 0])):
                    self._last.pop(trial.id, None)  # it ended: forget it
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

    def _done(self, target: list[int]) -> bool:
        return self._written[0] >= target[0] and self._written[1] >= target[1]

    def _wait_for_room(self) -> None:
        """Bounded memory: wait for the writer rather than drop (it always makes progress:
        storage retries transient errors, then gives up with a logged error). Lock held."""
        while (
            len(self._reports) + self._log_rows >= self.max_pending
            and not self._closed
            and self._thread.is_alive()
        ):
            self._cond.notify_all()
            self._cond.wait(0.1)

    def _take(self) -> tuple[list[Any], list[Any]]:
        """The next batch, in order: up to `batch_size` reports and every queued log chunk
        (the command executor already bounds those: a head and a tail per stream)."""
        reports = self._reports[: self.batch_size]
        del self._reports[: self.batch_size]
        logs, self._logs, self._log_rows = self._logs, [], 0
        return reports, logs

    def _write_after_close(self) -> None:
        """After close (the writer has stopped): write what is queued on this thread."""
        with self._write_lock:
            while True:
                with self._cond:
                    if self._thread.is_alive() or not (self._reports or self._logs):
                        return
                    reports, logs = self._take()
                self._write_batch(reports, logs)

    # -- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                deadline = time.monotonic() + self.interval
                while not (self._closed or self._urgent or len(self._reports) >= self.batch_size):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if not (self._reports or self._logs):
                    if self._closed:
                        return
                    continue
                reports, logs = self._take()
                self._cond.notify_all()  # producers waiting for room
            with self._write_lock:  # storage work outside the lock: producers keep queueing
                self._write_batch(reports, logs)

    def _write_batch(self, reports: list[Any], logs: list[Any]) -> None:
        try:
            self._write(reports, logs)
        except Exception as error:  # _write logs storage errors: this is a bug; keep going
            lines = sum(len(chunk[2]) for chunk in logs)
            self._lost(error, len(reports) + lines, "rows", {t.number for t, *_ in reports})
        with self._cond:
            self._written[0] += len(reports)
            self._written[1] += len(logs)
            self._cond.notify_all()

    def _write(self, reports: list[Any], logs: list[Any]) -> None:
        """Write one batch: its reports in one `report_many`, its logs grouped per stream.
        Storage errors are logged with what they cost, not raised."""
        if reports:
            now = time.monotonic()
            rows = [
                (trial.id, trial.owner or "", trial.lease_epoch, step, metrics, now - at)
                for trial, step, metrics, at in reports
            ]
            try:
                stored = self.storage.report_many(rows)
            except Exception as error:
                self._lost(error, len(rows), "reports", {t.number for t, *_ in reports})
            else:
                self.rows_written += sum(stored)
                if not all(stored):
                    refused: dict[int, tuple[FrozenTrial, int]] = {}
                    for (trial, *_), ok in zip(reports, stored, strict=True):
                        if not ok:
                            refused[trial.id] = (trial, refused.get(trial.id, (trial, 0))[1] + 1)
                    for trial, count in refused.values():
                        self._refuse(trial, count)
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


_OPEN: weakref.WeakSet[ReportBuffer] = weakref.WeakSet()


@atexit.register
def _close_at_exit() -> None:
    for buffer in list(_OPEN):
        buffer.close()
