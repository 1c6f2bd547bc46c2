"""The YAML dialect of study files: YAML 1.2 core scalars through a `yaml.SafeLoader` subclass.

No tag builds a Python object and nothing is executed. ``1e-5`` is a float (PyYAML's YAML 1.1
reads a string), ``1:30`` stays the string "1:30" (YAML 1.1: the sexagesimal integer 90), ``010``
is 10, only true/false are booleans (``yes``, ``no``, ``on``, ``off`` are strings) and dates stay
strings. A key given twice in one mapping is an error.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from hypersearch.errors import HypersearchError


class StudyFileError(HypersearchError, ValueError):
    """A study file is unreadable or invalid. `source` is the file, `path` the YAML path of the
    bad value ("" for the whole file), `problem` what is wrong and how to fix it."""

    def __init__(self, source: str, path: str, problem: str) -> None:
        self.source, self.path, self.problem = source, path, problem
        super().__init__(f"{source}: {path}: {problem}" if path else f"{source}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable despite 3 arguments
        return (type(self), (self.source, self.path, self.problem))


class StudyLoader(yaml.SafeLoader):
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
StudyLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML11_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
StudyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# ints before floats: the resolver takes the first pattern that matches
StudyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
StudyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)
StudyLoader.add_constructor("tag:yaml.org,2002:int", StudyLoader.construct_yaml_int)
StudyLoader.add_constructor("tag:yaml.org,2002:float", StudyLoader.construct_yaml_float)
StudyLoader.add_constructor("tag:yaml.org,2002:bool", StudyLoader.construct_yaml_bool)
StudyLoader.add_constructor("tag:yaml.org,2002:timestamp", StudyLoader.construct_yaml_timestamp)


def yaml_error(source: str, error: yaml.YAMLError) -> StudyFileError:
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


def read_yaml(text: str, source: str) -> Any:
    """Parse YAML text of a study file; StudyFileError with the line and column if invalid."""
    try:
        return yaml.load(text, Loader=StudyLoader)  # a SafeLoader subclass: safe
    except yaml.YAMLError as error:
        raise yaml_error(source, error) from None
    except RecursionError:
        raise StudyFileError(source, "", "the YAML is nested too deeply") from None
    except Exception as error:  # PyYAML's own constructors raise bare errors on odd explicit tags
        raise StudyFileError(source, "", f"invalid YAML: {type(error).__name__}: {error}") from None
