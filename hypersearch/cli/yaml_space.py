"""The space language of study files (under ``space:``), read and written.

- a parameter is a mapping with exactly one distribution key, its arguments as a list in the
  constructor's order or as a mapping with the constructor's argument names:
  ``{uniform: [low, high]}``, ``{loguniform: [low, high]}``, ``{quniform: [low, high, q]}``,
  ``{qloguniform: [low, high, q]}``, ``{normal: [mu, sigma]}``, ``{lognormal: [mu, sigma]}``,
  ``{qnormal: [mu, sigma, q]}``, ``{qlognormal: [mu, sigma, q]}``, ``{integer: [low, high]}``
  or ``{integer: {low: 1, high: 8, step: 1, log: false}}``;
- ``{choice: [opt1, opt2, ...]}`` or ``{choice: {options: [...], weights: [...]}}``; options
  are constants or nested spaces, whose parameters are then conditional on that option;
- ``{constant: VALUE}`` is VALUE as a constant, as written: the way to write a constant mapping
  whose key is a distribution's name (``{constant: {uniform: 3}}``);
- any other mapping is a nested dict of the space, a list a nested list, a scalar a constant.
  A mapping holding a distribution key next to other keys is an error (a likely slip, such as
  ``{choice: [...], weights: [...]}``), and so is a single-key mapping whose key is close to a
  distribution's name (``{logunifrom: [...]}``): write ``{constant: ...}`` if it is meant.

Under ``params:`` a value is a ``--param`` string (``0.001:0.1:log``, ``16,32,64``) or a number.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

from hypersearch.cli.params import NAME_PATTERN, ParamError, parse_param, strip_call
from hypersearch.cli.yaml_dialect import StudyFileError
from hypersearch.errors import SpaceError
from hypersearch.space import (
    Choice,
    Distribution,
    Float,
    Integer,
    Normal,
    Space,
    choice,
    integer,
    lognormal,
    loguniform,
    normal,
    qlognormal,
    qloguniform,
    qnormal,
    quniform,
    uniform,
)

_MAX_NODES = 100_000  # YAML aliases can make a small file name a huge space
_MAX_DEPTH = 64  # well inside the recursion limit of Space and of this module
CONSTANT_KEY = "constant"

# distribution key -> (constructor, required argument names, optional argument names)
_DISTRIBUTIONS: dict[str, tuple[Any, tuple[str, ...], tuple[str, ...]]] = {
    "uniform": (uniform, ("low", "high"), ()),
    "loguniform": (loguniform, ("low", "high"), ()),
    "quniform": (quniform, ("low", "high", "q"), ()),
    "qloguniform": (qloguniform, ("low", "high", "q"), ()),
    "normal": (normal, ("mu", "sigma"), ()),
    "lognormal": (lognormal, ("mu", "sigma"), ()),
    "qnormal": (qnormal, ("mu", "sigma", "q"), ()),
    "qlognormal": (qlognormal, ("mu", "sigma", "q"), ()),
    "integer": (integer, ("low", "high"), ("step", "log")),
}
_DIST_KEYS = (*_DISTRIBUTIONS, "choice")
_CALL = re.compile(r"^\s*([a-z]+)\s*\((.*)\)\s*$", re.DOTALL)  # uniform(0, 1)


def _show(value: Any) -> str:
    """A value as a message quotes it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 80 else text[:80] + "..."


def _quote_hint(value: Any) -> str:
    """YAML read a scalar meant as text as something else: quoting fixes it."""
    return " (quote it)" if value is None or isinstance(value, (bool, int, float)) else ""


def _key_path(path: str, key: Any) -> str:
    segment = key if isinstance(key, str) and NAME_PATTERN.fullmatch(key) else repr(key)
    if not (isinstance(key, str) and NAME_PATTERN.fullmatch(key)):
        return f"{path}[{segment}]"
    return f"{path}.{segment}" if path else segment


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value: int | float) -> bool:
    return isinstance(value, int) or math.isfinite(value)  # isfinite(10**400) would overflow


