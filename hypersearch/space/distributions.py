"""Distributions of single parameters and their public constructors.

Every distribution maps the unit interval onto its values (`from_unit`) and back (`to_unit`), so
quasi-random and model-based samplers can work in [0, 1]^d while the objective sees real values.
The mapping follows the prior: uniform in the value (or its log) for ranges, the normal CDF for
normal priors, cumulative weights for choices.

What a model needs to know about a parameter lives here too, so that no sampler re-derives it
from the distribution's type: whether it is categorical (`is_categorical`, `support`,
`probabilities`), how many values it has (`n_values`), the affine map behind its unit transform
(`internal_bounds`), the value a unit point stands for (`snap_unit`, vectorised), and the values
next to a value (`neighbours`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from hypersearch.errors import SpaceError

_STANDARD_NORMAL = NormalDist()
_UNIT_EPS = 1e-12
_MAX_INTEGER = 2**53  # integers sampled through floats stay exact up to here


def _number(call: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpaceError(f"{call}: {name} must be a number, got {type(value).__name__} {value!r}")
    try:
        value = float(value)
    except OverflowError:  # an int or Fraction beyond the float range
        value = math.inf if value > 0 else -math.inf
    if not math.isfinite(value):
        raise SpaceError(f"{call}: {name} must be finite, got {value}")
    return value


def _flag(call: str, name: str, value: Any) -> bool:
    if isinstance(value, bool) or (
        type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_")
    ):
        return bool(value)
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    raise SpaceError(f"{call}: {name} must be True or False, got {type(value).__name__} {value!r}")


def _snap(value: float, anchor: float, q: float, low: float | None, high: float | None) -> float:
    """Round to the nearest anchor + k*q, kept inside [low, high] when bounds exist."""
    ratio = (value - anchor) / q
    if not math.isfinite(ratio):
        return value
    k = round(ratio)
    if low is not None and high is not None:
        k = min(max(k, 0), math.floor((high - low) / q + 1e-9))
        return min(max(float(f"{anchor + k * q:.12g}"), low), high)
    return float(f"{anchor + k * q:.12g}")


class Distribution:
    """One parameter's distribution. Subclasses are frozen dataclasses."""

    kind: str = ""
    log: bool = False  # a field of the numeric distributions; choices are never on a log scale

    def sample(self, rng: Any) -> Any:
        return self.from_unit(float(rng.random()))

    def from_unit(self, u: float) -> Any:
        raise NotImplementedError

    def to_unit(self, value: Any) -> float:
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        raise NotImplementedError

    def grid(self, resolution: int | None) -> list[Any]:
        raise NotImplementedError

    @property
    def is_discrete(self) -> bool:
        return False

    @property
    def is_categorical(self) -> bool:
        """Unordered options (a choice): a model should compare its values only for equality."""
        return False

    @property
    def n_values(self) -> int | None:
        """How many distinct values it can take; None when they are not finitely many."""
        return None

    @property
    def internal_bounds(self) -> tuple[float, float] | None:
        """(lo, hi) such that u in [0, 1] maps to lo + u*(hi - lo) in the distribution's internal
        coordinate (the log of the value on a log scale), before any rounding; None where the
        unit transform is not affine (normal priors, choices)."""
        return None

    def snap_unit(self, u: Any) -> np.ndarray:
        """Vectorised: the unit coordinate of the value each point of `u` decodes to, i.e.
        `to_unit(from_unit(u))` (to 1e-12), the centre of the cell u falls in for discrete
        distributions; u clipped to [0, 1] for continuous ones (every point is its own value)."""
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        if not self.is_discrete:
            return u
        values = [self.from_unit(float(x)) for x in u.ravel()]
        units = {v: self.to_unit(v) for v in set(values)}  # points share few values: encode once
        return np.array([units[v] for v in values], dtype=float).reshape(u.shape)

    def neighbours(self, value: Any) -> list[Any]:
        """The values next to `value`: one lattice step either way for discrete numbers (inside
        the bounds), every other possible option for a choice, none for continuous ones."""
        return []

    def to_json(self) -> dict[str, Any]:
        raise NotImplementedError


