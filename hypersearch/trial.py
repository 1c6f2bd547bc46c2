"""Trial states, the immutable trial record, the live trial handle, and objective-result parsing."""

from __future__ import annotations

import enum
import math
import numbers
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from hypersearch.errors import SpaceError
from hypersearch.space import Choice, Distribution, Float, Integer, Space
from hypersearch.space.distributions import distribution_from_json


class TrialState(enum.StrEnum):
    WAITING = "WAITING"  # queued (enqueued by a user or re-queued after a stale lease)
    RUNNING = "RUNNING"
    COMPLETE = "COMPLETE"
    PRUNED = "PRUNED"
    FAILED = "FAILED"

    @property
    def is_finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)

    def __str__(self) -> str:
        return self.value


class FailureReason(enum.StrEnum):
    ERROR = "error"  # the objective raised
    INVALID_VALUE = "invalid_value"  # NaN, None, a string, a dict without the metric...
    STATUS_FAIL = "status_fail"  # the objective returned {"status": "fail"}
    CRASHED = "crashed"  # the process running the objective died (signal, os._exit)
    STALE = "stale"  # the worker's lease expired: it died or lost the database
    TIMEOUT = "timeout"
    EXIT_CODE = "exit_code"
    NO_METRIC = "no_metric"
    INFRASTRUCTURE = "infrastructure"
    INTERRUPTED = "interrupted"  # Ctrl-C or the study stopping while the trial ran
    KILLED = "killed"  # ended on purpose (hypersearch kill, the dashboard): never re-run

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class FrozenTrial:
    """An immutable record of one trial, as stored."""

    number: int
    state: TrialState
    value: float | None = None
    flat_params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    failure_reason: str | None = None
    failure_detail: str | None = None
    created_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    host: str | None = None
    worker: str | None = None
    gpus: str | None = None  # the GPUs it ran on ("0,1"), where the executor shares them out
    owner: str | None = None
    lease_epoch: int = 0
    id: int | None = None
    distributions: dict[str, Any] | None = None  # define-by-run trials: {name: distribution JSON}
    parent_number: int | None = None  # the stale trial this one retries
    # PBT: {"parent": donor number, "step": donor's step, "replaces": the stopped trial,
    # "changed": {name: [donor's value, this trial's]}}; None for a trial sampled afresh
    lineage: dict[str, Any] | None = None
    space: Space | None = field(default=None, compare=False, repr=False)

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @cached_property
    def params(self) -> Any:
        """The parameters as the objective saw them: nested concrete values."""
        if self.distributions is not None:
            return concrete_define_by_run(self.flat_params, self.distributions)
        if self.space is None:
            return dict(self.flat_params)
        return self.space.unflatten(self.flat_params)

    def to_record(self) -> dict[str, Any]:
        """A flat dict, one key per parameter (``params.<path>``) and per metric (``metrics.<name>``)."""
        record: dict[str, Any] = {
            "number": self.number,
            "state": self.state.value,
            "value": self.value,
        }
        record.update({f"params.{k}": v for k, v in self.display_params().items()})
        record.update({f"metrics.{k}": v for k, v in self.metrics.items()})
        record.update({f"user_attrs.{k}": v for k, v in self.user_attrs.items()})
        record.update(
            failure_reason=self.failure_reason,
            started_at=self.started_at,
            finished_at=self.finished_at,
            duration=self.duration,
            host=self.host,
            worker=self.worker,
        )
        return record

    def display_params(self) -> dict[str, Any]:
        """Flat parameters with each choice shown as its option when that option is a plain value."""
        out: dict[str, Any] = {}
        for name, raw in self.flat_params.items():
            dist = self._distribution(name)
            if isinstance(dist, Choice):
                option = dist.options[raw] if 0 <= raw < len(dist.options) else raw
                out[name] = (
                    option if isinstance(option, (str, int, float, bool, type(None))) else raw
                )
            else:
                out[name] = raw
        return out

    def _distribution(self, name: str) -> Distribution | None:
        if self.distributions is not None and name in self.distributions:
            return distribution_from_json(self.distributions[name])
        if self.space is not None and name in self.space.params:
            return self.space.params[name].dist
        return None


