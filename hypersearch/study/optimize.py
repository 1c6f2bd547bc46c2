"""The driver loop: claim trials, hand them to an executor, record results, stop on time.

One loop serves every executor. With ``n_jobs=1`` the objective runs in this process; with
more, in that many child processes, while this process alone talks to storage.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hypersearch.errors import HypersearchError
from hypersearch.execution.evaluate import objective_style
from hypersearch.execution.executors import Finished, InProcessExecutor, ProcessPoolExecutor
from hypersearch.study.progress import Progress, choose_style
from hypersearch.trial import FailureReason, Outcome, TrialState

if TYPE_CHECKING:
    from hypersearch.study.study import Study

log = logging.getLogger("hypersearch")
SUMMARY_EVERY = 0.5  # seconds between storage summaries for target/patience/progress


def _positive_int(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise HypersearchError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Limits:
    max_trials: int | None = None
    timeout: float | None = None
    target: float | None = None
    patience: int | None = None
    max_failures: int | None = None
    n_jobs: int = 1

    @classmethod
    def checked(
        cls,
        max_trials: Any = None,
        timeout: Any = None,
        target: Any = None,
        patience: Any = None,
        max_failures: Any = None,
        n_jobs: Any = 1,
    ) -> Limits:
        """Validate user-given stopping criteria with precise messages."""
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, numbers.Real)
            or not timeout > 0
            or not math.isfinite(timeout)
        ):
            raise HypersearchError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if target is not None and (
            isinstance(target, bool) or not isinstance(target, numbers.Real) or math.isnan(target)
        ):
            raise HypersearchError(f"target must be a number, got {target!r}")
        if n_jobs == -1:
            n_jobs = os.cpu_count() or 1
        jobs = _positive_int("n_jobs", n_jobs)
        return cls(
            _positive_int("max_trials", max_trials),
            None if timeout is None else float(timeout),
            None if target is None else float(target),
            _positive_int("patience", patience),
            _positive_int("max_failures", max_failures),
            jobs or 1,
        )


class _Stop:
    def __init__(self) -> None:
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason


def _executor(study: Study, objective: Any, limits: Limits, deadline: float | None) -> Any:
    from hypersearch.execution.command import Command, CommandExecutor

    if isinstance(objective, Command):
        if study.space is None:
            raise HypersearchError("a Command objective needs a declared space")
        unused = objective.template.check(study.space)
        if unused:
            log.warning(
                "parameters %s appear in no :placeholder: of the command; they reach it only as "
                "HS_PARAM_* environment variables and the params.json file",
                unused,
            )
        spec = objective.spec(study.name, deadline)
        return CommandExecutor(spec, study.space, study, limits.n_jobs)
    style = objective_style(objective, study.space is None)
    if limits.n_jobs == 1:
        return InProcessExecutor(objective, style, study.space, study.metric, study)
    return ProcessPoolExecutor(objective, style, study.space, study.metric, study, limits.n_jobs)


def run(study: Study, objective: Callable[..., Any], limits: Limits, verbose: bool) -> None:
    deadline = None if limits.timeout is None else time.monotonic() + limits.timeout
    executor = _executor(study, objective, limits, deadline)
    study.sweep_stale()  # a resume reclaims trials of dead workers at once
    progress = Progress(study, limits, choose_style(verbose, hasattr(executor, "status")))
    stop = _Stop()
    failures = 0
    goals = _Goals(study, limits)
    last_summary = time.monotonic()
    log.info(
        "study %r: %s search, budget %s, %d job(s), storage %s",
        study.name,
        study.sampler.name,
        limits.max_trials if limits.max_trials is not None else "unlimited",
        limits.n_jobs,
        study.storage.url,
    )
    try:
        while True:
            while stop.reason is None and executor.idle:
                if deadline is not None and time.monotonic() >= deadline:
                    stop.set("timeout")
                    break
                claimed = study.claim(limits.max_trials, worker=executor.next_worker())
                if claimed is None:
                    stop.set(
                        "budget spent"
                        if limits.max_trials is not None
                        else "search space exhausted"
                    )
                    break
                executor.submit(claimed)
            if not executor.busy:
                break
            for finished in executor.wait(timeout=0.2):
                study.record_finished(finished)
                outcome = finished.outcome
                goals.observe(outcome, stop)
                progress.finished(finished)
                if outcome.state is TrialState.FAILED:
                    failures += 1
                    log.info(
                        "trial %d failed (%s): %s",
                        finished.trial.number,
                        outcome.failure_reason,
                        (outcome.failure_detail or "").strip().splitlines()[0:1],
                    )
            if limits.max_failures is not None and failures >= limits.max_failures:
                stop.set(f"{failures} failed trials (max_failures={limits.max_failures})")
            now = time.monotonic()
            if now - last_summary >= SUMMARY_EVERY:  # other workers' progress, for all to see
                last_summary = now
                summary = study.summary()
                progress.update(summary, executor.status() if hasattr(executor, "status") else None)
                goals.merge(summary, stop)
                if study.stop_requested():
                    stop.set("stop requested")
                    executor.cancel("the study was asked to stop")
    except KeyboardInterrupt:
        stop.set("interrupted")
        _abandon(study, executor, "interrupted by the user (Ctrl-C)")
        raise
    except BaseException:
        _abandon(study, executor, "the driver stopped on an error")
        raise
    finally:
        executor.close()
        study.close()  # stop renewing leases: nothing of ours runs any more
        progress.close(stop.reason)
    log.info("study %r stopped: %s", study.name, stop.reason)


class _Goals:
    """Target and patience, tracked from this driver's results at once and from the storage
    summary (every worker's results) periodically."""

    def __init__(self, study: Study, limits: Limits) -> None:
        self.limits = limits
        self.sign = 1.0 if study.direction == "minimize" else -1.0
        self.best: float | None = None
        self.since_best = 0
        if limits.target is not None or limits.patience is not None:
            self.merge(study.summary(), _Stop())

    def _better(self, value: float) -> bool:
        return self.best is None or self.sign * value < self.sign * self.best

    def observe(self, outcome: Outcome, stop: _Stop) -> None:
        if outcome.state is not TrialState.COMPLETE or outcome.value is None:
            return
        if self._better(outcome.value):
            self.best, self.since_best = outcome.value, 0
        else:
            self.since_best += 1
        self._check(stop)

    def merge(self, summary: Any, stop: _Stop) -> None:
        if summary.best_value is not None and (
            self.best is None or self._better(summary.best_value)
        ):
            self.best, self.since_best = summary.best_value, summary.complete_since_best
        elif summary.best_value == self.best:
            self.since_best = max(self.since_best, summary.complete_since_best)
        self._check(stop)

    def _check(self, stop: _Stop) -> None:
        target, patience = self.limits.target, self.limits.patience
        if (
            target is not None
            and self.best is not None
            and self.sign * self.best <= self.sign * target
        ):
            stop.set(f"target {target} reached (best {self.best:.6g})")
        if patience is not None and self.since_best >= patience:
            stop.set(f"no improvement in {patience} completed trials (patience)")


def _abandon(study: Study, executor: Any, why: str) -> None:
    """Record trials still running when the driver stops abnormally, so none stays RUNNING."""
    for claimed in executor.running():
        try:
            study.record_finished(
                Finished(
                    claimed,
                    Outcome(
                        TrialState.FAILED,
                        failure_reason=FailureReason.INTERRUPTED.value,
                        failure_detail=why,
                    ),
                )
            )
        except Exception as error:  # the lease will expire and the trial be swept as stale
            log.warning("could not record trial %d as interrupted: %s", claimed.number, error)
