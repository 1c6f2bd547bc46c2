"""A hyperopt space as a hypersearch `Space`, and the map between hyperopt's labels and its paths.

The Space is built from the labelled nodes only, keyed by label: ``{"x": uniform, "c":
choice([{"a": uniform}, {"b": uniform}])}`` for ``hp.choice("c", [hp.uniform("a", ...), ...])``,
so its paths read ``x``, ``c``, ``c[0]/a``. Constants and `Call` nodes stay in the hyperopt
expression, which `pyll.evaluate` turns into the objective's argument. A node reused in several
places is one parameter; reused under different options of a choice it is placed above that choice
(sampled whenever the choice is, like any unconditional parameter).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from hypersearch.errors import SpaceError
from hypersearch.integrations.hyperopt.exceptions import DuplicateLabel
from hypersearch.integrations.hyperopt.pyll import Call, Param, children, evaluate
from hypersearch.space import Choice, Float, Integer, Normal, Space

log = logging.getLogger("hypersearch.hyperopt")

Chain = tuple[tuple[str, int], ...]  # the (choice label, option index) pairs above a node

_ESCAPES = {"%": "%25", "/": "%2F", "[": "%5B", "]": "%5D"}  # '%' first: escaping is reversible


def escape(label: str) -> str:
    """A label as a key of the Space, whose paths reserve '/', '[' and ']'."""
    for char, code in _ESCAPES.items():
        label = label.replace(char, code)
    return label


def label_of(path: str) -> str:
    """The label a path of the Space stands for: its last segment, unescaped."""
    label = path.rsplit("/", 1)[-1]
    for char, code in reversed(_ESCAPES.items()):
        label = label.replace(code, char)
    return label


class HpSpace:
    """A hyperopt space (`expr`) with its hypersearch `space` and label ↔ path maps."""

    def __init__(self, expr: Any) -> None:
        self.expr = expr
        self.params: dict[str, Param] = {}  # label -> node, in the order first met
        self._chains: dict[str, list[Chain]] = {}
        self._collect(expr, ())
        placement = self._placements()
        self._slots: dict[tuple[str, int], dict[str, Any]] = {}
        root: dict[str, Any] = {}
        for label in self.params:
            chain = placement[label]
            (self._slots[chain[-1]] if chain else root)[escape(label)] = label
            if self.params[label].is_choice:
                for i in range(len(self.params[label].options)):
                    self._slots[(label, i)] = {}
        self.space = Space(self._build(root))
        self.path_of = {label_of(path): path for path in self.space.names}
        self.labels = sorted(self.params)

    # -- building --------------------------------------------------------------------------------

    def _collect(self, node: Any, chain: Chain) -> None:
        if isinstance(node, Param):
            known = self.params.setdefault(node.label, node)
            if known is not node:
                raise DuplicateLabel(
                    f"the label {node.label!r} names two different hyperparameters: {known!r} "
                    f"and {node!r}; give each its own label (reuse the same node object to share one)"
                )
            self._chains.setdefault(node.label, []).append(chain)
            for i, option in enumerate(node.options):
                self._collect(option, (*chain, (node.label, i)))
            return
        if not isinstance(node, (Call, Mapping, list, tuple)) and not _plain_constant(node):
            _check_constant(node)
        for child in children(node):
            self._collect(child, chain)

    def _placements(self) -> dict[str, Chain]:
        """Where each label goes: under the choices common to all its occurrences, cut where a
        choice above it was itself placed higher (the slot must exist)."""
        placement: dict[str, Chain] = {}
        for label, chains in self._chains.items():  # a choice is met before its options' nodes
            common = list(chains[0])
            for chain in chains[1:]:
                n = 0
                while n < min(len(common), len(chain)) and common[n] == chain[n]:
                    n += 1
                del common[n:]
            kept: list[tuple[str, int]] = []
            for step in common:
                if placement[step[0]] != tuple(kept):
                    break
                kept.append(step)
            placement[label] = tuple(kept)
        return placement

    def _build(self, slot: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, label in slot.items():
            param = self.params[label]
            if not param.is_choice:
                out[key] = param.dist
                continue
            options = []
            for i, option in enumerate(param.options):
                inner = self._build(self._slots[(label, i)])
                # an option with no hyperparameter shows as itself where JSON can hold it
                options.append(option if not inner and _plain_constant(option) else inner)
            try:
                out[key] = Choice(tuple(options), param.weights)
            except SpaceError as error:
                raise SpaceError(f"{param.call}: {error}") from None
        return out

    # -- values ----------------------------------------------------------------------------------

    def vals(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """``{label: value}`` of a flat assignment of the Space (a choice's value is its index)."""
        return {label_of(path): value for path, value in flat.items()}

    def flat(self, vals: Mapping[str, Any], where: str = "point") -> dict[str, Any]:
        """The Space's flat assignment for hyperopt values ``{label: value}``, checked."""
        unknown = sorted(set(vals) - set(self.params))
        if unknown:
            raise SpaceError(f"{where}: {unknown} are not labels of the space (labels: {self.labels})")

        def pick(path: str, dist: Any) -> Any:
            label = label_of(path)
            if label not in vals:
                raise SpaceError(f"{where}: no value for {label!r} ({self.params[label].call})")
            value = _raw(vals[label], dist)
            if isinstance(dist, Choice) and not dist.contains(value):
                raise SpaceError(
                    f"{where}: {label!r} = {value!r} is not an option index of "
                    f"{self.params[label].call} (0 to {dist.size - 1})"
                )
            if not isinstance(dist, Choice) and not dist.contains(value):
                # hyperopt evaluates a given point as it is, inside the priors' range or not
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                    raise SpaceError(f"{where}: {label!r} = {value!r} is not a finite number")
                log.warning("%s: %r = %r lies outside %s", where, label, value, self.params[label].call)
            return value

        return self.space.assign(pick)

    def point(self, vals: Mapping[str, Any]) -> Any:
        """The objective's argument for ``{label: value}``."""
        return evaluate(self.expr, vals)


def _raw(value: Any, dist: Any) -> Any:
    """A hyperopt value as the Space stores it: ints for integers and choice indices."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        value = value.item()  # numpy scalars
    if isinstance(dist, (Integer, Choice)) and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(dist, (Float, Normal)) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _plain_constant(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            return False
        return True
    return False


def _check_constant(node: Any) -> None:
    """Refuse what looks like a node from another library (hyperopt's own pyll graph)."""
    module = type(node).__module__ or ""
    if module.startswith("hyperopt"):
        raise SpaceError(
            f"the space holds {type(node).__name__} {node!r} from hyperopt itself: build it with "
            "hypersearch.hyperopt's hp (from hypersearch.hyperopt import hp)"
        )


def as_hp_space(space: Any) -> HpSpace:
    return space if isinstance(space, HpSpace) else HpSpace(space)
