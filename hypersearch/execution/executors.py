"""Executors run claimed trials: in this process, or in a pool of child processes.

The driver (study/optimize.py) claims trials and submits them; an executor runs each one and
hands back `Finished` records. While a trial runs, what the objective reports goes to a `Sink`
(the study, or a `ReportBuffer` in front of storage), which stores it under the trial's lease and
answers with a `Decision`; a report from a pool child is a round trip, so the child gets it too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from hypersearch.client import trial_context
from hypersearch.errors import HypersearchError
from hypersearch.execution.evaluate import evaluate
from hypersearch.space import Distribution, Space
from hypersearch.space.distributions import distribution_from_json
from hypersearch.trial import Decision, FailureReason, FrozenTrial, Outcome, Trial, TrialState

if TYPE_CHECKING:
    from hypersearch.execution.checkpoints import Workspace
    from hypersearch.storage.base import RanOn

log = logging.getLogger("hypersearch")


class Sink(Protocol):
    """Receives what running objectives do (implemented by Study)."""

    def report_metrics(
        self, trial: FrozenTrial, step: int | None, metrics: dict[str, float]
    ) -> Decision | None: ...

    def suggest_param(self, trial: FrozenTrial, name: str, dist: Distribution) -> Any: ...


@dataclass
class Finished:
    trial: FrozenTrial  # the claimed record (lease owner and epoch)
    outcome: Outcome
    flat_params: dict[str, Any] | None = None  # define-by-run: what the objective suggested
    distributions: dict[str, Any] | None = None
    user_attrs: dict[str, Any] = field(default_factory=dict)
    ran_on: RanOn | None = None  # where it ran, when the executor learned that only at the end


class _SinkBackend:
    """Connects a live Trial to the sink, remembering which claimed record it belongs to."""

    def __init__(self, sink: Sink, claimed: FrozenTrial) -> None:
        self.sink = sink
        self.claimed = claimed

    def report(self, trial: Trial, step: int | None, metrics: dict[str, float]) -> Decision | None:
        return self.sink.report_metrics(self.claimed, step, metrics)

    def suggest(self, trial: Trial, name: str, dist: Distribution) -> Any:
        return self.sink.suggest_param(self.claimed, name, dist)


def open_workspace(
    workspace: Callable[[FrozenTrial], Workspace] | None, claimed: FrozenTrial
) -> Workspace | Finished | None:
    """`claimed`'s folders (None: the study gives none), or its FAILED record when the
    checkpoint copy it should start from is damaged: it never starts from a partial one."""
    if workspace is None:
        return None
    from hypersearch.execution.checkpoints import CheckpointError

    try:
        return workspace(claimed)
    except (CheckpointError, OSError) as error:
        outcome = Outcome(
            TrialState.FAILED,
            failure_reason=FailureReason.INFRASTRUCTURE.value,
            failure_detail=str(error),
        )
        return Finished(claimed, outcome)


def finished_from_trial(claimed: FrozenTrial, trial: Trial, outcome: Outcome) -> Finished:
    define_by_run = trial.space is None
    return Finished(
        claimed,
        outcome,
        flat_params=dict(trial.flat_params) if define_by_run else None,
        distributions=dict(trial.distributions or {}) if define_by_run else None,
        user_attrs=dict(trial.user_attrs),
    )


def done_message(finished: Finished) -> dict[str, Any]:
    """A finished trial as JSON, as a child process or a cluster task sends it back."""
    outcome = finished.outcome
    return {
        "op": "done",
        "state": outcome.state.value,
        "value": outcome.value,
        "metrics": outcome.metrics,
        "failure_reason": outcome.failure_reason,
        "failure_detail": outcome.failure_detail,
        "flat_params": finished.flat_params,
        "distributions": finished.distributions,
        "user_attrs": finished.user_attrs,
    }


def finished_from_message(
    claimed: FrozenTrial, message: dict[str, Any], ran_on: RanOn | None = None
) -> Finished:
    """The `Finished` record of `claimed` from its `done_message`."""
    outcome = Outcome(
        TrialState(message["state"]),
        message["value"],
        message["metrics"],
        message["failure_reason"],
        message["failure_detail"],
    )
    return Finished(
        claimed,
        outcome,
        message.get("flat_params"),
        message.get("distributions"),
        message.get("user_attrs") or {},
        ran_on,
    )


def answer_request(
    sink: Sink, claimed: FrozenTrial | None, message: dict[str, Any]
) -> dict[str, Any]:
    """The answer to what a running trial elsewhere asks: the decision for a report, the value
    for a define-by-run suggestion. A report that cannot be stored is logged and answered
    CONTINUE: storage trouble is not the objective's fault."""
    if message["op"] == "suggest":
        if claimed is None:
            raise HypersearchError("a suggestion was asked for a trial that is not running")
        dist = distribution_from_json(message["distribution"])
        return {"op": "value", "value": sink.suggest_param(claimed, message["name"], dist)}
    decision = Decision.CONTINUE
    if claimed is not None:
        step = message["step"]
        try:
            answer = sink.report_metrics(claimed, step, message["metrics"])
        except Exception as error:
            log.warning("trial %d: report at step %s not stored: %s", claimed.number, step, error)
        else:
            decision = Decision.CONTINUE if answer is None else Decision(answer)
    return {"op": "decision", "decision": decision.value}


