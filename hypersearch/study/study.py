"""The Study: one search, its trials and results, with ask/tell at the core."""

from __future__ import annotations

import dataclasses
import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hypersearch.errors import (
    HypersearchError,
    SpaceError,
    StudyConflictError,
    StudyExhausted,
    StudyNotFoundError,
)
from hypersearch.execution.executors import Finished, open_workspace
from hypersearch.execution.reports import ReportBuffer
from hypersearch.samplers import Sampler
from hypersearch.samplers.base import Context
from hypersearch.settings import SettingError
from hypersearch.space import Distribution, Space, as_space
from hypersearch.space.growth import (
    added_parameters,
    default_values,
    fill_defaults,
    growth_problems,
)
from hypersearch.storage import Storage, StudyRecord, StudySummary, get_storage
from hypersearch.study.definition import StudyDefinition
from hypersearch.study.schema import canonical
from hypersearch.study.warm_start import after_warm, warm_trials
from hypersearch.trial import (
    Decision,
    FailureReason,
    FrozenTrial,
    Outcome,
    Trial,
    TrialState,
    param_seed,
    parse_result,
)

log = logging.getLogger("hypersearch")


class Study:
    """A search: where its trials live, what space it explores, which strategy proposes.

    Create one with `hs.create_study`, `hs.minimize`/`hs.maximize`, or `hs.load_study`; its
    complete definition (`study.definition`) is stored, so any process can run it by name.
    """

    def __init__(self, record: StudyRecord, storage: Storage, definition: StudyDefinition) -> None:
        from hypersearch.study.driver import Leases

        self._record = record
        self.storage = storage
        self._definition = definition
        self._leases = Leases(storage, record.id, definition)
        self._asked: dict[int, FrozenTrial] = {}
        self._asked_before = False
        self._reports: ReportBuffer | None = None  # made on the first report, per run
        self._rungs: tuple[StudyDefinition, Any] | None = None  # (definition, its RungValues)
        self._warm: tuple[StudyDefinition, list[FrozenTrial]] | None = None
        self._defaults: tuple[StudyDefinition, dict[str, Any]] | None = None  # raw space_defaults
        self._pbt: tuple[StudyDefinition, int | None] | None = None  # (definition, population)
        self._warmed: Sampler | None = None  # the sampler given the stored warm state
        self._said_no_checkpoint = False  # the warning that a PBT donor saved nothing, once

    # -- identity ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def direction(self) -> str:
        return self._record.direction

    @property
    def metric(self) -> str | None:
        return self._definition.metric

    @property
    def id(self) -> int:
        return self._record.id

    @property
    def definition(self) -> StudyDefinition:
        """Everything this study runs with (space, strategy and options, objective, limits...)."""
        return self._definition

    @property
    def space(self) -> Space | None:
        return self._definition.space

    @property
    def sampler(self) -> Sampler:
        return self._definition.sampler()  # type: ignore[no-any-return]

    @property
    def seed(self) -> int:
        return int(self._definition.seed)

    def __repr__(self) -> str:
        return (
            f"Study(name={self.name!r}, direction={self.direction!r}, storage={self.storage.url!r})"
        )

    # -- the stored definition -----------------------------------------------------------------

    def _document(self) -> dict[str, Any]:
        record = self.storage.get_study(self.name) or self._record
        return dict(record.config)

    def _save(self, definition: StudyDefinition) -> None:
        document = {**self._document(), **definition.to_document()}
        space = definition.space  # written with it: the space may have grown
        self.storage.update_study_config(
            self.id, document, None if space is None else space.to_json_str())
        self._definition = definition
        self._leases.definition = definition

    def revise(self, **settings: Any) -> dict[str, list[Any]]:
        """Change settings that may change (budget, limits, strategy and its options...); the
        change is stored as a revision. Returns {setting: [old, new]} for what changed."""
        given = dict(canonical(settings, "python"))
        revised, changes = self._definition.revise(given)
        if changes:
            self._save(revised)
            log.info("study %r revised: %s", self.name, changes)
        return changes

    def refresh(self) -> dict[str, Any]:
        """Read the stored definition again: another process (``hypersearch set``, the
        dashboard, another worker's resume) may have revised it. Returns the stored control
        read with it (stop, stop_trials, kill_trials, quarantined): one read for both."""
        document = self._document()
        control = dict(document.get("control", {}))
        if len(document.get("revisions") or ()) == len(self._definition.revisions):
            return control
        fresh = StudyDefinition.from_document(document, self.space)
        same_strategy = all(fresh.settings[k] == self._definition.settings[k]
                            for k in ("strategy", "strategy_options", "seed"))
        if same_strategy and self._definition._sampler is not None:
            fresh = fresh.with_sampler(self._definition._sampler)  # keep its warm caches
        self._definition = fresh
        self._leases.definition = fresh
        return control

    def quarantined(self) -> dict[str, dict[str, Any]]:
        """{lease owner: {"process", "since", "reason"}} of the worker processes that
        quarantined themselves for this study (hypersearch.study.health)."""
        return dict(self._document().get("control", {}).get("quarantined", {}))

    def quarantine(self, owner: str, reason: str) -> None:
        from hypersearch.study.health import process_name

        entry = {"process": process_name(owner), "since": time.time(), "reason": reason}
        self._set_control(quarantined={**self.quarantined(), owner: entry})

    def lift_quarantine(self, process: str | None = None) -> list[str]:
        """Lift the quarantine of worker `process` ("host:pid"; every one when None); the
        processes lifted."""
        kept, lifted = {}, []
        for owner, entry in self.quarantined().items():
            if process is None or entry.get("process") == process:
                lifted.append(str(entry.get("process")))
            else:
                kept[owner] = entry
        if lifted:
            self._set_control(quarantined=kept)
        return lifted

    def request_stop(self) -> None:
        """Ask every worker of this study (any process, any machine) to stop soon. The request
        ends the runs going on now; the next run clears it."""
        self._set_control(stop=True)

    def _clear_stop(self) -> None:
        if self.stop_requested():
            self._set_control(stop=False)

    def stop_requested(self) -> bool:
        return bool(self._document().get("control", {}).get("stop"))

    def _set_control(self, **changes: Any) -> None:
        document = self._document()
        document["control"] = {**document.get("control", {}), **changes}
        self.storage.update_study_config(self.id, document)

    # -- ask / tell ----------------------------------------------------------------------------

    def close(self) -> None:
        """Write pending reports and stop renewing leases (trials still running go stale)."""
        self._close_reports()
        self._leases.close()

    def _report_buffer(self) -> ReportBuffer:
        """The one path every report takes: batched writes, and the decision for the trial."""
        if self._reports is None:
            scheduling = self._scheduling()
            self._leases.scheduling = scheduling
            self._reports = ReportBuffer(
                self.storage,
                suggest=self.suggest_param,
                decide=scheduling.decide,
                explain=scheduling.reason,
            )
        return self._reports

    def _scheduling(self) -> Any:
        """The definition's scheduler (if any) with a view of this study, and the stop requests
        made from outside."""
        from hypersearch.storage.memory import MemoryStorage
        from hypersearch.study.scheduling import Scheduling, StopRequests

        requests = StopRequests(self._stop_trials_asked)
        scheduler = self._definition.build_scheduler()
        if scheduler is None:
            return Scheduling(None, None, None, requests)
        from hypersearch.schedulers import StudyView

        # no other process shares memory storage: what this one saw is all there is
        refresh = math.inf if isinstance(self.storage, MemoryStorage) else 2.0
        view = StudyView(
            self.storage, self.id, self.direction, self.metric, refresh=refresh, seed=self.seed
        )
        return Scheduling(scheduler, view, self._hand_over, requests)

    def _stop_trials_asked(self) -> list[int]:
        return [int(n) for n in self._document().get("control", {}).get("stop_trials", ())]

    def kill_trial(self, number: int) -> None:
        """Ask the worker running trial `number` (any process, any machine) to end it now:
        its process is ended (SIGTERM, SIGKILL after the grace) within about two seconds and
        the trial ends FAILED ``killed``, not re-run. A trial running inside its driver's
        own process (n_jobs=1, a Python objective) cannot be ended safely: it stops at its
        next report instead, PRUNED (the stop request is made too, for that case)."""
        self._ask_about(number, ("stop_trials", "kill_trials"))

    def stop_trial(self, number: int) -> None:
        """Ask the worker running trial `number` (any process, any machine) to stop it: the
        trial stops at its next report and ends PRUNED with its curve kept, as if a scheduler
        had stopped it. A trial that reports nothing runs to its end."""
        self._ask_about(number, ("stop_trials",))

    def _ask_about(self, number: int, lists: Sequence[str]) -> None:
        """Add running trial `number` to the stored control's `lists` (dropping trials that
        no longer run), in one write."""
        found = self.storage.get_trial(self.id, number)
        if found is None:
            raise HypersearchError(f"study {self.name!r} has no trial {number}")
        if found.state is not TrialState.RUNNING:
            raise HypersearchError(
                f"trial {number} is {found.state.value}, not RUNNING: only a running trial "
                "can be stopped"
            )
        running = {t.number for t in self.storage.get_trials(self.id, [TrialState.RUNNING])}
        control = self._document().get("control", {})
        self._set_control(**{
            key: sorted({*(int(n) for n in control.get(key, ())), number} & running)
            for key in lists
        })

    def checkpoints(self) -> Any:
        """Where this study's trials keep checkpoints (a `CheckpointLayout`)."""
        from hypersearch.execution.checkpoints import CheckpointLayout

        return CheckpointLayout(self._definition.settings["checkpoint_dir"], self.name)

    def _hand_over(self, stopped: FrozenTrial, plan: Any) -> int | None:
        """Queue the trial that continues `plan.donor`'s checkpoint in `stopped`'s place, with
        explored parameters and its lineage; its number, or None when the donor saved nothing
        (exploiting needs checkpoints), the budget has no trial left, or this study has no
        declared space."""
        from hypersearch.execution.checkpoints import CheckpointError

        donor = self.storage.get_trial(self.id, plan.donor)
        if donor is None or self.space is None:
            return None
        budget = self._definition.max_trials
        if budget is not None and self.storage.summary(self.id, self.direction).n_trials >= budget:
            return None  # no trial left to continue in its place: it goes on
        try:
            restore = self.checkpoints().snapshot(plan.donor, plan.step, stopped.number)
        except CheckpointError as error:
            log.warning("pbt: trial %d goes on: %s", stopped.number, error)
            return None
        if restore is None:
            if not self._said_no_checkpoint:
                self._said_no_checkpoint = True
                log.warning(
                    "pbt: trial %d saved nothing in its checkpoint folder, so no trial can "
                    "continue from it; save the model to trial.checkpoint_dir (a command: "
                    ":checkpoint_dir: or $HYPERSEARCH_CHECKPOINT_DIR) and load it from "
                    "trial.restore_from (:restore_dir:)", plan.donor,
                )
            return None
        rng = np.random.default_rng([*param_seed(self.seed, stopped.number), plan.step])
        params = plan.explore(self.space, donor.flat_params, rng)
        new = FrozenTrial(number=-1, state=TrialState.WAITING, flat_params=params, space=self.space)
        old = dataclasses.replace(donor, space=self.space).display_params()
        shown = new.display_params()
        changed = {
            name: [old.get(name), shown.get(name)]
            for name in sorted(set(old) | set(shown))
            if old.get(name) != shown.get(name)
        }
        lineage = {
            "parent": donor.number,
            "step": plan.step,
            "replaces": stopped.number,
            "changed": changed,
            "restore": restore,
        }
        return self.storage.enqueue(self.id, params, lineage)

    def _close_reports(self) -> None:
        if self._reports is not None:
            self._reports.close()
            self._reports = None

    def sweep_stale(self) -> list[int]:
        """Fail trials left RUNNING by dead workers now; the numbers failed."""
        return self._leases.sweep()

    def _population(self) -> int | None:
        """PBT's population size: once that many trials have started afresh, the others only
        continue checkpoints (None for every other scheduler)."""
        if self._pbt is None or self._pbt[0] is not self._definition:  # asked at every claim
            size = None
            if self._definition.settings["scheduler"] == "pbt":
                from hypersearch.schedulers import make_scheduler

                pbt = make_scheduler("pbt", self._definition.scheduler_options)
                size = int(pbt.population_size)  # type: ignore[attr-defined]
            self._pbt = (self._definition, size)
        return self._pbt[1]

    @property
    def _claims_history(self) -> bool:
        """Whether a claim loads the trials before proposing (the sampler, or PBT, needs them)."""
        return self.sampler.uses_history or self._population() is not None

    def _propose(self, history: Sequence[FrozenTrial], number: int) -> dict[str, Any] | None:
        if self.space is None:
            return {}  # define-by-run: parameters arrive through trial.suggest_*
        population = self._population()
        if population is not None:
            fresh = sum(1 for t in history if t.lineage is None and t.parent_number is None)
            if fresh >= population:
                return None  # the population is complete: only its successors start now
        rungs = self._rung_values(history)
        history = self._filled(history)
        warm = self._warm_trials()
        if warm and self.sampler.uses_history:
            history = after_warm(warm, history)
            number += len(warm)
            if rungs is not None:
                rungs = {r: {n + len(warm): v for n, v in found.items()} for r, found in rungs.items()}
        context = Context(
            self.space,
            history,
            np.random.default_rng(param_seed(self.seed, number)),
            number,
            self.seed,
            self.direction,
            rungs,
        )
        sampler = self.sampler
        if self._warmed is not sampler:  # once per sampler: what other processes fitted
            self._warmed = sampler
            stored = self.storage.get_cache(self.id, sampler.name) if sampler.name else None
            if stored is not None:
                sampler.warm_from(self.space, stored)
        params = sampler.suggest(context)
        state = sampler.warm_state(self.space)
        if state is not None:
            try:
                self.storage.put_cache(self.id, sampler.name, state)
            except HypersearchError as error:  # a cache: the suggestion stands without it
                log.warning("the %s sampler's warm state was not stored: %s", sampler.name, error)
        return None if params is None else self.space.validate(params)

    def _warm_trials(self) -> list[FrozenTrial]:
        """The warm start's points as trials before this study's own (read once per
        definition: a resume or a revision reads the named studies again)."""
        sources = self._definition.warm_start
        if not sources:
            return []
        if self._warm is None or self._warm[0] is not self._definition:
            self._warm = (self._definition,
                          warm_trials(self.space, sources, self.storage, self.name))
        return self._warm[1]

    def _rung_values(self, history: Sequence[FrozenTrial]) -> Any:
        """`Context.rung_values` for a sampler that `uses_rungs` in a study whose scheduler is a
        halving one (BOHB-style TPE), else None. The reader is kept per definition: it reads
        each finished trial's curve once."""
        sampler = self.sampler
        if not history or not (sampler.uses_history and getattr(sampler, "uses_rungs", False)):
            return None
        if self._rungs is None or self._rungs[0] is not self._definition:
            from hypersearch.schedulers.halving import halving_of
            from hypersearch.schedulers.view import RungValues

            halving = halving_of(self._definition.build_scheduler())
            reader = (
                None if halving is None else RungValues(self.storage, self.id, self.metric, halving)
            )
            self._rungs = (self._definition, reader)
        reader = self._rungs[1]
        return None if reader is None else reader.values(history)

    def ask(self) -> Trial:
        """Start a trial and return its live handle; finish it with `tell`.

        Raises StudyExhausted when the strategy has nothing left (a grid fully taken).
        """
        if not self._asked_before:  # like a resume: trials of dead workers go back to the queue
            self._asked_before = True
            self.sweep_stale()
        claimed = self._leases.claim(self._propose, self._claims_history, None)
        if claimed is None:
            population = self._population()
            raise StudyExhausted(
                f"study {self.name!r}: the pbt population of {population} trials has started "
                "and no trial is queued to continue a checkpoint"
                if population is not None
                else f"study {self.name!r}: strategy {self.sampler.name!r} has no point left to "
                "try" + (" or its budget is spent" if self._definition.max_trials else "")
            )
        folders = open_workspace(self.checkpoints().workspace, claimed)
        if isinstance(folders, Finished):  # its restore copy is damaged: it never starts
            self._leases.finish(folders)
            raise HypersearchError(
                f"trial {claimed.number} failed before it started: "
                f"{folders.outcome.failure_detail}"
            )
        self._asked[claimed.number] = claimed
        return Trial(
            claimed.number,
            claimed.flat_params,
            self.space,
            _AskedBackend(self, claimed),
            distributions={} if self.space is None else None,
            checkpoint_dir=folders.checkpoint_dir if folders else None,
            restore_from=folders.restore_from if folders else None,
        )

    def tell(
        self,
        trial: Trial | int | None = None,
        result: Any = None,
        *,
        state: str | TrialState | None = None,
        error: str | None = None,
        params: Any = None,
        value: float | None = None,
    ) -> FrozenTrial | None:
        """Finish a trial from `ask` with the objective's result (a number or a dict, as an
        objective returns), or with ``state="fail"`` / ``state="pruned"``; ``state="fail",
        error="..."`` records that the objective raised (failure reason "error", the text as
        its detail) rather than that it reported a failure.

        Telling a trial that is already finished raises an error (the first result stands).

        ``tell(params={...}, value=v)`` (no trial) tells a point evaluated elsewhere: it joins
        the study's warm start (hypersearch.study.warm_start), so the strategy learns from it;
        it is not a trial of the study. Returns None then.
        """
        if trial is None:
            self._tell_point(params, value)
            return None
        number = trial.number if isinstance(trial, Trial) else trial
        claimed = self._asked.get(number) or self._running_record(number)
        if state is None:
            outcome = parse_result(result, self.metric)
        else:
            wanted = _TELL_STATES.get(str(getattr(state, "value", state)).lower())
            if wanted is None:
                raise HypersearchError(f"tell(state={state!r}): use 'complete', 'fail' or 'pruned'")
            if wanted is TrialState.COMPLETE:
                outcome = parse_result(result, self.metric)
            elif wanted is TrialState.FAILED and error is not None:
                outcome = Outcome(wanted, failure_reason=FailureReason.ERROR.value,
                                  failure_detail=str(error))
            elif wanted is TrialState.FAILED:
                outcome = Outcome(wanted, failure_reason=FailureReason.STATUS_FAIL.value)
            else:
                outcome = Outcome(wanted)
        live = trial if isinstance(trial, Trial) else None
        define_by_run = live is not None and self.space is None
        finished = Finished(
            claimed,
            outcome,
            flat_params=dict(live.flat_params) if define_by_run else None,  # type: ignore[union-attr]
            distributions=dict(live.distributions or {}) if define_by_run else None,  # type: ignore[union-attr]
            user_attrs=dict(live.user_attrs) if live is not None else {},
        )
        if self._reports is not None:
            self._reports.flush(claimed)  # the curve is complete when the trial is
        if not self._leases.finish(finished):
            self._asked.pop(number, None)
            raise HypersearchError(
                f"trial {number} of study {self.name!r} was not recorded: it is no longer "
                "running under this process's lease (already told, or marked stale)"
            )
        self._asked.pop(number, None)
        return self.trial(number)

    def _tell_point(self, params: Any, value: Any) -> None:
        if params is None or value is None:
            raise HypersearchError("tell() needs a trial, or params= and value= of a point "
                                   "evaluated elsewhere")
        if self.space is not None:
            self.space.validate(self.space.flatten(params))  # a SpaceError says what is off
        self.revise(warm_start=[*self.definition.warm_start, {"params": params, "value": value}])

    def _running_record(self, number: int) -> FrozenTrial:
        record = self.trial(number)
        if record.state is not TrialState.RUNNING:
            raise HypersearchError(
                f"trial {number} of study {self.name!r} is {record.state.value}, not RUNNING; "
                "only a running trial can be told (the first result stands)"
            )
        return record

    def enqueue(self, params: Any, *, flat: bool = False) -> int:
        """Queue a trial with given parameters (nested values, as the objective receives them;
        with ``flat=True`` a flat assignment {path: raw}, a choice as its index); it runs
        before any new suggestion. Returns its number."""
        if self.space is None:
            if not isinstance(params, dict):
                raise HypersearchError("define-by-run studies enqueue a flat dict {name: value}")
            assignment = dict(params)
        elif flat:
            if not isinstance(params, dict):
                raise HypersearchError("enqueue(flat=True) takes a dict {path: raw value}")
            assignment = self.space.validate(params)
        else:
            assignment = self.space.validate(self.space.flatten(params))
        return self.storage.enqueue(self.id, assignment)

    def suggest_param(self, trial: FrozenTrial, name: str, dist: Distribution) -> Any:
        history = self.trials if self.sampler.uses_history else []
        context = Context(
            None,
            history,
            np.random.default_rng(param_seed(self.seed, trial.number, name)),
            trial.number,
            self.seed,
            self.direction,
            self._rung_values(history),
        )
        return self.sampler.suggest_param(context, name, dist)

    # -- running -------------------------------------------------------------------------------

    def optimize(
        self,
        objective: Callable[..., Any] | Any = None,
        *,
        verbose: bool = True,
        executor: Any = None,
        dashboard: bool | int = False,
        **settings: Any,
    ) -> Study:
        """Run trials until a limit of the study holds; returns the study.

        With no objective, runs the stored one (a command or an importable ``module:function``).
        Settings given here (``max_trials=200``, ``n_jobs=4``, ``strategy="gp"``...) change the
        stored definition, as a revision, for every later run. `max_trials` is the study's total
        budget across every worker and every resume. `executor` is "auto", "inprocess",
        "process" or an object following hypersearch.execution.protocol.Executor.
        `dashboard=True` (or a port number) serves the dashboard on 127.0.0.1 while the search
        runs and prints its URL (needs the dashboard extra).
        """
        from hypersearch.study.driver import run
        from hypersearch.study.objectives import resolve_objective

        given = dict(canonical(settings, "python"))
        misplaced = [name for name in ("name", "storage") if name in given]
        if misplaced:
            raise HypersearchError(
                f"{', '.join(misplaced)} name where a study lives, not how it runs: give them to "
                "hs.create_study / hs.load_study, not to optimize()"
            )
        if isinstance(executor, str):
            given.update(canonical({"executor": executor}, "python"))  # the schema's check
            executor = None
        runnable, objective_settings, in_process = resolve_objective(objective, self)
        revised, _ = self._definition.revise({**objective_settings, **given})
        if in_process is not None and revised.in_process != in_process:
            revised = dataclasses.replace(revised, in_process=in_process)
        if revised is not self._definition:
            self._save(revised)
        beside = _start_dashboard(self.storage, dashboard) if dashboard else None
        try:
            run(self, runnable, executor, verbose)
        finally:
            if beside is not None:
                beside.stop()
        return self

    # -- results -------------------------------------------------------------------------------

    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial, in number order, as immutable records."""
        return [dataclasses.replace(t, space=self.space) for t in self.storage.get_trials(self.id)]

    def get_trials(self, states: Sequence[TrialState | str] | None = None) -> list[FrozenTrial]:
        wanted = None if states is None else [TrialState(str(s).upper()) for s in states]
        return self.as_seen(self.storage.get_trials(self.id, wanted))

    def as_seen(self, trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
        """Stored `trials` as this study sees them: with its space (for `params`) and the
        values old trials had for parameters a grown space added."""
        return [dataclasses.replace(t, space=self.space) for t in self._filled(trials)]

    def _filled(self, trials: Sequence[FrozenTrial]) -> Sequence[FrozenTrial]:
        """`trials` with the values old trials had for parameters the space grew by."""
        if not self._definition.space_defaults or self.space is None:
            return trials
        if self._defaults is None or self._defaults[0] is not self._definition:
            given = self._definition.space_defaults
            names = [name for name in self.space.names if name in given]
            self._defaults = (self._definition, default_values(self.space, names, given))
        defaults = self._defaults[1]
        out = []
        for trial in trials:
            flat = fill_defaults(self.space, trial.flat_params, defaults)
            out.append(trial if flat is None else dataclasses.replace(trial, flat_params=flat))
        return out

    def trial(self, number: int) -> FrozenTrial:
        found = self.storage.get_trial(self.id, number)
        if found is None:
            raise HypersearchError(f"study {self.name!r} has no trial {number}")
        return self.as_seen([found])[0]

    def summary(self) -> StudySummary:
        return self.storage.summary(self.id, self.direction)

    @property
    def best_trial(self) -> FrozenTrial:
        complete = self.get_trials(["COMPLETE"])
        if not complete:
            raise ValueError(f"study {self.name!r} has no completed trial yet")
        sign = 1.0 if self.direction == "minimize" else -1.0
        return min(complete, key=lambda t: (sign * t.value, t.number))  # type: ignore[operator]

    @property
    def best_value(self) -> float:
        return self.best_trial.value  # type: ignore[return-value]

    @property
    def best_params(self) -> Any:
        """The best trial's parameters, nested as the objective saw them."""
        return self.best_trial.params

    def importance(self) -> dict[str, float]:
        """How much of the objective's variation each parameter explains, summing to 1, most
        important first (hypersearch.study.importance says how); empty before 4 complete trials.

            study.importance()  # {'lr': 0.71, 'depth': 0.22, 'optimizer': 0.07}
        """
        from hypersearch.study.importance import param_importance

        complete = self.get_trials(["COMPLETE"])
        return param_importance(
            [t.display_params() for t in complete], [t.value for t in complete]  # type: ignore[misc]
        )

    def zoom(self, top: float = 0.2, margin: float = 0.1) -> Space:
        """A narrower space around the best `top` fraction of the complete trials (at least
        one), each range widened by `margin` of its width (hypersearch.space.zoom says how):
        the space of a follow-up study.

            narrow = study.zoom(top=0.2)
            hs.minimize(train, narrow, warm_start=study, max_trials=30)
        """
        from hypersearch.space.zoom import zoom_space

        if self.space is None:
            raise HypersearchError("zoom needs a declared space; this study is define-by-run")
        if isinstance(top, bool) or not isinstance(top, int | float) or not 0 < top <= 1:
            raise HypersearchError(f"zoom: top must be a fraction in (0, 1], got {top!r}")
        complete = [t for t in self.get_trials(["COMPLETE"]) if t.value is not None]
        complete.sort(key=lambda t: t.value if self.direction == "minimize" else -t.value)  # type: ignore[operator]
        best = complete[: max(1, math.ceil(top * len(complete)))] if complete else []
        return zoom_space(self.space, [t.flat_params for t in best], margin)

    def to_records(self) -> list[dict[str, Any]]:
        """One flat dict per trial (``params.<path>``, ``metrics.<name>``...), for CSV or pandas."""
        return [t.to_record() for t in self.trials]

    def to_dataframe(self) -> Any:
        try:
            import pandas as pd
        except ImportError:
            raise HypersearchError(
                "to_dataframe() needs pandas: pip install pandas (or use to_records())"
            ) from None
        return pd.DataFrame(self.to_records())


