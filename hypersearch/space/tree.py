"""The search-space tree: any nesting of dicts, lists and tuples holding distributions and constants.

Parameters are named by their path in the structure:

- a dict key adds ``key`` (``{"model": {"lr": ...}}`` → ``model/lr``);
- a list or tuple index adds ``i`` (``[hs.uniform(0, 1)]`` → ``0``);
- inside option ``i`` of a choice at path ``p`` the prefix is ``p[i]``
  (``{"opt": hs.choice([{"m": hs.uniform(0, 1)}])}`` → ``opt`` for the choice, ``opt[0]/m``);
- a space that is a bare distribution is named ``value``.

Samplers work on *flat* assignments: ``{path: raw}``, where a choice's raw value is the index of
the option taken. Only parameters on the branches taken appear. `Space.unflatten` turns a flat
assignment into the concrete nested values the objective receives.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hypersearch.errors import SpaceError
from hypersearch.space.distributions import (
    Choice,
    Distribution,
    Float,
    Integer,
    distribution_from_json,
)

ROOT_NAME = "value"
_RESERVED = ("/", "[", "]")


@dataclass(frozen=True)
class Const:
    value: Any


@dataclass(frozen=True)
class Mapping_:
    items: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Seq:
    items: tuple[Any, ...]
    is_tuple: bool


@dataclass(frozen=True)
class Param:
    path: str
    dist: Distribution
    options: tuple[Any, ...] = ()  # built option nodes when dist is a Choice
    condition: tuple[tuple[str, int], ...] = ()  # (choice path, option index) pairs above it


def child_path(prefix: str, segment: str) -> str:
    """The path of `segment` inside the node at `prefix` (module docstring: naming)."""
    return f"{prefix}/{segment}" if prefix else segment


def _build(tree: Any, prefix: str, condition: tuple[tuple[str, int], ...]) -> Any:
    if isinstance(tree, Distribution):
        path = prefix or ROOT_NAME
        if isinstance(tree, Choice):
            options = tuple(
                _build(option, f"{path}[{i}]", (*condition, (path, i)))
                for i, option in enumerate(tree.options)
            )
            return Param(path, tree, options, condition)
        return Param(path, tree, (), condition)
    if isinstance(tree, Mapping):
        items = []
        for key, value in tree.items():
            if not isinstance(key, str):
                raise SpaceError(
                    f"space key {key!r} at '{prefix or '<root>'}' must be a string "
                    f"(got {type(key).__name__})"
                )
            if not key or any(ch in key for ch in _RESERVED):
                raise SpaceError(
                    f"space key {key!r} at '{prefix or '<root>'}' is not a valid name: keys must "
                    "be non-empty and may not contain '/', '[' or ']'"
                )
            items.append((key, _build(value, child_path(prefix, key), condition)))
        return Mapping_(tuple(items))
    if isinstance(tree, (list, tuple)):
        items = tuple(_build(v, child_path(prefix, str(i)), condition) for i, v in enumerate(tree))
        return Seq(items, isinstance(tree, tuple))
    if isinstance(tree, float) and not math.isfinite(tree):
        raise SpaceError(f"constant {tree} at '{prefix or '<root>'}' is not finite")
    return Const(tree)


def _params(node: Any) -> Iterator[Param]:
    if isinstance(node, Param):
        yield node
        for option in node.options:
            yield from _params(option)
    else:
        for child in _children(node):
            yield from _params(child)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def node_to_json(tree: Any) -> Any:
    """JSON form of a (raw, unbuilt) space tree; constants that JSON can't hold keep their repr."""
    if isinstance(tree, Distribution):
        return tree.to_json()
    if isinstance(tree, Mapping):
        return {"type": "dict", "items": {k: node_to_json(v) for k, v in tree.items()}}
    if isinstance(tree, (list, tuple)):
        kind = "tuple" if isinstance(tree, tuple) else "list"
        return {"type": kind, "items": [node_to_json(v) for v in tree]}
    if _jsonable(tree):
        return {"type": "const", "value": tree}
    return {"type": "const", "repr": repr(tree)}


