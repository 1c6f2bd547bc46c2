"""The scheduler contract: every report of a running trial gets an answer.

A scheduler is a pure rule: ``on_report(view, trial, step, metrics) -> Verdict``. What it
knows of the other trials comes from the `StudyView` (values at a step, completed count), which
reads storage, so a second worker or a resumed study decides the same way. A scheduler holds its
options and nothing else.

Example::

    >>> from hypersearch.schedulers import make_scheduler
    >>> make_scheduler("asha", {"min_resource": 1, "reduction_factor": 3}).config()
    {'min_resource': 1, 'max_resource': None, 'reduction_factor': 3, 'brackets': 1}
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hypersearch.errors import HypersearchError
from hypersearch.trial import Decision, FrozenTrial

if TYPE_CHECKING:
    import numpy as np

    from hypersearch.schedulers.view import StudyView
    from hypersearch.space import Space


class SchedulerError(HypersearchError, ValueError):
    """A scheduler's name or options are wrong (the message says which and how to fix it)."""


@dataclass(frozen=True)
class Exploit:
    """Population Based Training's plan for a trial it stops: a new trial continues `donor`'s
    checkpoint (as of `step`) with parameters from ``explore(space, donor's params, rng)``."""

    donor: int
    step: int
    explore: Callable[[Space, Mapping[str, Any], np.random.Generator], dict[str, Any]]


@dataclass(frozen=True)
class Verdict:
    """A decision and, when it is not CONTINUE, why (stored with a stopped trial); PBT adds
    what continues in the stopped trial's place."""

    decision: Decision
    reason: str = ""
    exploit: Exploit | None = None


CONTINUE = Verdict(Decision.CONTINUE)


def stop(reason: str) -> Verdict:
    return Verdict(Decision.STOP, reason)


class Scheduler(ABC):
    """Decides, report by report, whether a trial goes on. Subclasses set `name` and take
    their options as keyword arguments (checked in ``__init__``, stored by `config`)."""

    name: ClassVar[str]

    @abstractmethod
    def on_report(
        self, view: StudyView, trial: FrozenTrial, step: int, metrics: Mapping[str, float]
    ) -> Verdict:
        """The answer to `trial`'s report at `step` (the view already holds this report)."""

    def config(self) -> dict[str, Any]:
        """The options as stored in the study definition (JSON values)."""
        names = inspect.signature(type(self).__init__).parameters
        return {name: _jsonable(getattr(self, name)) for name in names if name != "self"}

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({options})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.config() == other.config()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self.name)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Scheduler):
        return {"name": value.name, **value.config()}
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


class Chain(Scheduler):
    """Several schedulers at once: the first answer that is not CONTINUE wins."""

    name = "chain"

    def __init__(self, schedulers: Sequence[Scheduler]) -> None:
        self.schedulers = tuple(schedulers)

    def on_report(
        self, view: StudyView, trial: FrozenTrial, step: int, metrics: Mapping[str, float]
    ) -> Verdict:
        for scheduler in self.schedulers:
            verdict = scheduler.on_report(view, trial, step, metrics)
            if verdict.decision is not Decision.CONTINUE:
                return verdict
        return CONTINUE


# -- option checks shared by the schedulers ---------------------------------------------------


def integer(owner: str, name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SchedulerError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")
    return value


def number(owner: str, name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise SchedulerError(
            f"{owner}: {name} must be a number in [{low:g}, {high:g}], got {value!r}"
        )
    return float(value)


def optional_number(owner: str, name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise SchedulerError(f"{owner}: {name} must be a number, got {value!r}")
    return float(value)


# -- names -------------------------------------------------------------------------------------


def schedulers() -> dict[str, type[Scheduler]]:
    """Every scheduler by name."""
    from hypersearch.schedulers.halving import ASHA, Hyperband
    from hypersearch.schedulers.pbt import PBT
    from hypersearch.schedulers.rules import Median, Patience, Percentile, Threshold

    classes = (Median, Percentile, Threshold, Patience, ASHA, Hyperband, PBT)
    return {cls.name: cls for cls in classes}


def make_scheduler(name: str, options: Mapping[str, Any] | None = None) -> Scheduler:
    """A scheduler from its stored form: a name and its options (unknown ones refused with
    the closest known one)."""
    from hypersearch.settings import did_you_mean

    known = schedulers()
    cls = known.get(name)
    if cls is None:
        raise SchedulerError(
            f"unknown scheduler {name!r}{did_you_mean(name, list(known))} "
            f"(choose one of: {', '.join(known)})"
        )
    options = dict(options or {})
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in options:
        if key not in accepted:
            raise SchedulerError(
                f"{name}: unknown option {key!r}{did_you_mean(key, accepted)} "
                f"(its options: {', '.join(accepted)})"
            )
    if "wraps" in options and not isinstance(options["wraps"], Scheduler | None):
        options["wraps"] = _nested(name, options["wraps"])
    return cls(**options)


def _nested(owner: str, value: Any) -> Scheduler:
    """A scheduler given as an option of another: a name or {"name": ..., options...}."""
    if isinstance(value, str):
        return make_scheduler(value)
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        rest = {k: v for k, v in value.items() if k != "name"}
        return make_scheduler(value["name"], rest)
    raise SchedulerError(
        f"{owner}: wraps must be a scheduler name or a mapping with 'name', got {value!r}"
    )