_TELL_STATES = {
    "complete": TrialState.COMPLETE,
    "ok": TrialState.COMPLETE,
    "fail": TrialState.FAILED,
    "failed": TrialState.FAILED,
    "pruned": TrialState.PRUNED,
}


class _AskedBackend:
    """Backend of a Trial handed out by `ask`: reports and suggestions go to the study."""

    def __init__(self, study: Study, claimed: FrozenTrial) -> None:
        self.study, self.claimed = study, claimed

    def report(self, trial: Trial, step: int | None, metrics: dict[str, float]) -> Decision:
        return self.study._report_buffer().report_metrics(self.claimed, step, metrics)

    def suggest(self, trial: Trial, name: str, dist: Distribution) -> Any:
        return self.study.suggest_param(self.claimed, name, dist)


# -- creating and loading ----------------------------------------------------------------------


def space_difference(stored: Space | None, given: Space | None) -> list[str]:
    """Human-readable differences between two spaces, parameter by parameter."""
    if stored is None or given is None:
        if stored is given:
            return []
        return [
            "the stored study is define-by-run (space=None)"
            if stored is None
            else "the stored study has a declared space but none was given"
        ]
    old, new = stored.describe(), given.describe()
    lines = [f"parameter '{n}' is new: {new[n]}" for n in new if n not in old]
    lines += [f"parameter '{n}' is gone (stored: {old[n]})" for n in old if n not in new]
    lines += [
        f"parameter '{n}': stored {old[n]}, given {new[n]}"
        for n in new
        if n in old and (old[n] != new[n] or stored.params[n].dist != given.params[n].dist)
    ]
    return lines or ["the constants or structure around the parameters differ"]


