"""The Study: one search, its trials and results, with ask/tell at the core."""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
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
from hypersearch.execution.executors import Finished
from hypersearch.execution.leases import LeaseKeeper, sweep
from hypersearch.samplers import Sampler, get_sampler
from hypersearch.samplers.base import Context
from hypersearch.space import Distribution, Space, as_space
from hypersearch.storage import Storage, StudyRecord, StudySummary, get_storage
from hypersearch.storage.base import make_owner
from hypersearch.trial import (
    FailureReason,
    FrozenTrial,
    Outcome,
    Trial,
    TrialState,
    param_seed,
    parse_result,
)

log = logging.getLogger("hypersearch")

DIRECTIONS = ("minimize", "maximize")
DEFAULT_LEASE_SECONDS = 60.0
_owner_lock = threading.Lock()
_owner: tuple[int, str] | None = None


def process_owner() -> str:
    """The lease owner id of this process (made again after a fork)."""
    global _owner
    import os

    with _owner_lock:
        if _owner is None or _owner[0] != os.getpid():
            _owner = (os.getpid(), make_owner())
        return _owner[1]


class Study:
    """A search: where its trials live, what space it explores, which strategy proposes.

    Create one with `hs.create_study`, `hs.minimize`/`hs.maximize`, or `hs.load_study`.
    """

    def __init__(
        self,
        record: StudyRecord,
        storage: Storage,
        space: Space | None,
        sampler: Sampler,
        seed: int,
    ) -> None:
        self._record = record
        self.storage = storage
        self.space = space
        self.sampler = sampler
        self.seed = seed
        self.lease_seconds = DEFAULT_LEASE_SECONDS
        self.retry_stale = False
        self._keeper: LeaseKeeper | None = None
        self._keeper_lock = threading.Lock()

    # -- identity ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def direction(self) -> str:
        return self._record.direction

    @property
    def metric(self) -> str | None:
        return self._record.metric

    @property
    def id(self) -> int:
        return self._record.id

    @property
    def config(self) -> dict[str, Any]:
        return dict(self._record.config)

    def __repr__(self) -> str:
        return (
            f"Study(name={self.name!r}, direction={self.direction!r}, storage={self.storage.url!r})"
        )

    # -- ask / tell ----------------------------------------------------------------------------

    def _ensure_keeper(self) -> None:
        with self._keeper_lock:
            if self._keeper is None:
                self._keeper = LeaseKeeper(
                    self.storage,
                    process_owner(),
                    self.id,
                    self.lease_seconds,
                    lambda: self.retry_stale,
                )

    def close(self) -> None:
        """Stop renewing leases (trials still running will go stale)."""
        with self._keeper_lock:
            if self._keeper is not None:
                self._keeper.stop()
                self._keeper = None

    def request_stop(self) -> None:
        """Ask every worker of this study (any process, any machine) to stop soon."""
        self._set_config(stop_requested=True)

    def clear_stop(self) -> None:
        self._set_config(stop_requested=False)

    def stop_requested(self) -> bool:
        record = self.storage.get_study(self.name)
        return bool(record and record.config.get("stop_requested"))

    def _set_config(self, **changes: Any) -> None:
        record = self.storage.get_study(self.name) or self._record
        config = {**record.config, **changes}
        self.storage.update_study_config(self.id, config)
        self._record = dataclasses.replace(record, config=config)

    def sweep_stale(self) -> list[int]:
        """Fail trials left RUNNING by dead workers now; the numbers failed."""
        return sweep(self.storage, self.id, self.retry_stale)

    def _propose(self, history: Sequence[FrozenTrial], number: int) -> dict[str, Any] | None:
        if self.space is None:
            return {}  # define-by-run: parameters arrive through trial.suggest_*
        context = Context(
            self.space,
            history,
            np.random.default_rng(param_seed(self.seed, number)),
            number,
            self.seed,
            self.direction,
        )
        params = self.sampler.suggest(context)
        return None if params is None else self.space.validate(params)

    def claim(self, max_trials: int | None = None, worker: str | None = None) -> FrozenTrial | None:
        """Start the next trial under this process's lease; None when nothing is left."""
        self._ensure_keeper()
        return self.storage.claim(
            self.id,
            process_owner(),
            propose=self._propose,
            uses_history=self.sampler.uses_history,
            max_trials=max_trials,
            lease_seconds=self.lease_seconds,
            worker=worker,
        )

    def ask(self) -> Trial:
        """Start a trial and return its live handle; finish it with `tell`.

        Raises StudyExhausted when the strategy has nothing left (a grid fully taken).
        """
        claimed = self.claim()
        if claimed is None:
            raise StudyExhausted(
                f"study {self.name!r}: strategy {self.sampler.name!r} has no point left to try"
            )
        trial = Trial(
            claimed.number,
            claimed.flat_params,
            self.space,
            _AskedBackend(self, claimed),
            distributions={} if self.space is None else None,
        )
        trial._claimed = claimed  # type: ignore[attr-defined]
        return trial

    def tell(
        self,
        trial: Trial | int,
        result: Any = None,
        *,
        state: str | TrialState | None = None,
    ) -> FrozenTrial:
        """Finish a trial from `ask` with the objective's result (a number or a dict, as an
        objective returns), or with ``state="fail"`` / ``state="pruned"``."""
        claimed = self._claimed_record(trial)
        if state is None:
            outcome = parse_result(result, self.metric)
        else:
            wanted = _TELL_STATES.get(str(getattr(state, "value", state)).lower())
            if wanted is None:
                raise HypersearchError(f"tell(state={state!r}): use 'complete', 'fail' or 'pruned'")
            if wanted is TrialState.COMPLETE:
                outcome = parse_result(result, self.metric)
            elif wanted is TrialState.FAILED:
                outcome = Outcome(wanted, failure_reason=FailureReason.STATUS_FAIL.value)
            else:
                outcome = Outcome(wanted)
        live = trial if isinstance(trial, Trial) else None
        finished = Finished(
            claimed,
            outcome,
            flat_params=dict(live.flat_params) if live is not None and self.space is None else None,
            distributions=dict(live.distributions or {})
            if live is not None and self.space is None
            else None,
            user_attrs=dict(live.user_attrs) if live is not None else {},
        )
        self.record_finished(finished)
        return self.trial(claimed.number)

    def _claimed_record(self, trial: Trial | int) -> FrozenTrial:
        if isinstance(trial, Trial) and hasattr(trial, "_claimed"):
            return trial._claimed  # type: ignore[attr-defined,no-any-return]
        number = trial.number if isinstance(trial, Trial) else trial
        record = self.trial(number)
        if record.state is not TrialState.RUNNING:
            raise HypersearchError(
                f"trial {number} of study {self.name!r} is {record.state.value}, not RUNNING; "
                "only a running trial can be told"
            )
        return record

    def record_finished(self, finished: Finished) -> bool:
        """Write a finished trial under its lease. A late result (lease lost) is logged, not raised."""
        claimed = finished.trial
        written = self.storage.finish(
            claimed.id,  # type: ignore[arg-type]
            claimed.owner or "",
            claimed.lease_epoch,
            finished.outcome,
            flat_params=finished.flat_params,
            distributions=finished.distributions,
            user_attrs=finished.user_attrs,
        )
        if not written:
            log.warning(
                "trial %d finished after its lease was taken over (it was marked stale); "
                "its late result %s is not recorded",
                claimed.number,
                finished.outcome.value
                if finished.outcome.value is not None
                else finished.outcome.state.value,
            )
        return written

    def enqueue(self, params: Any) -> int:
        """Queue a trial with given parameters (nested values, as the objective receives them);
        it runs before any new suggestion. Returns its number."""
        if self.space is None:
            if not isinstance(params, dict):
                raise HypersearchError("define-by-run studies enqueue a flat dict {name: value}")
            flat = dict(params)
        else:
            flat = self.space.validate(self.space.flatten(params))
        return self.storage.enqueue(self.id, flat)

    # -- the sink running objectives write to ---------------------------------------------------

    def report_metrics(
        self, trial: FrozenTrial, step: int | None, metrics: dict[str, float]
    ) -> None:
        if not self.storage.report(trial.id, trial.owner or "", trial.lease_epoch, step, metrics):  # type: ignore[arg-type]
            log.warning(
                "trial %d lost its lease; report at step %s not recorded", trial.number, step
            )

    def append_logs(
        self, trial: FrozenTrial, stream: str, lines: Sequence[tuple[int, str]]
    ) -> None:
        self.storage.append_logs(trial.id, trial.owner or "", trial.lease_epoch, stream, lines)  # type: ignore[arg-type]

    def suggest_param(self, trial: FrozenTrial, name: str, dist: Distribution) -> Any:
        rng = np.random.default_rng(param_seed(self.seed, trial.number, name))
        history = self.trials if self.sampler.uses_history else []
        return self.sampler.suggest_param(name, dist, history, rng)

    # -- running -------------------------------------------------------------------------------

    def optimize(
        self,
        objective: Callable[..., Any],
        *,
        max_trials: int | None = None,
        timeout: float | None = None,
        target: float | None = None,
        patience: int | None = None,
        max_failures: int | None = None,
        n_jobs: int = 1,
        verbose: bool = True,
    ) -> Study:
        """Run trials until a stopping criterion holds. `max_trials` is the study's total budget
        across every worker and every resume. Returns the study."""
        from hypersearch.study.optimize import Limits, run

        limits = Limits.checked(max_trials, timeout, target, patience, max_failures, n_jobs)
        run(self, objective, limits, verbose=verbose)
        return self

    # -- results -------------------------------------------------------------------------------

    @property
    def trials(self) -> list[FrozenTrial]:
        """Every trial, in number order, as immutable records."""
        return [dataclasses.replace(t, space=self.space) for t in self.storage.get_trials(self.id)]

    def get_trials(self, states: Sequence[TrialState | str] | None = None) -> list[FrozenTrial]:
        wanted = None if states is None else [TrialState(str(s).upper()) for s in states]
        return [
            dataclasses.replace(t, space=self.space)
            for t in self.storage.get_trials(self.id, wanted)
        ]

    def trial(self, number: int) -> FrozenTrial:
        found = self.storage.get_trial(self.id, number)
        if found is None:
            raise HypersearchError(f"study {self.name!r} has no trial {number}")
        return dataclasses.replace(found, space=self.space)

    def summary(self) -> StudySummary:
        return self.storage.summary(self.id, self.direction)

    @property
    def best_trial(self) -> FrozenTrial:
        complete = self.get_trials([TrialState.COMPLETE])
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

    def report(self, trial: Trial, step: int | None, metrics: dict[str, float]) -> None:
        self.study.report_metrics(self.claimed, step, metrics)

    def suggest(self, trial: Trial, name: str, dist: Distribution) -> Any:
        return self.study.suggest_param(self.claimed, name, dist)