def _lattice_neighbours(dist: Distribution, value: float, step: float) -> list[float]:
    """value ± step rounded like the lattice's own values, where the distribution has them."""
    out = []
    for other in (value - step, value + step):
        other = float(f"{other:.12g}")
        if dist.contains(other):
            out.append(other)
    return out


@dataclass(frozen=True)
class Float(Distribution):
    """A real in [low, high], uniform in the value or (log=True) in its logarithm.

    With `q`, values snap to low + k*q (like Optuna's `step`): quniform(0, 1, 0.25) gives
    0, 0.25, 0.5, 0.75, 1.
    """

    low: float
    high: float
    log: bool = False
    q: float | None = None
    kind: str = field(default="float", init=False, repr=False)

    def __post_init__(self) -> None:
        call = _describe(self)
        low = _number(call, "low", self.low)
        high = _number(call, "high", self.high)
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)
        object.__setattr__(self, "log", _flag(call, "log", self.log))
        if low >= high:
            raise SpaceError(f"{call}: low must be less than high (got low={low}, high={high})")
        if not math.isfinite(high - low):
            raise SpaceError(f"{call}: the range [{low}, {high}] is too wide for a float")
        if self.log and low <= 0:
            raise SpaceError(
                f"{call}: a log scale needs low > 0 (got low={low}); bounds are in real units, "
                "e.g. loguniform(1e-5, 1e-1)"
            )
        if self.q is not None:
            q = _number(call, "q", self.q)
            if q <= 0:
                raise SpaceError(f"{call}: q must be > 0 (got q={q})")
            if q > high - low:
                raise SpaceError(f"{call}: q={q} is wider than the range [{low}, {high}]")
            if not math.isfinite((high - low) / q):
                raise SpaceError(f"{call}: q={q} is too fine for the range [{low}, {high}]")
            object.__setattr__(self, "q", q)

    def _continuous(self, u: float) -> float:
        u = min(max(u, 0.0), 1.0)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return min(max(math.exp(lo + u * (hi - lo)), self.low), self.high)
        return min(max(self.low + u * (self.high - self.low), self.low), self.high)  # rounding

    def from_unit(self, u: float) -> float:
        x = self._continuous(u)
        if self.q is not None:
            return _snap(x, self.low, self.q, self.low, self.high)
        return x

    def to_unit(self, value: Any) -> float:
        x = min(max(float(value), self.low), self.high)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return (math.log(x) - lo) / (hi - lo)
        return (x - self.low) / (self.high - self.low)

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not (self.low <= value <= self.high):
            return False
        if self.q is not None:
            return abs(_snap(value, self.low, self.q, self.low, self.high) - value) <= 1e-9 * max(
                1.0, abs(value)
            )
        return True

    @property
    def is_discrete(self) -> bool:
        return self.q is not None

    @property
    def n_values(self) -> int | None:
        if self.q is None:
            return None
        return math.floor((self.high - self.low) / self.q + 1e-9) + 1

    @property
    def internal_bounds(self) -> tuple[float, float]:
        if self.log:
            return math.log(self.low), math.log(self.high)
        return self.low, self.high

    def snap_unit(self, u: Any) -> np.ndarray:
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        if self.q is None:
            return u
        lo, hi = self.internal_bounds
        x = np.exp(lo + u * (hi - lo)) if self.log else self.low + u * (self.high - self.low)
        x = np.clip(x, self.low, self.high)
        top = self.n_values - 1  # type: ignore[operator]
        k = np.clip(np.rint((x - self.low) / self.q), 0, top)
        x = np.clip(self.low + k * self.q, self.low, self.high)
        if self.log:
            return (np.log(x) - lo) / (hi - lo)
        return (x - self.low) / (self.high - self.low)

    def neighbours(self, value: Any) -> list[float]:
        return [] if self.q is None else _lattice_neighbours(self, float(value), self.q)

    def grid(self, resolution: int | None) -> list[float]:
        if self.q is not None:
            n = math.floor((self.high - self.low) / self.q + 1e-9) + 1
            lattice = (self.low + k * self.q for k in range(n))
            return [_snap(x, self.low, self.q, self.low, self.high) for x in lattice]
        if resolution is None:
            raise SpaceError(
                f"grid search cannot enumerate the continuous {_describe(self)}: list its values "
                "with hs.choice([...]), quantize it (q=...), or "
                "give the grid a resolution (hs.Grid(resolution=N) in Python, --resolution N on the command line, strategy_options: {resolution: N} in a study file)"
            )
        if resolution == 1:
            return [self._continuous(0.5)]
        return [self._continuous(i / (resolution - 1)) for i in range(resolution)]

    def to_json(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log, "q": self.q}