def concrete_define_by_run(flat: Mapping[str, Any], distributions: Mapping[str, Any]) -> dict:
    out = {}
    for name, raw in flat.items():
        dist = distributions.get(name)
        if dist is not None and dist.get("type") == "choice":
            out[name] = distribution_from_json(dist).options[raw]
        else:
            out[name] = raw
    return out


# -- result parsing --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What one evaluation produced, before it is written to storage."""

    state: TrialState
    value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    failure_reason: str | None = None
    failure_detail: str | None = None


def _real(value: Any) -> tuple[float | None, str | None]:
    """(the float, None) for a real number; (None, why) for a real number no float can hold (an
    int of 400 digits, a huge Fraction); (None, None) for anything else, bool included."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None, None
    try:
        return float(value), None
    except OverflowError:
        return None, "too large for a float (at most about 1.8e308)"
    except (ArithmeticError, TypeError, ValueError) as error:  # a Real whose __float__ fails
        return None, f"not convertible to a float ({type(error).__name__})"


def _repr(value: Any) -> str:
    """``repr(value)`` for a message, at most 200 characters; never raises (the repr of an int
    of 5,000 digits does, and so may a user's class)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**50:
        return f"<{math.floor(math.log10(abs(value))) + 1} digits>"
    try:
        return repr(value)[:200]
    except Exception:
        return f"<a {type(value).__name__}>"


def _what(value: Any) -> str:
    """``int 3``, ``str 'x'``, ``None``: a value and its type, for a message."""
    return "None" if value is None else f"{type(value).__name__} {_repr(value)}"[:200]


def _name(key: Any) -> str:
    """``str(key)`` for a dict key in a result; never raises."""
    try:
        return str(key)
    except Exception:
        return _repr(key)


def parse_result(result: Any, metric: str | None) -> Outcome:
    """Turn an objective's return value into an Outcome.

    Accepted: a number; or a dict with the metric (the study's `metric`, else ``loss``, else
    ``value``), an optional ``status`` ("ok"/"fail", as hyperopt) and extra numeric metrics.
    """
    if isinstance(result, Mapping):
        status = result.get("status", "ok")
        keys = [metric] if metric else ["loss", "value"]
        key = next((k for k in keys if k in result), None)
        extras: dict[str, float] = {}
        for k, v in result.items():
            if k in ("status", key):
                continue
            number, why = _real(v)
            if why is not None:  # a number, but not one a float can hold
                return Outcome(
                    TrialState.FAILED,
                    metrics=extras,
                    failure_reason=FailureReason.INVALID_VALUE.value,
                    failure_detail=f"the returned metric {_name(k)!r} is {_what(v)}: {why}",
                )
            if number is not None:
                extras[_name(k)] = number
        if not (isinstance(status, str) and status in ("ok", "fail")):
            return Outcome(
                TrialState.FAILED,
                metrics=extras,
                failure_reason=FailureReason.INVALID_VALUE.value,
                failure_detail=f"status must be 'ok' or 'fail', got {_repr(status)}",
            )
        if status == "fail":
            return Outcome(
                TrialState.FAILED,
                metrics=extras,
                failure_reason=FailureReason.STATUS_FAIL.value,
                failure_detail=_name(result.get("error", "the objective returned status 'fail'")),
            )
        if key is None:
            return Outcome(
                TrialState.FAILED,
                metrics=extras,
                failure_reason=FailureReason.INVALID_VALUE.value,
                failure_detail=(
                    f"the returned dict has no {' or '.join(repr(k) for k in keys)} key "
                    f"(keys: {sorted(map(_name, result))})"
                ),
            )
        outcome = parse_result(result[key], metric)
        if outcome.state is TrialState.COMPLETE:
            extras[key] = outcome.value  # type: ignore[assignment]
        return Outcome(
            outcome.state, outcome.value, extras, outcome.failure_reason, outcome.failure_detail
        )
    value, why = _real(result)
    if why is not None:
        return Outcome(
            TrialState.FAILED,
            failure_reason=FailureReason.INVALID_VALUE.value,
            failure_detail=f"the objective returned {_what(result)}: {why}",
        )
    if value is None:
        return Outcome(
            TrialState.FAILED,
            failure_reason=FailureReason.INVALID_VALUE.value,
            failure_detail=(
                f"the objective returned {_what(result)}; return a number or a dict with 'loss'"
            ),
        )
    if math.isnan(value):
        return Outcome(
            TrialState.FAILED,
            failure_reason=FailureReason.INVALID_VALUE.value,
            failure_detail="the objective returned NaN",
        )
    return Outcome(TrialState.COMPLETE, value)


def clean_metrics(metrics: Mapping[str, Any], where: str) -> dict[str, float]:
    """Validate reported metrics: names are strings, values real numbers (NaN and inf kept)."""
    out = {}
    for name, value in metrics.items():
        number, why = _real(value)
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: metric names must be non-empty strings, got {name!r}")
        if why is not None:
            raise ValueError(f"{where}: metric {name!r} is {_what(value)}: {why}")
        if number is None:
            raise ValueError(
                f"{where}: metric {name!r} must be a number, got {type(value).__name__} {value!r}"
            )
        out[name] = number
    return out


# -- the live handle the objective receives ---------------------------------------------------


class Decision(enum.StrEnum):
    """What a report's answer tells the trial to do next (schedulers decide; a return value)."""

    CONTINUE = "CONTINUE"
    STOP = "STOP"  # end the trial now: it is recorded PRUNED with its curve
    PAUSE = "PAUSE"  # end the trial now, to be resumed later (population based training)

    def __str__(self) -> str:
        return self.value


class TrialBackend(Protocol):
    """Where a live trial sends what the objective does (the study, or a pipe to the driver)."""

    def report(
        self, trial: Trial, step: int | None, metrics: dict[str, float]
    ) -> Decision | None: ...

    def suggest(self, trial: Trial, name: str, dist: Distribution) -> Any: ...


class Trial:
    """The handle an objective receives as its second argument (or only one, define-by-run).

    Example::

        def objective(params, trial):
            for epoch in range(10):
                trial.report(epoch, val_loss=train_one_epoch(params))
            return val_loss
    """

    def __init__(
        self,
        number: int,
        flat_params: dict[str, Any],
        space: Space | None,
        backend: TrialBackend,
        distributions: dict[str, Any] | None = None,
        checkpoint_dir: str | None = None,
        restore_from: str | None = None,
    ) -> None:
        self.number = number
        self._checkpoint_dir = checkpoint_dir
        # PBT: the verified copy of a better trial's checkpoint to start from (None: afresh)
        self.restore_from = restore_from
        self.flat_params = dict(flat_params)
        self.space = space
        self.distributions = distributions  # define-by-run: filled by suggest_*
        self.user_attrs: dict[str, Any] = {}
        self._backend = backend

    @property
    def params(self) -> Any:
        if self.space is None:
            return concrete_define_by_run(self.flat_params, self.distributions or {})
        return self.space.unflatten(self.flat_params)

    @property
    def checkpoint_dir(self) -> str:
        """This trial's own folder for checkpoints (created on first use). Save the model
        there before each `report`; with ``scheduler="pbt"`` a better trial's copy of it may
        become another trial's `restore_from`::

            if trial.restore_from:
                model.load(os.path.join(trial.restore_from, "model.pt"))
            ...
            model.save(os.path.join(trial.checkpoint_dir, "model.pt"))
        """
        if self._checkpoint_dir is None:
            raise RuntimeError(
                "this trial has no checkpoint folder: it was not started by a study "
                "(optimize, ask or the CLI)"
            )
        import os

        os.makedirs(self._checkpoint_dir, exist_ok=True)
        return self._checkpoint_dir

    _decision: Decision = Decision.CONTINUE  # the answer to the latest report

    def report(self, step: Any = None, *optuna_step: int, **metrics: Any) -> Decision:
        """Record metrics at a step (epoch, iteration) and return what to do next::

            if trial.report(3, val_loss=0.21) is not Decision.CONTINUE:
                break  # or check trial.should_stop()

        Optuna's form ``trial.report(value, step)`` records the metric ``value``.
        """
        if optuna_step:
            if len(optuna_step) > 1 or metrics:
                raise TypeError("trial.report takes (step, **metrics), or Optuna's (value, step)")
            step, metrics = optuna_step[0], {"value": step}
        if step is not None and (isinstance(step, bool) or not isinstance(step, numbers.Integral)):
            raise ValueError(f"trial.report: step must be an integer, got {step!r}")
        clean = clean_metrics(metrics, "trial.report")
        if not clean:
            raise ValueError("trial.report: give at least one metric, e.g. report(3, loss=0.5)")
        answer = self._backend.report(self, None if step is None else int(step), clean)
        # a backend that predates decisions answers None: that means carry on
        self._decision = Decision.CONTINUE if answer is None else Decision(answer)
        return self._decision

    def should_stop(self) -> bool:
        """True when the answer to the latest report was STOP or PAUSE: return soon."""
        return self._decision is not Decision.CONTINUE

    def should_prune(self) -> bool:
        """Optuna's name for `should_stop`."""
        return self.should_stop()

    def set_user_attr(self, key: str, value: Any) -> None:
        import json

        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"trial.set_user_attr({key!r}, ...): the value must be JSON-serialisable"
            ) from None
        self.user_attrs[key] = value  # written with the trial's result

    # define-by-run -------------------------------------------------------------------------

    def _suggest(self, name: str, dist: Distribution) -> Any:
        if self.space is not None:
            raise SpaceError(
                f"trial.suggest_*({name!r}) is for define-by-run studies; this study has a "
                "declared space, read the values from `params` instead"
            )
        if not isinstance(name, str) or not name:
            raise SpaceError(f"parameter names must be non-empty strings, got {name!r}")
        if self.distributions is None:
            self.distributions = {}
        if name in self.flat_params and name not in self.distributions:  # fixed by enqueue
            raw = self._enqueued(name, dist, self.flat_params[name])
            self.flat_params[name] = raw
            self.distributions[name] = dist.to_json()
        elif name in self.flat_params:
            if self.distributions.get(name) != dist.to_json():
                raise SpaceError(
                    f"parameter {name!r} was already suggested in this trial with a different "
                    "distribution"
                )
            raw = self.flat_params[name]
        else:
            raw = self._backend.suggest(self, name, dist)
            self.flat_params[name] = raw
            self.distributions[name] = dist.to_json()
        return dist.options[raw] if isinstance(dist, Choice) else raw

    def _enqueued(self, name: str, dist: Distribution, value: Any) -> Any:
        """The raw value of an enqueued parameter (given as the objective sees it)."""
        try:
            return Space.raw_value(dist, value)
        except SpaceError:
            from hypersearch.space.distributions import _describe

            raise SpaceError(
                f"trial {self.number}: the enqueued value {value!r} of {name!r} is not in "
                f"{_describe(dist)}"
            ) from None

    def suggest_float(
        self, name: str, low: float, high: float, *, log: bool = False, step: float | None = None
    ) -> float:
        return self._suggest(name, Float(low, high, log=log, q=step))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        return self._suggest(name, Integer(low, high, step, log))

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._suggest(name, Choice(choices))


def param_seed(seed: int, number: int, name: str | None = None) -> list[int]:
    """Entropy for the random generator of one trial (and one define-by-run parameter)."""
    entropy = [seed, number]
    if name is not None:
        entropy.append(zlib.crc32(name.encode()))
    return entropy
