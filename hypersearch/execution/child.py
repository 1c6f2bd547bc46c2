"""Entry point of a worker child process: ``python -m hypersearch.execution.child IN OUT PARENT``.

Receives the objective once (cloudpickle), then JSON requests to run trials; answers with JSON.
The child dies with its parent (PR_SET_PDEATHSIG on Linux, a watchdog thread elsewhere) so a
killed driver never leaves orphans evaluating trials nobody will record.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

from hypersearch.client import trial_context
from hypersearch.execution.evaluate import evaluate
from hypersearch.execution.executors import (
    done_message,
    finished_from_trial,
    read_frame,
    write_frame,
)
from hypersearch.space import Distribution, Space
from hypersearch.trial import Decision, FrozenTrial, Trial, TrialState


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass

    def watchdog() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            time.sleep(1.0)

    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    threading.Thread(target=watchdog, daemon=True).start()


class _PipeBackend:
    """The child's end of the pipes. Reports and suggestions are round trips to the driver, one
    at a time (a lock: objective threads may report at once)."""

    def __init__(self, to_parent: int, from_parent: int) -> None:
        self.to_parent, self.from_parent = to_parent, from_parent
        self._lock = threading.Lock()

    def _send(self, message: dict[str, Any]) -> None:
        write_frame(self.to_parent, json.dumps(message).encode())

    def _ask(self, message: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._send(message)
            frame = read_frame(self.from_parent)
        if frame is None:  # the driver is gone: nobody will record this trial
            os._exit(1)
        answer: dict[str, Any] = json.loads(frame)
        if answer.get("op") == "exit":  # the driver is closing while this trial still runs
            os._exit(1)
        return answer

    def report(self, trial: Trial, step: int | None, metrics: dict[str, float]) -> Decision:
        answer = self._ask({"op": "report", "step": step, "metrics": metrics})
        return Decision(answer["decision"])

    def suggest(self, trial: Trial, name: str, dist: Distribution) -> Any:
        return self._ask({"op": "suggest", "name": name, "distribution": dist.to_json()})["value"]


def main(argv: list[str]) -> None:
    from_parent, to_parent, parent_pid = int(argv[0]), int(argv[1]), int(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver handles Ctrl-C and stops us
    _die_with_parent(parent_pid)
    import cloudpickle

    payload = read_frame(from_parent)
    if payload is None:
        return
    backend = _PipeBackend(to_parent, from_parent)
    try:
        objective, style, tree, metric = cloudpickle.loads(payload)
        space = None if tree is None else Space(tree)
    except Exception:
        backend._send({"op": "fatal", "detail": traceback.format_exc(limit=5)})
        return
    backend._send({"op": "ready"})
    while True:
        frame = read_frame(from_parent)
        if frame is None:
            return
        request = json.loads(frame)
        if request["op"] != "run":
            return
        trial = Trial(
            request["number"],
            request["flat_params"],
            space,
            backend,
            distributions={} if space is None else None,
            checkpoint_dir=request.get("checkpoint_dir"),
            restore_from=request.get("restore_from"),
        )
        with trial_context(trial):  # hs.report() inside the objective finds this trial
            outcome = evaluate(objective, style, trial, metric)
        claimed = FrozenTrial(trial.number, TrialState.RUNNING)
        backend._send(done_message(finished_from_trial(claimed, trial, outcome)))


if __name__ == "__main__":
    main(sys.argv[1:])
