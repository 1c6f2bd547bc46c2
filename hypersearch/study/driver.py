"""The driver: claim trials, hand them to an executor, record results, stop on time (not public).

One loop serves every executor, through the protocol of execution/protocol.py. `Study.optimize`,
the CLI and (later) `hypersearch worker` all run this loop; `Study` itself only asks and tells.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from hypersearch.errors import StorageUnreachable, StudyFull
from hypersearch.execution.executors import Finished
from hypersearch.execution.infrastructure import host_failure
from hypersearch.execution.leases import LeaseKeeper, sweep
from hypersearch.execution.protocol import Executor, TrialSetup, make_executor
from hypersearch.storage.base import make_owner
from hypersearch.study.health import Breaker, others_succeed, process_name
from hypersearch.study.progress import Progress, choose_style
from hypersearch.study.scheduling import Scheduling, settle_pruned
from hypersearch.study.schema import jobs_here
from hypersearch.trial import FailureReason, FrozenTrial, Outcome, TrialState

if TYPE_CHECKING:
    from hypersearch.execution.reports import ReportBuffer
    from hypersearch.storage import Storage
    from hypersearch.study.definition import StudyDefinition
    from hypersearch.study.study import Study

log = logging.getLogger("hypersearch")
SUMMARY_EVERY = 0.5  # seconds between storage summaries for target/patience/progress
REFRESH_EVERY = 2.0  # seconds between reads of the stored definition (revised elsewhere)
_owner_lock = threading.Lock()
_owner: tuple[int, str] | None = None
# Endings that were not the configuration's fault, by the retry_on word that re-runs them.
_RETRYABLE = {
    FailureReason.INTERRUPTED.value: "interrupted",
    FailureReason.STALE.value: "stale",
    FailureReason.INFRASTRUCTURE.value: "infrastructure",
    FailureReason.CRASHED.value: "crashed",
}


def process_owner() -> str:
    """The lease owner id of this process (made again after a fork)."""
    global _owner
    with _owner_lock:
        if _owner is None or _owner[0] != os.getpid():
            _owner = (os.getpid(), make_owner())
        return _owner[1]


class Leases:
    """Claims and finishes trials of one study under this process's lease, and keeps the
    leases renewed (and stale trials swept) while any is held."""

    def __init__(self, storage: Storage, study_id: int, definition: StudyDefinition) -> None:
        self.storage, self.study_id = storage, study_id
        self.definition = definition
        self._keeper: LeaseKeeper | None = None
        self._lock = threading.Lock()
        self.gate: _InterruptGate | None = None  # set by run(): claims hold Ctrl-C
        self.scheduling: Scheduling | None = None  # set with the study's report buffer

    def _ensure_keeper(self) -> None:
        with self._lock:
            if self._keeper is None:
                self._keeper = LeaseKeeper(
                    self.storage, process_owner(), self.definition.lease_seconds, self.sweep
                )

    def sweep(self) -> list[int]:
        """Fail trials of dead workers now (and re-queue them, as the retry policy says)."""
        swept = sweep(self.storage, self.study_id)
        if "stale" in self.definition.retry_on:
            for number in swept:
                self._retry(number, FailureReason.STALE.value)
        return swept

    def requeue_lost(self) -> list[int]:
        """Re-queue failures that were recorded but never re-queued: failing a trial and
        re-queuing it are two writes, and a driver killed between them leaves a FAILED
        (interrupted, stale...) trial charged to the budget with no re-run. Run at the start of
        every run; the new numbers."""
        trials = {t.number: t for t in self.storage.get_trials(self.study_id)}
        rerun = {t.parent_number for t in trials.values() if t.parent_number is not None}
        queued = []
        for trial in trials.values():
            word = _RETRYABLE.get(trial.failure_reason or "")
            if trial.state is not TrialState.FAILED or word not in self.definition.retry_on:
                continue
            if trial.number not in rerun:
                why = f"{word} (its driver stopped before re-queuing it)"
                again = self._retry(trial.number, why, trials.get)
                if again is not None:
                    queued.append(again)
        return queued

    def claim(
        self,
        propose: Any,
        uses_history: bool,
        worker: str | None,
        on_claimed: Callable[[FrozenTrial], None] | None = None,
        gpus: tuple[int, ...] | None = None,
    ) -> FrozenTrial | None:
        """Start the next trial under this process's lease. With `on_claimed`, a Ctrl-C during
        the claim is held until `on_claimed` has the claimed trial: one arriving after the
        commit would otherwise leave a RUNNING trial nobody knows of."""
        self._ensure_keeper()
        with self.gate.hold() if on_claimed is not None and self.gate else contextlib.nullcontext():
            claimed = self.storage.claim(
                self.study_id,
                process_owner(),
                propose=propose,
                uses_history=uses_history,
                max_trials=self.definition.max_trials,
                max_running=self.definition.max_running,
                lease_seconds=self.definition.lease_seconds,
                worker=worker,
                gpus=None if gpus is None else ",".join(map(str, gpus)),
            )
            if claimed is not None and on_claimed is not None:
                on_claimed(claimed)
        return claimed

    def finish(self, finished: Finished) -> bool:
        """Write a finished trial under its lease; re-queue it when the retry policy says so.
        A late result (lease lost) is logged, not raised."""
        claimed, outcome = finished.trial, finished.outcome
        if outcome.state is TrialState.PRUNED:
            scheduling = self.scheduling
            if not outcome.failure_detail and scheduling is not None:
                why = scheduling.reason(claimed)
                if why:
                    outcome = dataclasses.replace(outcome, failure_detail=why)
            outcome = settle_pruned(
                self.storage, claimed, outcome, self.definition.metric, self.definition.metric_agg
            )
        written = self.storage.finish(
            claimed.id,  # type: ignore[arg-type]
            claimed.owner or "",
            claimed.lease_epoch,
            outcome,
            flat_params=finished.flat_params,
            distributions=finished.distributions,
            user_attrs=finished.user_attrs,
            ran_on=finished.ran_on,
        )
        if not written:
            log.warning(
                "trial %d finished after its lease was taken over (it was marked stale); "
                "its late result %s is not recorded",
                claimed.number,
                outcome.value if outcome.value is not None else outcome.state.value,
            )
        elif outcome.state is TrialState.FAILED:
            word = _RETRYABLE.get(outcome.failure_reason or "")
            if word is not None and word in self.definition.retry_on:
                self._retry(claimed.number, word)
        if self.scheduling is not None:
            self.scheduling.finished(dataclasses.replace(claimed, state=outcome.state))
        return written

    def _retry(
        self, number: int, why: str, lookup: Callable[[int], FrozenTrial | None] | None = None
    ) -> int | None:
        """Queue trial `number`'s parameters again unless they used up `retries`, or failed for
        infrastructure reasons on two different hosts (then the configuration is the likelier
        cause); the new trial's number, or None."""
        runs = self._runs(number, lookup)
        attempts = len(runs) - 1
        hosts = sorted({t.host for t in runs if t.host and t.failure_reason == (
            FailureReason.INFRASTRUCTURE.value)})
        refused = None
        if attempts >= self.definition.retries:
            refused = (f"its parameters already ran {attempts + 1} time(s) "
                       f"(retries={self.definition.retries})")
        elif len(hosts) >= 2:
            refused = (f"its parameters failed so on {len(hosts)} hosts ({', '.join(hosts)}): "
                       "the configuration, not one machine, is the likelier cause")
        if refused is not None:
            if lookup is None:  # said once, when the trial failed
                log.warning("trial %d was %s; not re-run: %s", number, why, refused)
            return None
        again = self.storage.retry(self.study_id, number)
        if again is not None:
            log.warning(
                "trial %d was %s (not the configuration's fault); its parameters run again as "
                "trial %d (retry %d of %d)", number, why, again, attempts + 1,
                self.definition.retries,
            )
        return again

    def _runs(
        self, number: int, lookup: Callable[[int], FrozenTrial | None] | None = None
    ) -> list[FrozenTrial]:
        """Trial `number` and the earlier trials that ran its parameters (its chain of
        `parent_number`s), newest first; `lookup` finds a trial by number (default: storage)."""
        find = lookup or (lambda n: self.storage.get_trial(self.study_id, n))
        runs: list[FrozenTrial] = []
        trial = find(number)
        while trial is not None and len(runs) < 1000:
            runs.append(trial)
            trial = None if trial.parent_number is None else find(trial.parent_number)
        return runs

    def close(self) -> None:
        """Stop renewing leases (trials still running will go stale)."""
        with self._lock:
            if self._keeper is not None:
                self._keeper.stop()
                self._keeper = None


