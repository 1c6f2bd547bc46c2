"""Warm start: what other searches learned seeds this study's sampler.

The setting ``warm_start`` lists sources: names of studies in the same storage (read when the
study is opened, so a study may learn from one still running elsewhere) and records
``{"params": {...}, "value": v}`` (parameters nested as the objective receives them; values
in this study's direction). A `Study` given in Python becomes its records, so the definition
stays complete on its own. Points that do not fit this study's space are left out.

The sampler sees the warm trials before this study's own, as if they had run first: TPE and GP
model them from the first suggestion and a grid skips the points already evaluated. They are
not trials of this study: they are not charged to ``max_trials`` and do not show in its
trials or its best.

    hs.minimize(f, space, warm_start=first_study, max_trials=20)
    hs.minimize(f, space, warm_start=[{"params": {"x": 0.3}, "value": 1.2}])
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from hypersearch.errors import HypersearchError
from hypersearch.space import Space
from hypersearch.trial import FrozenTrial, TrialState

log = logging.getLogger("hypersearch")


def check_sources(value: Any) -> tuple[Any, ...]:
    """The setting's value: a tuple of study names and records (ValueError says what is wrong)."""
    from hypersearch.study.study import Study

    if isinstance(value, str | Study | Mapping):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ValueError("expected study names and/or {params, value} records, "
                         f"got {type(value).__name__}")
    sources: list[Any] = []
    for i, item in enumerate(value):
        if isinstance(item, Study):
            sources.extend(records_of(item))
        elif isinstance(item, str):
            if not item.strip():
                raise ValueError(f"item {i}: a study name is empty")
            sources.append(item.strip())
        else:
            sources.append(_record(i, item))
    return tuple(sources)


def _record(i: int, item: Any) -> dict[str, Any]:
    if not isinstance(item, Mapping) or set(item) != {"params", "value"}:
        raise ValueError(
            f"item {i}: expected a study name or a record {{params: {{...}}, value: number}}, "
            f"got {_short(item)}"
        )
    value = item["value"]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"item {i}: value must be a finite number, got {value!r}")
    if not isinstance(item["params"], Mapping):
        raise ValueError(f"item {i}: params must be a mapping of names to values")
    try:
        json.dumps(item["params"], allow_nan=False)
    except (TypeError, ValueError):
        raise ValueError(f"item {i}: params must be JSON values (numbers, strings, lists, "
                         f"mappings), got {_short(item['params'])}") from None
    return {"params": dict(item["params"]), "value": float(value)}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def records_of(study: Any) -> list[dict[str, Any]]:
    """The complete trials of `study` as records (those whose parameters JSON can hold)."""
    out = []
    for trial in study.get_trials(["COMPLETE"]):
        try:
            json.dumps(trial.params, allow_nan=False)
        except (TypeError, ValueError):
            continue
        out.append({"params": trial.params, "value": float(trial.value)})
    return out


def warm_trials(space: Space | None, sources: Sequence[Any], storage: Any,
                own_name: str) -> list[FrozenTrial]:
    """The sources as COMPLETE trials numbered 0, 1, ... (those that fit `space`)."""
    records: list[dict[str, Any]] = []
    for source in sources:
        if isinstance(source, str):
            records.extend(_study_records(source, storage, own_name))
        else:
            records.append(source)
    warm: list[FrozenTrial] = []
    left_out = 0
    for record in records:
        flat = _fit(space, record["params"])
        if flat is None:
            left_out += 1
            continue
        warm.append(FrozenTrial(number=len(warm), state=TrialState.COMPLETE,
                                value=record["value"], flat_params=flat, space=space))
    if left_out:
        log.warning("warm start: %d of %d points do not fit this study's space and are left "
                    "out", left_out, len(records))
    return warm


def _study_records(name: str, storage: Any, own_name: str) -> list[dict[str, Any]]:
    from hypersearch.study.study import load_study

    if name == own_name:
        raise HypersearchError(f"warm_start names the study itself ({name!r}); name another")
    try:
        other = load_study(name, storage)
    except HypersearchError as error:
        raise HypersearchError(f"warm_start: {error}") from None
    return records_of(other)


def _fit(space: Space | None, params: Mapping[str, Any]) -> dict[str, Any] | None:
    if space is None:
        return dict(params)
    try:
        return space.validate(space.flatten(params))
    except (HypersearchError, ValueError, KeyError, TypeError):
        return None


def after_warm(warm: Sequence[FrozenTrial], history: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """`history` behind the warm trials, numbered on from them (samplers expect trial k at
    position k)."""
    shift = len(warm)
    return [*warm, *(dataclasses.replace(t, number=t.number + shift) for t in history)]
