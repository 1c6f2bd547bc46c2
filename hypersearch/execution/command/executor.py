"""`CommandExecutor`: runs claimed trials as shell commands, many at once.

It starts up to `capacity` commands (each a `TrialProcess` in its own process group), reads their
output without blocking, turns metric lines into reports, stores logs with a bounded head and
tail, enforces timeouts, the search's deadline and stop conditions, and hands GPUs out through
``CUDA_VISIBLE_DEVICES``. A scheduler's STOP is written to the trial's decision file
(``HYPERSEARCH_DECISION_FILE``); a command that listens to it is given the grace period to exit by
itself (see "Decision channel" in `hypersearch.client`). The driver loop treats it like any
executor.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import selectors
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hypersearch.execution.checkpoints import CheckpointError, Workspace
from hypersearch.execution.command.process import (
    READ_CHUNK,
    BoundedLog,
    TrialProcess,
    start_error,
)
from hypersearch.execution.command.template import CommandTemplate, flatten_values, format_value
from hypersearch.execution.executors import Finished
from hypersearch.execution.folders import trial_output_dir
from hypersearch.execution.infrastructure import host_problem, on_this_host
from hypersearch.execution.metric_lines import (
    LineSplitter,
    MetricParser,
    StopCondition,
    aggregate,
    client_listens,
)
from hypersearch.space import Space
from hypersearch.trial import Decision, FailureReason, FrozenTrial, Outcome, TrialState

log = logging.getLogger("hypersearch.command")

STDERR_TAIL = 40  # lines of stderr quoted in a failure
# In each trial's output folder: where a STOP is written for the command to read
# (``HYPERSEARCH_DECISION_FILE``; see "Decision channel" in hypersearch.client).
DECISION_FILE = ".hypersearch-decision.json"


class CommandSink(Protocol):
    """Where the executor's reports and log lines go. A sink may also offer
    ``report_metrics_many(trial, steps, metrics) -> list[Decision] | None`` (parallel lists;
    the decisions in order, None: all CONTINUE), which the executor then uses for the reports
    of one read (`ReportBuffer` does)."""

    def report_metrics(
        self, trial: FrozenTrial, step: int | None, metrics: dict[str, float]
    ) -> Decision | None: ...

    def append_logs(
        self, trial: FrozenTrial, stream: str, lines: Sequence[tuple[int, str]]
    ) -> None: ...


@dataclass(frozen=True)
class CommandSpec:
    """Everything the executor needs to run the trials of one study as commands."""

    template: CommandTemplate
    metric: str = "loss"
    metric_agg: str = "last"
    stop_conditions: tuple[StopCondition, ...] = ()
    timeout: float | None = None  # per trial, seconds
    deadline: float | None = None  # time.monotonic() when the whole search must end
    grace: float = 10.0  # seconds from SIGTERM to SIGKILL (and from STOP to SIGTERM: listeners)
    gpus: tuple[int, ...] | None = None
    gpus_per_trial: int = 1
    output_root: str = "hypersearch-runs"
    study_name: str = "study"
    cwd: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)


class _Run:
    """One trial while it runs: its process, output readers, logs and metric series."""

    def __init__(self, claimed: FrozenTrial, spec: CommandSpec, gpus: tuple[int, ...]) -> None:
        self.claimed = claimed
        self.gpus = gpus
        self.slot = 0  # which of the executor's parallel slots it runs in (the worker's name)
        self.proc: TrialProcess | None = None
        self.splitters = {
            "stdout": LineSplitter(),
            "stderr": LineSplitter(),
            "report": LineSplitter(),
        }
        self.logs = {"stdout": BoundedLog("stdout"), "stderr": BoundedLog("stderr")}
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        names = [spec.metric, *(c.metric for c in spec.stop_conditions)]
        self.parser = MetricParser(list(dict.fromkeys(names)))
        self.series: dict[str, list[float]] = {}
        self.auto_steps: dict[str, int] = {}
        self.open_streams = 0
        self.kill_reason: tuple[str, str] | None = None  # (failure reason or "pruned", detail)
        self.deadline: float | None = None
        self.started = time.monotonic()
        self.decision_file: str | None = None  # HYPERSEARCH_DECISION_FILE
        self.listens = False  # it printed the client's "listens" line: STOP is asked, not forced
        self.uses_client = False  # it reported on the client channel: stdout is not parsed


class CommandExecutor:
    """Runs claimed trials as subprocesses; the driver loop treats it like any executor."""

    def __init__(
        self,
        spec: CommandSpec,
        space: Space,
        sink: CommandSink,
        capacity: int,
        workspace: Callable[[FrozenTrial], Workspace] | None = None,
        checkpoints: bool = False,
    ) -> None:
        self.spec = spec
        # a trial's checkpoint folders: made and passed when the command names them or the
        # study's scheduler needs them (pbt)
        self.workspace = workspace if checkpoints or spec.template.uses_checkpoints() else None
        self.space = space
        self.sink = sink
        self._free_gpus: list[int] = list(spec.gpus or [])
        if spec.gpus is not None:
            capacity = min(capacity, len(spec.gpus) // spec.gpus_per_trial)
            if capacity < 1:
                raise ValueError(
                    f"--gpus {','.join(map(str, spec.gpus))} has fewer GPUs than "
                    f"--gpus-per-trial {spec.gpus_per_trial}"
                )
        self.capacity = capacity
        self._runs: list[_Run] = []
        self._selector = selectors.DefaultSelector()
        self._ready: list[Finished] = []

    # -- executor interface ------------------------------------------------------------------

    @property
    def idle(self) -> int:
        return self.capacity - len(self._runs)

    @property
    def busy(self) -> int:
        return len(self._runs) + len(self._ready)

    def running(self) -> list[FrozenTrial]:
        return [run.claimed for run in self._runs]

    shows_status = True  # a live table of the running commands and their latest metrics

    def status(self) -> list[dict[str, Any]]:
        """The running trials with their latest metrics, for the live table."""
        now = time.monotonic()
        return [
            {
                "number": run.claimed.number,
                "params": dataclasses.replace(run.claimed, space=self.space).display_params(),
                "metrics": {name: values[-1] for name, values in run.series.items() if values},
                "seconds": now - run.started,
            }
            for run in self._runs
        ]

    def cancel(self, reason: str) -> None:
        """End every running command (SIGTERM, SIGKILL after the grace); recorded ``interrupted``."""
        for run in self._runs:
            if run.kill_reason is None:
                run.kill_reason = (FailureReason.INTERRUPTED.value, reason)
                self._terminate(run)
            elif run.proc is not None and run.proc.term_at is not None:
                self._terminate(run)  # stopped and listening: no more waiting for it

    def cancel_trial(self, number: int, detail: str) -> bool:
        """End running trial `number` (SIGTERM, SIGKILL after the grace); FAILED ``killed``."""
        for run in self._runs:
            if run.claimed.number == number and run.kill_reason is None:
                run.kill_reason = (FailureReason.KILLED.value, detail)
                self._terminate(run)
                return True
        return False

    def _free_slot(self) -> int:
        """The lowest slot no running trial holds (a slot frees when its trial ends)."""
        taken = {run.slot for run in self._runs}
        return next(i for i in range(len(self._runs) + 1) if i not in taken)

    def next_worker(self) -> str:
        host = socket.gethostname()
        if self.spec.gpus is None:
            return f"{host}:slot{self._free_slot()}"
        return f"{host}:gpu{','.join(map(str, self._free_gpus[: self.spec.gpus_per_trial]))}"

    def next_gpus(self) -> tuple[int, ...] | None:
        """The GPUs the next submitted trial gets (CUDA_VISIBLE_DEVICES), None without gpus."""
        if self.spec.gpus is None:
            return None
        return tuple(self._free_gpus[: self.spec.gpus_per_trial])

    def submit(self, claimed: FrozenTrial) -> None:
        params = self.space.unflatten(claimed.flat_params)
        gpus: tuple[int, ...] = ()
        if self.spec.gpus is not None:
            gpus = tuple(self._free_gpus[: self.spec.gpus_per_trial])
            del self._free_gpus[: self.spec.gpus_per_trial]
        run = _Run(claimed, self.spec, gpus)
        run.slot = self._free_slot()
        self._runs.append(run)
        try:
            self._start(run, params)
        except OSError as error:
            self._end(run, self._start_failure(error))
        except CheckpointError as error:  # the copy it should start from is damaged
            self._end(
                run,
                Outcome(
                    TrialState.FAILED,
                    failure_reason=FailureReason.INFRASTRUCTURE.value,
                    failure_detail=str(error),
                ),
            )
        except ValueError as error:  # an output folder outside the root; a NUL byte in argv/env
            self._end(
                run,
                Outcome(
                    TrialState.FAILED,
                    failure_reason=FailureReason.INFRASTRUCTURE.value,
                    failure_detail=f"cannot start the command: {error}",
                ),
            )

    def wait(self, timeout: float) -> list[Finished]:
        end = time.monotonic() + timeout
        while not self._ready and self._runs:
            now = time.monotonic()
            self._enforce_deadlines(now)
            if self._ready:
                break
            remaining = min(end, self._next_deadline(now)) - now
            if remaining <= 0 and now >= end:
                break
            for key, _ in self._selector.select(max(remaining, 0.0)):
                self._read(key.data[0], key.data[1], key.fileobj)  # type: ignore[arg-type]
            self._flush_heads()
            if time.monotonic() >= end:
                break
        done, self._ready = self._ready, []
        return done

    def close(self) -> None:
        for run in list(self._runs):
            if run.proc is not None:
                run.proc.signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    run.proc.process.wait(timeout=5)
            self._close_streams(run)
        self._runs = []
        self._selector.close()

    # -- starting ---------------------------------------------------------------------------

    def _start(self, run: _Run, params: Any) -> None:
        spec = self.spec
        number = run.claimed.number
        output_dir = trial_output_dir(spec.output_root, spec.study_name, number)
        os.makedirs(output_dir, exist_ok=True)
        params_file = os.path.join(output_dir, "params.json")
        with open(params_file, "w") as f:
            json.dump(params, f, indent=2, default=str)
        run.decision_file = os.path.join(output_dir, DECISION_FILE)
        with contextlib.suppress(FileNotFoundError):  # a decision left by an earlier run
            os.unlink(run.decision_file)
        env = {
            **os.environ,
            **spec.extra_env,
            "HYPERSEARCH_STUDY": spec.study_name,
            "HYPERSEARCH_TRIAL": str(number),
            "HYPERSEARCH_PARAMS_FILE": params_file,
            "HYPERSEARCH_OUTPUT_DIR": output_dir,
            "HYPERSEARCH_DECISION_FILE": run.decision_file,
            "PYTHONUNBUFFERED": "1",  # metric lines arrive as printed, not at exit
        }
        folders: dict[str, str | None] = {}
        if self.workspace is not None:
            workspace = self.workspace(run.claimed)
            os.makedirs(workspace.checkpoint_dir, exist_ok=True)
            folders = {"checkpoint_dir": workspace.checkpoint_dir,
                       "restore_dir": workspace.restore_from}  # fmt: skip
            env["HYPERSEARCH_CHECKPOINT_DIR"] = workspace.checkpoint_dir
            if workspace.restore_from is not None:
                env["HYPERSEARCH_RESTORE_DIR"] = workspace.restore_from
        for path, value in flatten_values(params).items():
            env["HS_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", path).upper()] = format_value(value)
        if spec.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, run.gpus))
        run.proc = proc = TrialProcess.start(
            spec.template.render(params, folders), env, spec.cwd, spec.grace
        )
        now = time.monotonic()
        deadlines = [d for d in (spec.deadline, now + spec.timeout if spec.timeout else None) if d]
        run.deadline = min(deadlines) if deadlines else None
        for name, stream in (("stdout", proc.process.stdout), ("stderr", proc.process.stderr)):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
            self._selector.register(stream.fileno(), selectors.EVENT_READ, (run, name))
            run.open_streams += 1
        assert proc.report_fd is not None
        os.set_blocking(proc.report_fd, False)
        self._selector.register(proc.report_fd, selectors.EVENT_READ, (run, "report"))
        run.open_streams += 1

    # -- reading ----------------------------------------------------------------------------

    def _read(self, run: _Run, stream: str, fd: int) -> None:
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        splitter = run.splitters[stream]
        lines = splitter.feed(chunk) if chunk else splitter.flush()
        if lines:
            self._lines(run, stream, lines)
        if not chunk:
            self._selector.unregister(fd)
            if stream == "report" and run.proc is not None:
                run.proc.close_report()
            run.open_streams -= 1
            if run.open_streams == 0:
                self._finish(run)

    def _lines(self, run: _Run, stream: str, lines: list[str]) -> None:
        """The complete lines of one read, in order: logged, parsed, reported. The same as
        handling each line in turn (parsing never depends on what the sink answers), in bulk:
        one log call, one parser call and one sink call per read, with the events as columns
        (no container per line: see `MetricParser.scan`)."""
        if stream == "report":
            if not run.listens:
                run.listens = any(map(client_listens, lines))
            events = [e for line in lines for e in run.parser.feed_report(line)]
            steps: list[int | None] = [e.step for e in events]
            values = [e.values for e in events]
            run.uses_client = run.uses_client or bool(events)
        else:
            run.logs[stream].extend(lines)
            if stream == "stderr":
                run.stderr_tail.extend(lines)
                return
            if run.uses_client:  # its own reports say it all: progress lines would repeat them
                return
            steps, values, _ = run.parser.scan(lines)
        if not values:
            return
        series = run.series
        auto_steps = run.auto_steps
        if None not in steps:
            for step, metrics in zip(steps, values, strict=True):
                for name, value in metrics.items():
                    auto_steps[name] = step + 1  # type: ignore[operator]
                    curve = series.get(name)
                    if curve is None:
                        series[name] = [value]
                    else:
                        curve.append(value)
        else:  # numbered per metric; a report's step is the smallest of its metrics'
            given, steps = steps, []
            for step, metrics in zip(given, values, strict=True):
                if step is None:
                    for name, value in metrics.items():
                        own = auto_steps.get(name, 0)
                        auto_steps[name] = own + 1
                        if step is None or own < step:
                            step = own
                        curve = series.get(name)
                        if curve is None:
                            series[name] = [value]
                        else:
                            curve.append(value)
                else:
                    for name, value in metrics.items():
                        auto_steps[name] = step + 1
                        curve = series.get(name)
                        if curve is None:
                            series[name] = [value]
                        else:
                            curve.append(value)
                steps.append(step)
        self._report(run, steps, values)

    def _report(self, run: _Run, steps: list[int | None], values: list[dict[str, float]]) -> None:
        """Hand the reports of one read to the sink (in one call where it takes many), then
        act on the decisions (the study's scheduler, its stop conditions included)."""
        claimed = run.claimed
        report_many = getattr(self.sink, "report_metrics_many", None)
        decisions: Sequence[Decision | None] | None = None
        try:
            if report_many is not None:
                decisions = report_many(claimed, steps, values)
            else:
                decisions = [self.sink.report_metrics(claimed, s, m) for s, m in zip(steps, values, strict=True)]
        except Exception as error:  # storage trouble must not kill the trial
            log.warning("trial %d: metrics not stored: %s", claimed.number, error)
        if decisions is None:
            return  # the common case: nothing to decide
        for step, decision in zip(steps, decisions, strict=True):
            if decision is not None and decision is not Decision.CONTINUE:
                explain = getattr(self.sink, "stop_reason", None)
                why = None if explain is None else explain(claimed)
                why = why or f"the scheduler decided {decision.value.lower()} at step {step}"
                self._stop(run, why, decision, step)
                return

    def _stop(
        self, run: _Run, why: str, decision: Decision = Decision.STOP, step: int | None = None
    ) -> None:
        """End a trial early: PRUNED with its curve. The decision is written to the command's
        decision file; a command that listens gets the grace period to exit by itself, any
        other has its process group terminated now."""
        if run.kill_reason is None:
            run.kill_reason = ("pruned", why)
            told = self._tell(run, decision, why, step)
            if told and run.listens and run.proc is not None:
                run.proc.terminate_later(self.spec.grace)
            else:
                self._terminate(run)

    def _tell(self, run: _Run, decision: Decision, why: str, step: int | None) -> bool:
        """Write the decision to the trial's decision file, atomically; False if it could not."""
        path = run.decision_file
        if path is None:
            return False
        payload = {"decision": decision.value, "reason": why, "step": step}
        temporary = f"{path}.{os.getpid()}.tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(payload, f)
            os.replace(temporary, path)
        except OSError as error:
            log.warning("trial %d: decision not written to %s: %s", run.claimed.number, path, error)
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            return False
        return True

    # -- ending -----------------------------------------------------------------------------

    def _next_deadline(self, now: float) -> float:
        times = [now + 1.0]  # wake up now and then to flush tails
        for run in self._runs:
            if run.kill_reason is None and run.deadline is not None:
                times.append(run.deadline)
            if run.proc is not None and run.proc.kill_at is not None:
                times.append(run.proc.kill_at)
            if run.proc is not None and run.proc.term_at is not None:
                times.append(run.proc.term_at)
        return min(times)

    def _enforce_deadlines(self, now: float) -> None:
        for run in list(self._runs):
            if run.kill_reason is None and run.deadline is not None and now >= run.deadline:
                search = self.spec.deadline is not None and run.deadline == self.spec.deadline
                run.kill_reason = (
                    FailureReason.TIMEOUT.value,
                    "the search reached --max-time"
                    if search
                    else f"ran past --timeout {self.spec.timeout:g}s",
                )
                self._terminate(run)
            if run.proc is not None:
                run.proc.kill_if_due(now)

    def _terminate(self, run: _Run) -> None:
        if run.proc is not None:
            run.proc.terminate(self.spec.grace)

    def _flush_heads(self) -> None:
        for run in self._runs:
            for output in run.logs.values():
                head = output.take_head()
                if head:
                    self._store_logs(run, output.name, head)

    def _store_logs(self, run: _Run, stream: str, rows: list[tuple[int, str]]) -> None:
        try:
            self.sink.append_logs(run.claimed, stream, rows)
        except Exception as error:  # storage trouble must not kill the trial
            log.warning("trial %d: %s lines not stored: %s", run.claimed.number, stream, error)

    def _finish(self, run: _Run) -> None:
        assert run.proc is not None
        code = run.proc.process.wait()
        by_itself = run.proc.term_at is not None  # told to stop, and exited before the SIGTERM
        run.proc.signal(signal.SIGKILL)  # leftovers of the group (daemons, workers)
        for output in run.logs.values():
            rows = output.take_head() + output.take_tail()
            if rows:
                self._store_logs(run, output.name, rows)
        error = run.proc.start_failure()
        if error is not None:
            outcome = self._start_failure(error)
        else:
            outcome = self._outcome(run, code)
            if by_itself and outcome.state is TrialState.PRUNED:
                detail = f"{outcome.failure_detail}; the command exited by itself (code {code})"
                outcome = dataclasses.replace(outcome, failure_detail=detail)
        self._end(run, outcome)

    def _start_failure(self, error: OSError) -> Outcome:
        """The command could not start: its executable is missing or not runnable *here*
        (another host may have it), or the system refused to start it."""
        detail = start_error(self.spec.template.argv[0], error)
        if isinstance(error, FileNotFoundError | PermissionError):
            return Outcome(TrialState.FAILED, failure_reason=FailureReason.INFRASTRUCTURE.value,
                           failure_detail=on_this_host(detail))
        return Outcome(TrialState.FAILED, failure_reason=FailureReason.EXIT_CODE.value,
                       failure_detail=detail)

    def _outcome(self, run: _Run, code: int) -> Outcome:
        spec = self.spec
        metrics = {name: values[-1] for name, values in run.series.items() if values}
        series = run.series.get(spec.metric, [])
        value = aggregate(series, spec.metric_agg) if series else None
        stderr = "\n".join(run.stderr_tail)
        if run.kill_reason is not None:
            reason, detail = run.kill_reason
            if reason == "pruned":
                return Outcome(
                    TrialState.PRUNED,
                    value if value is not None and not math.isnan(value) else None,
                    metrics,
                    None,
                    detail,
                )
            return Outcome(TrialState.FAILED, None, metrics, reason, _with_stderr(detail, stderr))
        if code != 0:
            how = (
                f"killed by signal {_signal_name(-code)}"
                if code < 0
                else f"exited with code {code}"
            )
            problem = host_problem(stderr)  # this machine's fault, not the configuration's
            return Outcome(
                TrialState.FAILED,
                None,
                metrics,
                FailureReason.EXIT_CODE.value if problem is None
                else FailureReason.INFRASTRUCTURE.value,
                _with_stderr(f"the command {how}" + (
                    "" if problem is None else f": {on_this_host(problem)}"), stderr),
            )
        if value is None:
            return Outcome(
                TrialState.FAILED,
                None,
                metrics,
                FailureReason.NO_METRIC.value,
                f"the command exited 0 but printed no value for '{spec.metric}'; print a line "
                f"such as '{spec.metric}=0.123' or call hypersearch.report({spec.metric}=...)",
            )
        if math.isnan(value):
            return Outcome(
                TrialState.FAILED,
                None,
                metrics,
                FailureReason.INVALID_VALUE.value,
                f"'{spec.metric}' was NaN ({spec.metric_agg} of {len(series)} values)",
            )
        return Outcome(TrialState.COMPLETE, value, metrics)

    def _end(self, run: _Run, outcome: Outcome) -> None:
        self._close_streams(run)
        if run in self._runs:
            self._runs.remove(run)
        self._free_gpus.extend(run.gpus)
        self._free_gpus.sort()
        self._ready.append(Finished(run.claimed, outcome))

    def _close_streams(self, run: _Run) -> None:
        proc = run.proc
        if proc is None:
            return
        for stream in (proc.process.stdout, proc.process.stderr):
            if stream is not None:
                with contextlib.suppress(KeyError, ValueError):  # ValueError: already closed
                    self._selector.unregister(stream.fileno())
        if proc.report_fd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(proc.report_fd)
        proc.close()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:  # a real-time signal has no name
        return f"number {number}"


def _with_stderr(detail: str, stderr: str) -> str:
    return f"{detail}\n--- last lines of stderr ---\n{stderr}" if stderr.strip() else detail