# -- creating and loading ----------------------------------------------------------------------


def _check_direction(direction: str) -> str:
    value = str(direction).lower()
    if value not in DIRECTIONS:
        raise HypersearchError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
    return value


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


def create_study(
    space: Any = None,
    *,
    name: str | None = None,
    direction: str = "minimize",
    metric: str | None = None,
    strategy: str | Sampler = "tpe",
    storage: str | Storage | None = None,
    seed: int | None = None,
    config: dict[str, Any] | None = None,
) -> Study:
    """Create a study, or resume the stored one of the same name.

    A resume whose space, direction or metric differs from the stored one is refused with a
    message showing the difference. The strategy may change between runs.

    Example::

        study = hs.create_study({"x": hs.uniform(-5, 5)}, name="demo", storage="sqlite:///hs.db")
    """
    direction = _check_direction(direction)
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise HypersearchError(f"metric must be a non-empty string, got {metric!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise HypersearchError(f"seed must be an integer, got {seed!r}")
    space_obj = None if space is None else as_space(space)
    sampler = get_sampler(strategy)
    sampler.check_space(space_obj)
    store = get_storage(storage)
    if name is None:
        name = f"study-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"
    elif not isinstance(name, str) or not name.strip():
        raise HypersearchError(f"name must be a non-empty string, got {name!r}")
    new_config = {
        "seed": seed if seed is not None else secrets.randbits(31),
        "strategy": sampler.name,
        **(config or {}),
    }
    record, created = store.create_study(
        name, direction, metric, None if space_obj is None else space_obj.to_json_str(), new_config
    )
    if not created:
        _check_resume(record, direction, metric, space_obj)
        log.info("resuming study %r (%d trials so far) in %s", name, record.n_trials, store.url)
        if sampler.name != record.config.get("strategy") or (
            config and any(record.config.get(k) != v for k, v in config.items())
        ):
            merged = {**record.config, **(config or {}), "strategy": sampler.name}
            store.update_study_config(record.id, merged)
            record = dataclasses.replace(record, config=merged)
    study_seed = seed if seed is not None else int(record.config.get("seed", 0))
    return Study(record, store, space_obj, sampler, study_seed)


def _check_resume(
    record: StudyRecord, direction: str, metric: str | None, space: Space | None
) -> None:
    problems = []
    if record.direction != direction:
        problems.append(f"direction: stored {record.direction}, given {direction}")
    if record.metric != metric:
        problems.append(f"metric: stored {record.metric!r}, given {metric!r}")
    stored_space = None if record.space_json is None else Space.from_json(record.space_json)
    if stored_space != space:
        problems.extend(space_difference(stored_space, space))
    if problems:
        raise StudyConflictError(
            f"study {record.name!r} already exists with a different definition:\n  - "
            + "\n  - ".join(problems)
            + "\nUse another name for a new study, or give the stored definition to resume it."
        )


def load_study(
    name: str, storage: str | Storage | None = None, *, strategy: str | Sampler | None = None
) -> Study:
    """Open a stored study by name (its space and strategy come from storage)."""
    store = get_storage(storage)
    record = store.get_study(name)
    if record is None:
        known = [s.name for s in store.list_studies()][:20]
        raise StudyNotFoundError(
            f"no study named {name!r} in {store.url}"
            + (f"; studies there: {known}" if known else "")
        )
    try:
        space = None if record.space_json is None else Space.from_json(record.space_json)
    except SpaceError as error:
        raise HypersearchError(
            f"study {name!r}: its stored space cannot be read ({error})"
        ) from None
    sampler = get_sampler(strategy or record.config.get("strategy", "random"))
    return Study(record, store, space, sampler, int(record.config.get("seed", 0)))