def node_from_json(data: Any, where: str = "$") -> Any:
    """A space tree from its JSON form; a SpaceError names the JSON path (`where`) of a bad node."""
    if not isinstance(data, dict) or "type" not in data:
        raise SpaceError(f"stored space node at {where} is not valid: {_short(data)}")
    kind = data["type"]
    if kind == "dict":
        items = data.get("items")
        if not isinstance(items, dict):
            raise SpaceError(f"stored space node at {where}: 'items' must be an object")
        return {k: node_from_json(v, f"{where}.items[{json.dumps(k)}]") for k, v in items.items()}
    if kind in ("list", "tuple"):
        items = data.get("items")
        if not isinstance(items, list):
            raise SpaceError(f"stored space node at {where}: 'items' must be a list")
        nodes = [node_from_json(v, f"{where}.items[{i}]") for i, v in enumerate(items)]
        return tuple(nodes) if kind == "tuple" else nodes
    if kind == "const":
        if "value" in data:
            return data["value"]
        if isinstance(data.get("repr"), str):
            return OpaqueConstant(data["repr"])
        raise SpaceError(f"stored space node at {where}: a constant needs 'value' or 'repr'")
    return distribution_from_json(data, where)


def _short(data: Any) -> str:
    text = repr(data)
    return text if len(text) <= 200 else text[:200] + "..."


@dataclass(frozen=True)
class OpaqueConstant:
    """A constant that could not be stored as JSON (a class, a function); only its repr is kept."""

    text: str

    def __repr__(self) -> str:
        return self.text


