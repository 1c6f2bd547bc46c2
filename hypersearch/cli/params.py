"""Spell `hyper`-style ``--param`` and ``--json-param`` arguments, turned into a search space.

``--param NAME=VALUE`` forms (NAME: a letter or ``_``, then letters, digits, ``_`` or ``-``):

=============================  ================================================================
``act=relu,tanh``              ``hs.choice(["relu", "tanh"])``
``filters=16,32,64``           ``hs.choice([16, 32, 64])`` (ints)
``dropout=0.2,0.5``            ``hs.choice([0.2, 0.5])`` (floats)
``lr=0.0001:0.1:log``          ``hs.loguniform(0.0001, 0.1)``
``p=0.0:1.0``                  ``hs.uniform(0.0, 1.0)``
``p=0:1``                      ``hs.uniform(0, 1)`` (a range is real unless ``:int``)
``units=16:128:int``           ``hs.integer(16, 128)``
``units=16:128:log:int``       ``hs.integer(16, 128, log=True)``
``units=16.0:128.0:int``       ``hs.integer(16, 128)``
``epochs=10``                  the constant ``10``
``tag='"a,b"'``                the constant string ``"a,b"`` (quotes keep ',' and ':')
=============================  ================================================================

A range is ``MIN:MAX`` followed by optional ``:linear`` or ``:log`` and ``:int`` or ``:float``, in
any order. It is a real range unless ``:int`` is given (as in Spell), so ``dropout=0:1`` is
``hs.uniform(0, 1)``, never the integers {0, 1}; write ``units=16:128:int`` for integers. A third
number (``MIN:MAX:STEP``) is not part of the grammar: list the values instead.

A value is an int if it reads as one (``16``, ``-3``), else a float if it reads as one (``0.5``,
``1e-3``), else a string. ``true``, ``false``, ``none``, ``nan`` and ``inf`` stay strings: the
command receives text anyway, and guessing booleans would turn ``--flag :flag:`` into ``True``.
Quote a value (``'...'`` or ``"..."``, no escapes inside) to force a string or keep commas and
colons in it. A ``:`` only makes a range when the value is not a list.

``--json-param NAME=JSON`` takes a JSON list whose items are the options of a choice; items may
be objects or lists (constant options): ``--json-param layers='[[64, 64], [128, 128, 128]]'``.

Every error is a `ParamError` naming the argument and saying how to fix it::

    >>> parse_param("lr=0.1:0.01:log")
    Traceback (most recent call last):
    ...
    hypersearch.cli.params.ParamError: --param lr=0.1:0.01:log: MIN (0.1) must be less than MAX (0.01)
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable
from typing import Any

from hypersearch.errors import HypersearchError, SpaceError
from hypersearch.space import Space, choice, integer, loguniform, uniform

__all__ = [
    "NAME_PATTERN",
    "ParamError",
    "build_space",
    "parse_json_param",
    "parse_param",
]

NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SCALES = ("linear", "log")
_TYPES = ("int", "float")
_RANGE_OPTIONS = ":linear, :log, :int, :float"
_SHOWN = 200  # longest argument text quoted back in a message
# the "uniform(1.0, 0.5): " prefix of a SpaceError: the CLI user wrote no such call
_CALL_PREFIX = re.compile(r"^[a-z]+\([^()]*\): ")


class ParamError(HypersearchError, ValueError):
    """A ``--param``/``--json-param`` argument is malformed; the message says how to fix it.

    `flag` is ``"--param"`` or ``"--json-param"``, `text` the argument as given, `problem` the
    message without the ``"--param TEXT: "`` prefix.
    """

    def __init__(self, flag: str, text: str, problem: str) -> None:
        self.flag, self.text, self.problem = flag, text, problem
        shown = text if len(text) <= _SHOWN else text[:_SHOWN] + "..."
        super().__init__(f"{flag} {shown}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across processes despite 3 arguments
        return (type(self), (self.flag, self.text, self.problem))


def strip_call(message: str) -> str:
    """A SpaceError message without the constructor call it starts with.

    >>> strip_call("uniform(1.0, 0.5): low must be less than high (got low=1.0, high=0.5)")
    'low must be less than high (got low=1.0, high=0.5)'
    """
    return _CALL_PREFIX.sub("", message, count=1)


def _example(name: str) -> str:
    name = name if NAME_PATTERN.fullmatch(name) else "NAME"
    return f"write --param {name}=0.001:0.1:log or --param {name}=0.01,0.1"


def _split_name(flag: str, text: str) -> tuple[str, str]:
    if not isinstance(text, str):
        raise ParamError(flag, repr(text), f"expected text, got {type(text).__name__}")
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep:
        hint = (
            _example(name)
            if flag == "--param"
            else f"write --json-param {name or 'NAME'}='[[64, 64], [128]]'"
        )
        raise ParamError(flag, text, f"missing '=' ({hint})")
    if not name:
        raise ParamError(flag, text, f"missing the name before '=' ({_example(name)})")
    if not NAME_PATTERN.fullmatch(name):
        raise ParamError(
            flag,
            text,
            f"invalid name {name!r}: a name starts with a letter or '_' and continues with "
            "letters, digits, '_' or '-'",
        )
    return name, value.strip()


def parse_param(text: str) -> tuple[str, Any]:
    """Parse one ``--param NAME=VALUE`` into ``(name, distribution or constant)``.

    >>> parse_param("units=16:128:log")
    ('units', Integer(low=16, high=128, step=1, log=True))
    >>> parse_param("act=relu,tanh")[1].options
    ('relu', 'tanh')
    """
    flag = "--param"
    name, value = _split_name(flag, text)
    if not value:
        raise ParamError(flag, text, f"no value after '=' ({_example(name)})")
    items = _split_items(text, value)
    if len(items) > 1:
        options: list[Any] = []
        seen: set[tuple[type, Any]] = set()
        for item, quoted in items:
            option = item if quoted else _typed(text, item)
            if (type(option), option) in seen:  # a grid would run it twice
                raise ParamError(flag, text, f"{item!r} is listed twice; list each value once")
            seen.add((type(option), option))
            options.append(option)
        return name, choice(options)
    item, quoted = items[0]
    if quoted:
        return name, item
    if ":" in item:
        return name, _range(text, name, item)
    return name, _typed(text, item)


def _split_items(text: str, value: str) -> list[tuple[str, bool]]:
    """Split on commas outside quotes: ``[(item, was_quoted), ...]``."""
    items: list[tuple[str, bool]] = []
    i, n = 0, len(value)
    while True:
        while i < n and value[i].isspace():
            i += 1
        if i < n and value[i] in "'\"":
            quote = value[i]
            end = value.find(quote, i + 1)
            if end < 0:
                raise ParamError(
                    "--param", text, f"unterminated {quote} quote; close it before the next ','"
                )
            items.append((value[i + 1 : end], True))
            i = end + 1
            while i < n and value[i].isspace():
                i += 1
            if i < n and value[i] != ",":
                raise ParamError(
                    "--param",
                    text,
                    f"unexpected text {value[i:]!r} after a quoted value; separate values with ','",
                )
        else:
            end = value.find(",", i)
            end = n if end < 0 else end
            item = value[i:end].strip()
            if not item:
                raise ParamError(
                    "--param",
                    text,
                    "empty value in the list (two commas in a row, or one at the end?); "
                    "quote it to mean the empty string: ''",
                )
            items.append((item, False))
            i = end
        if i >= n:
            return items
        i += 1  # past the comma; another item must follow


def _typed(text: str, item: str, label: str = "") -> Any:
    """int if it reads as one, else float if it reads as one, else the string."""
    shown = f"{label} ({_short(item)})" if label else _short(item)
    if _INT.fullmatch(item):
        try:
            return int(item)
        except ValueError:  # beyond sys.get_int_max_str_digits()
            raise ParamError("--param", text, f"{shown} has too many digits") from None
    if _FLOAT.fullmatch(item):
        number = float(item)
        if not math.isfinite(number):
            raise ParamError("--param", text, f"{shown} is too large for a float")
        return number
    return item


def _bound(text: str, which: str, part: str) -> int | float:
    if not part:
        where = "before" if which == "MIN" else "after"
        raise ParamError(
            "--param", text, f"{which} is missing {where} ':' (write MIN:MAX, e.g. 0.001:0.1)"
        )
    if not (_INT.fullmatch(part) or _FLOAT.fullmatch(part)):
        raise ParamError(
            "--param",
            text,
            f"{which} ({part}) is not a number; a range is MIN:MAX[:linear|log][:int|float] "
            "(quote the whole value to pass text containing ':')",
        )
    value = _typed(text, part, which)
    assert isinstance(value, (int, float))
    return value


def _range(text: str, name: str, item: str) -> Any:
    low_text, high_text, *words = (part.strip() for part in item.split(":"))
    low = _bound(text, "MIN", low_text)
    high = _bound(text, "MAX", high_text)
    scale: str | None = None
    kind: str | None = None
    for word in words:
        lowered = word.lower()
        if not lowered:
            raise ParamError(
                "--param", text, f"empty option after ':' (valid options: {_RANGE_OPTIONS})"
            )
        if _INT.fullmatch(lowered) or _FLOAT.fullmatch(lowered):
            raise ParamError(
                "--param",
                text,
                f"':{word}' looks like a step, which --param ranges do not take; list the values "
                f"instead (--param {name}=0,0.25,0.5) or use a study file with "
                "{quniform: [low, high, q]}",
            )
        if lowered in _SCALES or lowered in _TYPES:
            current = scale if lowered in _SCALES else kind
            if current is not None:
                pair = "linear or log" if lowered in _SCALES else "int or float"
                raise ParamError(
                    "--param", text, f"':{word}' after ':{current}': give one of {pair}, once"
                )
            if lowered in _SCALES:
                scale = lowered
            else:
                kind = lowered
            continue
        close = difflib.get_close_matches(lowered, [*_SCALES, *_TYPES], n=1)
        guess = f" (did you mean ':{close[0]}'?)" if close else ""
        raise ParamError(
            "--param", text, f"unknown option ':{word}'{guess}; valid options: {_RANGE_OPTIONS}"
        )

    # real unless ':int' (as Spell): `dropout=0:1` must not silently become {0, 1}
    as_int = kind == "int"
    if as_int:
        for which, part, bound in (("MIN", low_text, low), ("MAX", high_text, high)):
            if isinstance(bound, float) and not bound.is_integer():
                raise ParamError(
                    "--param",
                    text,
                    f"{which} ({part}) is not a whole number, but ':int' asks for integers",
                )
        low, high = int(low), int(high)
    if not low < high:
        same = f"; for a single value write --param {name}={low_text}" if low == high else ""
        raise ParamError(
            "--param", text, f"MIN ({low_text}) must be less than MAX ({high_text}){same}"
        )
    log = scale == "log"
    if log and low <= 0:  # for ints this is also "low >= 1", what hs.integer(log=True) needs
        raise ParamError(
            "--param",
            text,
            f"a log range needs MIN > 0 (got {low_text}); bounds are in real units, e.g. 1e-5:1e-1:log",
        )
    try:
        if as_int:
            return integer(low, high, log=log)
        return loguniform(low, high) if log else uniform(low, high)
    except SpaceError as error:  # e.g. bounds beyond 2**53, a range too wide for a float
        raise ParamError("--param", text, strip_call(str(error))) from None


def _reject_constant(word: str) -> Any:
    raise ValueError(f"{word} is not allowed: numbers must be finite")


_JSON_KINDS = {dict: "object", str: "string", bool: "true/false", int: "number", float: "number"}


def parse_json_param(text: str) -> tuple[str, Any]:
    """Parse one ``--json-param NAME=JSON-LIST`` into ``(name, hs.choice(items))``.

    >>> parse_json_param('layers=[[64, 64], [128]]')[1].options
    ([64, 64], [128])
    """
    flag = "--json-param"
    name, body = _split_name(flag, text)
    example = f"--json-param {name}='[[64, 64], [128, 128]]'"
    try:
        value = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise ParamError(flag, text, "the JSON is nested too deeply") from None
    except ValueError as error:  # JSONDecodeError, NaN/Infinity, a number with too many digits
        raise ParamError(flag, text, f"not valid JSON ({error}); write e.g. {example}") from None
    if not isinstance(value, list):
        kind = "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)
        raise ParamError(
            flag,
            text,
            f"the value must be a JSON list of options, e.g. {example} (got a JSON {kind})",
        )
    if not value:
        raise ParamError(
            flag, text, f"the list of options is empty; give at least one, e.g. {example}"
        )
    seen: set[str] = set()
    for option in value:
        key = json.dumps(option, sort_keys=True)
        if key in seen:
            raise ParamError(flag, text, f"option {_short(key)} is listed twice; list each once")
        seen.add(key)
    dist = choice(value)
    try:
        Space({name: dist})  # object keys must be valid space keys, numbers finite
    except SpaceError as error:
        raise ParamError(flag, text, strip_call(str(error))) from None
    except RecursionError:
        raise ParamError(flag, text, "the JSON is nested too deeply") from None
    return name, dist


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:60] + "..."


def build_space(params: Iterable[str], json_params: Iterable[str] = ()) -> dict[str, Any]:
    """The space dict of all ``--param`` and ``--json-param`` arguments, in the order given.

    >>> sorted(build_space(["lr=0.001:0.1:log"], ["layers=[[64], [128]]"]))
    ['layers', 'lr']
    """
    space: dict[str, Any] = {}
    given_by: dict[str, str] = {}
    for flag, texts, parse in (
        ("--param", params, parse_param),
        ("--json-param", json_params, parse_json_param),
    ):
        if isinstance(texts, (str, bytes)):  # a lone string would be parsed letter by letter
            raise TypeError(f"{flag} arguments must be a list of strings, not one string")
        for text in texts:
            name, value = parse(text)
            if name in space:
                raise ParamError(
                    flag,
                    text,
                    f"parameter '{name}' is already given by {given_by[name]}; give each once",
                )
            space[name] = value
            given_by[name] = f"{flag} {text}"
    return space
