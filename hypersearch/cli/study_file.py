"""YAML study files for ``hypersearch run STUDY.yaml``.

Example::

    name: mnist-cnn
    strategy: random            # a strategy name, checked when the study starts
    direction: maximize         # or minimize (the default)
    metric: val_acc             # default: loss
    metric_agg: max             # last (default), min, max or avg over the reported values
    max_trials: 50
    parallel: 4                 # trials at once (default 1)
    timeout: 3600               # seconds per trial
    max_time: 86400             # seconds for the whole search
    target: 0.99                # stop once a trial reaches it
    seed: 0
    stop_conditions: ["val_loss > 5"]
    gpus: [0, 1]
    gpus_per_trial: 1
    command: "python train.py --lr :lr: --units :units: --act :act:"  # quoted: ends in ':'
    # or: command: [python, train.py, --lr, ":lr:"]   or: objective: train:objective
    params:                     # the --param grammar, one string per parameter
      units: 16:128:log
      act: relu,tanh
    space:                      # the full space language
      lr: {loguniform: [1e-5, 1e-1]}
      optimizer:
        choice:
          - {name: adam, beta1: {uniform: [0.8, 0.99]}}
          - {name: sgd, momentum: {uniform: {low: 0.0, high: 0.99}}}
      layers: [{integer: [16, 256]}, {integer: {low: 16, high: 256, log: true}}]
      batch_size: {choice: {options: [32, 64, 128], weights: [1, 2, 1]}}

Settings: name, message, storage (strings); strategy (default "tpe"); direction ("minimize" or
"maximize"); metric (default "loss"); metric_agg ("last", "min", "max", "avg"); max_trials,
parallel, gpus_per_trial (integers >= 1); timeout, max_time (seconds > 0); target (a number);
seed (an integer >= 0); stop_conditions (strings); gpus (GPU indices); exactly one of command (a
string or a list of strings; shell: true runs a string through the shell) and objective
("module:function", imported later, never here). A null value means "not given". Quote a command that ends with a ``:name:`` placeholder
or holds ``": "``: YAML reads an unquoted ``:`` before a space or line end as a key.

Space syntax, under ``space:``:

- a parameter is a mapping with exactly one distribution key, its arguments as a list in the
  constructor's order or as a mapping with the constructor's argument names:
  ``{uniform: [low, high]}``, ``{loguniform: [low, high]}``, ``{quniform: [low, high, q]}``,
  ``{qloguniform: [low, high, q]}``, ``{normal: [mu, sigma]}``, ``{lognormal: [mu, sigma]}``,
  ``{qnormal: [mu, sigma, q]}``, ``{qlognormal: [mu, sigma, q]}``, ``{integer: [low, high]}``
  or ``{integer: {low: 1, high: 8, step: 1, log: false}}``;
- ``{choice: [opt1, opt2, ...]}`` or ``{choice: {options: [...], weights: [...]}}``; options
  are constants or nested spaces, whose parameters are then conditional on that option;
- any other mapping is a nested dict of the space, a list a nested list, a scalar a constant.
  A mapping holding a distribution key next to other keys is an error (a likely slip, such as
  ``{choice: [...], weights: [...]}``), so a nested dict cannot use those names as keys.

Under ``params:`` a value is a ``--param`` string (``0.001:0.1:log``, ``16,32,64``) or a number
(a constant). Names must not collide with those under ``space:``.

YAML dialect: the YAML 1.2 core scalars, through a `yaml.SafeLoader` subclass (no tag builds a
Python object; nothing is executed). So ``1e-5`` is a float (PyYAML's YAML 1.1 reads a string),
``1:30`` stays the string "1:30" (YAML 1.1: the sexagesimal integer 90, which would break
``epochs: 1:30`` under params), ``010`` is 10, only true/false are booleans (``yes``, ``no``,
``on``, ``off`` are strings) and dates stay strings. A key given twice in one mapping is an error.

Every problem raises `StudyFileError` naming the file and the path of the bad value::

    study.yaml: space.optimizer.choice[1].momentum.uniform: low must be less than high (got low=1.0, high=0.5)
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from hypersearch.cli.params import NAME_PATTERN, ParamError, parse_param, strip_call
from hypersearch.errors import HypersearchError, SpaceError
from hypersearch.space import (
    Distribution,
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

__all__ = [
    "StudyFileError",
    "StudySpec",
    "load_study_file",
    "parse_study_mapping",
    "parse_study_text",
]

DIRECTIONS = ("minimize", "maximize")
METRIC_AGGS = ("last", "min", "max", "avg")
_MAX_NODES = 100_000  # YAML aliases can make a small file name a huge space
_MAX_DEPTH = 64  # well inside the recursion limit of Space and of this module


class StudyFileError(HypersearchError, ValueError):
    """A study file is unreadable or invalid. `source` is the file, `path` the YAML path of the
    bad value ("" for the whole file), `problem` what is wrong and how to fix it."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        self.source, self.path, self.problem = source, path, problem
        super().__init__(f"{source}: {path}: {problem}" if path else f"{source}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable despite 3 arguments
        return (type(self), (self.source, self.path, self.problem))


@dataclass(frozen=True, kw_only=True)
class StudySpec:
    """A validated study file. `space` is built with hypersearch's constructors; `raw` is the
    mapping as read.

    >>> spec = parse_study_mapping({"command": "python t.py --lr :lr:", "params": {"lr": "0.001:0.1:log"}})
    >>> spec.space["lr"]
    Float(low=0.001, high=0.1, log=True, q=None)
    """

    name: str | None = None
    strategy: str = "tpe"
    direction: str = "minimize"
    metric: str = "loss"
    metric_agg: str = "last"
    max_trials: int | None = None
    parallel: int = 1
    timeout: float | None = None
    max_time: float | None = None
    target: float | None = None
    seed: int | None = None
    stop_conditions: list[str] = field(default_factory=list)
    message: str | None = None
    storage: str | None = None
    gpus: list[int] | None = None
    gpus_per_trial: int = 1
    command: str | list[str] | None = None
    objective: str | None = None
    shell: bool = False
    space: dict[str, Any] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


_KEYS = (
    "name",
    "strategy",
    "direction",
    "metric",
    "metric_agg",
    "max_trials",
    "parallel",
    "timeout",
    "max_time",
    "target",
    "seed",
    "stop_conditions",
    "message",
    "storage",
    "gpus",
    "gpus_per_trial",
    "command",
    "objective",
    "shell",
    "space",
    "params",
)

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


# -- the YAML dialect ----------------------------------------------------------------------------


class _StudyLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars, refusing duplicate keys."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key_node, _ in node.value:
                # only the keys written here: `<<: *base` merges may be overridden on purpose
                if (
                    isinstance(key_node, yaml.ScalarNode)
                    and key_node.tag != "tag:yaml.org,2002:merge"
                ):
                    key = (key_node.tag, key_node.value)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            "while reading a mapping",
                            node.start_mark,
                            f"found the key {key_node.value!r} twice; give each key once",
                            key_node.start_mark,
                        )
                    seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.Node) -> int:
        text = str(self.construct_scalar(node)).replace("_", "")
        try:
            if text[:2] in ("0o", "0x"):
                return int(text[2:], 8 if text[1] == "o" else 16)
            return int(text)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{text[:30]!r} is not an integer (or has too many digits)",
                node.start_mark,
            ) from None

    def construct_yaml_float(self, node: yaml.Node) -> float:
        text = str(self.construct_scalar(node)).replace("_", "")
        lowered = text.lower()
        if lowered in (".inf", "+.inf", "-.inf"):
            return -math.inf if lowered[0] == "-" else math.inf
        if lowered == ".nan":
            return math.nan
        try:
            return float(text)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"{text[:30]!r} is not a number", node.start_mark
            ) from None

    def construct_yaml_timestamp(self, node: yaml.Node) -> str:
        # dates stay text (YAML 1.2 core has none); PyYAML's own crashes on a bad `!!timestamp`
        return str(self.construct_scalar(node))

    def construct_yaml_bool(self, node: yaml.Node) -> bool:
        text = str(self.construct_scalar(node)).lower()
        if text not in ("true", "false"):
            raise yaml.constructor.ConstructorError(
                None, None, f"{text[:30]!r} is not true or false", node.start_mark
            )
        return text == "true"