def _strategy_settings(strategy: Any) -> tuple[dict[str, Any], Sampler | None]:
    """strategy= as settings: a name stays a name; a configured sampler becomes its name and
    options (and is used as given in this process)."""
    if not isinstance(strategy, Sampler):
        return {"strategy": strategy}, None
    config = getattr(strategy, "config", None)
    try:
        options = {} if config is None else config()
    except HypersearchError:
        options = None  # not storable (a custom callable): used here, stored by name only
    if options is None:
        log.warning(
            "strategy %r has settings that cannot be stored; other processes will run %r "
            "with default settings",
            strategy,
            strategy.name,
        )
        options = {}
    return {"strategy": strategy.name, "strategy_options": options}, strategy


def _start_dashboard(storage: Storage, dashboard: bool | int) -> Any:
    """The dashboard serving `storage` beside a search (port 8080 or the one given)."""
    if isinstance(dashboard, bool):
        port = 8080
    elif isinstance(dashboard, int) and 0 < dashboard < 65536:
        port = dashboard
    else:
        raise HypersearchError(f"dashboard= is True or a port number, got {dashboard!r}")
    try:
        from hypersearch.dashboard.server import start_background
    except ImportError as error:
        raise HypersearchError(
            f"dashboard=True needs the dashboard extra ({error}): "
            "pip install 'hypersearch[dashboard]'"
        ) from None
    return start_background(storage, port=port)