class InProcessExecutor:
    """Runs one trial at a time in the calling process: fastest, and debuggers work."""

    capacity = 1
    shows_status = False  # one trial at a time, in this process: the bar says it all

    def __init__(
        self,
        objective: Callable[..., Any],
        style: str,
        space: Space | None,
        metric: str | None,
        sink: Sink,
        workspace: Callable[[FrozenTrial], Workspace] | None = None,
    ) -> None:
        self.workspace = workspace
        self.objective, self.style, self.space, self.metric, self.sink = (
            objective,
            style,
            space,
            metric,
            sink,
        )
        self._pending: FrozenTrial | None = None

    @property
    def idle(self) -> int:
        return 0 if self._pending is not None else 1

    @property
    def busy(self) -> int:
        return 1 - self.idle

    def next_worker(self) -> str:
        """The name of the worker the next submitted trial will run on."""
        return f"{socket.gethostname()}:{os.getpid()}"

    def submit(self, claimed: FrozenTrial) -> None:
        self._pending = claimed

    def wait(self, timeout: float) -> list[Finished]:
        claimed = self._pending
        if claimed is None:
            return []
        folders = open_workspace(self.workspace, claimed)
        if isinstance(folders, Finished):
            self._pending = None
            return [folders]
        trial = Trial(
            claimed.number,
            claimed.flat_params,
            self.space,
            _SinkBackend(self.sink, claimed),
            distributions={} if self.space is None else None,
            checkpoint_dir=folders.checkpoint_dir if folders else None,
            restore_from=folders.restore_from if folders else None,
        )
        with trial_context(trial):  # hs.report() inside the objective finds this trial
            # Ctrl-C and SystemExit propagate; the trial stays in running() meanwhile, so the
            # driver records it as interrupted before the call returns
            outcome = evaluate(self.objective, self.style, trial, self.metric)
        self._pending = None
        return [finished_from_trial(claimed, trial, outcome)]

    def status(self) -> list[dict[str, Any]] | None:
        return None

    def running(self) -> list[FrozenTrial]:
        return [self._pending] if self._pending is not None else []

    def cancel(self, reason: str) -> None:
        """Nothing to do: between calls to wait() no trial runs in this process."""

    def close(self) -> None:
        self._pending = None


# -- child processes --------------------------------------------------------------------------

_HEADER = struct.Struct(">I")


def write_frame(fd: int, payload: bytes) -> None:
    data = _HEADER.pack(len(payload)) + payload
    while data:
        written = os.write(fd, data)
        data = data[written:]


def read_exact(fd: int, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int) -> bytes | None:
    header = read_exact(fd, _HEADER.size)
    if header is None:
        return None
    return read_exact(fd, _HEADER.unpack(header)[0])


