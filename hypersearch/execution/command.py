"""Trials that are shell commands: ``python train.py --lr :lr:``.

`CommandTemplate` substitutes ``:name:`` placeholders inside any token (``--lr=:lr:``,
``out/:lr:/model.pt``; ``::`` is a literal colon) without ever building a shell string.
`CommandExecutor` runs up to `capacity` commands at once, each in its own process group, reads
their output without blocking, turns metric lines into reports, stores logs with a bounded head
and tail, enforces timeouts (SIGTERM, then SIGKILL after a grace period) and stop conditions, and
hands GPUs out through ``CUDA_VISIBLE_DEVICES``. Each group is led by a tiny supervisor
(`hypersearch.execution.supervise`) that kills the whole group if the driver itself is killed.
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
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hypersearch.execution.executors import Finished
from hypersearch.execution.metric_lines import (
    LineSplitter,
    MetricParser,
    StopCondition,
    aggregate,
    parse_client_line,
)
from hypersearch.space import Choice, Distribution, Space
from hypersearch.trial import FailureReason, FrozenTrial, Outcome, TrialState

log = logging.getLogger("hypersearch.command")

READ_CHUNK = 65536
HEAD_LINES = 500  # lines of each stream stored as they come
TAIL_LINES = 500  # and the last lines, kept in memory and stored at the end
STDERR_TAIL = 40  # lines of stderr quoted in a failure

_PLACEHOLDER = re.compile(r":([A-Za-z_][A-Za-z0-9_.\-/]*):")


class TemplateError(ValueError):
    """A command template refers to something that is not in the space."""


class CommandSink(Protocol):
    def report_metrics(
        self, trial: FrozenTrial, step: int | None, metrics: dict[str, float]
    ) -> None: ...

    def append_logs(
        self, trial: FrozenTrial, stream: str, lines: Sequence[tuple[int, str]]
    ) -> None: ...


# -- placeholders ----------------------------------------------------------------------------


def value_paths(tree: Any, prefix: str = "") -> set[str]:
    """Every path a placeholder may name: the keys of the nested values the objective would get
    (``optimizer/name``, ``optimizer/momentum``), whichever branch they live in."""
    paths = {prefix} if prefix else set()
    if isinstance(tree, Choice):
        for option in tree.options:
            paths |= value_paths(option, prefix)
    elif isinstance(tree, Distribution):
        pass
    elif isinstance(tree, Mapping):
        for key, value in tree.items():
            paths |= value_paths(value, f"{prefix}/{key}" if prefix else str(key))
    elif isinstance(tree, (list, tuple)):
        for index, value in enumerate(tree):
            paths |= value_paths(value, f"{prefix}/{index}" if prefix else str(index))
    return paths


def _lookup(values: Any, path: str) -> Any:
    """The value at `path` in nested values, or KeyError when that branch was not taken."""
    node = values
    for part in path.split("/"):
        if isinstance(node, Mapping):
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(path)
    return node


def format_value(value: Any) -> str:
    """How a parameter value appears in a command token."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def flatten_values(values: Any, prefix: str = "") -> dict[str, Any]:
    """Leaf values by path, for environment variables: ``{"optimizer/momentum": 0.9, ...}``."""
    if isinstance(values, Mapping):
        out: dict[str, Any] = {}
        for key, value in values.items():
            out.update(flatten_values(value, f"{prefix}/{key}" if prefix else str(key)))
        return out
    return {prefix or "value": values}


