"""One report path returning a Decision; reports written in batches off the driver's thread.

Covers `Storage.report_many` on every backend, `ReportBuffer` (ordering, flush before finish,
close, lease loss, bounded memory, writer errors, the decide seam), and the paths a report takes
to it: `trial.report` and `hs.report()` in process, in a pool child and in a thread the
objective started, and a shell command's metric lines.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import hypersearch
from hypersearch import client
from hypersearch.errors import StorageError
from hypersearch.execution.executors import InProcessExecutor, ProcessPoolExecutor
from hypersearch.execution.reports import ReportBuffer
from hypersearch.space import Space, uniform
from hypersearch.storage.base import Storage
from hypersearch.storage.memory import MemoryStorage
from hypersearch.trial import Decision, FrozenTrial, Outcome, Trial, TrialState

OWNER = "owner-a"


def new_trial(storage: Storage, name: str = "s", owner: str = OWNER) -> FrozenTrial:
    record = storage.get_study(name)
    if record is None:
        record, _ = storage.create_study(name, "minimize", "loss", None, {})
    trial = storage.claim(
        record.id,
        owner,
        propose=lambda history, number: {"x": float(number)},
        uses_history=False,
        max_trials=None,
        lease_seconds=3600.0,
    )
    assert trial is not None
    return trial


def curve(storage: Storage, trial: FrozenTrial) -> list[tuple[str, int | None, float]]:
    return [(p.name, p.step, p.value) for p in storage.get_metrics(trial.id)]  # type: ignore[arg-type]


def wait_until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()


# -- Storage.report_many ----------------------------------------------------------------------


def test_report_many_stores_in_order_and_fences_each_row(storage: Storage) -> None:
    a, b = new_trial(storage), new_trial(storage)
    assert a.id is not None and b.id is not None
    assert storage.report_many([]) == []
    before = time.time()
    rows = [
        (a.id, OWNER, a.lease_epoch, 0, {"loss": 1.0, "acc": 0.5}, 0.0),
        (b.id, OWNER, b.lease_epoch, 0, {"loss": 2.0}, 0.0),
        (a.id, "someone-else", a.lease_epoch, 1, {"loss": 9.0}, 0.0),  # not the lease owner
        (a.id, OWNER, a.lease_epoch + 1, 1, {"loss": 9.0}, 0.0),  # not the lease epoch
        (a.id, OWNER, a.lease_epoch, None, {"loss": -math.inf, "n": math.nan}, 0.0),
    ]
    assert storage.report_many(rows) == [True, True, False, False, True]
    points = curve(storage, a)
    assert points[:3] == [("loss", 0, 1.0), ("acc", 0, 0.5), ("loss", None, -math.inf)]
    assert points[3][:2] == ("n", None) and math.isnan(points[3][2])
    assert curve(storage, b) == [("loss", 0, 2.0)]
    stamps = [p.ts for p in storage.get_metrics(a.id)]
    assert all(abs(ts - before) < 60 for ts in stamps), "timestamps are epoch seconds"
    assert storage.finish(b.id, OWNER, b.lease_epoch, Outcome(TrialState.COMPLETE, 1.0))
    assert storage.report_many([(b.id, OWNER, b.lease_epoch, 1, {"loss": 1.0}, 0.0)]) == [False]
    assert curve(storage, b) == [("loss", 0, 2.0)], "a finished trial takes no more reports"


def test_report_many_stamps_each_row_when_it_was_reported(storage: Storage) -> None:
    trial = new_trial(storage)
    assert trial.id is not None
    rows = [(trial.id, OWNER, trial.lease_epoch, i, {"loss": 0.0}, 30.0 - i) for i in range(3)]
    assert storage.report_many(rows) == [True] * 3
    stamps = [p.ts for p in storage.get_metrics(trial.id)]
    assert stamps == sorted(stamps)
    assert stamps[1] - stamps[0] == pytest.approx(1.0, abs=0.01)
    assert time.time() - stamps[0] == pytest.approx(30.0, abs=10.0)


def test_report_many_of_many_rows(storage: Storage) -> None:
    trial = new_trial(storage)
    assert trial.id is not None
    n = 13_001  # more than one SQLite statement's worth of rows
    rows = [(trial.id, OWNER, trial.lease_epoch, i, {"loss": float(i)}, 0.0) for i in range(n)]
    assert all(storage.report_many(rows))
    assert [p.step for p in storage.get_metrics(trial.id)] == list(range(n))


# -- ReportBuffer -----------------------------------------------------------------------------


@pytest.fixture
def buffers() -> Any:
    made: list[ReportBuffer] = []

    def make(storage: Storage, **kwargs: Any) -> ReportBuffer:
        buffer = ReportBuffer(storage, **kwargs)
        made.append(buffer)
        return buffer

    yield make
    for buffer in made:
        buffer.close()


def test_order_is_kept_across_trials_batches_and_threads(storage: Storage, buffers: Any) -> None:
    buffer = buffers(storage, batch_size=7, max_pending=20)
    a, b = new_trial(storage), new_trial(storage)
    for step in range(100):
        buffer.report_metrics(a, step, {"loss": float(step)})
        buffer.report_metrics(b, step, {"loss": -float(step), "acc": float(step)})
    buffer.append_logs(a, "stdout", [(0, "one"), (1, "two")])
    buffer.append_logs(a, "stdout", [(2, "three")])
    buffer.flush(a)
    buffer.flush(b)
    assert curve(storage, a) == [("loss", s, float(s)) for s in range(100)]
    assert curve(storage, b) == [
        point for s in range(100) for point in (("loss", s, -float(s)), ("acc", s, float(s)))
    ]
    logs = storage.get_logs(a.id)  # type: ignore[arg-type]
    assert [(x.seq, x.text) for x in logs] == [(0, "one"), (1, "two"), (2, "three")]
    assert buffer.rows_written == 200 and buffer.rows_refused == buffer.rows_lost == 0


def test_reports_wait_for_a_flush_which_completes_them(storage: Storage, buffers: Any) -> None:
    buffer = buffers(storage, interval=3600.0, batch_size=10_000, max_pending=10_000)
    trial = new_trial(storage)
    for step in range(50):
        assert buffer.report_metrics(trial, step, {"loss": 1.0}) is Decision.CONTINUE
    time.sleep(0.05)
    assert curve(storage, trial) == [], "queued, not written on the caller's thread"
    buffer.flush(trial)  # what the driver does before it writes the trial's finish
    assert [step for _, step, _ in curve(storage, trial)] == list(range(50))
    buffer.flush(trial)  # nothing left: returns at once
    buffer.flush(new_trial(storage))  # a trial that never reported


def test_the_writer_flushes_on_its_own_within_the_interval(storage: Storage, buffers: Any) -> None:
    buffer = buffers(storage, interval=0.05)
    trial = new_trial(storage)
    buffer.report_metrics(trial, 0, {"loss": 1.0})
    buffer.append_logs(trial, "stderr", [(0, "warning")])
    assert wait_until(lambda: len(curve(storage, trial)) == 1, seconds=5.0)
    assert wait_until(lambda: len(storage.get_logs(trial.id)) == 1, seconds=5.0)  # type: ignore[arg-type]


def test_a_full_batch_wakes_the_writer_before_the_interval(buffers: Any) -> None:
    storage = MemoryStorage()
    buffer = buffers(storage, interval=3600.0, batch_size=10, max_pending=100)
    trial = new_trial(storage)
    for step in range(10):
        buffer.report_metrics(trial, step, {"loss": 1.0})
    assert wait_until(lambda: len(curve(storage, trial)) == 10, seconds=5.0)


def test_close_writes_everything_and_later_reports_go_straight_through(
    storage: Storage,
) -> None:
    buffer = ReportBuffer(storage, interval=3600.0, batch_size=10_000, max_pending=10_000)
    trial = new_trial(storage)
    for step in range(20):
        buffer.report_metrics(trial, step, {"loss": 1.0})
    buffer.append_logs(trial, "stdout", [(0, "bye")])
    buffer.close()
    assert len(curve(storage, trial)) == 20
    assert len(storage.get_logs(trial.id)) == 1  # type: ignore[arg-type]
    assert buffer.report_metrics(trial, 20, {"loss": 0.5}) is Decision.CONTINUE
    assert curve(storage, trial)[-1] == ("loss", 20, 0.5), "written at once after close"
    buffer.flush(trial)
    buffer.close()  # twice is fine


def test_rows_of_a_lost_lease_are_refused_and_logged_once(
    storage: Storage, buffers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    buffer = buffers(storage, batch_size=10, max_pending=100)
    trial, other = new_trial(storage), new_trial(storage)
    assert trial.id is not None
    # the lease moves on (the trial was swept, or finished by a later claim of it)
    assert storage.finish(trial.id, OWNER, trial.lease_epoch, Outcome(TrialState.FAILED))
    with caplog.at_level(logging.WARNING, logger="hypersearch.reports"):
        for step in range(35):
            buffer.report_metrics(trial, step, {"loss": 1.0})
            buffer.report_metrics(other, step, {"loss": 1.0})
        buffer.append_logs(trial, "stdout", [(0, "late")])
        buffer.flush(trial)
        buffer.flush(other)
    assert curve(storage, trial) == [] and storage.get_logs(trial.id) == []
    assert len(curve(storage, other)) == 35, "the other trial's rows in the same batches stay"
    assert buffer.rows_refused == 35 and buffer.rows_written == 35
    warnings = [r.getMessage() for r in caplog.records if "lost its lease" in r.getMessage()]
    assert warnings[0].startswith(f"trial {trial.number} lost its lease; ")
    assert any("in all 35 reports" in w for w in warnings), warnings
    assert any("stdout lines not recorded" in w for w in warnings), warnings
    assert len(warnings) <= 3, "not one warning per row"


class _GatedStorage(MemoryStorage):
    """A storage whose report_many waits for a gate (a slow or stuck database)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def report_many(self, rows: Any) -> list[bool]:
        self.entered.set()
        self.gate.wait(30)
        return super().report_many(rows)