@dataclass(frozen=True)
class Normal(Distribution):
    """A normal prior N(mu, sigma); with log=True the value is exp of it (mu, sigma in log space,
    as in hyperopt). With `q`, values round to multiples of q."""

    mu: float
    sigma: float
    log: bool = False
    q: float | None = None
    kind: str = field(default="normal", init=False, repr=False)

    def __post_init__(self) -> None:
        call = _describe(self)
        object.__setattr__(self, "mu", _number(call, "mu", self.mu))
        sigma = _number(call, "sigma", self.sigma)
        if sigma <= 0:
            raise SpaceError(f"{call}: sigma must be > 0 (got sigma={sigma})")
        if not math.isfinite(abs(self.mu) + 10 * sigma):
            raise SpaceError(f"{call}: sigma={sigma} is too wide: values would overflow a float")
        object.__setattr__(self, "sigma", sigma)
        object.__setattr__(self, "log", _flag(call, "log", self.log))
        if self.q is not None:
            q = _number(call, "q", self.q)
            if q <= 0:
                raise SpaceError(f"{call}: q must be > 0 (got q={q})")
            object.__setattr__(self, "q", q)

    def sample(self, rng: Any) -> float:
        return self._finish(float(rng.normal(self.mu, self.sigma)))

    def _finish(self, z: float) -> float:
        x = math.exp(min(z, 700.0)) if self.log else z
        if self.q is not None:
            x = _snap(x, 0.0, self.q, None, None)
        return x

    def from_unit(self, u: float) -> float:
        u = min(max(u, _UNIT_EPS), 1.0 - _UNIT_EPS)
        return self._finish(self.mu + self.sigma * _STANDARD_NORMAL.inv_cdf(u))

    def to_unit(self, value: Any) -> float:
        x = float(value)
        if self.log:
            x = math.log(max(x, 1e-300))
        return _STANDARD_NORMAL.cdf((x - self.mu) / self.sigma)

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not math.isfinite(value) or (self.log and value < 0):
            return False
        return self.q is None or abs(_snap(value, 0.0, self.q, None, None) - value) <= 1e-9 * max(
            1.0, abs(value)
        )

    @property
    def is_discrete(self) -> bool:
        return self.q is not None

    def snap_unit(self, u: Any) -> np.ndarray:
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        if self.q is None:
            return u
        # scipy's vectorised normal CDF (lazily, as Sobol does; only model samplers call
        # this): a loop over `from_unit` costs ~4 µs a point, with thousands of points a call
        from scipy.special import ndtr, ndtri

        z = self.mu + self.sigma * ndtri(np.clip(u, _UNIT_EPS, 1.0 - _UNIT_EPS))
        x = np.exp(np.minimum(z, 700.0)) if self.log else z
        x = np.rint(x / self.q) * self.q
        t = np.log(np.maximum(x, 1e-300)) if self.log else x
        return ndtr((t - self.mu) / self.sigma)

    def neighbours(self, value: Any) -> list[float]:
        return [] if self.q is None else _lattice_neighbours(self, float(value), self.q)

    def grid(self, resolution: int | None) -> list[float]:
        if resolution is None:
            raise SpaceError(
                f"grid search cannot enumerate the unbounded {_describe(self)}: list its values "
                "with hs.choice([...]), or "
                "give the grid a resolution (hs.Grid(resolution=N) in Python, --resolution N on the command line, strategy_options: {resolution: N} in a study file) (quantiles)"
            )
        return [self.from_unit((i + 0.5) / resolution) for i in range(resolution)]

    def to_json(self) -> dict[str, Any]:
        return {"type": "normal", "mu": self.mu, "sigma": self.sigma, "log": self.log, "q": self.q}