_YAML11_ONLY = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:value",  # a lone "=" would otherwise fail with "no constructor"
}
_StudyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML11_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StudyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# ints before floats: the resolver takes the first pattern that matches
_StudyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_StudyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
_StudyLoader.add_constructor("tag:yaml.org,2002:int", _StudyLoader.construct_yaml_int)
_StudyLoader.add_constructor("tag:yaml.org,2002:float", _StudyLoader.construct_yaml_float)
_StudyLoader.add_constructor("tag:yaml.org,2002:bool", _StudyLoader.construct_yaml_bool)
_StudyLoader.add_constructor("tag:yaml.org,2002:timestamp", _StudyLoader.construct_yaml_timestamp)


def _yaml_error(source: str, error: yaml.YAMLError) -> StudyFileError:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    if context and problem.startswith("but "):  # "expected a single document ..., but found ..."
        text = f"invalid YAML: {context}, {problem}"
    else:
        text = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    if problem == "mapping values are not allowed here":
        # the usual cause: an unquoted command ending in a :name: placeholder
        text += (
            "; quote a value that contains ': ' or ends with ':', e.g. "
            'command: "python train.py --lr :lr:"'
        )
    if mark is not None:
        return StudyFileError(source, f"line {mark.line + 1}, column {mark.column + 1}", text)
    return StudyFileError(source, "", text)


