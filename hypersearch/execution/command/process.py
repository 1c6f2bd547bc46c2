"""The process of one command trial: started under the supervisor, ended as a whole group.

Each command runs in a process group of its own, led by a tiny supervisor
(`hypersearch.execution.supervise`) that ends the group if the driver itself is killed. Ending a
trial sends SIGTERM to the whole group and SIGKILL after a grace period. Its output is kept as a
bounded head and tail (`BoundedLog`), so huge output never grows memory.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

READ_CHUNK = 65536
HEAD_LINES = 500  # lines of each stream stored as they come
TAIL_LINES = 500  # and the last lines, kept in memory and stored at the end

_SUPERVISOR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "supervise.py"
)
ORPHAN_GRACE = 1.0  # seconds between SIGTERM and SIGKILL when the driver has died
# Where the supervisor can run (it needs sigtimedwait: Linux and most POSIX systems, not macOS);
# elsewhere commands start directly, as before, and grandchildren of a killed driver may outlive it.
SUPERVISED = (
    hasattr(signal, "sigtimedwait")
    and bool(sys.executable)
    and os.access(sys.executable, os.X_OK)
    and os.path.isfile(_SUPERVISOR)
)


def supervisor_argv(status_fd: int, grace: float) -> list[str]:
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


def start_error(program: str, error: OSError) -> str:
    """Why a command could not start, in the words a user needs."""
    if isinstance(error, FileNotFoundError):
        return f"command not found: {program!r} (no such file, and not on PATH)"
    if isinstance(error, PermissionError):
        return f"cannot run {program!r}: permission denied (is it executable?)"
    return f"cannot start {program!r}: {error}"


class TrialProcess:
    """One started command: the leader of its own process group, with its output pipes, the
    read end of its report channel (``HYPERSEARCH_REPORT_FD``) and, under the supervisor, the
    read end of the supervisor's "cannot start" channel."""

    def __init__(
        self, process: subprocess.Popen[bytes], report_fd: int, status_fd: int | None
    ) -> None:
        self.process = process
        self.report_fd: int | None = report_fd
        self.status_fd = status_fd
        self.kill_at: float | None = None  # when SIGKILL follows the SIGTERM already sent
        self.term_at: float | None = None  # when SIGTERM follows a decision it was told of
        self._grace = 0.0

    @classmethod
    def start(
        cls, argv: Sequence[str], env: Mapping[str, str], cwd: str | None, grace: float
    ) -> TrialProcess:
        """Start `argv` in a new process group (raises OSError when it cannot start without a
        supervisor; under the supervisor that shows later, as `start_failure`)."""
        read_fd, write_fd = os.pipe()
        env = {**env, "HYPERSEARCH_REPORT_FD": str(write_fd)}
        status_read: int | None = None
        status_write: int | None = None
        pass_fds: tuple[int, ...] = (write_fd,)
        preexec_fn: Any = _die_with_parent
        try:
            if SUPERVISED:
                # The supervisor leads the group and runs the command in it (supervise.py says
                # why); the group's id is the supervisor's pid, so killpg reaches everything.
                status_read, status_write = os.pipe()
                argv = [*supervisor_argv(status_write, grace), *argv]
                pass_fds, preexec_fn = (write_fd, status_write), None
            process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
                env=env,
                pass_fds=pass_fds,
                start_new_session=True,  # its own process group: we can kill grandchildren
                preexec_fn=preexec_fn,
            )
        except BaseException:  # OSError, or ValueError for a NUL byte in argv or env
            os.close(read_fd)
            if status_read is not None:
                os.close(status_read)
            raise
        finally:
            os.close(write_fd)
            if status_write is not None:
                os.close(status_write)
        return cls(process, read_fd, status_read)

    def signal(self, sig: signal.Signals) -> None:
        """Send `sig` to the whole group (grandchildren too); a group already gone is fine."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def terminate(self, grace: float) -> None:
        """SIGTERM now; `kill_if_due` sends SIGKILL `grace` seconds later."""
        self.term_at = None
        self.signal(signal.SIGTERM)
        self.kill_at = time.monotonic() + grace

    def terminate_later(self, grace: float) -> None:
        """A command that listens to its decisions: SIGTERM only if it is still running
        `grace` seconds from now (then SIGKILL another `grace` later), via `kill_if_due`."""
        if self.term_at is None and self.kill_at is None:
            self.term_at = time.monotonic() + grace
            self._grace = grace

    def kill_if_due(self, now: float) -> None:
        if self.term_at is not None and now >= self.term_at:
            self.term_at = None
            self.terminate(self._grace)
        if self.kill_at is not None and now >= self.kill_at:
            self.signal(signal.SIGKILL)
            self.kill_at = None

    def start_failure(self) -> OSError | None:
        """Why the supervisor could not start the command (as the OSError Popen would have
        raised without a supervisor), or None when it started."""
        if self.status_fd is None:
            return None
        os.set_blocking(self.status_fd, False)
        try:
            text = os.read(self.status_fd, 4096).decode(errors="replace")
        except OSError:
            return None
        number, _, message = text.partition(" ")
        if not number.isdigit():
            return None
        return OSError(int(number), message or os.strerror(int(number)))

    def close_report(self) -> None:
        if self.report_fd is not None:
            os.close(self.report_fd)
            self.report_fd = None

    def close(self) -> None:
        """Close every pipe end we hold (unregister them from any selector first)."""
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self.close_report()
        if self.status_fd is not None:
            os.close(self.status_fd)
            self.status_fd = None


class BoundedLog:
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

    def extend(self, lines: Sequence[str]) -> None:
        """`add` each line in turn, in bulk: only the lines the head and tail keep are touched."""
        count, n = self.count, len(lines)
        start = 0
        if count < HEAD_LINES:
            start = min(HEAD_LINES - count, n)
            self.head.extend(zip(range(count, count + start), lines[:start], strict=True))
        if start < n:
            start = max(start, n - TAIL_LINES)  # older ones would leave the deque at once
            self.tail.extend(zip(range(count + start, count + n), lines[start:], strict=True))
        self.count = count + n

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