@dataclass(frozen=True)
class Integer(Distribution):
    """An integer in [low, high] (both inclusive) on the lattice low + k*step, uniform or log."""

    low: int
    high: int
    step: int = 1
    log: bool = False
    kind: str = field(default="int", init=False, repr=False)

    def __post_init__(self) -> None:
        call = _describe(self)
        for name in ("low", "high", "step"):
            value = getattr(self, name)
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise SpaceError(
                    f"{call}: {name} must be an integer, got {type(value).__name__} {value!r}"
                )
            object.__setattr__(self, name, int(value))
        object.__setattr__(self, "log", _flag(call, "log", self.log))
        if max(abs(self.low), abs(self.high)) > _MAX_INTEGER:
            raise SpaceError(
                f"{call}: bounds must lie within ±2**53 (got low={self.low}, high={self.high})"
            )
        if self.low >= self.high:
            raise SpaceError(
                f"{call}: low must be less than high (got low={self.low}, high={self.high}); "
                "for a single value use a constant"
            )
        if self.step <= 0:
            raise SpaceError(f"{call}: step must be >= 1 (got step={self.step})")
        if self.step > self.high - self.low:
            raise SpaceError(f"{call}: step={self.step} is wider than the range")
        if self.log:
            if self.low < 1:
                raise SpaceError(f"{call}: a log scale needs low >= 1 (got low={self.low})")
            if self.step != 1:
                raise SpaceError(f"{call}: a log scale needs step=1 (got step={self.step})")

    @property
    def size(self) -> int:
        return (self.high - self.low) // self.step + 1

    def from_unit(self, u: float) -> int:
        u = min(max(u, 0.0), 1.0)
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            value = round(math.exp(lo + u * (hi - lo)))
            return min(max(value, self.low), self.high)
        k = min(int(u * self.size), self.size - 1)
        return self.low + k * self.step

    def to_unit(self, value: Any) -> float:
        value = min(max(int(value), self.low), self.high)
        if self.log:
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            return (math.log(value) - lo) / (hi - lo)
        return ((value - self.low) // self.step + 0.5) / self.size

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        return self.low <= value <= self.high and (value - self.low) % self.step == 0

    @property
    def is_discrete(self) -> bool:
        return True

    @property
    def n_values(self) -> int:
        return self.size

    @property
    def internal_bounds(self) -> tuple[float, float]:
        # each value owns a cell of equal width (in the log on a log scale)
        if self.log:
            return math.log(self.low - 0.5), math.log(self.high + 0.5)
        return self.low - self.step / 2, self.high + self.step / 2

    def snap_unit(self, u: Any) -> np.ndarray:
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        if self.log:
            lo, hi = self.internal_bounds
            v = np.clip(np.rint(np.exp(lo + u * (hi - lo))), self.low, self.high)
            return (np.log(v) - lo) / (hi - lo)
        k = np.minimum(np.floor(u * self.size), self.size - 1)
        return (k + 0.5) / self.size

    def neighbours(self, value: Any) -> list[int]:
        value = int(value)
        return [v for v in (value - self.step, value + self.step) if self.contains(v)]

    def grid(self, resolution: int | None) -> list[int]:
        """Every value; with a `resolution` smaller than the range, that many values evenly
        spread over it (geometrically for log=True), both ends included."""
        if resolution is None or resolution >= self.size:
            return list(range(self.low, self.high + 1, self.step))
        if resolution == 1:
            return [self._on_lattice((self.low + self.high) / 2)]
        if self.log:
            ratio = self.high / self.low
            spread = [self.low * ratio ** (i / (resolution - 1)) for i in range(resolution)]
        else:
            spread = [self.low + (self.high - self.low) * i / (resolution - 1) for i in range(resolution)]
        return sorted({self._on_lattice(x) for x in spread})

    def _on_lattice(self, x: float) -> int:
        k = round((x - self.low) / self.step)
        return min(self.low + k * self.step, self.high - (self.high - self.low) % self.step)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "int",
            "low": self.low,
            "high": self.high,
            "step": self.step,
            "log": self.log,
        }