def create_study(space: Any = None, **settings: Any) -> Study:
    """Create a study, or resume the stored one of the same name.

    Settings are those of hypersearch.study.schema (``name``, ``storage``, ``direction``,
    ``metric``, ``strategy``, ``seed``, ``max_trials``...). A resume whose space, direction,
    metric or objective differs from the stored one is refused with the difference; settings
    that may change (budget, limits, strategy) are stored as a revision.

    Example::

        study = hs.create_study({"x": hs.uniform(-5, 5)}, name="demo", storage="sqlite:///hs.db")
    """
    strategy_given, sampler = ({}, None)
    if "strategy" in settings:
        strategy_given, sampler = _strategy_settings(settings.pop("strategy"))
    given = dict(canonical({**settings, **strategy_given}, "python"))
    name, url = given.pop("name", None), given.pop("storage", None)
    space_obj = None if space is None else as_space(space)
    store = get_storage(url)
    if name is None:
        name = f"study-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    definition = StudyDefinition.build(space_obj, given, sampler=sampler)
    record, created = store.create_study(
        name,
        definition.direction,
        definition.metric,
        None if space_obj is None else space_obj.to_json_str(),
        definition.to_document(),
    )
    if created:
        return Study(record, store, definition)
    stored = _stored_definition(record)
    grows = space_obj is not None and stored.space is not None and stored.space != space_obj
    if grows:
        problems = growth_problems(stored.space, space_obj)  # type: ignore[arg-type]
    else:
        problems = space_difference(stored.space, space_obj) if stored.space != space_obj else []
    if problems:
        raise StudyConflictError(
            f"study {name!r} already exists with a different space:\n  - "
            + "\n  - ".join(problems)
            + "\nA space may only grow (wider ranges, options appended, parameters added): "
            "use another name for a new study, or give the stored space to resume it."
        )
    if grows:
        added = added_parameters(stored.space, space_obj)  # type: ignore[arg-type]
        # a command passes the parameters a grown space adds: it may change with the space
        command = given.pop("command", None) if added else None
        stored = stored.grow(space_obj, command)  # type: ignore[arg-type]
    if "space_defaults" in given:  # added to those of earlier growths
        given["space_defaults"] = {**stored.space_defaults, **given["space_defaults"]}
    try:
        revised, changes = stored.revise(given)
    except StudyConflictError as error:
        raise StudyConflictError(f"study {name!r}: {error}") from None
    if grows:
        try:
            default_values(space_obj, added, revised.space_defaults)  # type: ignore[arg-type]
        except ValueError as error:
            raise SettingError("space_defaults", str(error)) from None
        changes = {**changes, **revised.revisions[-1].changes}
    if sampler is not None:
        revised = revised.with_sampler(sampler)
    log.info("resuming study %r (%d trials so far) in %s", name, record.n_trials, store.url)
    study = Study(record, store, revised)
    if changes:
        study._save(revised)
    return study


def _stored_definition(record: StudyRecord) -> StudyDefinition:
    try:
        space = None if record.space_json is None else Space.from_json(record.space_json)
    except SpaceError as error:
        raise HypersearchError(
            f"study {record.name!r}: its stored space cannot be read ({error})"
        ) from None
    try:
        return StudyDefinition.from_document(record.config, space)
    except HypersearchError as error:
        raise HypersearchError(f"study {record.name!r}: {error}") from None


def load_study(name: str, storage: str | Storage | None = None, **settings: Any) -> Study:
    """Open a stored study by name, with its complete stored definition; settings given here
    change what may change, as a revision (see `create_study`).

    Example::

        hs.load_study("mnist", "sqlite:///hs.db").optimize()  # runs exactly the stored study
    """
    store = get_storage(storage)
    record = store.get_study(name)
    if record is None:
        known = [s.name for s in store.list_studies()][:20]
        raise StudyNotFoundError(
            f"no study named {name!r} in {store.url}"
            + (f"; studies there: {known}" if known else "")
        )
    study = Study(record, store, _stored_definition(record))
    if settings:
        study.revise(**settings)
    return study