@dataclass
class _Worker:
    process: subprocess.Popen[bytes]
    to_child: int
    from_child: int
    trial: FrozenTrial | None = None
    cancelled: tuple[str, str] | None = None  # (failure reason, detail) the driver killed it for
    started: float = 0.0  # time.monotonic() when its trial was sent
    timed_out: bool = False  # killed for running past the trial timeout
    ready: bool = False  # the child has loaded the objective


class ProcessPoolExecutor:
    """`n` child processes, each running one trial at a time.

    The objective travels once per child with cloudpickle (by reference when importable, by
    value when defined in ``__main__``); parameters and results travel as JSON. A child that
    dies (SIGKILL, segfault, os._exit) costs only its trial, which is recorded as
    ``crashed``; a fresh child takes its place.
    """

    def __init__(
        self,
        objective: Callable[..., Any],
        style: str,
        space: Space | None,
        metric: str | None,
        sink: Sink,
        n_workers: int,
        trial_timeout: float | None = None,
        workspace: Callable[[FrozenTrial], Workspace] | None = None,
    ) -> None:
        import cloudpickle

        self.sink = sink
        self.workspace = workspace
        self._refused: list[Finished] = []  # claimed trials whose restore copy was damaged
        self.trial_timeout = trial_timeout
        self.capacity = n_workers
        self.shows_status = False
        self._payload = _pickle_objective(
            cloudpickle, (objective, style, space.tree if space else None, metric)
        )
        self._selector = selectors.DefaultSelector()
        self._workers: list[_Worker] = []
        for _ in range(n_workers):
            self._workers.append(self._start())

    def _start(self) -> _Worker:
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hypersearch.execution.child",
                str(child_read),
                str(child_write),
                str(os.getpid()),
            ],
            pass_fds=(child_read, child_write),
            stdin=subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": _python_path()},
        )
        os.close(child_read)
        os.close(child_write)
        worker = _Worker(process, parent_write, parent_read)
        write_frame(parent_write, self._payload)
        self._selector.register(parent_read, selectors.EVENT_READ, worker)
        return worker

    @property
    def idle(self) -> int:
        """Workers ready for a trial: a trial is claimed only when one can start at once."""
        return sum(1 for w in self._workers if w.ready and w.trial is None)

    @property
    def busy(self) -> int:
        """Workers running a trial or still starting (the driver keeps waiting for them)."""
        starting = sum(1 for w in self._workers if w.trial is not None or not w.ready)
        return starting + len(self._refused)

    def status(self) -> list[dict[str, Any]] | None:
        return None

    def running(self) -> list[FrozenTrial]:
        return [w.trial for w in self._workers if w.trial is not None] + [
            f.trial for f in self._refused
        ]

    def cancel(self, reason: str) -> None:
        """Kill the workers running trials; their trials end as ``interrupted``."""
        for worker in self._workers:
            if worker.trial is not None and worker.cancelled is None:
                worker.cancelled = (FailureReason.INTERRUPTED.value, reason)
                worker.process.kill()

    def cancel_trial(self, number: int, detail: str) -> bool:
        """Kill the child running trial `number` (it is replaced); FAILED ``killed``."""
        for worker in self._workers:
            if worker.trial is not None and worker.trial.number == number and (
                    worker.cancelled is None):
                worker.cancelled = (FailureReason.KILLED.value, detail)
                worker.process.kill()
                return True
        return False

    def next_worker(self) -> str:
        worker = next(w for w in self._workers if w.ready and w.trial is None)
        return f"{socket.gethostname()}:{worker.process.pid}"

    def submit(self, claimed: FrozenTrial) -> None:
        folders = open_workspace(self.workspace, claimed)
        if isinstance(folders, Finished):
            self._refused.append(folders)
            return
        worker = next(w for w in self._workers if w.ready and w.trial is None)
        worker.trial, worker.started = claimed, time.monotonic()
        message = {
            "op": "run",
            "number": claimed.number,
            "flat_params": claimed.flat_params,
            "checkpoint_dir": folders.checkpoint_dir if folders else None,
            "restore_from": folders.restore_from if folders else None,
        }
        with contextlib.suppress(OSError):  # a dead child's EOF is reported by wait()
            write_frame(worker.to_child, json.dumps(message).encode())

    def wait(self, timeout: float) -> list[Finished]:
        done, self._refused = self._refused, []
        deadline = time.monotonic() + timeout
        while not done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for key, _ in self._selector.select(min(remaining, self._kill_overdue())):
                worker: _Worker = key.data
                frame = read_frame(worker.from_child)
                if frame is None:
                    done.extend(self._replace(worker))
                    continue
                finished = self._handle(worker, json.loads(frame))
                if finished is not None:
                    done.append(finished)
        return done

    def _kill_overdue(self) -> float:
        """Kill children whose trial ran past the timeout; seconds until the next one is due."""
        if self.trial_timeout is None:
            return math.inf
        now, due = time.monotonic(), math.inf
        for worker in self._workers:
            if worker.trial is None or worker.cancelled is not None or worker.timed_out:
                continue
            left = worker.started + self.trial_timeout - now
            if left <= 0:
                worker.timed_out = True
                worker.process.kill()  # its EOF reports the trial, as TIMEOUT
            else:
                due = min(due, left)
        return due

    def _handle(self, worker: _Worker, message: dict[str, Any]) -> Finished | None:
        claimed = worker.trial
        op = message["op"]
        if op == "ready":
            worker.ready = True
            return None
        if op == "fatal":
            raise HypersearchError(
                "the worker processes cannot load the objective; define it at the top level of "
                "an importable module or of the script itself.\n" + message["detail"]
            )
        if op in ("report", "suggest"):  # the child waits for the answer: always answer
            reply = answer_request(self.sink, claimed, message)
            with contextlib.suppress(OSError):  # a dead child's EOF is reported by wait()
                write_frame(worker.to_child, json.dumps(reply).encode())
            return None
        if claimed is None:
            return None
        if op == "done":
            worker.trial = None
            return finished_from_message(claimed, message)
        return None

    def _replace(self, worker: _Worker) -> list[Finished]:
        """A child died: record its trial as crashed and start a new child in its place."""
        self._selector.unregister(worker.from_child)
        for fd in (worker.from_child, worker.to_child):
            os.close(fd)
        code = worker.process.wait()
        index = self._workers.index(worker)
        self._workers[index] = self._start()
        if worker.trial is None:
            return []
        if worker.cancelled is not None:
            reason, detail = worker.cancelled
        elif worker.timed_out:
            reason = FailureReason.TIMEOUT.value
            detail = f"the objective ran past trial_timeout={self.trial_timeout:g} s and was killed"
        else:
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            reason = FailureReason.CRASHED.value
            detail = f"the process running the objective died ({how})"
        return [
            Finished(
                worker.trial,
                Outcome(TrialState.FAILED, failure_reason=reason, failure_detail=detail),
            )
        ]

    def close(self) -> None:
        for worker in self._workers:
            with contextlib.suppress(OSError):
                write_frame(worker.to_child, b'{"op": "exit"}')
        deadline = time.monotonic() + 2.0
        for worker in self._workers:
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()
            self._selector.unregister(worker.from_child)
            os.close(worker.from_child)
            os.close(worker.to_child)
        self._workers = []
        self._selector.close()


def _pickle_objective(cloudpickle: Any, payload: Any) -> bytes:
    """Pickle the objective for the children. Functions of the main script travel by value;
    that includes ``__mp_main__``, the main script as seen inside a multiprocessing child."""
    objective = payload[0]
    module = sys.modules.get(getattr(objective, "__module__", "") or "")
    by_value = module is not None and module.__name__ == "__mp_main__"
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        return bytes(cloudpickle.dumps(payload))
    except Exception as error:
        raise HypersearchError(
            f"the objective cannot be sent to worker processes (n_jobs > 1): {error}; "
            "use n_jobs=1 or make what it uses picklable"
        ) from error
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


def _python_path() -> str:
    """The parent's import path, so children import the same modules (the script's folder too)."""
    entries = [p or os.getcwd() for p in sys.path]
    return os.pathsep.join(dict.fromkeys(entries))