def test_memory_is_bounded_producers_wait_and_nothing_is_dropped(buffers: Any) -> None:
    storage = _GatedStorage()
    buffer = buffers(storage, interval=0.01, batch_size=5, max_pending=20)
    trial = new_trial(storage)
    done = threading.Event()

    def produce() -> None:
        for step in range(200):
            buffer.report_metrics(trial, step, {"loss": float(step)})
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    assert storage.entered.wait(10)
    time.sleep(0.2)
    assert not done.is_set(), "the producer waits while the writer is stuck"
    assert buffer.pending_rows <= 20, "the queue stays within max_pending"
    storage.gate.set()
    producer.join(30)
    assert done.is_set()
    buffer.flush(trial)
    assert [step for _, step, _ in curve(storage, trial)] == list(range(200))


class _FailingStorage(MemoryStorage):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def report_many(self, rows: Any) -> list[bool]:
        if self.failures:
            self.failures -= 1
            raise StorageError("sqlite:///x.db: disk I/O error")
        return super().report_many(rows)

    def append_logs(self, *args: Any) -> bool:
        raise RuntimeError("a bug in a backend")


def test_a_writer_error_is_logged_counted_and_the_writer_goes_on(
    buffers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    storage = _FailingStorage(failures=1)
    buffer = buffers(storage, interval=3600.0)
    trial = new_trial(storage)
    with caplog.at_level(logging.ERROR, logger="hypersearch.reports"):
        for step in range(3):
            buffer.report_metrics(trial, step, {"loss": 1.0})
        buffer.append_logs(trial, "stdout", [(0, "a"), (1, "b")])
        buffer.flush(trial)  # returns: a failed write does not hang the driver
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        "3 reports of trial(s) [0] not stored: StorageError" in r.getMessage() for r in errors
    )
    assert any("2 stdout lines" in r.getMessage() and r.exc_info for r in errors), (
        "a non-storage error shows its traceback"
    )
    assert buffer.rows_lost == 5 and isinstance(buffer.last_error, RuntimeError)
    buffer.report_metrics(trial, 3, {"loss": 2.0})
    buffer.flush(trial)
    assert curve(storage, trial) == [("loss", 3, 2.0)], "the writer survived the errors"