class _InterruptGate:
    """The SIGINT handler of one run: it holds Ctrl-C while a claimed trial is handed over.

    Installed once per run (swapping the handler per claim cost ~70 us a trial); the handler is
    swapped rather than the signal masked, as the kernel may hand a process's signal to any
    thread and Python raises it in the main one."""

    def __init__(self) -> None:
        self.depth = 0
        self.held: Any = None
        self.previous: Any = None

    def install(self) -> bool:
        if threading.current_thread() is not threading.main_thread():
            return False  # elsewhere Python runs no signal handler anyway
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main interpreter
            return False
        return True

    def uninstall(self) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def _handle(self, number: int, frame: Any) -> None:
        if self.depth:
            self.held = frame
        else:
            self._deliver(frame)

    def _deliver(self, frame: Any) -> None:
        if callable(self.previous):
            self.previous(signal.SIGINT, frame)  # default_int_handler: KeyboardInterrupt
        elif self.previous == signal.SIG_DFL:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Delay SIGINT to the end of the block."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
            if not self.depth and self.held is not None:
                frame, self.held = self.held, None
                self._deliver(frame)


@dataclasses.dataclass(frozen=True)
class Here:
    """What one worker sets for its own machine; never stored with the study."""

    slots: int | None = None  # trials at once here (default: the study's n_jobs)
    gpus: tuple[int, ...] | None = None  # this machine's GPUs (default: the study's)
    gpus_per_trial: int | None = None
    max_trials: int | None = None  # trials this run starts (--max-trials-here, or a turn)
    executor: str | None = None  # how trials run here (worker --ray), default the study's

    def apply(self, definition: StudyDefinition) -> StudyDefinition:
        """`definition` as this machine runs it (checked: gpus_per_trial <= len(gpus))."""
        local = {name: value for name, value in (("n_jobs", self.slots), ("gpus", self.gpus),
                                                 ("gpus_per_trial", self.gpus_per_trial),
                                                 ("executor", self.executor))
                 if value is not None}
        if not local:
            return definition
        here = dataclasses.replace(definition, settings={**definition.settings, **local})
        here.check()
        return here