def load_study_file(path: str | os.PathLike[str]) -> StudySpec:
    """Read and validate a YAML study file.

    >>> load_study_file("study.yaml").max_trials  # doctest: +SKIP
    50
    """
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as error:
        raise StudyFileError(
            source, "", f"not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    except OSError as error:
        raise StudyFileError(
            source, "", f"cannot read the file: {error.strerror or error}"
        ) from None
    return parse_study_text(text, source)


def parse_study_text(text: str, source: str = "<study>") -> StudySpec:
    """Parse YAML text (the contents of a study file) into a StudySpec."""
    try:
        data = yaml.load(text, Loader=_StudyLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as error:
        raise _yaml_error(source, error) from None
    except RecursionError:
        raise StudyFileError(source, "", "the YAML is nested too deeply") from None
    except Exception as error:  # PyYAML's own constructors raise bare errors on odd explicit tags
        raise StudyFileError(source, "", f"invalid YAML: {type(error).__name__}: {error}") from None
    return parse_study_mapping(data, source)


# -- validation ----------------------------------------------------------------------------------


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


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = 0
        self.open: set[int] = set()  # ids of the containers being walked: alias loops

    def error(self, path: str, problem: str) -> StudyFileError:
        return StudyFileError(self.source, path, problem)

    # settings -----------------------------------------------------------------------------------

    def string(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {_show(value)}{_quote_hint(value)}")
        if not value.strip():
            raise self.error(key, "is empty")
        return value

    def word(self, key: str, value: Any, allowed: tuple[str, ...]) -> str:
        options = ", ".join(allowed)
        if not isinstance(value, str) or value not in allowed:
            raise self.error(
                key, f"expected one of {options}, got {_show(value)}{_suggest(value, allowed)}"
            )
        return value

    def positive_int(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(key, f"expected a positive integer, got {_show(value)}")
        return value

    def seconds(self, key: str, value: Any) -> float:
        if not _is_number(value) or not _finite(value) or value <= 0:
            raise self.error(key, f"expected a positive number of seconds, got {_show(value)}")
        return value

    def strings(self, key: str, value: Any) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise self.error(key, f"expected a list of strings, got {_show(value)}")
        return [self.string(f"{key}[{i}]", item) for i, item in enumerate(items)]

    def gpus(self, value: Any) -> list[int]:
        if not isinstance(value, list) or not value:
            raise self.error(
                "gpus", f"expected a list of GPU indices such as [0, 1], got {_show(value)}"
            )
        out: list[int] = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int) or item < 0:
                raise self.error(
                    f"gpus[{i}]", f"expected a GPU index (an integer >= 0), got {_show(item)}"
                )
            if item in out:
                raise self.error(f"gpus[{i}]", f"GPU {item} is listed twice")
            out.append(item)
        return out

    def command(self, value: Any) -> str | list[str]:
        if isinstance(value, str):
            if not value.strip():
                raise self.error("command", "is empty")
            return value
        if not isinstance(value, list) or not value:
            raise self.error(
                "command",
                f"expected a command line (a string) or its words (a list of strings), got {_show(value)}",
            )
        words: list[str] = []
        for i, item in enumerate(value):
            if isinstance(item, int) and not isinstance(item, bool):
                item = str(item)  # [train.py, --epochs, 10]: exact, unlike a float
            if not isinstance(item, str):
                raise self.error(
                    f"command[{i}]", f"expected a string, got {_show(item)}{_quote_hint(item)}"
                )
            words.append(item)
        return words

    def objective(self, value: Any) -> str:
        hint = "expected 'module:function', e.g. 'train:objective'"
        if not isinstance(value, str):
            raise self.error("objective", f"{hint}, got {_show(value)}")
        module, sep, function = value.strip().partition(":")
        if module.endswith(".py"):
            raise self.error(
                "objective",
                f"{hint}: give the module name, not the file ({module[:-3]}:{function or 'NAME'})",
            )
        parts = [*module.split("."), *function.split(".")]
        if not sep or not all(part.isidentifier() for part in parts):
            raise self.error("objective", f"{hint}, got {_show(value)}")
        return value.strip()

    # space --------------------------------------------------------------------------------------

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
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        raise self.error(path, f"unsupported value {_show(value)} of type {type(value).__name__}")

    def mapping(self, value: Mapping[Any, Any], path: str, depth: int) -> Any:
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


def parse_study_mapping(data: Any, source: str = "<study>") -> StudySpec:
    """Validate a study mapping (a parsed YAML file) into a StudySpec.

    >>> parse_study_mapping({"objective": "train:objective", "max_trials": "ten"})
    Traceback (most recent call last):
    ...
    hypersearch.cli.study_file.StudyFileError: <study>: max_trials: expected a positive integer, got 'ten'
    """
    parser = _Parser(source)
    if data is None:
        raise parser.error("", "the file is empty; a study needs a command or an objective")
    if not isinstance(data, Mapping):
        raise parser.error(
            "", f"expected a mapping of settings (key: value lines), got {_show(data)}"
        )
    for key in data:
        if key not in _KEYS:
            raise parser.error(
                "",
                f"unknown key {_show(key)}{_suggest(key, _KEYS)}; known keys: {', '.join(_KEYS)}",
            )
    given = {key: value for key, value in data.items() if value is not None}  # null: not given
    spec: dict[str, Any] = {}
    for key in ("name", "message", "storage", "strategy", "metric"):
        if key in given:
            spec[key] = parser.string(key, given[key])
    if "direction" in given:
        spec["direction"] = parser.word("direction", given["direction"], DIRECTIONS)
    if "metric_agg" in given:
        spec["metric_agg"] = parser.word("metric_agg", given["metric_agg"], METRIC_AGGS)
    for key in ("max_trials", "parallel", "gpus_per_trial"):
        if key in given:
            spec[key] = parser.positive_int(key, given[key])
    for key in ("timeout", "max_time"):
        if key in given:
            spec[key] = parser.seconds(key, given[key])
    if "target" in given:
        target = given["target"]
        if not _is_number(target) or not _finite(target):
            raise parser.error("target", f"expected a number, got {_show(target)}")
        spec["target"] = target
    if "seed" in given:
        seed = given["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise parser.error("seed", f"expected an integer >= 0, got {_show(seed)}")
        spec["seed"] = seed
    if "stop_conditions" in given:
        spec["stop_conditions"] = parser.strings("stop_conditions", given["stop_conditions"])
    if "gpus" in given:
        spec["gpus"] = parser.gpus(given["gpus"])
        per_trial = spec.get("gpus_per_trial", 1)
        if per_trial > len(spec["gpus"]):
            raise parser.error(
                "gpus_per_trial",
                f"{per_trial} GPUs per trial, but gpus lists only {len(spec['gpus'])}",
            )
    if "shell" in given:
        if not isinstance(given["shell"], bool):
            raise parser.error("shell", f"expected true or false, got {_show(given['shell'])}")
        spec["shell"] = given["shell"]

    if "command" in given and "objective" in given:
        raise parser.error("", "give only one of 'command' and 'objective'")
    if "command" in given:
        spec["command"] = parser.command(given["command"])
        if spec.get("shell") and not isinstance(spec["command"], str):
            raise parser.error("shell", "true needs the command as one string, not a list")
    elif "objective" in given:
        spec["objective"] = parser.objective(given["objective"])
        if spec.get("shell"):
            raise parser.error("shell", "true applies to a command, not to an objective")
    else:
        raise parser.error(
            "",
            "give 'command' (a command line with :name: placeholders) or 'objective' "
            "(module:function)",
        )

    space: dict[str, Any] = {}
    if "space" in given:
        if not isinstance(given["space"], Mapping):
            raise parser.error(
                "space", f"expected a mapping of parameter names, got {_show(given['space'])}"
            )
        space = parser.node(given["space"], "space", 0)
    if "params" in given:
        for name, value in parser.params(given["params"]).items():
            if name in space:
                raise parser.error(
                    _key_path("params", name),
                    f"'{name}' is also defined under space; define it once",
                )
            space[name] = value
    try:
        Space(space)  # what the constructors can't see alone: duplicate paths, odd keys
    except SpaceError as error:
        raise parser.error("space", strip_call(str(error))) from None
    except RecursionError:
        raise parser.error("space", "nested too deeply") from None
    return StudySpec(**spec, space=space, raw=data)
