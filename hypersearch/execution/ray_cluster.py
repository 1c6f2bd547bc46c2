"""Trials as Ray tasks: ``executor="ray"``, ``hypersearch run --ray [ADDRESS]``, ``worker --ray``.

Each trial is one Ray task, placed by Ray's scheduler with the study's `resources_per_trial`
(Ray sets ``CUDA_VISIBLE_DEVICES`` for the GPUs it gives a task). Inside the task the trial
runs as it would here: a Python objective in the task's process, a command as a child of it
(its output folder and working directory are this machine's paths: on several machines, a
shared file system). What the trial reports, logs or suggests (define-by-run) comes back
through a `_Mailbox` actor kept on this node, so only this process touches storage: a local
SQLite file works as well as PostgreSQL.

How a task ends decides the trial's record: a lost node is ``infrastructure`` (run again on
another node, as the study's ``retry_on`` says), a dead worker process ``crashed``; Ray's own
retries are off, so the study's retry policy is the only one.

The cluster is the one this process joined (``ray.init(address=...)``), else the one
``RAY_ADDRESS`` names, else a Ray instance started here for the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hypersearch.errors import HypersearchError
from hypersearch.execution.executors import (
    Finished,
    InProcessExecutor,
    _pickle_objective,
    _python_path,
    answer_request,
    done_message,
    finished_from_message,
)
from hypersearch.storage.base import RanOn, host_id
from hypersearch.trial import Decision, FailureReason, FrozenTrial, Outcome, TrialState

if TYPE_CHECKING:
    from hypersearch.execution.protocol import TrialSetup
    from hypersearch.space import Distribution

log = logging.getLogger("hypersearch")

ASK_SECONDS = 1.0  # a mailbox read waits this long for requests before answering empty
POLL_SECONDS = 0.5  # how often a task looks at its trial
DEFAULT_RESOURCES = {"cpu": 1}


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise HypersearchError(
            "executor 'ray' needs Ray: pip install 'hypersearch[ray]'"
        ) from None
    return ray


def connect(ray: Any) -> bool:
    """Join the cluster (see the module docstring); True when this call started Ray."""
    if ray.is_initialized():
        return False
    address = os.environ.get("RAY_ADDRESS") or None
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    except ConnectionError as error:
        raise HypersearchError(
            f"cannot reach the Ray cluster at {address!r}: {error} (start it with "
            "'ray start --head', or leave RAY_ADDRESS unset to start Ray on this machine)"
        ) from None
    return address is None


_RAY_NAMES = {"cpu": "CPU", "gpu": "GPU"}  # the schema writes these two in lower case


def task_options(resources: Mapping[str, float]) -> dict[str, Any]:
    """Ray's task options for `resources_per_trial` ({"cpu": 1, "gpu": 1, "custom": 2})."""
    return {
        "num_cpus": float(resources.get("cpu", 0.0)),
        "num_gpus": float(resources.get("gpu", 0.0)),
        "resources": {k: float(v) for k, v in resources.items() if k not in _RAY_NAMES},
        "max_retries": 0,  # the study's retry policy decides, not Ray
        # the driver's import path, as child processes get it: the objective's module imports
        "runtime_env": {"env_vars": {"PYTHONPATH": _python_path()}},
    }


def check_fits(ray: Any, resources: Mapping[str, float]) -> None:
    """Refuse `resources_per_trial` no node of the cluster has: its tasks would wait forever."""
    wanted = {_RAY_NAMES.get(k, k): float(v) for k, v in resources.items() if float(v) > 0}
    nodes = [node.get("Resources", {}) for node in ray.nodes() if node.get("Alive")]
    if any(all(node.get(k, 0.0) >= v for k, v in wanted.items()) for node in nodes):
        return
    largest = ", ".join(
        f"{k}={v:g}" for k, v in sorted(max(nodes, key=len, default={}).items())
        if k in ("CPU", "GPU") or k in wanted
    )
    asked = ", ".join(f"{k}={v:g}" for k, v in resources.items())
    raise HypersearchError(
        f"resources_per_trial {{{asked}}} fits no node of the Ray cluster ({len(nodes)} "
        f"node(s); one has {largest or 'nothing'}); ask for less or add a node that has it"
    )


