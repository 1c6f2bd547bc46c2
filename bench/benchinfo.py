"""What every benchmark records about the code it measured."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection


def source_fingerprint() -> str:
    """A hash of hypersearch's source files: the tree may change while the benchmark runs."""
    import hashlib

    import hypersearch

    root = os.path.dirname(hypersearch.__file__)
    digest = hashlib.sha1()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:12]


def git_revision() -> str:
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", here, "status", "--porcelain", "--", "../hypersearch"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in hypersearch/" if dirty else "")


def available_methods(methods: Iterable[str], known: Sequence[str]) -> list[str]:
    """`methods` less the ones this machine cannot run, each with a warning: hypersearch
    strategies not registered (``hs-<name>``) and Optuna's GPSampler without torch; an
    unknown name (not in `known`) stops the benchmark."""
    import importlib.util

    from hypersearch.errors import StrategyError
    from hypersearch.samplers import get_sampler

    keep = []
    for method in methods:
        library, _, kind = method.partition("-")
        if library == "hs":
            try:
                get_sampler(kind)
            except StrategyError as error:
                print(f"warning: skipping {method}: {error}", file=sys.stderr)
                continue
        elif method not in known:
            raise SystemExit(f"unknown method {method!r}; choose from {', '.join(known)}")
        elif method == "optuna-gp" and importlib.util.find_spec("torch") is None:
            print(
                "warning: skipping optuna-gp: Optuna's GPSampler needs torch "
                "(pip install torch==2.13.0: the CPU build)",
                file=sys.stderr,
            )
            continue
        keep.append(method)
    return keep


def _send_result(target: Callable[..., Any], args: tuple[Any, ...], conn: Connection) -> None:
    try:
        conn.send(target(*args))
    except BaseException:
        conn.send(traceback.format_exc())
    conn.close()


def run_isolated(target: Callable[..., Any], args: tuple[Any, ...], timeout: float) -> Any:
    """``target(*args)`` in a fresh spawned process (nothing imported or cached before it): its
    result, or a string saying why there is none (its traceback, its death, the timeout)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_send_result, args=(target, args, send))
    process.start()
    send.close()
    answer: Any
    if receive.poll(timeout):
        try:
            answer = receive.recv()
        except EOFError:
            answer = f"the measuring process died (exit code {process.exitcode})"
    else:
        answer = f"timed out after {timeout:.0f} s"
        process.kill()
    process.join()
    return answer
