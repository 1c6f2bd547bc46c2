"""Growing a study's space on resume, keeping its history.

A space may *grow*: a range widened (same scale and lattice), options appended to a choice,
new parameters added (each with the value old trials had, `space_defaults`), new constants.
Every stored trial then still lies in the space, so the strategy keeps learning from all of
them. Anything else (a range narrowed, a scale or type changed, a parameter or option removed
or reordered, a constant changed) would make old trials mean something else: it is refused,
naming the parameter.

    growth_problems(Space({"x": uniform(0, 1)}), Space({"x": uniform(-1, 1)}))  # []
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from hypersearch.errors import SpaceError
from hypersearch.space.distributions import Choice, Distribution, Float, Integer, _describe
from hypersearch.space.tree import ROOT_NAME, Space, child_path, node_to_json


def growth_problems(old: Space, new: Space) -> list[str]:
    """Why `new` is not a growth of `old` (empty when it is), one line per parameter."""
    problems: list[str] = []
    _compare(old.tree, new.tree, "", problems)
    return problems


def added_parameters(old: Space, new: Space) -> list[str]:
    """Paths of `new` that `old` lacks and an old trial could have had active (not those
    inside an appended option: no old trial took it), in `new`'s order."""

    def reachable(name: str) -> bool:
        return all(path in old.params and index < len(old.params[path].options)
                   for path, index in new.params[name].condition)

    return [name for name in new.names if name not in old.params and reachable(name)]


def _compare(old: Any, new: Any, prefix: str, problems: list[str]) -> None:
    where = prefix or ROOT_NAME
    if isinstance(old, Distribution):
        if not isinstance(new, Distribution):
            problems.append(f"parameter '{where}' ({_describe(old)}) is gone")
        else:
            problem = _grows(old, new, where, problems)
            if problem:
                problems.append(f"parameter '{where}': stored {_describe(old)}, given "
                                f"{_describe(new)}: {problem}")
        return
    if isinstance(old, Mapping):
        if not isinstance(new, Mapping):
            problems.append(f"'{where}' was a mapping and is not any more")
            return
        for key, value in old.items():
            child = child_path(prefix, key)
            if key not in new:
                problems.append(f"parameter '{child}' ({_describe(value)}) is gone"
                                if isinstance(value, Distribution) else f"'{child}' is gone")
            else:
                _compare(value, new[key], child, problems)
        return
    if isinstance(old, list | tuple):
        if not isinstance(new, list | tuple) or len(new) != len(old):
            problems.append(f"'{where}': a list of {len(old)} items changed shape")
            return
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            _compare(a, b, child_path(prefix, str(i)), problems)
        return
    if _json(old) != _json(new):
        problems.append(f"constant '{where}' changed: stored {old!r}, given {new!r}")


def _grows(old: Distribution, new: Distribution, where: str, problems: list[str]) -> str:
    """Why `new` does not contain `old` ('' when it does); options are compared in place."""
    if type(old) is not type(new):
        return "the type changed"
    if isinstance(old, Choice):
        assert isinstance(new, Choice)
        if len(new.options) < len(old.options):
            return "options were removed (append new options at the end)"
        for i, option in enumerate(old.options):
            _compare(option, new.options[i], f"{where}[{i}]", problems)
        return ""
    if isinstance(old, Float | Integer):
        lattice = old.q if isinstance(old, Float) else old.step
        new_lattice = new.q if isinstance(new, Float) else new.step  # type: ignore[union-attr]
        if old.log != new.log:  # type: ignore[union-attr]
            return "the scale changed"
        if lattice != new_lattice:
            return "the step changed"
        if new.low > old.low or new.high < old.high:  # type: ignore[union-attr]
            return "the range is narrower (it may only widen)"
        if lattice is not None and not _on_lattice(old.low - new.low, lattice):  # type: ignore[union-attr]
            return "the new low bound moves the lattice (widen by whole steps)"
        return ""
    return "" if old == new else "it changed (only ranges widen and choices grow)"


def _on_lattice(offset: float, step: float) -> bool:
    k = offset / step
    return math.isclose(k, round(k), abs_tol=1e-9)


def _json(value: Any) -> str:
    return json.dumps(node_to_json(value), sort_keys=True)


def default_values(new: Space, added: list[str], given: Mapping[str, Any]) -> dict[str, Any]:
    """The raw values (a choice's index) old trials get for the `added` parameters, from
    `given` (as the objective sees them: a choice's option); ValueError names what is missing
    or outside the space."""
    missing = [name for name in added if name not in given]
    if missing:
        raise ValueError(
            "the space adds " + ", ".join(f"'{m}'" for m in missing) + ": say what value old "
            "trials had, e.g. space_defaults={" + ", ".join(f"'{m}': ..." for m in missing) + "}"
        )
    out: dict[str, Any] = {}
    for name in added:
        dist, value = new.params[name].dist, given[name]
        try:
            out[name] = Space.raw_value(dist, value)
        except SpaceError:
            raise ValueError(f"space_defaults['{name}']: {value!r} is not in {_describe(dist)}"
                             ) from None
    return out


def fill_defaults(space: Space, flat: Mapping[str, Any],
                  defaults: Mapping[str, Any]) -> dict[str, Any] | None:
    """`flat` with the defaults of the active parameters it lacks (None when it lacks none)."""
    missing = {name: value for name, value in defaults.items() if name not in flat}
    if not missing:
        return None
    filled = dict(flat)
    for name in space.names:  # space order: a choice is filled before what it switches on
        if name in missing and space.is_active(name, filled):
            filled[name] = missing[name]
    return filled if len(filled) > len(flat) else None