FULL_WAIT = 0.25  # seconds between claims while the study is at max_running
HOLD_RESULTS_FOR = 1800.0  # seconds a driver holds results while the database is unreachable


class _Outage:
    """The database unreachable for longer than the storage's own patience (it retries each
    call that long). Finished trials are held in memory (at most one per slot: nothing new is
    claimed meanwhile), running ones go on, and the database is tried again with jittered,
    growing delays; past `HOLD_RESULTS_FOR` seconds the driver gives up with the error. A held
    result is written under its lease: if the lease was lost meanwhile, it is refused, never
    written twice (the trial was swept and re-runs)."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.tries = 0
        self.next_try = 0.0

    @property
    def active(self) -> bool:
        return self.since is not None

    def allows(self) -> bool:
        """Whether to try the database now."""
        return self.since is None or time.monotonic() >= self.next_try

    def wait(self) -> float:
        """How long to wait for trials before the next look (short: the driver stays live)."""
        if self.since is None:
            return 0.2
        return min(1.0, max(0.05, self.next_try - time.monotonic()))

    def begin(self, error: StorageUnreachable, held: int) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
            log.warning("the database is unreachable (%s); holding %d result(s) and retrying "
                        "for up to %g s; running trials go on", error, held, HOLD_RESULTS_FOR)
        elif now - self.since > HOLD_RESULTS_FOR:
            raise error
        self.tries += 1
        self.next_try = now + min(30.0, 2.0 ** min(self.tries, 5)) * random.uniform(0.5, 1.5)

    def end(self) -> None:
        if self.since is not None:
            log.warning("the database answers again after %.0f s", time.monotonic() - self.since)
            self.since, self.tries = None, 0


class _Stop:
    def __init__(self) -> None:
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason


def run(
    study: Study,
    objective: Any,
    executor: str | Executor | None,
    verbose: bool,
    here: Here | None = None,
) -> tuple[str | None, int]:
    """Run trials of `study` until a limit of its definition holds (or `here.max_trials`
    trials ran); the reason it stopped and how many trials this run started."""
    here = here or Here()
    definition = here.apply(study.definition)
    deadline = None if definition.max_time is None else time.monotonic() + definition.max_time
    leases = study._leases
    reports = study._report_buffer()
    queues_successors = study._population() is not None  # pbt, while trials run
    setup = TrialSetup(
        study_name=study.name,
        space=study.space,
        metric=study.metric,
        n_jobs=jobs_here(definition.n_jobs),
        deadline=deadline,
        trial_timeout=definition.trial_timeout,
        grace=definition.grace,
        sink=reports,
        workspace=study.checkpoints().workspace,
        checkpoints=queues_successors,  # pbt: commands get their checkpoint folders
        resources_per_trial=definition.resources_per_trial,
    )
    chosen = executor if executor is not None else definition.executor
    running_executor = make_executor(objective, chosen, setup)
    study._clear_stop()  # a stop request ends the run it was made for, not a later one
    leases.sweep()  # a resume reclaims trials of dead workers at once
    leases.requeue_lost()  # and re-queues failures its predecessor did not live to re-queue
    progress = Progress(study, definition, choose_style(verbose, running_executor.shows_status))
    stop = _Stop()
    failures = 0
    goals = _Goals(study, definition, stop)
    last_summary = last_refresh = time.monotonic()
    claimed_here = 0
    killed: set[int] = set()  # trials this run was asked to kill and handed to the executor
    breaker = Breaker()
    unwritten: list[Finished] = []  # results handed back by the executor, not yet recorded
    outage = _Outage()
    full_until = 0.0  # the study is at max_running: no claim before this time
    unsubmitted: list[FrozenTrial] = []  # claimed, not yet handed to the executor
    gate = _InterruptGate()
    if gate.install():
        leases.gate = gate
    log.info(
        "study %r: %s search, budget %s, %d job(s), storage %s",
        study.name,
        study.sampler.name,
        definition.max_trials if definition.max_trials is not None else "unlimited",
        jobs_here(definition.n_jobs),
        study.storage.url,
    )
    try:
        while True:
            # `hypersearch set --parallel N` lowers a running driver's trials at once (up to
            # the executor's slots); a worker's own --slots stays as it was started
            allowed = here.slots or jobs_here(study.definition.n_jobs)
            while (stop.reason is None and outage.allows() and running_executor.idle
                   and running_executor.busy < allowed and time.monotonic() >= full_until):
                if deadline is not None and time.monotonic() >= deadline:
                    stop.set("max_time reached")
                    break
                if here.max_trials is not None and claimed_here >= here.max_trials:
                    stop.set(f"{here.max_trials} trial(s) run here (the worker's "
                             "--max-trials-here, or its turn when it serves several studies)")
                    break
                try:
                    claimed = leases.claim(
                        study._propose,
                        study._claims_history,
                        running_executor.next_worker(),
                        unsubmitted.append,
                        getattr(running_executor, "next_gpus", lambda: None)(),
                    )
                except StorageUnreachable as error:  # past the storage's patience: back off, go on
                    outage.begin(error, len(unwritten))
                    break
                except StudyFull:  # max_running trials run (here or elsewhere): ask again soon
                    full_until = time.monotonic() + FULL_WAIT * random.uniform(0.5, 1.5)
                    break
                outage.end()
                if claimed is None and running_executor.busy and queues_successors:
                    break  # a running trial may yet queue one in its place (pbt): ask again
                if claimed is None:
                    stop.set(
                        "the population trained to its end"
                        if queues_successors
                        else "budget spent"
                        if definition.max_trials is not None
                        else "search space exhausted"
                    )
                    break
                running_executor.submit(claimed)
                unsubmitted.clear()
                claimed_here += 1
            if not running_executor.busy and not unwritten:
                waiting = outage.active or time.monotonic() < full_until
                if not waiting or stop.reason is not None:
                    break
                # nothing runs here: claims wait for the database, or for a running trial
                # elsewhere to end (max_running)
                resume = max(full_until, outage.next_try if outage.active else 0.0)
                time.sleep(min(1.0, max(0.05, resume - time.monotonic())))
                continue
            unwritten.extend(running_executor.wait(timeout=outage.wait()))
            while unwritten and outage.allows():
                finished = unwritten[0]
                try:
                    reports.flush(finished.trial)  # the curve is complete when the trial is
                    leases.finish(finished)
                except StorageUnreachable as error:  # held, and written once the database is back
                    outage.begin(error, len(unwritten))
                    break
                outage.end()
                del unwritten[0]  # (a Ctrl-C before this line: _abandon records it)
                outcome = finished.outcome
                goals.observe(outcome, stop)
                goals.resource(stop)
                progress.finished(finished)
                machine = host_failure(outcome)  # no executable, GPU or disk here
                if machine is not None:
                    _quarantine(study, f"trial {finished.trial.number} failed: {machine}; it "
                                "is queued again for another worker", stop)
                elif breaker.observe(outcome) and others_succeed(study, process_owner()):
                    _quarantine(study, f"its last {breaker.trips_after} trials failed within "
                                f"{breaker.within:g} s while other workers' trials completed "
                                f"(the last: {outcome.failure_reason}: {_last_line(outcome)})",
                                stop)
                if outcome.state is TrialState.FAILED:
                    failures += 1
                    log.info(
                        "trial %d failed (%s): %s",
                        finished.trial.number,
                        outcome.failure_reason,
                        (outcome.failure_detail or "").strip().splitlines()[0:1],
                    )
            if definition.max_failures is not None and failures >= definition.max_failures:
                stop.set(f"{failures} failed trials (max_failures={definition.max_failures})")
            now = time.monotonic()
            if outage.active:
                continue  # what follows reads the database: not until it answers again
            try:
                if now - last_refresh >= REFRESH_EVERY:  # a budget set elsewhere holds at once
                    last_refresh = now
                    control = study.refresh()
                    _kill_asked(control, running_executor, killed)
                if now - last_summary >= SUMMARY_EVERY:  # others' progress, for all to see
                    last_summary = now
                    summary = study.summary()
                    progress.update(summary, running_executor.status())
                    goals.merge(summary, stop)
                    goals.resource(stop, every=1.0)
                    if study.stop_requested():
                        stop.set("stop requested")
                        running_executor.cancel("the study was asked to stop")
            except StorageUnreachable as error:
                outage.begin(error, len(unwritten))
    except KeyboardInterrupt:
        stop.set("interrupted")
        why = "interrupted by the user (Ctrl-C)"
        _abandon(leases, reports, running_executor, why, unwritten, unsubmitted)
        raise
    except BaseException:
        why = "the driver stopped on an error"
        _abandon(leases, reports, running_executor, why, unwritten, unsubmitted)
        raise
    finally:
        if leases.gate is not None:
            leases.gate.uninstall()
            leases.gate = None
        running_executor.close()
        study._close_reports()  # the last rows are written while the leases still hold
        leases.close()  # stop renewing leases: nothing of ours runs any more
        progress.close(stop.reason)
    log.info("study %r stopped: %s", study.name, stop.reason)
    return stop.reason, claimed_here


def _last_line(outcome: Outcome) -> str:
    lines = (outcome.failure_detail or "").strip().splitlines()
    return lines[-1][:200] if lines else "no detail"


def _quarantine(study: Study, why: str, stop: _Stop) -> None:
    study.quarantine(process_owner(), why)
    log.error("this worker quarantines itself for study %r: %s; lift with: hypersearch "
              "workers %s --lift %s", study.name, why, study.name,
              process_name(process_owner()))
    stop.set("quarantined: " + why)


def _kill_asked(control: dict[str, Any], executor: Executor, killed: set[int]) -> None:
    """End the running trials `hypersearch kill` asked for (the study's stored `control`),
    where the executor can."""
    cancel = getattr(executor, "cancel_trial", None)
    if cancel is None:
        return  # the stop request stops them at their next report instead
    asked = {int(n) for n in control.get("kill_trials", ())} - killed
    for trial in executor.running():
        if trial.number in asked and cancel(trial.number, "killed on request (hypersearch kill)"):
            killed.add(trial.number)
            log.warning("trial %d killed on request", trial.number)


class _Goals:
    """Target and patience, tracked from this driver's results at once and from the storage
    summary (every worker's results) periodically."""

    def __init__(self, study: Study, definition: StudyDefinition, stop: _Stop) -> None:
        self.target, self.patience = definition.target, definition.patience
        self.sign = 1.0 if study.direction == "minimize" else -1.0
        self.best: float | None = None
        self.since_best = 0
        if self.target is not None or self.patience is not None:
            self.merge(study.summary(), _Stop())
        self.study, self.max_resource = study, definition.max_resource_total
        self._resource_read = -math.inf
        self.resource(stop)  # a resumed study may have spent it already

    def resource(self, stop: _Stop, every: float = 0.0) -> None:
        """Stop once the steps reported by every worker reach `max_resource_total` (one
        storage query; not again within `every` seconds)."""
        now = time.monotonic()
        if self.max_resource is None or now - self._resource_read < every:
            return
        self._resource_read = now
        used = self.study.storage.resource_used(self.study.id)
        if used >= self.max_resource:
            stop.set(f"max_resource_total reached ({used} steps reported)")

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
        if (
            self.target is not None
            and self.best is not None
            and self.sign * self.best <= self.sign * self.target
        ):
            stop.set(f"target {self.target} reached (best {self.best:.6g})")
        if self.patience is not None and self.since_best >= self.patience:
            stop.set(f"no improvement in {self.patience} completed trials (patience)")


def _abandon(
    leases: Leases,
    reports: ReportBuffer,
    executor: Executor,
    why: str,
    unwritten: list[Finished],
    unsubmitted: list[FrozenTrial],
) -> None:
    """Record trials still running when the driver stops abnormally, so none stays RUNNING:
    those the executor finished but the driver had not recorded yet keep their outcome; those
    still running end as interrupted."""
    for finished in unwritten:
        try:
            reports.flush(finished.trial)
            leases.finish(finished)
        except Exception as error:  # the lease will expire and the trial be swept as stale
            log.warning("could not record trial %d: %s", finished.trial.number, error)
    executor.cancel(why)
    running = executor.running()
    numbers = {t.number for t in running}
    for claimed in [*running, *(t for t in unsubmitted if t.number not in numbers)]:
        try:
            reports.flush(claimed)
            leases.finish(
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
