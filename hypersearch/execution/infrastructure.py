"""Failures of the machine, told apart from failures of the configuration.

A trial that fails because this host lacks something (the command's executable, a usable GPU,
disk space, a writable disk) says nothing about its parameters. It is recorded FAILED
``infrastructure``, with the host named, and the study's ``retry_on`` (by default) queues it
again for whichever worker claims it next; one that failed so on two different hosts is not
re-run again (study/driver.py), since then the configuration is the likelier cause.
"""

from __future__ import annotations

import errno
import socket

from hypersearch.trial import FailureReason, Outcome

# lower-case phrases in an error message or a command's stderr -> what they mean
_SIGNS: tuple[tuple[str, str], ...] = (
    ("no space left on device", "the disk is full"),
    ("disk quota exceeded", "the disk quota is used up"),
    ("read-only file system", "the file system is read-only"),
    ("no cuda gpus are available", "CUDA is unavailable"),
    ("no cuda-capable device", "CUDA is unavailable"),
    ("cuda driver version is insufficient", "the CUDA driver is too old"),
    ("cuda-capable devices are busy or unavailable", "the GPUs are busy or unavailable"),
    ("cuda error: unknown error", "the GPU failed"),
    ("nvidia-smi has failed", "the NVIDIA driver is not working"),
)
_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
           errno.EROFS: "the file system is read-only"}


def host_problem(text: str) -> str | None:
    """What is wrong with this host, if `text` (an error, a stderr tail) shows a known sign."""
    lowered = text.lower()
    return next((meaning for sign, meaning in _SIGNS if sign in lowered), None)


def error_problem(error: BaseException) -> str | None:
    """`host_problem` of an exception raised by an objective (its errno first)."""
    if isinstance(error, OSError) and error.errno in _ERRNOS:
        return _ERRNOS[error.errno]
    return host_problem(f"{type(error).__name__}: {error}")


_MARK = "(this machine's fault, not the configuration's)"


def on_this_host(problem: str) -> str:
    """`problem` as a failure detail that names this host (and that `host_failure` knows)."""
    return f"{problem} on host {socket.gethostname()} {_MARK}"


def host_failure(outcome: Outcome) -> str | None:
    """The line of `outcome` that says it failed because of this host (`on_this_host`), or
    None: then the worker should leave the study to machines that can run it."""
    if outcome.failure_reason != FailureReason.INFRASTRUCTURE.value:
        return None
    mark = f"on host {socket.gethostname()} {_MARK}"
    return next((line.strip() for line in (outcome.failure_detail or "").splitlines()
                 if mark in line), None)
