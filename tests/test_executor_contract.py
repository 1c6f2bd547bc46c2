"""The executor contract (hypersearch/execution/protocol.py), checked on every executor, and a
custom executor plugged into a study without touching the study layer."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import hypersearch as hs
from hypersearch.execution.executors import Finished
from hypersearch.execution.protocol import Executor, TrialSetup, make_executor
from hypersearch.trial import FrozenTrial, Outcome, TrialState

SPACE = hs.Space({"x": hs.uniform(0.0, 1.0)})


def quick(params: dict[str, Any]) -> float:
    return float(params["x"])


def sleepy(params: dict[str, Any]) -> float:
    time.sleep(30)
    return 0.0


class _Sink:
    def __init__(self) -> None:
        self.reports: list[tuple[int, int | None, dict[str, float]]] = []

    def report_metrics(self, trial: FrozenTrial, step: int | None, metrics: dict[str, float]) -> Any:
        self.reports.append((trial.number, step, metrics))
        return hs.Decision.CONTINUE

    def append_logs(self, trial: FrozenTrial, stream: str, lines: Any) -> None:
        pass

    def suggest_param(self, trial: FrozenTrial, name: str, dist: Any) -> Any:
        return dist.sample(__import__("numpy").random.default_rng(0))

    def flush(self, trial: FrozenTrial | None = None) -> None:
        pass


def _setup(n_jobs: int, timeout: float | None = None) -> TrialSetup:
    return TrialSetup("contract", SPACE, None, n_jobs, None, timeout, 1.0, _Sink())


def _trial(number: int) -> FrozenTrial:
    return FrozenTrial(number=number, state=TrialState.RUNNING, flat_params={"x": 0.25 * number})


def _command(objective: Any) -> hs.Command:
    return hs.Command(
        [sys.executable, "-c", "import sys, time; time.sleep(float(sys.argv[2])); "
         "print('loss=%s' % sys.argv[1])", ":x:", "30" if objective is sleepy else "0"],
    )


EXECUTORS: dict[str, Callable[[Any, TrialSetup], Executor]] = {
    "inprocess": lambda objective, setup: make_executor(objective, "inprocess", setup),
    "process": lambda objective, setup: make_executor(objective, "process", setup),
    "command": lambda objective, setup: make_executor(_command(objective), "auto", setup),
    # Ray tasks on a Ray started (and shut down) by the executor: Python and command trials
    "ray": lambda objective, setup: make_executor(objective, "ray", setup),
    "ray-command": lambda objective, setup: make_executor(_command(objective), "ray", setup),
}


def _drain(executor: Executor, expected: int, seconds: float = 60) -> list[Finished]:
    done: list[Finished] = []
    deadline = time.monotonic() + seconds
    while len(done) < expected and time.monotonic() < deadline:
        done.extend(executor.wait(0.2))
    return done


@pytest.mark.parametrize("kind", list(EXECUTORS))
def test_every_submitted_trial_comes_back_exactly_once(kind: str) -> None:
    n_jobs = 1 if kind == "inprocess" else 2
    executor = EXECUTORS[kind](quick, _setup(n_jobs))
    try:
        assert isinstance(executor, Executor)
        submitted, done = 0, []
        deadline = time.monotonic() + 60
        while (submitted < 4 or executor.busy) and time.monotonic() < deadline:
            while submitted < 4 and executor.idle:
                executor.next_worker()
                executor.submit(_trial(submitted))
                submitted += 1
            done.extend(executor.wait(0.2))
        assert sorted(f.trial.number for f in done) == [0, 1, 2, 3]
        assert all(f.outcome.state is TrialState.COMPLETE for f in done)
        assert {f.trial.number: f.outcome.value for f in done} == {n: 0.25 * n for n in range(4)}
        assert executor.running() == []
    finally:
        executor.close()


@pytest.mark.parametrize("kind", ["process", "command", "ray", "ray-command"])
def test_cancel_ends_running_trials_as_interrupted(kind: str) -> None:
    executor = EXECUTORS[kind](sleepy, _setup(2))
    try:
        _wait_idle(executor, 2)
        for number in range(2):
            executor.submit(_trial(number))
        time.sleep(0.5 if not kind.startswith("ray") else 3.0)  # Ray starts its workers
        assert {t.number for t in executor.running()} == {0, 1}
        executor.cancel("test says stop")
        done = _drain(executor, 2, seconds=20)
        assert sorted(f.trial.number for f in done) == [0, 1]
        for finished in done:
            assert finished.outcome.failure_reason == "interrupted"
            assert "test says stop" in (finished.outcome.failure_detail or "")
    finally:
        executor.close()


@pytest.mark.parametrize("kind", ["process", "command", "ray"])
def test_trial_timeout_ends_a_trial_as_timeout(kind: str) -> None:
    setup = _setup(1, timeout=1.0)
    executor = EXECUTORS[kind](sleepy, setup)
    if kind == "command":  # a command's own timeout comes from hs.Command(timeout=...)
        executor.close()
        command = hs.Command([sys.executable, "-c", "import time; time.sleep(30)"], timeout=1.0)
        executor = make_executor(command, "auto", setup)
    try:
        _wait_idle(executor, 1)
        started = time.monotonic()
        executor.submit(_trial(0))
        (finished,) = _drain(executor, 1, seconds=20)
        assert finished.outcome.failure_reason == "timeout"
        assert time.monotonic() - started < 10
    finally:
        executor.close()


def _wait_idle(executor: Executor, n: int) -> None:
    deadline = time.monotonic() + 30
    while executor.idle < n and time.monotonic() < deadline:
        executor.wait(0.1)  # child processes report ready through wait()
    assert executor.idle >= n


class ThreadExecutor:
    """A custom executor written by a user: each trial on its own thread."""

    def __init__(self, objective: Callable[[dict[str, Any]], float], slots: int) -> None:
        self.objective, self.slots = objective, slots
        self._running: dict[int, FrozenTrial] = {}
        self._done: list[Finished] = []
        self._lock = threading.Lock()
        self.submitted: list[int] = []

    @property
    def idle(self) -> int:
        return self.slots - len(self._running)

    @property
    def busy(self) -> int:
        return len(self._running)

    @property
    def shows_status(self) -> bool:
        return False

    def status(self) -> list[dict[str, Any]] | None:
        return None

    def next_worker(self) -> str:
        return f"threads:{os.getpid()}"

    def submit(self, claimed: FrozenTrial) -> None:
        self._running[claimed.number] = claimed
        self.submitted.append(claimed.number)

        def work() -> None:
            value = self.objective(claimed.params if claimed.space else claimed.flat_params)
            with self._lock:
                self._done.append(Finished(claimed, Outcome(TrialState.COMPLETE, value)))

        threading.Thread(target=work, daemon=True).start()

    def wait(self, timeout: float) -> list[Finished]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                done, self._done = self._done, []
            if done:
                for finished in done:
                    self._running.pop(finished.trial.number, None)
                return done
            time.sleep(0.01)
        return []

    def running(self) -> list[FrozenTrial]:
        return list(self._running.values())

    def cancel(self, reason: str) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_custom_executor_plugs_into_optimize() -> None:
    custom = ThreadExecutor(quick, slots=3)
    study = hs.create_study({"x": hs.uniform(0, 1)}, seed=0)
    study.optimize(quick, max_trials=9, executor=custom, verbose=False)
    assert sorted(custom.submitted) == list(range(9))
    assert len(study.get_trials(["COMPLETE"])) == 9
    assert {t.worker for t in study.trials} == {f"threads:{os.getpid()}"}


def test_an_object_that_is_not_an_executor_is_refused_with_the_members_it_needs() -> None:
    with pytest.raises(hs.HypersearchError, match=r"members of hypersearch\.execution"):
        hs.minimize(quick, {"x": hs.uniform(0, 1)}, max_trials=1, executor=object())


def test_python_trial_timeout_kills_the_child_and_fails_the_trial() -> None:
    study = hs.minimize(
        sleepy,
        {"x": hs.uniform(0, 1)},
        max_trials=1,
        executor="process",
        trial_timeout=1.0,
        verbose=False,
    )
    (trial,) = study.trials
    assert trial.state is TrialState.FAILED and trial.failure_reason == "timeout"


class _StoppingSink(_Sink):
    """A sink whose scheduler says STOP at the second report."""

    def report_metrics(self, trial: FrozenTrial, step: int | None, metrics: dict[str, float]) -> Any:
        super().report_metrics(trial, step, metrics)
        return hs.Decision.STOP if len(self.reports) >= 2 else hs.Decision.CONTINUE


def test_a_stop_decision_ends_a_command_trial_as_pruned_with_its_curve() -> None:
    sink = _StoppingSink()
    setup = TrialSetup("contract", SPACE, None, 1, None, None, 1.0, sink)
    command = hs.Command(
        [sys.executable, "-c", "import time\nfor i in range(100):\n"
         "    print(f'loss={i}', flush=True); time.sleep(0.05)"]
    )  # fmt: skip
    executor = make_executor(command, "auto", setup)
    try:
        executor.submit(_trial(0))
        (finished,) = _drain(executor, 1, seconds=30)
    finally:
        executor.close()
    assert finished.outcome.state is TrialState.PRUNED
    assert "scheduler decided stop" in (finished.outcome.failure_detail or "")
    assert len(sink.reports) < 50  # terminated, not run to its end