class CommandTemplate:
    """A command line with ``:name:`` placeholders.

    >>> t = CommandTemplate(["python", "train.py", "--lr=:lr:", "--out", "runs/:lr:/m.pt"])
    >>> t.render({"lr": 0.01})
    ['python', 'train.py', '--lr=0.01', '--out', 'runs/0.01/m.pt']

    A token whose placeholder names a parameter of a branch not taken is dropped, so write
    conditional flags as one token: ``--momentum=:optimizer/momentum:``.
    """

    def __init__(self, argv: Sequence[str] | str, shell: bool = False) -> None:
        if isinstance(argv, str):
            argv = [argv] if shell else shlex.split(argv)
        if not argv:
            raise TemplateError("the command is empty; give it after `--`, e.g. -- python train.py")
        self.argv = tuple(argv)
        self.shell = shell

    def placeholders(self) -> list[str]:
        found: list[str] = []
        for token in self.argv:
            for kind, text in _split_token(token):
                if kind == "name" and text not in found:
                    found.append(text)
        return found

    def check(self, space: Any) -> list[str]:
        """Raise TemplateError for placeholders naming nothing; return the names of parameters
        no placeholder uses (for a warning: they still reach the command as env vars)."""
        known = value_paths(space.tree if isinstance(space, Space) else space)
        used = self.placeholders()
        unknown = [name for name in used if name not in known]
        if unknown:
            listing = ", ".join(f":{k}:" for k in sorted(known) if k) or "(none)"
            raise TemplateError(
                f"the command uses {', '.join(f':{n}:' for n in unknown)} but the space has no "
                f"such parameter; placeholders available: {listing} (write :: for a literal colon)"
            )
        space_obj = space if isinstance(space, Space) else Space(space)
        leaves = {re.sub(r"\[\d+\]", "", name) for name in space_obj.names}
        return sorted(name for name in leaves if not any(_covers(u, name) for u in used))

    def render(self, values: Any) -> list[str]:
        """The argv for these parameter values. With ``shell=True`` each substituted value is
        quoted for the shell, so it stays one word whatever it contains."""
        quote = shlex.quote if self.shell else (lambda text: text)
        argv: list[str] = []
        for token in self.argv:
            pieces: list[str] = []
            try:
                for kind, text in _split_token(token):
                    if kind == "name":
                        pieces.append(quote(format_value(_lookup(values, text))))
                    else:
                        pieces.append(text)
            except KeyError:
                continue  # a parameter of a branch not taken: drop the token
            argv.append("".join(pieces))
        return ["/bin/sh", "-c", " ".join(argv)] if self.shell else argv


def _covers(placeholder: str, name: str) -> bool:
    """A placeholder uses a parameter when it names it, a value inside it, or a whole subtree."""
    return (
        name == placeholder
        or name.startswith(placeholder + "/")
        or placeholder.startswith(name + "/")
    )


def _split_token(token: str) -> list[tuple[str, str]]:
    """``"--lr=:lr:"`` → [("text", "--lr="), ("name", "lr")]; ``::`` is a literal colon."""
    parts: list[tuple[str, str]] = []
    text: list[str] = []
    i = 0
    while i < len(token):
        if token.startswith("::", i):
            text.append(":")
            i += 2
            continue
        match = _PLACEHOLDER.match(token, i) if token[i] == ":" else None
        if match:
            if text:
                parts.append(("text", "".join(text)))
                text = []
            parts.append(("name", match.group(1)))
            i = match.end()
            continue
        text.append(token[i])
        i += 1
    if text:
        parts.append(("text", "".join(text)))
    return parts


# -- running commands -----------------------------------------------------------------------


@dataclass(frozen=True)
class CommandSpec:
    template: CommandTemplate
    metric: str = "loss"
    metric_agg: str = "last"
    stop_conditions: tuple[StopCondition, ...] = ()
    timeout: float | None = None  # per trial, seconds
    deadline: float | None = None  # time.monotonic() when the whole search must end
    grace: float = 10.0  # seconds between SIGTERM and SIGKILL
    gpus: tuple[int, ...] | None = None
    gpus_per_trial: int = 1
    output_root: str = "hypersearch-runs"
    study_name: str = "study"
    cwd: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)


