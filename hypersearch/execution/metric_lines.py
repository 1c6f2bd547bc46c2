"""Metrics from the output of shell-command trials: parsing, aggregation, stop conditions.

Accepted lines, in order of preference (one event per line at most):

1. ``client``: the tagged line written by :func:`hypersearch.client.report` (on stdout or on the
   ``HYPERSEARCH_REPORT_FD`` channel)::

       @hypersearch {"step": 3, "metrics": {"val_acc": 0.91, "loss": "nan"}}

2. ``json``: a line that is one JSON object, in one of these shapes (``"epoch"`` may stand for
   ``"step"``; only numeric values are taken; NaN/Infinity literals are accepted)::

       {"metric": "val_acc", "value": 0.91, "step": 3}
       {"val_acc": 0.91, "loss": 0.2, "step": 3}
       {"step": 3, "metrics": {"val_acc": 0.91}}

   A JSON object with no numeric metric yields nothing (it is not read as a plain line).
3. ``plain``: progress lines, for the *declared* metrics only::

       val_acc=0.91    val_acc: 0.91    val_acc = 0.91    'val_acc': 0.91
       1875/1875 [=====] - 3s 2ms/step - loss: 0.2345 - val_loss: 0.2011

   A name must not be glued to a preceding word character, ``.``, ``-`` or ``/`` (so a declared
   ``loss`` ignores ``val_loss=``, ``train/loss=`` and ``--loss=``). Numbers: ints, floats,
   exponent form, ``nan``, ``inf``, ``-inf`` (NaN is kept as ``float('nan')``; a number too big
   for a float reads as ``inf``). The step is taken from ``step N`` or ``epoch N`` / ``Epoch N/M``
   on the same line (``step`` wins when both appear), else from the last header line that was
   only ``Epoch N/M`` (Keras prints it before the progress lines), else None and the caller
   numbers the events.

A declared name with a framework prefix, as Spell named them (``keras/val_accuracy``, see
:data:`FRAMEWORK_PREFIXES`), also reads the framework's own spelling: ``val_accuracy: 0.91`` in a
plain line (the full name wins where a line has both), and ``val_accuracy`` in a JSON or client
line, recorded under the declared name.

Progress bars (tqdm, Keras) redraw one line with ``\\r``: only what a terminal finally shows
counts, the text after the line's last ``\\r`` (a ``\\r`` at its very end, as in ``\\r\\n``,
overwrites nothing). So an epoch's mid-way values are neither aggregated nor checked against stop
conditions. `LineSplitter` applies this to the stream and `MetricParser.feed` to its text.

Robustness: :meth:`MetricParser.feed` never raises on any ``str``/``bytes`` content and its work
is bounded: text is cut to :data:`LINE_CAP` before parsing, bytes are decoded with
``errors="replace"``, ANSI colour codes are dropped, and of many lines fed at once only the newest
:data:`SEGMENT_CAP` are parsed.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "AGGREGATIONS",
    "CLIENT_TAG",
    "FRAMEWORK_PREFIXES",
    "LINE_CAP",
    "METRIC_NAME_RE",
    "SEGMENT_CAP",
    "STOP_OPERATORS",
    "LineSplitter",
    "MetricEvent",
    "MetricParser",
    "StopCondition",
    "aggregate",
    "client_listens",
    "parse_client_line",
    "parse_stop_condition",
    "terminal_line",
]

LINE_CAP = 64 * 1024
"""Longest line parsed, in characters (``feed``) or bytes (``LineSplitter``); the rest is cut."""

SEGMENT_CAP = 1000
"""Most ``\\n``-separated lines parsed from one fed text (the newest are kept)."""

FRAMEWORK_PREFIXES = ("keras",)
"""Prefixes naming a framework's metrics, as Spell did (``keras/val_accuracy``): a declared
``keras/NAME`` also reads Keras's own ``NAME: value``. Other prefixes are not stripped:
``train/loss`` and ``loss`` are different metrics."""

CLIENT_TAG = "@hypersearch"
METRIC_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
Source = Literal["client", "json", "plain"]

_NUMBER = r"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|(?ai:nan|inf(?:inity)?))"
# ASCII only ([0-9], not \d; (?ai:) since (?i) lets 'ınf' match 'inf'): float() and int()
# must accept exactly what the regex matched.
# A number must end cleanly: '0.5x', '1.2.3' and '1e' are garbage, not 0.5 / 1.2 / 1.
_NUMBER_END = r"(?!\w|\.[0-9])"
_NUMBER_RE = re.compile(_NUMBER)
# Names glued to a word char, '.', '-' or '/' are other metrics ('val_loss', 'train/loss').
_NOT_GLUED = r"(?<![\w.\-/])"
_STEP_RE = re.compile(
    _NOT_GLUED + r"(?ai:(epoch|step))\s*[:=#]?\s*([0-9]{1,18})(?![0-9]|\.[0-9])"
)  # 18 digits: always an int, never a 10,000-digit parse
_HEADER_RE = re.compile(r"\s*(?ai:epoch)\s*([0-9]{1,18})\s*(?:/\s*[0-9]{1,18}\s*)?:?\s*")
_TAG_RE = re.compile(r"(?<![\w.])" + re.escape(CLIENT_TAG) + r"(?![\w.\-])")
_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
_SPECIAL_STRINGS = {
    "nan": math.nan,
    "inf": math.inf,
    "+inf": math.inf,
    "infinity": math.inf,
    "+infinity": math.inf,
    "-inf": -math.inf,
    "-infinity": -math.inf,
}
_STEP_KEYS = ("step", "epoch")
# The commonest JSON line, {"step": 3, "loss": 0.25} exactly so (no spaces elsewhere, no
# escapes, a JSON number): what json.loads and `_json_event` would make of it, by one match.
_FAST_JSON = re.compile(
    r'\{"(step|epoch)": (0|[1-9][0-9]{0,17}), "([A-Za-z_][A-Za-z0-9_.\-/]*)": '
    r"(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)\}"
).fullmatch


@dataclass(frozen=True)
class MetricEvent:
    """Metric values read from one line: ``step`` (None: caller numbers it), ``values``, ``source``.

    >>> MetricParser(["loss"]).feed("epoch 2 loss=0.5")
    [MetricEvent(step=2, values={'loss': 0.5}, source='plain')]
    """

    step: int | None
    values: dict[str, float] = field(hash=False)
    source: Source


_new_object = object.__new__


def _event(step: int | None, values: dict[str, float], source: Source) -> MetricEvent:
    """A `MetricEvent` at a third of the cost: a frozen dataclass's ``__init__`` goes through
    ``object.__setattr__`` per field (≈ 2 µs, on a 100k-line hot path). The result is the same
    object (equal, same hash and repr, still frozen)."""
    event = _new_object(MetricEvent)
    fields = event.__dict__
    fields["step"] = step
    fields["values"] = values
    fields["source"] = source
    return event


_NAME_OK: dict[str, bool] = {}  # JSON keys repeat on every line: remember the verdicts
_NAME_CACHE_SIZE = 4096


def _is_name(name: object) -> bool:
    if not isinstance(name, str):
        return False
    ok = _NAME_OK.get(name)
    if ok is None:
        ok = METRIC_NAME_RE.fullmatch(name) is not None
        if len(_NAME_OK) < _NAME_CACHE_SIZE and len(name) <= 200:  # bounded memory
            _NAME_OK[name] = ok
    return ok


def _short_name(name: str) -> str | None:
    """``keras/val_accuracy`` -> ``val_accuracy``; None for a name without a framework prefix."""
    prefix, slash, short = name.partition("/")
    return short if slash and prefix in FRAMEWORK_PREFIXES and _is_name(short) else None


def terminal_line(line: str) -> str:
    """What a terminal finally shows of one line redrawn with ``\\r``: the text after its last
    ``\\r``; a ``\\r`` at the very end (as in ``\\r\\n``) overwrites nothing.

    >>> terminal_line("1/2 [==>..] - loss: 0.9\\r2/2 [=====] - loss: 0.3\\r")
    '2/2 [=====] - loss: 0.3'
    """
    body = line.rstrip("\r")
    return body[body.rfind("\r") + 1 :]


def _json_float(value: Any) -> float | None:
    """A JSON value as a metric: ints and floats only (bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:  # a 400-digit JSON integer
        return math.inf if value > 0 else -math.inf


def _json_step(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def _client_event(payload: Any) -> MetricEvent | None:
    if not isinstance(payload, dict) or not isinstance(payload.get("metrics"), dict):
        return None
    values: dict[str, float] = {}
    for name, raw in payload["metrics"].items():
        if not _is_name(name):
            continue
        value = _SPECIAL_STRINGS.get(raw.lower()) if isinstance(raw, str) else _json_float(raw)
        if value is not None:
            values[name] = value
    if not values:
        return None
    return _event(_json_step(payload.get("step")), values, "client")


def _decode(line: str | bytes | bytearray | memoryview) -> str:
    if isinstance(line, str):
        return line[:LINE_CAP]
    if isinstance(line, bytes | bytearray | memoryview):
        return bytes(line[:LINE_CAP]).decode("utf-8", errors="replace")
    raise TypeError(f"expected a str or bytes line, got {type(line).__name__}")


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError, MemoryError):  # bad JSON, deep nesting, huge ints
        return None


def parse_client_line(text: str | bytes) -> MetricEvent | None:
    """Parse one client line, tagged (stdout) or bare JSON (fd channel); None if it isn't one.

    >>> parse_client_line('@hypersearch {"step": 3, "metrics": {"val_acc": 0.91}}')
    MetricEvent(step=3, values={'val_acc': 0.91}, source='client')

    Entries with invalid names or non-numeric values are skipped; a negative or fractional step
    reads as None. Never raises on str/bytes content.
    """
    line = _decode(text)
    match = _TAG_RE.search(line)
    payload = line[match.end() :] if match else line
    return _client_event(_load_json(payload.strip()))


def client_listens(text: str | bytes) -> bool:
    """Whether a client line declares that its command reads the decision channel
    (``@hypersearch {"listens": true}``, see `hypersearch.client.listen`). Never raises.

    >>> client_listens('@hypersearch {"listens": true}'), client_listens('{"step": 1}')
    (True, False)
    """
    line = _decode(text)
    if "listens" not in line:  # the common case: one substring test
        return False
    match = _TAG_RE.search(line)
    payload = _load_json((line[match.end() :] if match else line).strip())
    return isinstance(payload, dict) and payload.get("listens") is True


def _json_event(obj: dict[Any, Any]) -> MetricEvent | None:
    if "step" in obj:
        step = _json_step(obj["step"])
    elif "epoch" in obj:
        step = _json_step(obj["epoch"])
    else:
        step = None
    values: dict[str, float] = {}
    if isinstance(obj.get("metric"), str):  # {"metric": "val_acc", "value": 0.91}
        value = _json_float(obj.get("value"))
        if value is not None and _is_name(obj["metric"]):
            values[obj["metric"]] = value
    else:
        source = obj["metrics"] if isinstance(obj.get("metrics"), dict) else obj
        for name, raw in source.items():
            if name in _STEP_KEYS or not _is_name(name):
                continue
            if type(raw) is float:  # the common case: float(raw) is raw itself
                values[name] = raw
                continue
            value = _json_float(raw)
            if value is not None:
                values[name] = value
    return _event(step, values, "json") if values else None


class MetricParser:
    """Turn trial output lines into :class:`MetricEvent` (see the module docstring for forms).

    ``metrics`` are the declared names read from plain lines; client and JSON lines give every
    metric they carry. The parser is stateful only in remembering the last ``Epoch N/M`` header.

    >>> parser = MetricParser(["loss", "val_acc"])
    >>> parser.feed("Epoch 3/10")
    []
    >>> parser.feed("313/313 [====] - 1s 2ms/step - loss: 0.2345 - val_acc: 0.9100")
    [MetricEvent(step=3, values={'loss': 0.2345, 'val_acc': 0.91}, source='plain')]
    """

    def __init__(self, metrics: Sequence[str] = ()) -> None:
        if isinstance(metrics, str):  # a lone name would otherwise be read letter by letter
            metrics = [metrics]
        for name in metrics:
            if not _is_name(name):
                raise ValueError(
                    f"declared metric name {name!r} is invalid: it must match "
                    r"[A-Za-z_][A-Za-z0-9_.\-/]*"
                )
        self.metrics: tuple[str, ...] = tuple(dict.fromkeys(metrics))
        self._epoch: int | None = None
        self._plain: re.Pattern[str] | None = None
        self._fast_plain: Callable[[str], re.Match[str] | None] | None = None
        self._fast_names: dict[str, tuple[str, ...]] = {}
        self._fast_all: Callable[[str], list[tuple[str, str]]] | None = None
        # declared "keras/val_accuracy" -> "val_accuracy", the name Keras itself prints
        self._short_names = {
            name: short for name in self.metrics if (short := _short_name(name)) is not None
        }
        # how a name may be spelled in a plain line -> [(declared name, spelled in full?)]
        self._spellings: dict[str, list[tuple[str, bool]]] = {}
        for name in self.metrics:
            self._spellings.setdefault(name, []).append((name, True))
        for name, short in self._short_names.items():
            self._spellings.setdefault(short, []).append((name, False))
        if self.metrics:
            names = "|".join(re.escape(n) for n in sorted(self._spellings, key=len, reverse=True))
            # An optional quote after the name also reads Python-dict logs ({'loss': 0.5}).
            self._plain = re.compile(
                _NOT_GLUED + f"({names})['\"]?\\s*[:=]\\s*({_NUMBER}){_NUMBER_END}"
            )
            # The commonest line, ``loss=0.25`` alone on it, settled by one fullmatch: it can
            # be no header, JSON, client or step line, and holds exactly the one match the
            # general path would find. Not for a name that starts like a step key: there
            # ``step2=0.5`` or ``epoch: 3`` also give the step (`_STEP_RE`, `_HEADER_RE`).
            if not any(n.lower().startswith(_STEP_KEYS) for n in self._spellings):
                ws = r"[^\S\r\n]*"  # \s but not a line end: those need the general path
                self._fast_plain = re.compile(
                    f"{ws}({names})['\"]?{ws}[:=]{ws}({_NUMBER}){ws}"
                ).fullmatch
                # a lone match gives its value to every declared name it spells
                self._fast_names = {
                    spelling: tuple(declared for declared, _ in entries)
                    for spelling, entries in self._spellings.items()
                }
                # the same shape on every line of a chunk joined by \n: one findall for all
                self._fast_all = re.compile(
                    f"(?m)^{ws}({names})['\"]?{ws}[:=]{ws}({_NUMBER}){ws}$"
                ).findall

    def feed(self, line: str | bytes) -> list[MetricEvent]:
        """Parse one line (or several, ``\\n``-separated); of a line redrawn with ``\\r`` only
        what a terminal finally shows counts. Never raises on content."""
        text = _decode(line)
        if "\x1b" in text:  # colour codes never span a line end, so strip them once
            text = _ANSI_RE.sub("", text)
        if "\r" in text:
            text = "\n".join(terminal_line(part) for part in text.split("\n"))
        if not self._may_hold_metrics(text):  # one cheap pass settles most output lines
            return []
        segments = text.split("\n")
        if len(segments) > SEGMENT_CAP:  # keep the newest lines; bounds the work
            segments = segments[-SEGMENT_CAP:]
        events: list[MetricEvent] = []
        for segment in segments:
            if segment and not segment.isspace():
                event = self._segment(segment)
                if event is not None:
                    events.append(event)
        return events

    def feed_lines(self, lines: Sequence[str | bytes]) -> list[MetricEvent]:
        """The events of many lines, in order: the same as ``feed`` of each line in turn, the
        results concatenated (see `scan`, which this wraps)."""
        return [_event(*fields) for fields in zip(*self.scan(lines), strict=True)]

    def scan(
        self, lines: Sequence[str | bytes]
    ) -> tuple[list[int | None], list[dict[str, float]], list[Source]]:
        """`feed_lines` as three parallel lists, steps, values and sources: the command
        executor's path, one call per chunk read. Columns, not an object per event: 100k lines
        of one command are a hot path, and short-lived containers per line make the garbage
        collector's full passes run.

        Single lines (no ``\n``, ``\r`` or colour code, as `LineSplitter` gives them) skip
        ``feed``'s preparation, and a lone ``name=value`` is settled by one regex match (one
        for the whole chunk when every line is one)."""
        fast_plain = self._fast_plain
        if (
            fast_plain is not None
            and len(lines) > 2
            and type(lines[0]) is str
            and type(lines[-1]) is str
            and fast_plain(lines[0])  # type: ignore[arg-type]
            and fast_plain(lines[-1])  # type: ignore[arg-type]
        ):
            bulk = self._scan_bulk(lines)
            if bulk is not None:
                return bulk
        steps: list[int | None] = []
        values: list[dict[str, float]] = []
        sources: list[Source] = []
        fast_names = self._fast_names
        may_hold = self._may_hold_metrics
        for line in lines:
            if (
                type(line) is not str
                or len(line) > LINE_CAP
                or "\n" in line
                or "\r" in line
                or "\x1b" in line
            ):
                for event in self.feed(line):
                    steps.append(event.step)
                    values.append(event.values)
                    sources.append(event.source)
                continue
            if fast_plain is not None:
                match = fast_plain(line)
                if match is not None:
                    value = float(match.group(2))  # 400 digits read as inf
                    declared = fast_names[match.group(1)]
                    steps.append(self._epoch)
                    if len(declared) == 1:
                        values.append({declared[0]: value})
                    else:
                        values.append(dict.fromkeys(declared, value))
                    sources.append("plain")
                    continue
            if line[:1] == "{" and not self._short_names:  # (no keras/ aliases to apply)
                match = _FAST_JSON(line)
                if match is not None and match.group(3) not in _STEP_KEYS:
                    steps.append(int(match.group(2)))
                    values.append({match.group(3): float(match.group(4))})  # inf if huge
                    sources.append("json")
                    continue
            # what feed does with one segment (may_hold: a header needs "poch" too)
            if line and not line.isspace() and may_hold(line):
                event = self._segment(line)
                if event is not None:
                    steps.append(event.step)
                    values.append(event.values)
                    sources.append(event.source)
        return steps, values, sources

    def _scan_bulk(
        self, lines: Sequence[str | bytes]
    ) -> tuple[list[int | None], list[dict[str, float]], list[Source]] | None:
        """`scan` of lines that are all a lone ``name=value`` (a command printing one metric
        as fast as it can), in one regex pass over them joined; None unless every line is one.
        A match spans one whole line (``^``/``$``, no line end inside), so as many matches as
        lines means each line fullmatched, as `scan` checks line by line."""
        assert self._fast_all is not None
        try:
            text = "\n".join(lines)  # type: ignore[arg-type]
        except TypeError:  # a bytes line
            return None
        if text.count("\n") != len(lines) - 1 or max(map(len, lines)) > LINE_CAP:
            return None  # a line holding a line end, or one feed would cut
        found = self._fast_all(text)
        n = len(found)
        if n != len(lines):
            return None
        steps = [self._epoch] * n  # no line is a header: the last one's epoch holds for all
        sources: list[Source] = ["plain"] * n
        names = self._fast_names
        if len(names) == 1:
            (declared,) = names.values()
            if len(declared) == 1:
                name = declared[0]
                return steps, [{name: float(number)} for _, number in found], sources
        values = [dict.fromkeys(names[spelling], float(number)) for spelling, number in found]
        return steps, values, sources

    def feed_report(self, line: str | bytes) -> list[MetricEvent]:
        """Parse one line of the ``HYPERSEARCH_REPORT_FD`` channel: client lines only."""
        event = parse_client_line(line)
        return [] if event is None else [self._aliased(event)]

    def _may_hold_metrics(self, text: str) -> bool:
        if "{" in text or CLIENT_TAG in text:
            return True
        if self._plain is None:
            return False
        # Across line ends this search finds a superset of the per-segment matches.
        return self._plain.search(text) is not None or "poch" in text.lower()

    def _segment(self, segment: str) -> MetricEvent | None:
        if CLIENT_TAG in segment:
            event = parse_client_line(segment)
            if event is not None:
                return self._aliased(event)
            # A tag with a broken payload may be an e-mail or URL; read the line as usual.
        stripped = segment.strip()
        if stripped.startswith("{") and stripped.endswith("}"):
            obj = _load_json(stripped)
            if isinstance(obj, dict):
                event = _json_event(obj)
                return None if event is None else self._aliased(event)
        return self._plain_event(segment)

    def _aliased(self, event: MetricEvent) -> MetricEvent:
        """A JSON or client event with a declared ``keras/NAME`` under its short ``NAME``: the
        value is recorded under the declared name (unless the event also has that name)."""
        values = event.values
        for full, short in self._short_names.items():
            if short in values and full not in values:
                values = dict(values) if values is event.values else values
                values[full] = values[short] if short in self.metrics else values.pop(short)
        return event if values is event.values else _event(event.step, values, event.source)

    def _plain_event(self, segment: str) -> MetricEvent | None:
        if self._plain is None:
            return None
        header = _HEADER_RE.fullmatch(segment) if len(segment) <= 80 else None
        if header is not None:
            self._epoch = int(header.group(1))
            return None
        values: dict[str, float] = {}
        spelled_in_full: set[str] = set()
        for match in self._plain.finditer(segment):
            value = float(match.group(2))  # the last occurrence wins; 400 digits read as inf
            for declared, full in self._spellings[match.group(1)]:
                if full:
                    values[declared] = value
                    spelled_in_full.add(declared)
                elif declared not in spelled_in_full:  # the full name wins over the short one
                    values[declared] = value
        if not values:
            return None
        found = {kind.lower(): int(n) for kind, n in _STEP_RE.findall(segment)[::-1]}
        step = found.get("step", found.get("epoch", self._epoch))
        return _event(step, values, "plain")


class LineSplitter:
    """Split a byte stream into the lines a terminal would finally show, with bounded memory.

    Lines end at ``\\n`` (``\\r\\n`` too). A ``\\r`` followed by more text on the same line
    returns to its start, so what came before it is overwritten: a progress bar redrawn a
    hundred times is one line, its last state (see `terminal_line`). Empty lines are skipped.
    At most ``cap`` bytes of a line are held: the rest of a longer line (up to its next ``\\r``
    or ``\\n``) is dropped. Bytes are decoded as UTF-8 with ``errors="replace"``.

    >>> splitter = LineSplitter()
    >>> splitter.feed(b"loss=0.5\\n1/2 loss: 0.9\\r2/2 loss: 0.3\\r\\n")
    ['loss=0.5', '2/2 loss: 0.3']
    >>> splitter.feed(b"acc=0.9"), splitter.flush()
    ([], ['acc=0.9'])
    """

    def __init__(self, cap: int = LINE_CAP) -> None:
        if cap < 1:
            raise ValueError(f"cap must be >= 1, got {cap}")
        self.cap = cap
        self._buffer = bytearray()
        self._after_cr = False  # the held text ended with \r: more text would overwrite it

    def _emit(self, out: list[str]) -> None:
        if self._buffer:
            out.append(self._buffer.decode("utf-8", errors="replace"))
        self._buffer = bytearray()
        self._after_cr = False

    def _add(self, part: bytes) -> None:
        """Add text of the current line that holds no \\n."""
        if not part:
            return
        body = part.rstrip(b"\r")
        ends_with_cr = len(body) < len(part)
        if body:
            cut = body.rfind(b"\r")
            if cut >= 0 or self._after_cr:  # back to the start of the line: overwrite it
                self._buffer = bytearray()
            room = self.cap - len(self._buffer)
            if room > 0:
                self._buffer += body[cut + 1 : cut + 1 + room]
        self._after_cr = ends_with_cr or (self._after_cr and not body)

    def feed(self, chunk: bytes) -> list[str]:
        """Add a chunk; return the lines it completed."""
        out: list[str] = []
        if not chunk:
            return out
        chunk = bytes(chunk)
        if b"\r" not in chunk and len(chunk) <= self.cap:
            # The common chunk: whole lines, none redrawn, none longer than the cap. Its
            # middle lines are decoded in one call and split once: the same strings, since
            # UTF-8 never puts a \n byte inside a character, so errors="replace" treats each
            # line alike whether decoded alone or together.
            first = chunk.find(b"\n")
            if first < 0:
                self._add(chunk)
                return out
            self._add(chunk[:first])
            self._emit(out)
            last = chunk.rfind(b"\n")
            if last > first:
                middle = chunk[first + 1 : last].decode("utf-8", errors="replace")
                out.extend(filter(None, middle.split("\n")))  # empty lines are skipped
            self._add(chunk[last + 1 :])
            return out
        parts = chunk.split(b"\n")
        last = len(parts) - 1
        for i, part in enumerate(parts):
            self._add(part)
            if i < last:  # a line end follows this part
                self._emit(out)
        return out

    def flush(self) -> list[str]:
        """At end of stream: return the unterminated last line, if any, and reset."""
        out: list[str] = []
        self._emit(out)
        return out


AGGREGATIONS = ("last", "min", "max", "avg", "mean")


def aggregate(values: Sequence[float], how: str) -> float | None:
    """Reduce a metric's series to one value: ``last``, ``min``, ``max``, ``avg`` (or ``mean``).

    None for an empty series. ``last`` returns the last value even if it is NaN; ``min``, ``max``
    and ``avg`` skip NaN values and are NaN only when every value is NaN.

    >>> aggregate([3.0, float("nan"), 1.0], "min"), aggregate([1.0, 2.0], "mean")
    (1.0, 1.5)
    """
    kind = how.strip().lower() if isinstance(how, str) else how
    if kind not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}; expected one of {', '.join(AGGREGATIONS)}")
    series = [float(v) for v in values]
    if not series:
        return None
    if kind == "last":
        return series[-1]
    numbers = [v for v in series if not math.isnan(v)]
    if not numbers:
        return math.nan
    if kind == "min":
        return min(numbers)
    if kind == "max":
        return max(numbers)
    try:  # dividing first keeps 1e308-sized values from overflowing the sum
        return math.fsum(v / len(numbers) for v in numbers)
    except ValueError:  # inf and -inf together
        return math.nan


