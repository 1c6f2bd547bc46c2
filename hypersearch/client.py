"""The client used *inside* training scripts to hand metrics to hypersearch.

Example::

    from hypersearch.client import report

    for epoch in range(10):
        ...
        report(step=epoch, val_acc=0.91, loss=0.2)

Line format (any language can print it; one line per report)::

    @hypersearch {"step": 3, "metrics": {"val_acc": 0.91, "loss": 0.2}}

- the tag ``@hypersearch`` and one space, then a JSON object on the same line;
- ``"step"``: an integer >= 0, or ``null`` (hypersearch then numbers the reports itself);
- ``"metrics"``: an object mapping metric names to numbers. Names match
  ``[A-Za-z_][A-Za-z0-9_.\\-/]*`` (``val_acc``, ``train/loss``, ``top-1``). JSON has no NaN or
  infinity, so those are written as the strings ``"nan"``, ``"inf"`` and ``"-inf"``.

Where the line goes: if the environment variable ``HYPERSEARCH_REPORT_FD`` holds a file
descriptor number (hypersearch sets it for shell-command trials), the line is written to that
descriptor in one ``os.write``, so reports never interleave with the script's own output; if that
write fails, or the variable is absent, the line is printed to stdout and flushed.

Inside a Python objective that hypersearch runs (in process or in a worker process),
``report`` does not print: it finds the running trial and calls ``trial.report``, so the report is
stored and the decision (``Decision.CONTINUE`` / ``STOP`` / ``PAUSE``) is returned. In a shell
command ``report`` returns None; the decision comes back through the decision channel below.

Decision channel (shell commands)::

    from hypersearch import client

    client.listen()                      # optional: should_stop() declares it too
    for epoch in range(1, 101):
        client.report(step=epoch, loss=train_one_epoch())
        if client.should_stop():         # one os.stat while nothing was decided
            break                        # save, clean up, exit 0

- hypersearch sets ``HYPERSEARCH_DECISION_FILE`` for every command: a path in the trial's
  output folder that does not exist while the trial may go on. When the scheduler says STOP
  (or PAUSE), hypersearch writes there, atomically (a temporary file, then ``os.replace``), one
  JSON object: ``{"decision": "STOP", "reason": "...", "step": 3}``.
- A command *listens* once it has printed the line ``@hypersearch {"listens": true}`` on the
  report channel (``listen()`` does, once per process; ``should_stop()`` and ``decision()``
  call it). A listening command told to stop is given the ``grace`` period to exit by itself;
  only then is it sent SIGTERM (and SIGKILL after another ``grace``). A command that does not
  listen is sent SIGTERM at once, as before. Either way the trial is recorded PRUNED with its
  curve, whatever the exit code.
- Declare listening before the first report whose answer you read (``listen()`` at the start,
  or one ``should_stop()`` before the loop): hypersearch gives the grace period only to a
  command whose ``listens`` line it read before it decided.
- Any language: print the line, then test whether the file exists (and read it when it does).

Inside a Python objective ``should_stop()`` and ``decision()`` ask the running trial
(``trial.should_stop()``), and ``listen()`` does nothing. Outside any trial (a script run by
hand) the decision is always ``"CONTINUE"``.

This module uses only the standard library and imports nothing else from hypersearch: training
scripts pay no import cost (no numpy) for reporting.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import numbers
import operator
import os
import re
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = [
    "DECISION_FILE_ENV",
    "REPORT_FD_ENV",
    "TAG",
    "TRIAL_ENV",
    "current_trial",
    "decision",
    "format_line",
    "in_trial",
    "listen",
    "report",
    "should_stop",
    "trial_context",
]

TAG = "@hypersearch"
REPORT_FD_ENV = "HYPERSEARCH_REPORT_FD"
TRIAL_ENV = "HYPERSEARCH_TRIAL"
DECISION_FILE_ENV = "HYPERSEARCH_DECISION_FILE"
LISTEN_LINE = TAG + ' {"listens": true}'
DECISIONS = ("CONTINUE", "STOP", "PAUSE")

# Kept in step with hypersearch.execution.metric_lines.METRIC_NAME_RE (not imported: this module
# must stay free of other hypersearch imports).
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
# One lock so that reports from several threads never interleave inside one line on stdout.
_LOCK = threading.Lock()


# The Python trial whose objective runs in this context (set by the executors around the call).
_CURRENT: contextvars.ContextVar[Any] = contextvars.ContextVar("hypersearch_trial", default=None)
# Every trial whose objective runs in this process, with the pid that started it: a thread the
# objective started has a fresh context, so it finds the trial here when exactly one runs.
_ACTIVE: dict[int, tuple[int, Any]] = {}


@contextlib.contextmanager
def trial_context(trial: Any) -> Iterator[None]:
    """Make `trial` the current one while its objective runs (used by the executors)."""
    token = _CURRENT.set(trial)
    _ACTIVE[id(trial)] = (os.getpid(), trial)
    try:
        yield
    finally:
        _ACTIVE.pop(id(trial), None)
        _CURRENT.reset(token)


def current_trial() -> Any:
    """The live trial of the Python objective running here, or None (shell commands, scripts)."""
    trial = _CURRENT.get()
    if trial is None and len(_ACTIVE) == 1:
        pid, trial = next(iter(_ACTIVE.values()))
    else:
        pid = _ACTIVE.get(id(trial), (os.getpid(), None))[0]
    # a process forked by the objective (a data loader) must not talk on its parent's channel
    return trial if pid == os.getpid() else None


def in_trial() -> bool:
    """True when running as a hypersearch trial: ``HYPERSEARCH_TRIAL`` is set and non-empty (a
    shell command), or a Python objective is running its trial here."""
    return bool(os.environ.get(TRIAL_ENV)) or current_trial() is not None


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"report(): metric name must be a non-empty string, got {name!r}")
    if _NAME_RE.fullmatch(name) is None:
        raise ValueError(
            f"report(): metric name {name!r} is invalid: it must match "
            r"[A-Za-z_][A-Za-z0-9_.\-/]* (e.g. 'val_acc', 'train/loss')"
        )
    return name


def _is_bool(value: object) -> bool:
    # numpy.bool_ is not a numbers.Real but converts with float(); reject it like bool.
    kind = type(value)
    return isinstance(value, bool) or (
        kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_")
    )


def _check_value(name: str, value: object) -> float:
    if _is_bool(value):
        raise ValueError(f"report(): metric {name!r} is a bool ({value!r}); pass a number")
    if isinstance(value, str | bytes | bytearray):
        raise ValueError(f"report(): metric {name!r} is text ({value!r}); pass a number")
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        raise ValueError(f"report(): metric {name!r} is complex ({value!r}); pass a real number")
    # numbers.Real covers int, float, Fraction and numpy scalars; float() also takes Decimal,
    # 0-d arrays and one-element tensors, which training scripts often hold.
    try:
        result = float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise ValueError(
            f"report(): metric {name!r} value {value!r} is too large for a float"
        ) from None
    except (TypeError, ValueError):
        raise ValueError(
            f"report(): metric {name!r} must be a real number, got {type(value).__name__} {value!r}"
        ) from None
    return result


def _check_step(step: object) -> int | None:
    if step is None:
        return None
    if _is_bool(step):
        raise ValueError(f"report(): step must be an int >= 0 or None, got bool {step!r}")
    try:
        index = operator.index(step)  # type: ignore[arg-type]  # int and numpy integers
    except TypeError:
        raise ValueError(
            f"report(): step must be an int >= 0 or None, got {type(step).__name__} {step!r}"
        ) from None
    if index < 0:
        raise ValueError(f"report(): step must be >= 0, got {index}")
    return index


def _json_number(value: float) -> float | str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def format_line(step: int | None = None, **metrics: float) -> str:
    """Validate a report and return its tagged line (without the newline).

    >>> format_line(step=3, val_acc=0.91)
    '@hypersearch {"step": 3, "metrics": {"val_acc": 0.91}}'

    Raises ValueError naming the offending argument for a bad name, value or step.
    """
    checked_step = _check_step(step)
    if not metrics:
        raise ValueError("report() needs at least one metric, e.g. report(step=3, val_acc=0.91)")
    values = {_check_name(name): _json_number(_check_value(name, v)) for name, v in metrics.items()}
    payload = json.dumps({"step": checked_step, "metrics": values}, allow_nan=False)
    return f"{TAG} {payload}"


def _report_fd() -> int | None:
    raw = os.environ.get(REPORT_FD_ENV, "").strip()
    if not raw.isdigit():  # absent or not a descriptor number: use stdout
        return None
    return int(raw)


def _write_fd(fd: int, data: bytes) -> bool:
    try:
        written = os.write(fd, data)  # one write: atomic on pipes for lines up to PIPE_BUF
        while written < len(data):  # longer lines may be written in parts
            written += os.write(fd, data[written:])
    except (OSError, OverflowError):
        return False
    return True


def report(step: int | None = None, **metrics: float) -> Any:
    """Report metrics of the current trial, optionally at a training step.

    >>> report(step=3, val_acc=0.91, loss=0.2)  # doctest: +SKIP

    ``step`` is an int >= 0 or None; metric values are real numbers (numpy scalars welcome,
    bool is refused). Inside a Python objective run by hypersearch this is ``trial.report`` and
    returns its Decision; elsewhere it writes one line in the format described in this module's
    docstring and returns None. Raises ValueError with the offending name or value; nothing is
    reported then.
    """
    trial = current_trial()
    if trial is not None:
        checked_step = _check_step(step)
        if not metrics:
            raise ValueError(
                "report() needs at least one metric, e.g. report(step=3, val_acc=0.91)"
            )
        values = {_check_name(name): _check_value(name, v) for name, v in metrics.items()}
        return trial.report(checked_step, **values)
    _write_line(format_line(step, **metrics) + "\n")
    return None


def _write_line(line: str) -> None:
    """One line to the report channel, else to stdout (see this module's docstring)."""
    with _LOCK:
        fd = _report_fd()
        if fd is not None and _write_fd(fd, line.encode("ascii")):
            return
        stream = sys.stdout
        if stream is None:  # pythonw and detached processes have no stdout
            return
        stream.write(line)  # the whole line in one call, so threads can't split it
        stream.flush()


_LISTENING: set[int] = set()  # pids that printed the listens line (a forked child prints its own)
# (path, inode, mtime, size) of the decision file last read, and what it said
_SEEN: list[Any] = [None, "CONTINUE"]


def listen() -> None:
    """Tell hypersearch that this command reads its decisions, so a STOP gives it the grace
    period to exit by itself before any SIGTERM (see "Decision channel" above).

    >>> listen()  # doctest: +SKIP

    Prints ``@hypersearch {"listens": true}`` once per process, and only in a shell-command
    trial (``HYPERSEARCH_DECISION_FILE`` set); a no-op inside a Python objective or elsewhere.
    """
    if current_trial() is not None or not os.environ.get(DECISION_FILE_ENV):
        return
    pid = os.getpid()
    if pid in _LISTENING:
        return
    _LISTENING.add(pid)
    _write_line(LISTEN_LINE + "\n")


def decision() -> str:
    """The latest decision on this trial: ``"CONTINUE"``, ``"STOP"`` or ``"PAUSE"``.

    >>> decision()  # outside a trial  # doctest: +SKIP
    'CONTINUE'

    Inside a Python objective: the answer to the running trial's latest report. In a shell
    command: what hypersearch wrote to ``$HYPERSEARCH_DECISION_FILE`` ("CONTINUE" while the
    file is absent; one ``os.stat`` per call, the file read only when it changed). Declares
    listening (`listen`) on its first call.
    """
    trial = current_trial()
    if trial is not None:
        answer = getattr(trial, "_decision", None)  # hypersearch.trial.Trial keeps the answer
        if answer is None:
            return "STOP" if trial.should_stop() else "CONTINUE"
        return str(answer)
    path = os.environ.get(DECISION_FILE_ENV)
    if not path:
        return "CONTINUE"
    listen()
    try:
        st = os.stat(path)
    except OSError:  # absent: nothing decided yet
        return "CONTINUE"
    key = (path, st.st_ino, st.st_mtime_ns, st.st_size)
    if _SEEN[0] == key:
        return str(_SEEN[1])
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
    except (OSError, ValueError):  # replaced as we read: the next call reads it again
        return "CONTINUE"
    said = payload.get("decision") if isinstance(payload, dict) else None
    # anything hypersearch wrote there means "end now", whatever its spelling
    answer = said.upper() if isinstance(said, str) and said.upper() in DECISIONS else "STOP"
    _SEEN[:] = [key, answer]
    return answer


def should_stop() -> bool:
    """True once hypersearch decided that this trial ends (STOP or PAUSE): save and return.

    >>> if should_stop():  # doctest: +SKIP
    ...     break

    See `decision`; inside a Python objective this is ``trial.should_stop()``.
    """
    return decision() != "CONTINUE"
