"""The executor contract: how the driver runs claimed trials, whatever runs them.

The driver (study/driver.py) claims a trial only when an executor has room (`idle`), hands it
over with `submit`, and collects `Finished` records from `wait`. Everything an executor needs to
know about the study comes in a `TrialSetup`. A new way to run trials (a cluster, a queue) is a
class with these members, passed as ``study.optimize(executor=MyExecutor(...))`` or returned by
a builder registered in `BUILDERS`; the study layer does not change.

Rules every executor keeps (tests/test_executor_contract.py checks them on each one):

- `submit` never blocks on the trial; `wait(timeout)` returns within about `timeout` seconds
  with the trials that ended (possibly none).
- Every submitted trial comes back from `wait` exactly once, or is listed by `running()` until
  it does. A trial whose process died is returned FAILED with reason ``crashed``.
- `cancel(reason)` ends running trials (a command's process group gets SIGTERM, then SIGKILL
  after the setup's grace period; a Python child is killed); they come back as FAILED
  ``interrupted`` with `reason` as the detail.
- A trial running past `setup.trial_timeout` is ended the same way and comes back FAILED
  ``timeout`` (in-process executors cannot stop a running call: they warn instead).
- Reports and logs of a running trial go to `setup.sink` (`report_metrics`, `append_logs`).
- An executor that can end one trial has `cancel_trial(number, detail)`: the trial comes back
  FAILED ``killed`` (its process group or child ended as by `cancel`); False when it runs
  no such trial.
- `next_worker()` names where the next submitted trial will run ("host:pid"), stored with it;
  an executor that shares out GPUs also has `next_gpus()`, the GPU indices it will get.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hypersearch.errors import HypersearchError

log = logging.getLogger("hypersearch")

if TYPE_CHECKING:
    from hypersearch.execution.checkpoints import Workspace
    from hypersearch.execution.executors import Finished
    from hypersearch.space import Space
    from hypersearch.trial import FrozenTrial


@dataclass(frozen=True)
class TrialSetup:
    """What an executor is told about the study whose trials it runs."""

    study_name: str
    space: Space | None
    metric: str | None
    n_jobs: int  # trials at once
    deadline: float | None  # time.monotonic() when the whole search must end
    trial_timeout: float | None  # seconds per trial
    grace: float  # seconds between SIGTERM and SIGKILL
    sink: Any  # report_metrics(trial, step, metrics), append_logs(trial, stream, lines), ...
    # a trial's checkpoint and restore folders (hypersearch.execution.checkpoints); it raises
    # CheckpointError when the copy to restore from is damaged: the trial then fails
    workspace: Callable[[FrozenTrial], Workspace] | None = None
    checkpoints: bool = False  # commands: make the folders and pass them even unasked (pbt)
    # what one trial needs on a cluster ({"cpu": 1, "gpu": 1}); None: the executor's default
    resources_per_trial: Mapping[str, float] | None = None


@runtime_checkable
class Executor(Protocol):
    """Runs claimed trials; see the module docstring for the rules."""

    @property
    def idle(self) -> int:
        """Trials that could start at once."""
        ...

    @property
    def busy(self) -> int:
        """Trials running (or slots still starting: the driver keeps waiting for them)."""
        ...

    def next_worker(self) -> str: ...

    def submit(self, claimed: FrozenTrial) -> None: ...

    def wait(self, timeout: float) -> list[Finished]: ...

    def running(self) -> list[FrozenTrial]: ...

    def cancel(self, reason: str) -> None: ...

    def status(self) -> list[dict[str, Any]] | None:
        """Live rows for the progress table (number, params, metrics, seconds), or None."""
        ...

    @property
    def shows_status(self) -> bool:
        """True when `status` has rows worth a live table (command trials)."""
        ...

    def close(self) -> None: ...


Builder = Callable[[Any, TrialSetup], Executor]


def _in_process(objective: Any, setup: TrialSetup) -> Executor:
    from hypersearch.execution.evaluate import objective_style
    from hypersearch.execution.executors import InProcessExecutor

    if setup.n_jobs > 1:
        raise HypersearchError(
            f"executor 'inprocess' runs one trial at a time, but n_jobs={setup.n_jobs}; "
            "use executor='process' (or 'auto') for parallel trials"
        )
    style = objective_style(objective, setup.space is None)
    if setup.trial_timeout is not None:
        log.warning(
            "trial_timeout=%g s is not enforced for a Python objective running in this process "
            "(nothing can stop it safely mid-call); use executor='process' to enforce it",
            setup.trial_timeout,
        )
    return InProcessExecutor(
        objective, style, setup.space, setup.metric, setup.sink, workspace=setup.workspace
    )


def _process(objective: Any, setup: TrialSetup) -> Executor:
    from hypersearch.execution.evaluate import objective_style
    from hypersearch.execution.executors import ProcessPoolExecutor

    style = objective_style(objective, setup.space is None)
    return ProcessPoolExecutor(
        objective,
        style,
        setup.space,
        setup.metric,
        setup.sink,
        setup.n_jobs,
        setup.trial_timeout,
        workspace=setup.workspace,
    )


def _command(objective: Any, setup: TrialSetup) -> Executor:
    from hypersearch.execution.command import CommandExecutor

    if setup.space is None:
        raise HypersearchError("a Command objective needs a declared space")
    spec = objective.spec(setup.study_name, setup.deadline)
    return CommandExecutor(
        spec, setup.space, setup.sink, setup.n_jobs, setup.workspace, setup.checkpoints
    )


def _ray(objective: Any, setup: TrialSetup) -> Executor:
    from hypersearch.execution.ray_cluster import build

    return build(objective, setup)


# "ray" runs commands too: a command objective takes the command executor only where trials
# run on this machine
BUILDERS: dict[str, Builder] = {"inprocess": _in_process, "process": _process, "ray": _ray}
RUNS_COMMANDS = ("ray",)


def make_executor(objective: Any, choice: str | Executor, setup: TrialSetup) -> Executor:
    """The executor for `objective`: `choice` is "auto", "inprocess", "process", "ray" or an
    object that follows the protocol. A command objective runs as processes of its own (on
    this machine, or in Ray tasks)."""
    if not isinstance(choice, str):
        if not isinstance(choice, Executor):
            raise HypersearchError(
                f"executor must be 'auto', 'inprocess', 'process', 'ray' or an object with the "
                f"members of hypersearch.execution.protocol.Executor, got {type(choice).__name__}"
            )
        return choice
    runs_itself = getattr(objective, "runs_as_command", False)
    if runs_itself and choice not in RUNS_COMMANDS:
        return _command(objective, setup)
    if choice == "auto":
        choice = "inprocess" if setup.n_jobs == 1 else "process"
    builder = BUILDERS.get(choice)
    if builder is None:
        raise HypersearchError(
            f"unknown executor {choice!r}; use one of: auto, {', '.join(BUILDERS)}"
        )
    return builder(objective, setup)
