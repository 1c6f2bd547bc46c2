"""The expression nodes behind ``hp.*`` and a minimal ``scope``, in place of hyperopt's pyll.

A hyperopt space is any nesting of dicts, lists and tuples holding constants and nodes:

- `Param`: one labelled hyperparameter (what ``hp.uniform("x", 0, 1)`` returns);
- `Call`: a function applied to nodes, from ``scope.int(...)``, ``scope.<defined function>(...)``
  or arithmetic on nodes (``1 + hp.lognormal("c", 0, 1)``, ``o_x[0]``).

`evaluate` computes a concrete point from ``{label: value}`` (a choice's value is its option
index), as hyperopt's ``space_eval`` does: lists come out as tuples, as in hyperopt. pyll's graph
API (``Apply``, ``rec_eval``, ``as_apply``, ``toposort``, stochastic ``scope.uniform``...) is not
mirrored.
"""

from __future__ import annotations

import builtins
import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from hypersearch.errors import HypersearchError, SpaceError
from hypersearch.space.distributions import Distribution


class Expr:
    """A node of a hyperopt space; arithmetic and indexing build `Call` nodes, as in pyll."""

    def __add__(self, other: Any) -> Call:
        return Call(operator.add, (self, other))

    def __radd__(self, other: Any) -> Call:
        return Call(operator.add, (other, self))

    def __sub__(self, other: Any) -> Call:
        return Call(operator.sub, (self, other))

    def __rsub__(self, other: Any) -> Call:
        return Call(operator.sub, (other, self))

    def __mul__(self, other: Any) -> Call:
        return Call(operator.mul, (self, other))

    def __rmul__(self, other: Any) -> Call:
        return Call(operator.mul, (other, self))

    def __truediv__(self, other: Any) -> Call:
        return Call(operator.truediv, (self, other))

    def __rtruediv__(self, other: Any) -> Call:
        return Call(operator.truediv, (other, self))

    def __floordiv__(self, other: Any) -> Call:
        return Call(operator.floordiv, (self, other))

    def __pow__(self, other: Any) -> Call:
        return Call(operator.pow, (self, other))

    def __rpow__(self, other: Any) -> Call:
        return Call(operator.pow, (other, self))

    def __neg__(self) -> Call:
        return Call(operator.neg, (self,))

    def __abs__(self) -> Call:
        return Call(operator.abs, (self,))

    def __getitem__(self, key: Any) -> Call:
        return Call(operator.getitem, (self, key))

    def __iter__(self) -> Any:
        # without this, Python would iterate through __getitem__ forever
        raise TypeError(f"{self!r} is a search-space node, not a sequence: index it instead")


class Param(Expr):
    """One labelled hyperparameter: a distribution, or a choice among `options`."""

    def __init__(
        self,
        call: str,
        label: str,
        dist: Distribution | None = None,
        options: tuple[Any, ...] = (),
        weights: tuple[float, ...] | None = None,
    ) -> None:
        self.call = call  # the hp function, for messages: "hp.uniform('x', 0, 1)"
        self.label = label
        self.dist = dist
        self.options = options
        self.weights = weights

    @property
    def is_choice(self) -> bool:
        return self.dist is None

    def __repr__(self) -> str:
        return self.call


class Call(Expr):
    """A function applied to (possibly) nodes, evaluated once their values are known."""

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any] | None = None) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = dict(kwargs or {})

    def __repr__(self) -> str:
        name = getattr(self.fn, "__name__", repr(self.fn))
        args = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"scope.{name}({', '.join(args)})"


def children(node: Any) -> list[Any]:
    """The sub-expressions of a node of the space (not a choice's options)."""
    if isinstance(node, Call):
        return [*node.args, *node.kwargs.values()]
    if isinstance(node, Mapping):
        return list(node.values())
    if isinstance(node, (list, tuple)):
        return list(node)
    return []


def evaluate(node: Any, values: Mapping[str, Any]) -> Any:
    """The concrete point of `node` for ``{label: value}``; a choice's value is its option index."""
    if isinstance(node, Param):
        if node.label not in values:
            raise HypersearchError(f"no value for the hyperparameter {node.label!r} ({node.call})")
        value = values[node.label]
        if not node.is_choice:
            return value
        index = _index(value)
        if index is None or not 0 <= index < len(node.options):
            raise HypersearchError(
                f"{node.label!r} = {value!r}: a choice's value is the index of an option, "
                f"0 to {len(node.options) - 1}"
            )
        return evaluate(node.options[index], values)
    if isinstance(node, Call):
        args = [evaluate(a, values) for a in node.args]
        return node.fn(*args, **{k: evaluate(v, values) for k, v in node.kwargs.items()})
    if isinstance(node, Mapping):
        return {key: evaluate(child, values) for key, child in node.items()}
    if isinstance(node, (list, tuple)):
        return tuple(evaluate(child, values) for child in node)  # hyperopt: lists become tuples
    return node


def _index(value: Any) -> int | None:
    """A choice's value as an int index (numpy ints and integral floats too); None if not one."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


class Scope:
    """``scope.int(node)``, ``scope.float(...)``, ``scope.<name>(...)`` for a few builtins and
    math functions, and ``@scope.define`` to make your own function usable on nodes."""

    def __init__(self) -> None:
        self._functions: dict[str, Callable[..., Any]] = {
            name: getattr(builtins, name)
            for name in ("int", "float", "bool", "str", "len", "abs", "min", "max", "sum", "round")
        }
        self._functions.update(
            {name: getattr(math, name) for name in ("exp", "log", "sqrt", "cos", "sin", "floor", "ceil")}
        )
        self._functions.update(
            add=operator.add, sub=operator.sub, mul=operator.mul, div=operator.truediv,
            truediv=operator.truediv, pow=operator.pow, neg=operator.neg, getitem=operator.getitem,
            dict=dict, list=list, tuple=tuple, switch=_switch,
        )

    def define(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Register `fn` so that ``scope.<fn name>(node, ...)`` evaluates it on the node's value."""
        name = getattr(fn, "__name__", None)
        if not isinstance(name, str) or not callable(fn):
            raise SpaceError(f"scope.define needs a named function, got {fn!r}")
        self._functions[name] = fn
        return fn

    define_pure = define

    def define_info(self, **_info: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.define

    def __getattr__(self, name: str) -> Callable[..., Call]:
        if name.startswith("__"):
            raise AttributeError(name)
        fn = self._functions.get(name)
        if fn is None:
            raise AttributeError(
                f"scope.{name} is not available in hypersearch.hyperopt: its scope has "
                f"{', '.join(sorted(self._functions))} and your functions registered with "
                "@scope.define; pyll's stochastic and graph functions are not mirrored"
            )
        return lambda *args, **kwargs: Call(fn, args, kwargs)


def _switch(index: int, *options: Any) -> Any:
    return options[index]


scope = Scope()

__all__ = ["Call", "Expr", "Param", "Scope", "evaluate", "scope"]
