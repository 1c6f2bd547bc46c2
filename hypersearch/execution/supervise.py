"""Supervisor of one command trial: ``python -I -S supervise.py PARENT STATUS_FD GRACE -- CMD...``.

Why it exists: the runner starts each command in a process group of its own so it can kill the
grandchildren too (DataLoader workers, ``cmd &`` in a script). If the runner itself is SIGKILLed,
nothing is left to do that, and the group lives on as orphans holding GPUs. This tiny process
(stdlib only and run with ``-I -S``, so it starts in a few milliseconds) leads the group, runs the
command inside that same group, and:

- exits as the command did; a command killed by signal N kills this process with N too, so the
  runner sees the same status as if it had started the command itself;
- when its parent PARENT is gone (polled with getppid, so it needs no ctypes and is not fooled by
  the exit of the thread that started it), sends SIGTERM to the group and SIGKILL after GRACE s;
- forwards SIGTERM/SIGINT/SIGHUP from elsewhere to the group; the runner (and a member of the
  group) signals the whole group itself, so theirs are not delivered to the command twice;
- when the command cannot start, writes ``ERRNO STRERROR`` on STATUS_FD and exits 127, so the
  runner can say "command not found" exactly as before.

The command gets stdin, stdout, stderr, the environment, the working directory and every
inheritable descriptor (``HYPERSEARCH_REPORT_FD``) exactly as this process got them; STATUS_FD is
not inherited.
"""

from __future__ import annotations

import os
import sys
import time

try:  # the C module: `signal` adds enums that cost ~5 ms to import, a third of our start-up
    import _signal as signal
except ImportError:  # not CPython
    import signal

POLL = 0.25  # seconds between checks that the parent is still alive
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# Ignored by Python; back to the default for the command, as subprocess's restore_signals does.
RESTORED = (signal.SIGPIPE, signal.SIGXFSZ)
CORE_DUMPING = {
    signal.SIGQUIT,
    signal.SIGILL,
    signal.SIGTRAP,
    signal.SIGABRT,
    signal.SIGBUS,
    signal.SIGFPE,
    signal.SIGSEGV,
    signal.SIGSYS,
    signal.SIGXCPU,
    signal.SIGXFSZ,
}
USAGE = "usage: supervise.py PARENT_PID STATUS_FD GRACE_SECONDS -- COMMAND [ARG...]"


def parse(args: list[str]) -> tuple[int, int, float, list[str]]:
    """(parent pid, status fd, grace, command argv); ValueError when malformed."""
    if len(args) < 5 or args[3] != "--":
        raise ValueError(USAGE)
    try:
        return int(args[0]), int(args[1]), max(float(args[2]), 0.0), args[4:]
    except ValueError:
        raise ValueError(USAGE) from None


def exit_like(status: int) -> int:
    """End this process the way the command ended (the same signal, or the same exit code)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig in CORE_DUMPING:  # the command's core dump is the useful one, not ours
            import resource

            resource.setrlimit(
                resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1])
            )
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
        os.kill(os.getpid(), sig)
        return 128 + sig  # only when the signal does not end a process (it always should)
    return os.waitstatus_to_exitcode(status)


def spawn(argv: list[str], mask: set[int], status_fd: int) -> int:
    """Fork and exec the command in this process group, as subprocess would (PATH search, the
    same errors). posix_spawn would be shorter, but glibc's leaves two signals ignored."""
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: nothing here may return into the supervisor's loop
        # exec resets caught signals (Python's SIGINT handler) and keeps ignored ones, as a
        # command started by the runner itself would; only Python's own ignores are undone
        for sig in RESTORED:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.execvp(argv[0], argv)
    except OSError as error:
        os.write(status_fd, f"{error.errno or 0} {error.strerror or error}".encode())
    finally:
        os._exit(127)


def sent_from_outside(info: signal.struct_siginfo, parent: int) -> bool:
    """Whether a signal came from neither the runner nor this group: the runner and the group's
    members signal the whole group (or could), so forwarding theirs would deliver it twice."""
    if info.si_pid == parent:
        return False
    try:
        return os.getpgid(info.si_pid) != os.getpgrp()
    except OSError:  # the sender is gone
        return True


def signal_group(sig: int) -> None:
    """Signal the whole group, this process included (it has the catchable ones blocked)."""
    os.killpg(os.getpgrp(), sig)


def main(args: list[str]) -> int:
    watched = {*FORWARDED, signal.SIGCHLD}
    # Before anything else: a signal from now on waits for sigtimedwait below.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, watched)
    try:
        parent, status_fd, grace, argv = parse(args)
    except ValueError as error:
        print(f"hypersearch supervise: {error}", file=sys.stderr)
        return 2
    me = os.getpid()
    if os.getpgrp() != me:  # the runner makes us a session leader; by hand we lead a new group
        os.setpgid(0, 0)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # an inherited SIG_IGN would auto-reap it
    if os.getppid() != parent:  # the runner died while we started: nobody wants the result
        return 1
    os.set_inheritable(status_fd, False)  # closed by a successful exec
    child = spawn(argv, old_mask, status_fd)
    os.close(status_fd)
    kill_at: float | None = None  # set once the parent is gone
    while True:
        timeout = POLL if kill_at is None else max(min(POLL, kill_at - time.monotonic()), 0.0)
        info = signal.sigtimedwait(watched, timeout)
        if info is not None and info.si_signo in FORWARDED and sent_from_outside(info, parent):
            signal_group(info.si_signo)
        if kill_at is None:
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid:
                return exit_like(status)
            if os.getppid() != parent:  # the runner died: nobody else will end this group
                signal_group(signal.SIGTERM)
                kill_at = time.monotonic() + grace
        elif time.monotonic() >= kill_at:
            signal_group(signal.SIGKILL)  # grandchildren that ignored SIGTERM; ends us too


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(code)  # skips the interpreter's tear-down: a few ms per trial