def _suggest(word: Any, choices: tuple[str, ...] | list[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class SpaceParser:
    """Builds a space from its YAML form; every error names its YAML path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = 0
        self.open: set[int] = set()  # ids of the containers being walked: alias loops

    def error(self, path: str, problem: str) -> StudyFileError:
        return StudyFileError(self.source, path, problem)

    def node(self, value: Any, path: str, depth: int) -> Any:
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise self.error(
                path,
                f"the space is too large (over {_MAX_NODES} values; YAML aliases repeat theirs)",
            )
        if depth > _MAX_DEPTH:
            raise self.error(path, f"nested too deeply (over {_MAX_DEPTH} levels)")
        if isinstance(value, (Mapping, list, tuple)):
            if id(value) in self.open:
                raise self.error(path, "contains itself (a YAML alias loop)")
            self.open.add(id(value))
            try:
                if isinstance(value, Mapping):
                    return self.mapping(value, path, depth)
                return [self.node(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
            finally:
                self.open.discard(id(value))
        if isinstance(value, Distribution):  # a caller's ready-made hs.* object
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(path, f"constant {value} is not finite")
        if isinstance(value, str):
            call = _CALL.match(value)
            if call and call.group(1) in _DIST_KEYS:  # hyperopt's and Python's habit
                kind, arguments = call.group(1), call.group(2).strip()
                raise self.error(
                    path,
                    f"{value!r} is a string constant here; a distribution is a mapping: "
                    f"{{{kind}: [{arguments}]}} (or {{{CONSTANT_KEY}: {value!r}}} for the string)",
                )
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        raise self.error(path, f"unsupported value {_show(value)} of type {type(value).__name__}")

    def mapping(self, value: Mapping[Any, Any], path: str, depth: int) -> Any:
        if len(value) == 1 and CONSTANT_KEY in value:
            return value[CONSTANT_KEY]  # written as is: nothing inside is a distribution
        if len(value) == 1:
            (key,) = value
            close = difflib.get_close_matches(str(key), _DIST_KEYS, n=1, cutoff=0.8)
            if close and key not in _DIST_KEYS:
                raise self.error(
                    _key_path(path, key),
                    f"unknown distribution {key!r}; did you mean {close[0]!r}? (for a constant "
                    f"mapping, write {{{CONSTANT_KEY}: {{{key}: ...}}}})",
                )
        kinds = [key for key in value if isinstance(key, str) and key in _DIST_KEYS]
        if kinds:
            kind = kinds[0]
            if len(value) != 1:
                others = ", ".join(repr(key) for key in value if key != kind)
                raise self.error(
                    path,
                    f"a distribution is a mapping with the single key '{kind}', but this one also "
                    f"has {others}; put arguments inside it, e.g. {{{kind}: {{...}}}}",
                )
            where = _key_path(path, kind)
            if kind == "choice":
                return self.choice(value[kind], where, depth)
            return self.distribution(kind, value[kind], where)
        out: dict[str, Any] = {}
        for key, child in value.items():
            if not isinstance(key, str):
                raise self.error(path, f"key {_show(key)} must be a string{_quote_hint(key)}")
            if not key or any(ch in key for ch in "/[]"):
                raise self.error(
                    path, f"key {key!r} is not a valid name: not empty, without '/', '[' or ']'"
                )
            out[key] = self.node(child, _key_path(path, key), depth + 1)
        return out

    def arguments(
        self, args: Any, path: str, required: tuple[str, ...], optional: tuple[str, ...]
    ) -> dict[str, Any]:
        names = required + optional
        form = f"[{', '.join(required)}]"
        if isinstance(args, (list, tuple)):
            if not len(required) <= len(args) <= len(names):
                raise self.error(path, f"expected {form}, got {len(args)} value(s)")
            return {
                name: (arg, f"{path}[{i}]")
                for i, (name, arg) in enumerate(zip(names, args, strict=False))
            }
        if isinstance(args, Mapping):
            for key in args:
                if key not in names:
                    raise self.error(
                        path,
                        f"unknown argument {_show(key)}{_suggest(key, list(names))}; "
                        f"arguments: {', '.join(names)}",
                    )
            missing = [name for name in required if name not in args]
            if missing:
                raise self.error(
                    path, f"missing {', '.join(missing)} (expected {form} or a mapping)"
                )
            return {name: (args[name], _key_path(path, name)) for name in names if name in args}
        mapping_form = ", ".join(f"{name}: ..." for name in required)
        raise self.error(
            path, f"expected a list {form} or a mapping {{{mapping_form}}}, got {_show(args)}"
        )

    def distribution(self, kind: str, args: Any, path: str) -> Any:
        constructor, required, optional = _DISTRIBUTIONS[kind]
        kwargs: dict[str, Any] = {}
        for name, (arg, where) in self.arguments(args, path, required, optional).items():
            if name == "log":
                if not isinstance(arg, bool):
                    raise self.error(where, f"expected true or false, got {_show(arg)}")
            elif not _is_number(arg):
                raise self.error(where, f"expected a number, got {_show(arg)}")
            kwargs[name] = arg
        try:
            return constructor(**kwargs)
        except SpaceError as error:
            raise self.error(path, strip_call(str(error))) from None

    def choice(self, args: Any, path: str, depth: int) -> Any:
        weights: Any = None
        if isinstance(args, (list, tuple)):
            options, prefix = args, path
        elif isinstance(args, Mapping):
            for key in args:
                if key not in ("options", "weights"):
                    raise self.error(
                        path,
                        f"unknown argument {_show(key)}{_suggest(key, ['options', 'weights'])}; "
                        "arguments: options, weights",
                    )
            if "options" not in args:
                raise self.error(
                    path, "missing options (write {choice: {options: [...], weights: [...]}})"
                )
            options, prefix = args["options"], f"{path}.options"
            if not isinstance(options, (list, tuple)):
                raise self.error(prefix, f"expected a list of options, got {_show(options)}")
            weights = args.get("weights")
            if weights is not None:
                if not isinstance(weights, (list, tuple)):
                    raise self.error(
                        f"{path}.weights", f"expected a list of numbers, got {_show(weights)}"
                    )
                for i, weight in enumerate(weights):
                    if not _is_number(weight):
                        raise self.error(
                            f"{path}.weights[{i}]", f"expected a number, got {_show(weight)}"
                        )
        else:
            raise self.error(
                path,
                f"expected a list of options or {{options: [...], weights: [...]}}, got {_show(args)}",
            )
        if not options:
            raise self.error(path, "no options; give at least one")
        built = [self.node(option, f"{prefix}[{i}]", depth + 1) for i, option in enumerate(options)]
        try:
            return choice(built, list(weights) if weights is not None else None)
        except SpaceError as error:
            raise self.error(path, strip_call(str(error))) from None

    def params(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(
                "params",
                f"expected a mapping of name: --param value (lr: 0.001:0.1:log), got {_show(value)}",
            )
        out: dict[str, Any] = {}
        for key, text in value.items():
            path = _key_path("params", key)
            if not isinstance(key, str) or not NAME_PATTERN.fullmatch(key):
                raise self.error(
                    path,
                    "invalid name: a name starts with a letter or '_' and continues with letters, "
                    "digits, '_' or '-'",
                )
            if _is_number(text) and _finite(text):
                out[key] = text
                continue
            if not isinstance(text, str):
                raise self.error(
                    path,
                    f"expected a --param value such as '0.001:0.1:log' or '16,32,64', got "
                    f"{_show(text)}; lists and mappings go under space:",
                )
            try:
                out[key] = parse_param(f"{key}={text}")[1]
            except ParamError as error:
                raise self.error(path, error.problem) from None
        return out


def parse_space(space: Any, params: Any, source: str) -> dict[str, Any]:
    """The space of a study file from its ``space:`` and ``params:`` values (None: absent)."""
    parser = SpaceParser(source)
    out: dict[str, Any] = {}
    if space is not None:
        if not isinstance(space, Mapping):
            raise parser.error("space", f"expected a mapping of parameter names, got {_show(space)}")
        out = parser.node(space, "space", 0)
    if params is not None:
        for name, value in parser.params(params).items():
            if name in out:
                raise parser.error(
                    _key_path("params", name), f"'{name}' is also defined under space; define it once"
                )
            out[name] = value
    try:
        Space(out)  # what the constructors can't see alone: duplicate paths, odd keys
    except SpaceError as error:
        raise parser.error("space", strip_call(str(error))) from None
    except RecursionError:
        raise parser.error("space", "nested too deeply") from None
    return out


def space_to_yaml(tree: Any) -> Any:
    """A space's structure in the space language (the inverse of `parse_space`)."""
    if isinstance(tree, Float):
        if tree.q is None:
            return {"loguniform" if tree.log else "uniform": [tree.low, tree.high]}
        return {"qloguniform" if tree.log else "quniform": [tree.low, tree.high, tree.q]}
    if isinstance(tree, Normal):
        kind = ("q" if tree.q is not None else "") + ("lognormal" if tree.log else "normal")
        return {kind: [tree.mu, tree.sigma] + ([tree.q] if tree.q is not None else [])}
    if isinstance(tree, Integer):
        return {"integer": {"low": tree.low, "high": tree.high, "step": tree.step, "log": tree.log}}
    if isinstance(tree, Choice):
        options = [space_to_yaml(option) for option in tree.options]
        if tree.weights is None:
            return {"choice": options}
        return {"choice": {"options": options, "weights": list(tree.weights)}}
    if isinstance(tree, Mapping):
        if len(tree) == 1 and _looks_like_a_distribution(next(iter(tree))):
            return {CONSTANT_KEY: dict(tree)}
        return {key: space_to_yaml(value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return [space_to_yaml(value) for value in tree]
    return tree


def _looks_like_a_distribution(key: Any) -> bool:
    return isinstance(key, str) and (
        key in _DIST_KEYS
        or key == CONSTANT_KEY
        or bool(difflib.get_close_matches(key, _DIST_KEYS, n=1, cutoff=0.8))
    )