class _Mailbox:
    """A Ray actor on the driver's node: running tasks post requests, the driver answers."""

    def __init__(self) -> None:
        self._requests: list[tuple[int, int, dict[str, Any]]] = []
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._arrived = asyncio.Event()
        self._count = 0

    async def ask(self, number: int, message: dict[str, Any]) -> Any:
        """From a task: `message` for trial `number`; returns the driver's answer."""
        self._count += 1
        future = asyncio.get_running_loop().create_future()
        self._waiting[self._count] = future
        self._requests.append((self._count, number, message))
        self._arrived.set()
        return await future

    async def post(self, number: int, message: dict[str, Any]) -> None:
        """From a task: `message` for trial `number`, no answer wanted."""
        self._requests.append((0, number, message))
        self._arrived.set()

    async def take(self, seconds: float) -> list[tuple[int, int, dict[str, Any]]]:
        """From the driver: the requests so far, waiting up to `seconds` for a first one."""
        if not self._requests:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), seconds)
        requests, self._requests = self._requests, []
        return requests

    async def answer(self, answers: list[tuple[int, Any]]) -> None:
        for key, value in answers:
            future = self._waiting.pop(key, None)
            if future is not None and not future.done():
                future.set_result(value)


class _TaskSink:
    """The sink a trial sees inside a task: each call is a message to the driver's mailbox."""

    def __init__(self, ray: Any, mailbox: Any, number: int) -> None:
        self.ray, self.mailbox, self.number = ray, mailbox, number

    def report_metrics(
        self, trial: FrozenTrial, step: int | None, metrics: dict[str, float]
    ) -> Decision:
        message = {"op": "report", "step": step, "metrics": metrics}
        reply = self.ray.get(self.mailbox.ask.remote(self.number, message))
        return Decision(reply["decision"])

    def suggest_param(self, trial: FrozenTrial, name: str, dist: Distribution) -> Any:
        message = {"op": "suggest", "name": name, "distribution": dist.to_json()}
        return self.ray.get(self.mailbox.ask.remote(self.number, message))["value"]

    def append_logs(self, trial: FrozenTrial, stream: str, lines: list[tuple[int, str]]) -> None:
        message = {"op": "logs", "stream": stream, "lines": [list(line) for line in lines]}
        self.mailbox.post.remote(self.number, message)


def run_trial(
    payload: bytes, number: int, flat_params: dict[str, Any], mailbox: Any,
    wall_deadline: float | None,
) -> dict[str, Any]:
    """The Ray task: run trial `number` here; its `done_message` plus where it ran."""
    import cloudpickle
    import ray

    from hypersearch.space import Space

    objective, style, tree, metric, study_name, kind = cloudpickle.loads(payload)
    space = None if tree is None else Space(tree)
    claimed = FrozenTrial(number, TrialState.RUNNING, flat_params=flat_params, space=space)
    sink = _TaskSink(ray, mailbox, number)
    inner: Any
    if kind == "command":
        from hypersearch.execution.command import Command, CommandExecutor

        # this node's clock: what is left of the search, not the driver's monotonic time
        deadline = None if wall_deadline is None else (
            time.monotonic() + wall_deadline - time.time())
        inner = CommandExecutor(Command.from_config(objective).spec(study_name, deadline),
                                space, sink, 1)  # type: ignore[arg-type]
    else:
        inner = InProcessExecutor(objective, style, space, metric, sink)  # type: ignore[arg-type]
    gpus = ",".join(str(g) for g in ray.get_gpu_ids()) or None
    where = {"host": host_id(), "worker": f"{socket.gethostname()}:{os.getpid()}", "gpus": gpus}
    mailbox.post.remote(number, {"op": "started", **where})
    inner.submit(claimed)
    done: list[Finished] = []
    try:
        while not done:
            done = inner.wait(POLL_SECONDS)
    except KeyboardInterrupt:  # ray.cancel: a command's process group ends first (the grace)
        inner.cancel("cancelled by the driver")
        while inner.busy and not inner.wait(POLL_SECONDS):
            pass
        raise
    finally:
        inner.close()
    return {**done_message(done[0]), **where}