@dataclass(frozen=True, eq=False)
class Choice(Distribution):
    """One of `options`, optionally weighted. Options may be constants or nested spaces.

    A choice's raw (flat) value is the index of the option; the objective gets the option itself.
    """

    options: tuple[Any, ...]
    weights: tuple[float, ...] | None = None
    kind: str = field(default="choice", init=False, repr=False)

    def __post_init__(self) -> None:
        call = "choice(...)"
        if isinstance(self.options, (str, bytes)) or not isinstance(self.options, (list, tuple)):
            raise SpaceError(
                f"{call}: options must be a list, got {type(self.options).__name__} "
                f"{self.options!r}; write hs.choice(['a', 'b'])"
            )
        if len(self.options) == 0:
            raise SpaceError(f"{call}: options is empty; give at least one option")
        object.__setattr__(self, "options", tuple(self.options))
        if self.weights is not None:
            bad = SpaceError(
                f"{call}: weights must be a list of numbers, got "
                f"{type(self.weights).__name__} {self.weights!r}"
            )
            if isinstance(self.weights, (str, bytes, Mapping, Set)):
                raise bad
            try:
                weights = list(self.weights)
            except TypeError:
                raise bad from None
            if len(weights) != len(self.options):
                raise SpaceError(
                    f"{call}: {len(weights)} weights for {len(self.options)} options; "
                    "give one weight per option"
                )
            weights = [_number(call, f"weights[{i}]", w) for i, w in enumerate(weights)]
            total = math.fsum(weights)
            if any(w < 0 for w in weights) or not 0 < total < math.inf:
                raise SpaceError(f"{call}: weights must be >= 0 with a positive sum, got {weights}")
            if abs(total - 1.0) > 1e-9:
                weights = [w / total for w in weights]
            object.__setattr__(self, "weights", tuple(weights))

    @property
    def size(self) -> int:
        return len(self.options)

    def _cumulative(self) -> list[float]:
        weights = self.weights or (1.0 / self.size,) * self.size
        out, acc = [], 0.0
        for w in weights:
            acc += w
            out.append(acc)
        return out

    def from_unit(self, u: float) -> int:
        for index, edge in enumerate(self._cumulative()):
            if u < edge:
                return index
        return self.size - 1

    def to_unit(self, value: Any) -> float:
        cumulative = self._cumulative()
        start = cumulative[value - 1] if value > 0 else 0.0
        return (start + cumulative[value]) / 2

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < self.size

    @property
    def is_discrete(self) -> bool:
        return True

    @property
    def is_categorical(self) -> bool:
        return True

    @property
    def n_values(self) -> int:
        return self.size

    @property
    def probabilities(self) -> tuple[float, ...]:
        """The prior probability of each option (the weights, or uniform)."""
        return self.weights or (1.0 / self.size,) * self.size

    @property
    def support(self) -> tuple[int, ...]:
        """The indices of the options that can be drawn (weight > 0), in order."""
        return tuple(i for i, p in enumerate(self.probabilities) if p > 0)

    def neighbours(self, value: Any) -> list[int]:
        return [i for i in self.support if i != value]

    def grid(self, resolution: int | None) -> list[int]:
        return list(range(self.size))

    def to_json(self) -> dict[str, Any]:
        from hypersearch.space.tree import node_to_json  # options are nested spaces

        return {
            "type": "choice",
            "options": [node_to_json(option) for option in self.options],
            "weights": list(self.weights) if self.weights is not None else None,
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Choice) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(repr(self.to_json()))


def _on(flag: Any) -> bool:
    """Truthiness that never raises: flags are described before they are validated."""
    try:
        return bool(flag)
    except Exception:
        return False


def _describe(dist: Distribution) -> str:
    """The constructor call a user would have written, for error messages."""
    if isinstance(dist, Float):
        name = ("q" if dist.q is not None else "") + ("loguniform" if _on(dist.log) else "uniform")
        args = f"{dist.low!r}, {dist.high!r}" + (f", q={dist.q!r}" if dist.q is not None else "")
        return f"{name}({args})"
    if isinstance(dist, Normal):
        name = ("q" if dist.q is not None else "") + ("lognormal" if _on(dist.log) else "normal")
        args = f"{dist.mu!r}, {dist.sigma!r}" + (f", q={dist.q!r}" if dist.q is not None else "")
        return f"{name}({args})"
    if isinstance(dist, Integer):
        default_step = isinstance(dist.step, int) and dist.step == 1  # may be unvalidated
        extra = (f", step={dist.step!r}" if not default_step else "") + (
            ", log=True" if _on(dist.log) else ""
        )
        return f"integer({dist.low!r}, {dist.high!r}{extra})"
    return f"choice(<{len(dist.options)} options>)" if isinstance(dist, Choice) else repr(dist)