class _Log:
    """One stream of one trial: the head stored live, the tail kept bounded in memory."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.count = 0
        self.head: list[tuple[int, str]] = []  # not yet written
        self.tail: collections.deque[tuple[int, str]] = collections.deque(maxlen=TAIL_LINES)

    def add(self, line: str) -> None:
        if self.count < HEAD_LINES:
            self.head.append((self.count, line))
        else:
            self.tail.append((self.count, line))
        self.count += 1

    def take_head(self) -> list[tuple[int, str]]:
        rows, self.head = self.head, []
        return rows

    def take_tail(self) -> list[tuple[int, str]]:
        rows = list(self.tail)
        if rows and rows[0][0] > HEAD_LINES:
            omitted = rows[0][0] - HEAD_LINES
            rows.insert(0, (HEAD_LINES, f"[hypersearch: {omitted} lines omitted]"))
        self.tail.clear()
        return rows


class _Run:
    def __init__(self, claimed: FrozenTrial, spec: CommandSpec, gpus: tuple[int, ...]) -> None:
        self.claimed = claimed
        self.gpus = gpus
        self.process: subprocess.Popen[bytes] | None = None
        self.report_fd: int | None = None
        self.status_fd: int | None = None  # the supervisor's "cannot start" channel
        self.splitters = {
            "stdout": LineSplitter(),
            "stderr": LineSplitter(),
            "report": LineSplitter(),
        }
        self.logs = {"stdout": _Log("stdout"), "stderr": _Log("stderr")}
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL)
        names = [spec.metric, *(c.metric for c in spec.stop_conditions)]
        self.parser = MetricParser(list(dict.fromkeys(names)))
        self.series: dict[str, list[float]] = {}
        self.auto_steps: dict[str, int] = {}
        self.open_streams = 0
        self.kill_reason: tuple[str, str] | None = None  # (failure reason or "pruned", detail)
        self.term_at: float | None = None
        self.kill_at: float | None = None
        self.deadline: float | None = None
        self.started = time.monotonic()


class CommandExecutor:
    """Runs claimed trials as subprocesses; the driver loop treats it like any executor."""

    def __init__(self, spec: CommandSpec, space: Space, sink: CommandSink, capacity: int) -> None:
        self.spec = spec
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

    def next_worker(self) -> str:
        host = socket.gethostname()
        if self.spec.gpus is None:
            return f"{host}:slot{len(self._runs)}"
        return f"{host}:gpu{','.join(map(str, self._free_gpus[: self.spec.gpus_per_trial]))}"

    def submit(self, claimed: FrozenTrial) -> None:
        params = self.space.unflatten(claimed.flat_params)
        gpus: tuple[int, ...] = ()
        if self.spec.gpus is not None:
            gpus = tuple(self._free_gpus[: self.spec.gpus_per_trial])
            del self._free_gpus[: self.spec.gpus_per_trial]
        run = _Run(claimed, self.spec, gpus)
        self._runs.append(run)
        try:
            self._start(run, params)
        except OSError as error:
            self._end(
                run,
                Outcome(
                    TrialState.FAILED,
                    failure_reason=FailureReason.EXIT_CODE.value,
                    failure_detail=_start_error(self.spec.template, error),
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
            self._kill_group(run, signal.SIGKILL)
            if run.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    run.process.wait(timeout=5)
            self._close_streams(run)
        self._runs = []
        self._selector.close()

    # -- starting ---------------------------------------------------------------------------

    def _start(self, run: _Run, params: Any) -> None:
        spec = self.spec
        number = run.claimed.number
        output_dir = os.path.abspath(os.path.join(spec.output_root, spec.study_name, str(number)))
        os.makedirs(output_dir, exist_ok=True)
        params_file = os.path.join(output_dir, "params.json")
        with open(params_file, "w") as f:
            json.dump(params, f, indent=2, default=str)
        argv = spec.template.render(params)
        read_fd, write_fd = os.pipe()
        env = {
            **os.environ,
            **spec.extra_env,
            "HYPERSEARCH_STUDY": spec.study_name,
            "HYPERSEARCH_TRIAL": str(number),
            "HYPERSEARCH_PARAMS_FILE": params_file,
            "HYPERSEARCH_OUTPUT_DIR": output_dir,
            "HYPERSEARCH_REPORT_FD": str(write_fd),
            "PYTHONUNBUFFERED": "1",  # metric lines arrive as printed, not at exit
        }
        for path, value in flatten_values(params).items():
            env["HS_PARAM_" + re.sub(r"[^A-Za-z0-9]", "_", path).upper()] = format_value(value)
        if spec.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, run.gpus))
        status_fd: int | None = None
        pass_fds: tuple[int, ...] = (write_fd,)
        preexec_fn: Any = _die_with_parent
        try:
            if SUPERVISED:
                # The supervisor leads the group and runs the command in it (supervise.py says
                # why); the group's id is the supervisor's pid, so killpg reaches everything.
                run.status_fd, status_fd = os.pipe()
                argv = [*_supervisor_argv(status_fd, spec.grace), *argv]
                pass_fds, preexec_fn = (write_fd, status_fd), None
            run.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=spec.cwd,
                env=env,
                pass_fds=pass_fds,
                start_new_session=True,  # its own process group: we can kill grandchildren
                preexec_fn=preexec_fn,
            )
        except OSError:
            os.close(read_fd)
            if run.status_fd is not None:
                os.close(run.status_fd)
                run.status_fd = None
            raise
        finally:
            os.close(write_fd)
            if status_fd is not None:
                os.close(status_fd)
        run.report_fd = read_fd
        now = time.monotonic()
        deadlines = [d for d in (spec.deadline, now + spec.timeout if spec.timeout else None) if d]
        run.deadline = min(deadlines) if deadlines else None
        for name, stream in (("stdout", run.process.stdout), ("stderr", run.process.stderr)):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
            self._selector.register(stream.fileno(), selectors.EVENT_READ, (run, name))
            run.open_streams += 1
        os.set_blocking(read_fd, False)
        self._selector.register(read_fd, selectors.EVENT_READ, (run, "report"))
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
        for line in lines:
            self._line(run, stream, line)
        if not chunk:
            self._selector.unregister(fd)
            if stream == "report":
                os.close(fd)
                run.report_fd = None
            run.open_streams -= 1
            if run.open_streams == 0:
                self._finish(run)

    def _line(self, run: _Run, stream: str, line: str) -> None:
        if stream == "report":
            event = parse_client_line(line)
            events = [event] if event is not None else []
        else:
            run.logs[stream].add(line)
            if stream == "stderr":
                run.stderr_tail.append(line)
                return
            events = run.parser.feed(line)
        for event in events:
            values = dict(event.values)
            steps = {}
            for name in values:
                step = event.step if event.step is not None else run.auto_steps.get(name, 0)
                run.auto_steps[name] = step + 1
                steps[name] = step
                run.series.setdefault(name, []).append(values[name])
            step = event.step if event.step is not None else min(steps.values(), default=None)
            try:
                self.sink.report_metrics(run.claimed, step, values)
            except Exception as error:  # storage trouble must not kill the trial
                log.warning("trial %d: metrics not stored: %s", run.claimed.number, error)
            self._check_stop(run, values)

    def _check_stop(self, run: _Run, values: Mapping[str, float]) -> None:
        if run.kill_reason is not None:
            return
        for condition in self.spec.stop_conditions:
            value = values.get(condition.metric)
            if value is not None and condition.holds(value):
                run.kill_reason = (
                    "pruned",
                    f"stop condition '{condition.metric} {condition.op} {condition.value:g}' "
                    f"met ({condition.metric} = {value:g})",
                )
                self._terminate(run)
                return

    # -- ending -----------------------------------------------------------------------------

    def _next_deadline(self, now: float) -> float:
        times = [now + 1.0]  # wake up now and then to flush tails
        for run in self._runs:
            times += [
                t for t in (run.deadline if run.kill_reason is None else None, run.kill_at) if t
            ]
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
            if run.kill_at is not None and now >= run.kill_at:
                self._kill_group(run, signal.SIGKILL)
                run.kill_at = None

    def _terminate(self, run: _Run) -> None:
        self._kill_group(run, signal.SIGTERM)
        run.kill_at = time.monotonic() + self.spec.grace

    def _kill_group(self, run: _Run, sig: signal.Signals) -> None:
        if run.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(run.process.pid, sig)

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
        assert run.process is not None
        code = run.process.wait()
        self._kill_group(run, signal.SIGKILL)  # leftovers of the group (daemons, workers)
        for output in run.logs.values():
            rows = output.take_head() + output.take_tail()
            if rows:
                self._store_logs(run, output.name, rows)
        error = self._start_failure(run)
        if error is not None:
            outcome = Outcome(
                TrialState.FAILED,
                failure_reason=FailureReason.EXIT_CODE.value,
                failure_detail=_start_error(self.spec.template, error),
            )
        else:
            outcome = self._outcome(run, code)
        self._end(run, outcome)

    def _start_failure(self, run: _Run) -> OSError | None:
        """Why the supervisor could not start the command (as the OSError Popen would have
        raised without a supervisor), or None when it started."""
        if run.status_fd is None:
            return None
        os.set_blocking(run.status_fd, False)
        try:
            text = os.read(run.status_fd, 4096).decode(errors="replace")
        except OSError:
            return None
        number, _, message = text.partition(" ")
        if not number.isdigit():
            return None
        return OSError(int(number), message or os.strerror(int(number)))

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
                f"killed by signal {signal.Signals(-code).name}"
                if code < 0
                else f"exited with code {code}"
            )
            return Outcome(
                TrialState.FAILED,
                None,
                metrics,
                FailureReason.EXIT_CODE.value,
                _with_stderr(f"the command {how}", stderr),
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
        if run.process is not None:
            for stream in (run.process.stdout, run.process.stderr):
                if stream is not None:
                    with contextlib.suppress(KeyError, ValueError):
                        self._selector.unregister(stream.fileno())
                    stream.close()
        if run.report_fd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(run.report_fd)
            os.close(run.report_fd)
            run.report_fd = None
        if run.status_fd is not None:
            os.close(run.status_fd)
            run.status_fd = None


def _with_stderr(detail: str, stderr: str) -> str:
    return f"{detail}\n--- last lines of stderr ---\n{stderr}" if stderr.strip() else detail


def _start_error(template: CommandTemplate, error: OSError) -> str:
    program = template.argv[0]
    if isinstance(error, FileNotFoundError):
        return f"command not found: {program!r} (no such file, and not on PATH)"
    if isinstance(error, PermissionError):
        return f"cannot run {program!r}: permission denied (is it executable?)"
    return f"cannot start {program!r}: {error}"


def _load_prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()


def _die_with_parent() -> None:
    """Runs in the forked child before exec: die if the driver dies (Linux). Used only without
    the supervisor; it ends the command itself but not what the command started."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)


_SUPERVISOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "supervise.py")
ORPHAN_GRACE = 1.0  # seconds between SIGTERM and SIGKILL when the driver has died
# Where the supervisor can run (it needs sigtimedwait: Linux and most POSIX systems, not macOS);
# elsewhere commands start directly, as before, and grandchildren of a killed driver may outlive it.
SUPERVISED = (
    hasattr(signal, "sigtimedwait")
    and bool(sys.executable)
    and os.access(sys.executable, os.X_OK)
    and os.path.isfile(_SUPERVISOR)
)


def _supervisor_argv(status_fd: int, grace: float) -> list[str]:
    """The command line that runs the supervisor; the command's argv follows it. ``-I -S``:
    no site-packages and no user environment, so it starts fast and the same everywhere."""
    return [
        sys.executable,
        "-I",
        "-S",
        _SUPERVISOR,
        str(os.getpid()),
        str(status_fd),
        repr(min(grace, ORPHAN_GRACE)),
        "--",
    ]


class Command:
    """A shell command as the objective: ``study.optimize(hs.Command("python train.py --lr :lr:"))``.

    The trial's value is `metric_agg` (last, min, max, avg) of the `metric` series the command
    prints (``val_acc=0.91``, JSON lines, Keras progress lines, or `hypersearch.report`).
    `stop_conditions` such as ``"loss > 10"`` end a trial early (PRUNED); `timeout` (seconds)
    fails it; `gpus` with `gpus_per_trial` hands each trial its own ``CUDA_VISIBLE_DEVICES``.
    """

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        metric: str = "loss",
        metric_agg: str = "last",
        stop_conditions: Sequence[str | StopCondition] = (),
        timeout: float | None = None,
        grace: float = 10.0,
        gpus: Sequence[int] | None = None,
        gpus_per_trial: int = 1,
        shell: bool = False,
        output_dir: str = "hypersearch-runs",
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        from hypersearch.execution.metric_lines import parse_stop_condition

        self.template = CommandTemplate(command, shell=shell)
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"metric must be a non-empty name, got {metric!r}")
        aggregate([], metric_agg)  # raises a ValueError listing the valid ones
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if gpus is not None and (not gpus or any(not isinstance(g, int) or g < 0 for g in gpus)):
            raise ValueError(f"gpus must be a list of GPU indices such as 0,1; got {gpus!r}")
        if not isinstance(gpus_per_trial, int) or gpus_per_trial < 1:
            raise ValueError(f"gpus_per_trial must be a positive integer, got {gpus_per_trial!r}")
        self.metric, self.metric_agg = metric, metric_agg
        self.stop_conditions = tuple(
            c if isinstance(c, StopCondition) else parse_stop_condition(c) for c in stop_conditions
        )
        self.timeout, self.grace = timeout, grace
        self.gpus = None if gpus is None else tuple(gpus)
        self.gpus_per_trial = gpus_per_trial
        self.output_dir, self.cwd = output_dir, cwd
        self.env = dict(env or {})

    def spec(self, study_name: str, deadline: float | None) -> CommandSpec:
        return CommandSpec(
            template=self.template,
            metric=self.metric,
            metric_agg=self.metric_agg,
            stop_conditions=self.stop_conditions,
            timeout=self.timeout,
            deadline=deadline,
            grace=self.grace,
            gpus=self.gpus,
            gpus_per_trial=self.gpus_per_trial,
            output_root=self.output_dir,
            study_name=study_name,
            cwd=self.cwd,
            extra_env=self.env,
        )

    def to_config(self) -> dict[str, Any]:
        """JSON-able form, stored with a study so `hypersearch resume` can run it again."""
        return {
            "command": list(self.template.argv),
            "shell": self.template.shell,
            "metric": self.metric,
            "metric_agg": self.metric_agg,
            "stop_conditions": [f"{c.metric} {c.op} {c.value!r}" for c in self.stop_conditions],
            "timeout": self.timeout,
            "grace": self.grace,
            "gpus": None if self.gpus is None else list(self.gpus),
            "gpus_per_trial": self.gpus_per_trial,
            "output_dir": self.output_dir,
            "cwd": self.cwd,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Command:
        return cls(
            config["command"],
            metric=config.get("metric", "loss"),
            metric_agg=config.get("metric_agg", "last"),
            stop_conditions=config.get("stop_conditions", ()),
            timeout=config.get("timeout"),
            grace=config.get("grace", 10.0),
            gpus=config.get("gpus"),
            gpus_per_trial=config.get("gpus_per_trial", 1),
            shell=config.get("shell", False),
            output_dir=config.get("output_dir", "hypersearch-runs"),
            cwd=config.get("cwd"),
        )

    def __repr__(self) -> str:
        return f"Command({shlex.join(self.template.argv)!r}, metric={self.metric!r})"