def test_decide_is_the_seam_where_a_scheduler_answers(
    buffers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    storage = MemoryStorage()
    seen: list[tuple[int, int | None, dict[str, float]]] = []

    def decide(trial: FrozenTrial, step: int | None, metrics: dict[str, float]) -> Decision:
        seen.append((trial.number, step, metrics))
        if metrics["loss"] < 0:
            raise ValueError("a scheduler bug")
        return Decision.STOP if step == 2 else Decision.CONTINUE

    buffer = buffers(storage, decide=decide)
    trial = new_trial(storage)
    answers = [buffer.report_metrics(trial, step, {"loss": 1.0}) for step in range(3)]
    assert answers == [Decision.CONTINUE, Decision.CONTINUE, Decision.STOP]
    with caplog.at_level(logging.ERROR, logger="hypersearch.reports"):
        assert buffer.report_metrics(trial, 3, {"loss": -1.0}) is Decision.CONTINUE
    assert "deciding on the report at step 3 failed" in caplog.text
    assert [s[1] for s in seen] == [0, 1, 2, 3]
    buffer.flush(trial)
    assert len(curve(storage, trial)) == 4, "every report is stored whatever the decision"


def test_suggest_param_is_delegated(buffers: Any) -> None:
    storage = MemoryStorage()
    trial = new_trial(storage)
    buffer = buffers(storage, suggest=lambda trial, name, dist: 0.25)
    assert buffer.suggest_param(trial, "lr", uniform(0, 1)) == 0.25
    with pytest.raises(hypersearch.HypersearchError, match=r"suggest=study\.suggest_param"):
        buffers(storage).suggest_param(trial, "lr", uniform(0, 1))


# -- the paths into it: trial.report, hs.report(), a command's lines ---------------------------


class _Backend:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers

    def report(self, trial: Trial, step: int | None, metrics: dict[str, float]) -> Any:
        return self.answers.pop(0)

    def suggest(self, trial: Trial, name: str, dist: Any) -> Any:
        raise AssertionError


def test_trial_report_returns_the_decision_and_should_stop_reads_it() -> None:
    trial = Trial(0, {}, None, _Backend([None, Decision.CONTINUE, "STOP", Decision.CONTINUE]))
    assert not trial.should_stop() and not trial.should_prune()
    assert trial.report(0, loss=1.0) is Decision.CONTINUE, "an old backend's None is CONTINUE"
    assert trial.report(1, loss=1.0) is Decision.CONTINUE
    assert trial.report(2, loss=1.0) is Decision.STOP
    assert trial.should_stop() and trial.should_prune()
    assert trial.report(3, loss=1.0) is Decision.CONTINUE and not trial.should_stop()
    assert str(Decision.PAUSE) == "PAUSE"


def _stop_at_step_1(trial: FrozenTrial, step: int | None, metrics: dict[str, float]) -> Decision:
    return Decision.STOP if step == 1 else Decision.CONTINUE


def reporting_objective(params: dict[str, Any], trial: Trial) -> dict[str, Any]:
    """Reports through trial.report, hs.report() and hs.report() from a thread it starts."""
    answers = [str(trial.report(0, loss=params["x"]))]
    answers.append(str(hypersearch.report(step=1, loss=params["x"] + 1)))
    stopped = trial.should_stop()
    in_thread: list[Any] = []
    thread = threading.Thread(
        target=lambda: in_thread.append(hypersearch.report(step=2, loss=params["x"] + 2))
    )
    thread.start()
    thread.join()
    answers.append(str(in_thread[0]))
    trial.set_user_attr("answers", answers)
    return {"loss": params["x"], "stopped_after_1": float(stopped)}


def run_one(executor: Any, trial: FrozenTrial) -> Any:
    executor.submit(trial)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        finished = executor.wait(0.2)
        if finished:
            return finished[0]
    raise AssertionError("the trial did not finish")


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_every_python_report_reaches_the_buffer_and_gets_its_decision(
    n_jobs: int, buffers: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = MemoryStorage()
    buffer = buffers(storage, decide=_stop_at_step_1)
    space = Space({"x": uniform(0, 1)})
    if n_jobs == 1:
        executor: Any = InProcessExecutor(reporting_objective, "params_trial", space, None, buffer)
    else:
        # the children import this module by name, as they would the user's
        monkeypatch.syspath_prepend(str(__import__("pathlib").Path(__file__).parent))
        executor = ProcessPoolExecutor(
            sys.modules[__name__].reporting_objective, "params_trial", space, None, buffer, 1
        )
    try:
        while n_jobs > 1 and not executor.idle:
            executor.wait(0.1)
        trial = new_trial(storage)
        finished = run_one(executor, trial)
    finally:
        executor.close()
    assert finished.outcome.state is TrialState.COMPLETE, finished.outcome.failure_detail
    buffer.flush(trial)
    x = trial.flat_params["x"]
    assert curve(storage, trial) == [("loss", 0, x), ("loss", 1, x + 1), ("loss", 2, x + 2)]
    assert finished.outcome.metrics["stopped_after_1"] == 1.0
    assert finished.user_attrs["answers"] == ["CONTINUE", "STOP", "CONTINUE"]


def test_hs_report_outside_a_trial_prints_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert client.current_trial() is None
    assert hypersearch.report(step=0, loss=0.5) is None
    assert capsys.readouterr().out == '@hypersearch {"step": 0, "metrics": {"loss": 0.5}}\n'


def test_command_lines_go_through_the_buffer(tmp_path: Any, buffers: Any) -> None:
    from hypersearch.execution.command import CommandExecutor, CommandSpec, CommandTemplate

    storage = MemoryStorage()
    buffer = buffers(storage, interval=3600.0)
    script = (
        "from hypersearch import report\n"
        "for i in range(300):\n"
        "    print(f'loss={i}')\n"
        "report(step=1000, loss=-1.0)\n"
    )
    spec = CommandSpec(
        CommandTemplate([sys.executable, "-c", script]),
        metric="loss",
        output_root=str(tmp_path),
        study_name="s",
    )
    space = Space({"x": uniform(0, 1)})
    executor = CommandExecutor(spec, space, buffer, capacity=1)
    trial = new_trial(storage)
    try:
        finished = run_one(executor, trial)
    finally:
        executor.close()
    assert finished.outcome.state is TrialState.COMPLETE, finished.outcome.failure_detail
    buffer.flush(trial)  # then the driver writes the finish: the curve is complete
    points = curve(storage, trial)
    assert len(points) == 301
    assert sorted(p[1] for p in points if p[1] is not None)[-1] == 1000
    assert len(storage.get_logs(trial.id)) == 300  # type: ignore[arg-type]


# -- the command executor's bulk path -----------------------------------------------------------


def many(buffer: ReportBuffer, trial: FrozenTrial, reports: list[Any]) -> Any:
    """report_metrics_many of (step, metrics) pairs."""
    return buffer.report_metrics_many(trial, [r[0] for r in reports], [r[1] for r in reports])


def test_report_metrics_many_queues_in_order_and_answers_in_order(buffers: Any) -> None:
    storage = MemoryStorage()
    trial = new_trial(storage)
    plain = buffers(storage, batch_size=7, max_pending=20)
    assert many(plain, trial, []) is None
    reports = [(step, {"loss": float(step)}) for step in range(50)]  # > max_pending: in pieces
    assert many(plain, trial, reports) is None, "no scheduler: all CONTINUE"
    plain.report_metrics(trial, 50, {"loss": 50.0})
    plain.flush(trial)
    assert curve(storage, trial) == [("loss", step, float(step)) for step in range(51)]

    seen: list[int | None] = []

    def decide(trial: FrozenTrial, step: int | None, metrics: dict[str, float]) -> Decision:
        seen.append(step)
        if step == 3:
            raise ValueError("a scheduler bug")
        return Decision.STOP if step == 2 else Decision.CONTINUE

    other = new_trial(storage)
    deciding = buffers(storage, decide=decide)
    answers = many(deciding, other, [(s, {"loss": 1.0}) for s in range(5)])
    assert answers == [Decision.CONTINUE] * 2 + [Decision.STOP] + [Decision.CONTINUE] * 2
    assert seen == [0, 1, 2, 3, 4]
    deciding.flush(other)
    assert len(curve(storage, other)) == 5


def test_report_metrics_many_waits_for_room_and_after_close_writes_at_once(
    buffers: Any,
) -> None:
    storage = _GatedStorage()
    buffer = buffers(storage, interval=0.01, batch_size=5, max_pending=12)
    trial = new_trial(storage)
    done = threading.Event()

    def produce() -> None:
        for start in range(0, 200, 9):
            many(
                buffer, trial, [(s, {"loss": float(s)}) for s in range(start, min(start + 9, 200))]
            )
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    assert storage.entered.wait(10)
    time.sleep(0.2)
    assert not done.is_set(), "the producer waits while the writer is stuck"
    assert buffer.pending_rows <= 12, "the queue stays within max_pending"
    storage.gate.set()
    producer.join(30)
    assert done.is_set()
    buffer.flush(trial)
    assert [step for _, step, _ in curve(storage, trial)] == list(range(200))
    buffer.close()
    many(buffer, trial, [(200, {"loss": 0.0})])
    assert curve(storage, trial)[-1] == ("loss", 200, 0.0), "after close: written at once"


def test_bounded_log_extend_is_add_of_each_line() -> None:
    from hypersearch.execution.command.process import HEAD_LINES, TAIL_LINES, BoundedLog

    for sizes in ([1] * 1200, [HEAD_LINES - 1, 2, 3], [HEAD_LINES + TAIL_LINES + 7, 1], [3000]):
        one, bulk = BoundedLog("stdout"), BoundedLog("stdout")
        count = 0
        heads: tuple[list[Any], list[Any]] = ([], [])
        for size in sizes:
            lines = [f"line {count + i}" for i in range(size)]
            count += size
            for line in lines:
                one.add(line)
            bulk.extend(lines)
            heads[0].extend(one.take_head())
            heads[1].extend(bulk.take_head())
        assert heads[0] == heads[1] and one.count == bulk.count == count
        assert one.take_tail() == bulk.take_tail()


class _RecordingStorage(_GatedStorage):
    """A gated storage that records the trial ids of each batch written."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[int]] = []

    def report_many(self, rows: Any) -> list[bool]:
        self.batches.append([row[0] for row in rows])
        return super().report_many(rows)


def test_a_flushed_trial_goes_before_a_noisy_neighbours_backlog(buffers: Any) -> None:
    storage = _RecordingStorage()
    buffer = buffers(storage, interval=0.01, batch_size=5, max_pending=100)
    noisy, short = new_trial(storage), new_trial(storage)
    many(buffer, noisy, [(s, {"loss": float(s)}) for s in range(5)])
    assert storage.entered.wait(10)  # the writer is stuck in its first batch
    many(buffer, noisy, [(s, {"loss": float(s)}) for s in range(5, 60)])
    for step in range(3):
        buffer.report_metrics(short, step, {"loss": -1.0})
    buffer.append_logs(short, "stdout", [(0, "done")])
    flushed = threading.Event()
    flusher = threading.Thread(target=lambda: (buffer.flush(short), flushed.set()))
    flusher.start()
    time.sleep(0.1)
    storage.gate.set()
    flusher.join(10)
    assert flushed.is_set()
    assert storage.batches[1][:3] == [short.id] * 3, storage.batches  # first, then fill-up
    assert len(storage.get_logs(short.id)) == 1  # type: ignore[arg-type]
    buffer.flush()
    assert [step for _, step, _ in curve(storage, noisy)] == list(range(60)), "order kept"
    assert curve(storage, short) == [("loss", step, -1.0) for step in range(3)]
    assert buffer._counts.keys() == {noisy.id}, "a flushed trial is forgotten"