class Space:
    """A search space. Build it from a nested structure: ``Space({"lr": hs.loguniform(1e-5, 1)})``."""

    def __init__(self, tree: Any) -> None:
        if isinstance(tree, Space):
            tree = tree.tree
        self.tree = tree
        self.root = _build(tree, "", ())
        self.params: dict[str, Param] = {}
        for param in _params(self.root):
            if param.path in self.params:  # e.g. a dict key "value" next to a bare root
                raise SpaceError(f"two parameters share the path '{param.path}'")
            self.params[param.path] = param
        self.names: list[str] = list(self.params)
        self._index = {name: i for i, name in enumerate(self.names)}
        self._json = node_to_json(tree)

    # -- description ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return f"Space({', '.join(self.names) or '<no parameters>'})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self._json == other._json

    def __hash__(self) -> int:
        return hash(json.dumps(self._json, sort_keys=True))  # as __eq__: key order aside

    def to_json(self) -> Any:
        return self._json

    def to_json_str(self) -> str:
        # not sort_keys: dict order is the parameter order, which a reloaded space must keep
        return json.dumps(self._json)

    @classmethod
    def from_json(cls, data: Any) -> Space:
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError as error:
                raise SpaceError(f"stored space is not valid JSON: {error}") from None
        return cls(node_from_json(data))

    def describe(self) -> dict[str, str]:
        """``{path: "loguniform(1e-05, 0.1)"}``, for messages and displays."""
        from hypersearch.space.distributions import _describe

        return {name: _describe(p.dist) for name, p in self.params.items()}

    def is_active(self, name: str, flat: Mapping[str, Any]) -> bool:
        return all(flat.get(path) == index for path, index in self.params[name].condition)

    def active_names(self, flat: Mapping[str, Any]) -> list[str]:
        return [name for name in self.names if self.is_active(name, flat)]

    # -- sampling and the unit cube ------------------------------------------------------------

    def _walk(self, node: Any, pick: Any, out: dict[str, Any]) -> None:
        """Visit the active parameters in order; `pick(param)` gives each raw value."""
        if isinstance(node, Param):
            value = pick(node)
            out[node.path] = value
            if node.options:
                self._walk(node.options[value], pick, out)
        else:
            for child in _children(node):
                self._walk(child, pick, out)

    def assign(self, pick: Callable[[str, Distribution], Any]) -> dict[str, Any]:
        """A flat assignment built parameter by parameter in tree order, only down the branches
        taken: ``pick(name, distribution)`` gives each raw value (a choice's option index)."""
        out: dict[str, Any] = {}
        self._walk(self.root, lambda p: _plain(pick(p.path, p.dist)), out)
        return out

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """A random flat assignment drawn from the priors."""
        out: dict[str, Any] = {}
        self._walk(self.root, lambda p: _plain(p.dist.sample(rng)), out)
        return out

    def decode(self, unit: Sequence[float]) -> dict[str, Any]:
        """Map a point of [0, 1]^d (one coordinate per parameter of every branch) to a flat
        assignment; coordinates of branches not taken are ignored."""
        if len(unit) != len(self.names):
            raise ValueError(f"expected {len(self.names)} coordinates, got {len(unit)}")
        out: dict[str, Any] = {}
        self._walk(
            self.root, lambda p: _plain(p.dist.from_unit(float(unit[self._index[p.path]]))), out
        )
        return out

    def encode(self, flat: Mapping[str, Any]) -> np.ndarray:
        """The unit-cube point of a flat assignment; inactive coordinates are NaN."""
        out = np.full(len(self.names), np.nan)
        for name, value in flat.items():
            if name in self._index:
                out[self._index[name]] = self.params[name].dist.to_unit(value)
        return out

    # -- structure -----------------------------------------------------------------------------

    def validate(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Check a flat assignment (right parameters active, values inside); return it cleaned."""
        out: dict[str, Any] = {}

        def pick(param: Param) -> Any:
            if param.path not in flat:
                raise SpaceError(f"parameter '{param.path}' is missing from {dict(flat)!r}")
            value = _plain(flat[param.path])
            if not param.dist.contains(value):
                raise SpaceError(
                    f"parameter '{param.path}' = {value!r} is outside {self.describe()[param.path]}"
                )
            return value

        self._walk(self.root, pick, out)
        extra = sorted(set(flat) - set(out))
        if extra:
            raise SpaceError(
                f"parameters {extra} are not active in this assignment or not in space"
            )
        return out

    def unflatten(self, flat: Mapping[str, Any]) -> Any:
        """The concrete nested values for a flat assignment (what the objective receives)."""
        return self._concrete(self.root, flat)

    def _concrete(self, node: Any, flat: Mapping[str, Any]) -> Any:
        if isinstance(node, Param):
            try:
                value = flat[node.path]
            except KeyError:
                raise SpaceError(
                    f"parameter '{node.path}' is missing from {dict(flat)!r}"
                ) from None
            return self._concrete(node.options[value], flat) if node.options else value
        if isinstance(node, Mapping_):
            return {key: self._concrete(child, flat) for key, child in node.items}
        if isinstance(node, Seq):
            items = [self._concrete(child, flat) for child in node.items]
            return tuple(items) if node.is_tuple else items
        return node.value

    def flatten(self, values: Any) -> dict[str, Any]:
        """The flat assignment for concrete nested values (inverse of `unflatten`); a choice's
        option is found by matching the values against each option in turn."""
        out: dict[str, Any] = {}
        why: list[str] = []
        if not self._match(self.root, values, out, why):
            raise SpaceError(f"{values!r} does not fit the space: {why[0] if why else repr(self)}")
        return out

    @staticmethod
    def raw_value(dist: Distribution, value: Any) -> Any:
        """The raw value of one parameter for `value` as the objective sees it (a choice's
        option becomes its index); SpaceError when it does not fit."""
        return Space(dist).flatten(value)[ROOT_NAME]

    def _match(self, node: Any, values: Any, out: dict[str, Any], why: list[str]) -> bool:
        """Whether `values` fit `node` (their flat assignment into `out`); the first reason
        they do not goes to `why`."""
        if isinstance(node, Param):
            if node.options:
                for index, option in enumerate(node.options):
                    trial_out: dict[str, Any] = {}
                    if self._match(option, values, trial_out, []):
                        out[node.path] = index
                        out.update(trial_out)
                        return True
                why.append(f"'{node.path}' = {values!r} is none of its options")
                return False
            value = _plain(values)
            if node.dist.contains(value):
                out[node.path] = value
                return True
            if isinstance(value, float) and value.is_integer() and node.dist.contains(int(value)):
                out[node.path] = int(value)
                return True
            why.append(f"'{node.path}' = {value!r} is outside {self.describe()[node.path]}")
            return False
        if isinstance(node, Mapping_):
            keys = {k for k, _ in node.items}
            if not isinstance(values, Mapping):
                why.append(f"{values!r} is not a mapping")
                return False
            if set(values) != keys:
                why.append(_keys_differ(keys, set(values)))
                return False
            return all(self._match(child, values[key], out, why) for key, child in node.items)
        if isinstance(node, Seq):
            if not isinstance(values, (list, tuple)) or len(values) != len(node.items):
                why.append(f"{values!r} is not a sequence of {len(node.items)}")
                return False
            return all(self._match(c, v, out, why)
                       for c, v in zip(node.items, values, strict=True))
        # the type too: True == 1 and 1.0 == 1, but they are different options
        same = type(values) is type(node.value) and bool(values == node.value)
        return same or repr(values) == repr(node.value)

    # -- grid ----------------------------------------------------------------------------------

    def grid_size(self, resolution: int | None = None) -> int:
        return self._grid_count(self.root, resolution)

    def _grid_count(self, node: Any, resolution: int | None) -> int:
        if isinstance(node, Param):
            if node.options:
                return sum(self._grid_count(option, resolution) for option in node.options)
            return _grid_len(node, resolution)
        children = _children(node)
        return math.prod(self._grid_count(child, resolution) for child in children)

    def grid(self, resolution: int | None = None) -> Iterator[dict[str, Any]]:
        """Every combination of discrete values, branch by branch, in a fixed order.

        Continuous parameters need `resolution` (evenly spaced values; quantiles for normals),
        otherwise a SpaceError names them.
        """
        return self._grid(self.root, resolution)

    def _grid(self, node: Any, resolution: int | None) -> Iterator[dict[str, Any]]:
        if isinstance(node, Param):
            if node.options:
                for index, option in enumerate(node.options):
                    for rest in self._grid(option, resolution):
                        yield {node.path: index, **rest}
            else:
                for value in _param_grid(node, resolution):
                    yield {node.path: _plain(value)}
            return
        children = _children(node)
        # materialise each child's options once; itertools.product walks them in order
        parts = [list(self._grid(child, resolution)) for child in children]
        for combo in itertools.product(*parts):
            merged: dict[str, Any] = {}
            for part in combo:
                merged.update(part)
            yield merged


def _keys_differ(keys: set[Any], given: set[Any]) -> str:
    """Why a mapping's keys do not match the space's: "missing 'x'; not in the space: 'y'"."""
    parts = []
    if keys - given:
        parts.append("missing " + ", ".join(map(repr, sorted(keys - given, key=str))))
    if given - keys:
        parts.append("not in the space: " + ", ".join(map(repr, sorted(given - keys, key=str))))
    return "; ".join(parts)


def _param_grid(param: Param, resolution: int | None) -> list[Any]:
    try:
        return param.dist.grid(resolution)
    except SpaceError as error:  # say which parameter: the distribution alone is ambiguous
        raise SpaceError(f"parameter '{param.path}': {error}") from None


def _grid_len(param: Param, resolution: int | None) -> int:
    """len(_param_grid(...)) without building huge lattices."""
    dist = param.dist
    if isinstance(dist, Integer):
        return dist.size if resolution is None or resolution >= dist.size else len(dist.grid(resolution))
    if isinstance(dist, Float) and dist.q is not None:
        return math.floor((dist.high - dist.low) / dist.q + 1e-9) + 1
    return len(_param_grid(param, resolution))


def _children(node: Any) -> list[Any]:
    if isinstance(node, Mapping_):
        return [child for _, child in node.items]
    return list(node.items) if isinstance(node, Seq) else []


def _plain(value: Any) -> Any:
    """numpy scalars to Python scalars, so flat assignments are JSON-clean."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def as_space(space: Any) -> Space:
    return space if isinstance(space, Space) else Space(space)
