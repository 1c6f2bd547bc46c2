"""How a setting is declared once: its name, type, default, check and help text.

The study's settings schema (hypersearch/study/schema.py) is a tuple of `Setting`; the Python
keyword arguments, the CLI options and the YAML keys are all checked by the same `check`, so a
bad value gets the same message everywhere::

    >>> POSITIVE_INT.check("max_trials", 0)
    Traceback (most recent call last):
    ...
    hypersearch.settings.SettingError: max_trials: expected a positive integer, got 0

This module imports only the standard library and errors.py, so any layer may use it.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypersearch.errors import HypersearchError


class SettingError(HypersearchError, ValueError):
    """A setting has a bad value. `setting` names it, `problem` says what is wrong."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting, self.problem = setting, problem
        super().__init__(f"{setting}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.setting, self.problem))


def show(value: Any) -> str:
    """A value as a user wrote it, for messages."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list" if len(repr(value)) > 40 else repr(list(value))
    return repr(value)


def did_you_mean(word: Any, choices: Sequence[str]) -> str:
    """'; did you mean X?' when `word` is close to one of `choices`, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class Kind:
    """A value type: `convert(value)` returns the checked value or raises ValueError(problem);
    `parse` turns command-line text into a value before the check."""

    describe: str  # for help texts and the YAML reference: "a positive integer"
    convert: Callable[[Any], Any]
    parse: Callable[[str], Any] = str

    def check(self, name: str, value: Any) -> Any:
        try:
            return self.convert(value)
        except SettingError:
            raise
        except (ValueError, TypeError) as error:
            raise SettingError(name, str(error) or f"expected {self.describe}") from None


def _expect(what: str, value: Any) -> ValueError:
    return ValueError(f"expected {what}, got {show(value)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _int_from_text(text: str) -> Any:
    try:
        return int(text.strip())
    except ValueError:
        return text


def _float_from_text(text: str) -> Any:
    try:  # "0" stays 0, so a bad value reads as a Python or YAML user wrote it
        return int(text.strip())
    except ValueError:
        pass
    try:
        return float(text.strip())
    except ValueError:
        return text


def _positive_int(value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise _expect("a positive integer", value)
    return int(value)


def _non_negative_int(value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise _expect("an integer >= 0", value)
    return int(value)


def _seconds(value: Any) -> float:
    if not _is_real(value) or not value > 0 or not math.isfinite(value):
        raise _expect("a positive number of seconds", value)
    return float(value)


def _number(value: Any) -> float:
    if not _is_real(value) or not math.isfinite(value):
        raise _expect("a finite number", value)
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _expect("a non-empty string", value)
    return value


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _expect("true or false", value)
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _expect("a list of strings", value)
    return tuple(value)


def _str_mapping(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str | int | float) and not isinstance(v, bool)
        for k, v in value.items()
    ):
        raise _expect("a mapping of names to strings", value)
    return {k: str(v) for k, v in value.items()}


def _json_mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _expect("a mapping of option names to values", value)
    return dict(value)


def _gpu_list(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
        try:
            value = [int(p) for p in parts]
        except ValueError:
            raise _expect("GPU indices such as 0,1", value) from None
    if (
        not isinstance(value, list | tuple)
        or not value
        or not all(_is_int(g) and g >= 0 for g in value)
    ):
        raise _expect("GPU indices such as 0,1", value)
    if len(set(value)) != len(value):
        raise ValueError(f"GPU indices repeat in {list(value)}")
    return tuple(int(g) for g in value)


def one_of(*words: str) -> Kind:
    """One of `words` (case-insensitive), with a suggestion for a near miss."""

    def convert(value: Any) -> str:
        key = value.strip().lower() if isinstance(value, str) else value
        if key not in words:
            raise ValueError(
                f"expected one of {', '.join(words)}, got {show(value)}{did_you_mean(value, words)}"
            )
        return str(key)

    return Kind("one of " + ", ".join(words), convert)


def optional(kind: Kind) -> Kind:
    """`kind` or None ("not set")."""
    return Kind(
        f"{kind.describe} or null",
        lambda v: None if v is None else kind.convert(v),
        kind.parse,
    )


POSITIVE_INT = Kind("a positive integer", _positive_int, _int_from_text)
NON_NEGATIVE_INT = Kind("an integer >= 0", _non_negative_int, _int_from_text)
SECONDS = Kind("a positive number of seconds", _seconds, _float_from_text)
NUMBER = Kind("a finite number", _number, _float_from_text)
TEXT = Kind("a non-empty string", _text)
FLAG = Kind("true or false", _flag, lambda t: {"true": True, "false": False}.get(t.lower(), t))
STRINGS = Kind("a list of strings", _strings)
STR_MAPPING = Kind("a mapping of names to strings", _str_mapping)
JSON_MAPPING = Kind("a mapping of option names to values", _json_mapping)
GPU_LIST = Kind("GPU indices such as 0,1", _gpu_list)


@dataclass(frozen=True)
class Setting:
    """One setting of a study, declared once.

    `name` is the Python keyword and the YAML key; `flags` the command-line options (none:
    not on the command line); `aliases` other accepted names (habits of other tools), each
    marked with where it is accepted. `mutable` settings may change when a study is resumed
    (the change is stored as a revision); the others are the study's identity.
    """

    name: str
    kind: Kind
    default: Any
    help: str
    flags: tuple[str, ...] = ()
    mutable: bool = True
    group: str = "study"
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # alias -> surfaces
    metavar: str | None = None

    def check(self, value: Any) -> Any:
        """The value checked and normalised; SettingError naming this setting if it is bad."""
        return self.kind.check(self.name, value)

    def parse(self, text: str) -> Any:
        """Command-line text to a checked value."""
        return self.check(self.kind.parse(text))