STOP_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_OP_HINTS = {"=": "==", "=<": "<=", "=>": ">=", "<>": "!=", "=!": "!=", "!": "!="}
_STOP_RE = re.compile(r"(?P<metric>[^<>=!]*)(?P<op>[<>=!]+)(?P<value>.*)", re.DOTALL)


@dataclass(frozen=True)
class StopCondition:
    """``METRIC OP VALUE``, e.g. ``loss > 10``: stop the study once a reported value holds.

    >>> parse_stop_condition("val_acc>=0.99").holds(0.995)
    True
    """

    metric: str
    op: str
    value: float

    def holds(self, value: float) -> bool:
        """Whether ``value`` satisfies the condition; a NaN value never does, for any operator."""
        value = float(value)
        if math.isnan(value):
            return False
        return STOP_OPERATORS[self.op](value, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value!r}"


def parse_stop_condition(text: str | bytes) -> StopCondition:
    """Parse ``"METRIC OP VALUE"`` with OP in ``< <= > >= == !=`` (e.g. ``"loss > 10"``).

    Raises ValueError saying what is wrong (no operator, unknown operator, bad metric name,
    missing or non-numeric or NaN value). ``inf``/``-inf`` are accepted as values.
    """
    if isinstance(text, bytes | bytearray):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"stop condition {text!r} is not valid UTF-8") from None
    if not isinstance(text, str):
        raise TypeError(f"stop condition must be a str, got {type(text).__name__}")
    example = "expected 'METRIC OP VALUE', e.g. 'loss > 10'"
    if not text.strip():
        raise ValueError(f"stop condition is empty; {example}")
    match = _STOP_RE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"stop condition {text!r} has no comparison operator "
            f"(one of {' '.join(STOP_OPERATORS)}); {example}"
        )
    metric, op, raw = match.group("metric").strip(), match.group("op"), match.group("value").strip()
    if op not in STOP_OPERATORS:
        hint = f"; did you mean {_OP_HINTS[op]!r}?" if op in _OP_HINTS else ""
        raise ValueError(
            f"stop condition {text!r} has unknown operator {op!r} "
            f"(expected one of {' '.join(STOP_OPERATORS)}){hint}"
        )
    if not metric:
        raise ValueError(f"stop condition {text!r} names no metric before {op!r}; {example}")
    if not _is_name(metric):
        raise ValueError(
            f"stop condition {text!r}: metric name {metric!r} is invalid "
            r"(it must match [A-Za-z_][A-Za-z0-9_.\-/]*)"
        )
    if not raw:
        raise ValueError(f"stop condition {text!r} has no value after {op!r}; {example}")
    if _NUMBER_RE.fullmatch(raw) is None:
        raise ValueError(f"stop condition {text!r}: value {raw!r} is not a number")
    value = float(raw)
    if math.isnan(value):
        raise ValueError(f"stop condition {text!r}: value must not be NaN (it would never hold)")
    return StopCondition(metric, op, value)