_STORED_FIELDS = {
    "float": ("low", "high"),
    "normal": ("mu", "sigma"),
    "int": ("low", "high"),
    "choice": ("options",),
}


def distribution_from_json(data: dict[str, Any], where: str = "$") -> Distribution:
    """A distribution from its JSON form; a SpaceError names the JSON path (`where`) if invalid."""
    kind = data.get("type") if isinstance(data, dict) else None
    if not isinstance(kind, str) or kind not in _STORED_FIELDS:
        raise SpaceError(f"unknown distribution type {kind!r} at {where} in stored space")
    missing = [key for key in _STORED_FIELDS[kind] if key not in data]
    if missing:
        raise SpaceError(f"stored {kind} distribution at {where} lacks {', '.join(missing)}")
    options: tuple[Any, ...] = ()
    if kind == "choice":
        from hypersearch.space.tree import node_from_json

        if not isinstance(data["options"], list):
            raise SpaceError(f"stored choice at {where}: 'options' must be a list")
        options = tuple(
            node_from_json(option, f"{where}.options[{i}]")
            for i, option in enumerate(data["options"])
        )
    try:
        if kind == "float":
            return Float(data["low"], data["high"], bool(data.get("log")), data.get("q"))
        if kind == "normal":
            return Normal(data["mu"], data["sigma"], bool(data.get("log")), data.get("q"))
        if kind == "int":
            return Integer(data["low"], data["high"], data.get("step", 1), bool(data.get("log")))
        return Choice(options, data.get("weights"))
    except SpaceError as error:
        raise SpaceError(f"stored space at {where}: {error}") from None


# Public constructors ---------------------------------------------------------------------------


def uniform(low: float, high: float) -> Float:
    """A real uniform in [low, high]. Example: ``hs.uniform(0.0, 0.5)``."""
    return Float(low, high)


def loguniform(low: float, high: float) -> Float:
    """A real log-uniform in [low, high]; bounds in real units (low > 0): ``hs.loguniform(1e-5, 1e-1)``."""
    return Float(low, high, log=True)


def quniform(low: float, high: float, q: float) -> Float:
    """A real in [low, high] on the lattice low + k*q: ``hs.quniform(0, 1, 0.25)``."""
    return Float(low, high, q=q)


def qloguniform(low: float, high: float, q: float) -> Float:
    """Log-uniform in [low, high], then snapped to low + k*q."""
    return Float(low, high, log=True, q=q)


def normal(mu: float, sigma: float) -> Normal:
    """A normal prior N(mu, sigma), unbounded."""
    return Normal(mu, sigma)


def lognormal(mu: float, sigma: float) -> Normal:
    """exp(N(mu, sigma)): mu and sigma are in log space, as in hyperopt."""
    return Normal(mu, sigma, log=True)


def qnormal(mu: float, sigma: float, q: float) -> Normal:
    """N(mu, sigma) rounded to a multiple of q."""
    return Normal(mu, sigma, q=q)


def qlognormal(mu: float, sigma: float, q: float) -> Normal:
    """exp(N(mu, sigma)) rounded to a multiple of q."""
    return Normal(mu, sigma, log=True, q=q)


def integer(low: int, high: int, step: int = 1, log: bool = False) -> Integer:
    """An integer in [low, high], both inclusive: ``hs.integer(16, 128, log=True)``."""
    return Integer(low, high, step, log)


def choice(options: Any, weights: Any = None) -> Choice:
    """One of `options` (constants or nested spaces); `weights` bias random sampling.

    Example: ``hs.choice([{"name": "adam"}, {"name": "sgd", "momentum": hs.uniform(0, 0.99)}])``
    """
    return Choice(options, weights)