@dataclass
class _Running:
    claimed: FrozenTrial
    started: float | None = None  # time.monotonic() when its task began on a node
    ran_on: RanOn | None = None
    ending: tuple[str, str] | None = None  # (failure reason, detail) the driver cancelled it for


class RayExecutor:
    """Runs each claimed trial as a Ray task; see the module docstring."""

    shows_status = False

    def __init__(self, objective: Any, setup: TrialSetup, resources: Mapping[str, float]) -> None:
        import cloudpickle

        ray = self._ray = import_ray()
        if setup.workspace is not None and setup.checkpoints:
            raise HypersearchError(
                "executor 'ray' does not hand checkpoints between trials (pbt): run pbt with "
                "executor 'process' or with hypersearch worker on each machine"
            )
        self._started_ray = connect(ray)
        check_fits(ray, resources)
        self.setup = setup
        self.capacity = setup.n_jobs
        self._kind = "command" if getattr(objective, "runs_as_command", False) else "python"
        if self._kind == "command":
            if setup.space is None:
                raise HypersearchError("a Command objective needs a declared space")
            config = dict(objective.to_config())
            if config.get("gpus") is not None:
                raise HypersearchError(
                    "with executor 'ray', Ray hands out GPUs: give resources_per_trial "
                    "{'gpu': 1} instead of gpus"
                )
            # this machine's folders, absolute: the task's working directory is Ray's
            config["output_dir"] = os.path.abspath(config["output_dir"])
            config["cwd"] = os.path.abspath(config["cwd"] or os.getcwd())
            payload = _pickle_objective(
                cloudpickle, (config, None, setup.space.tree, None, setup.study_name, "command"))
        else:
            from hypersearch.execution.evaluate import objective_style

            style = objective_style(objective, setup.space is None)
            tree = setup.space.tree if setup.space else None
            payload = _pickle_objective(
                cloudpickle, (objective, style, tree, setup.metric, setup.study_name, "python"))
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        self._mailbox = ray.remote(_Mailbox).options(
            num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)
        ).remote()
        self._task = ray.remote(run_trial).options(**task_options(resources))
        self._payload = ray.put(payload)
        self._take = self._mailbox.take.remote(ASK_SECONDS)
        self._running: dict[Any, _Running] = {}  # task reference -> its trial

    @property
    def idle(self) -> int:
        return max(0, self.capacity - len(self._running))

    @property
    def busy(self) -> int:
        return len(self._running)

    def next_worker(self) -> str:
        return "ray"  # Ray places the task; where it ran is stored when it ends

    def submit(self, claimed: FrozenTrial) -> None:
        setup = self.setup
        wall_deadline = None if setup.deadline is None else (
            time.time() + setup.deadline - time.monotonic())
        ref = self._task.remote(
            self._payload, claimed.number, dict(claimed.flat_params), self._mailbox, wall_deadline)
        self._running[ref] = _Running(claimed)

    def running(self) -> list[FrozenTrial]:
        return [r.claimed for r in self._running.values()]

    def status(self) -> list[dict[str, Any]] | None:
        return None

    def wait(self, timeout: float) -> list[Finished]:
        ray = self._ray
        done: list[Finished] = []
        deadline = time.monotonic() + timeout
        while not done:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            tasks = list(self._running)
            ray.wait([self._take, *tasks], num_returns=1,
                     timeout=min(remaining, self._end_overdue()))
            ready, _ = ray.wait([self._take], timeout=0)
            if ready:
                self._serve(ray.get(self._take))
                self._take = self._mailbox.take.remote(ASK_SECONDS)
            if tasks:
                ended, _ = ray.wait(tasks, num_returns=len(tasks), timeout=0)
                done.extend(self._collect(ref) for ref in ended)
        return done

    def _serve(self, requests: list[tuple[int, int, dict[str, Any]]]) -> None:
        by_number = {r.claimed.number: r for r in self._running.values()}
        answers = []
        for key, number, message in requests:
            running = by_number.get(number)
            op = message["op"]
            if op == "started" and running is not None:
                running.started = time.monotonic()
                running.ran_on = RanOn(message["host"], message["worker"], message["gpus"])
            elif op == "logs" and running is not None:
                lines = [(int(seq), str(text)) for seq, text in message["lines"]]
                self.setup.sink.append_logs(running.claimed, message["stream"], lines)
            elif op in ("report", "suggest"):
                answers.append(
                    (key, answer_request(self.setup.sink, running and running.claimed, message)))
        if answers:
            self._mailbox.answer.remote(answers)

    def _collect(self, ref: Any) -> Finished:
        ray = self._ray
        running = self._running.pop(ref)
        claimed = running.claimed
        try:
            message = ray.get(ref)
        except ray.exceptions.TaskCancelledError:
            reason, detail = running.ending or (
                FailureReason.INTERRUPTED.value, "its Ray task was cancelled")
        except ray.exceptions.NodeDiedError as error:
            reason, detail = FailureReason.INFRASTRUCTURE.value, (
                f"the Ray node running it died: {_first_line(error)}")
        except (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError) as error:
            if running.ending is not None:  # a forced cancel kills the worker process
                reason, detail = running.ending
            else:
                reason, detail = FailureReason.CRASHED.value, (
                    f"the Ray worker process running the objective died: {_first_line(error)}")
        except ray.exceptions.RayError as error:
            reason, detail = FailureReason.INFRASTRUCTURE.value, (
                f"Ray could not run it: {_first_line(error)}")
        else:
            where = RanOn(message["host"], message["worker"], message["gpus"])
            return finished_from_message(claimed, message, where)
        outcome = Outcome(TrialState.FAILED, failure_reason=reason, failure_detail=detail)
        return Finished(claimed, outcome, ran_on=running.ran_on)

    def _end_overdue(self) -> float:
        """Cancel Python trials past the trial timeout (a command's own executor ends it);
        seconds until the next one is due."""
        limit = self.setup.trial_timeout
        if limit is None or self._kind == "command":
            return ASK_SECONDS
        now, due = time.monotonic(), ASK_SECONDS
        for ref, running in self._running.items():
            if running.started is None or running.ending is not None:
                continue
            left = running.started + limit - now
            if left <= 0:
                running.ending = (FailureReason.TIMEOUT.value,
                                  f"the objective ran past trial_timeout={limit:g} s and was killed")
                self._ray.cancel(ref, force=True)
            else:
                due = min(due, left)
        return due

    def _end(self, ref: Any, reason: str, detail: str) -> None:
        running = self._running[ref]
        if running.ending is None:
            running.ending = (reason, detail)
            # a command's task ends its process group itself (SIGTERM, the grace, SIGKILL); a
            # Python call cannot be interrupted safely: its worker process is killed
            self._ray.cancel(ref, force=self._kind == "python")

    def cancel(self, reason: str) -> None:
        for ref in list(self._running):
            self._end(ref, FailureReason.INTERRUPTED.value, reason)

    def cancel_trial(self, number: int, detail: str) -> bool:
        for ref, running in self._running.items():
            if running.claimed.number == number and running.ending is None:
                self._end(ref, FailureReason.KILLED.value, detail)
                return True
        return False

    def close(self) -> None:
        ray = self._ray
        for ref in list(self._running):
            ray.cancel(ref, force=True)
        self._running.clear()
        if ray.is_initialized():
            ray.kill(self._mailbox)
            if self._started_ray:
                ray.shutdown()


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def build(objective: Any, setup: TrialSetup) -> RayExecutor:
    return RayExecutor(objective, setup, setup.resources_per_trial or DEFAULT_RESOURCES)
