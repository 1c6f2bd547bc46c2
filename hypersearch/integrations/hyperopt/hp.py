"""hyperopt's ``hp.*`` constructors, each mapped onto one of hypersearch's distributions.

hyperopt's conventions are kept: ``loguniform(label, low, high)`` takes its bounds in log space
(values in exp(low)..exp(high)), ``quniform`` and ``qloguniform`` give floats on multiples of q,
``randint(label, upper)`` gives 0..upper-1 and ``randint(label, low, high)`` low..high-1,
``uniformint`` is ``scope.int(quniform(...))``. The objective gets a choice's option itself, the
trial records (``misc["vals"]``, ``fmin``'s argmin) its index.

Differences, all at the edges of the ranges: a quantized range's ends are rounded onto the
multiples of q (hyperopt rounds each value, which gives the same set of values); ``qloguniform``
never gives 0 (hyperopt does when exp(low) < q/2: a log scale cannot reach 0); the bounds must be
numbers, not other hyperparameters.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from hypersearch.errors import SpaceError
from hypersearch.integrations.hyperopt.pyll import Call, Expr, Param
from hypersearch.space.distributions import Distribution, Float, Integer, Normal


def _describe(name: str, label: Any, args: Sequence[Any]) -> str:
    return f"hp.{name}({', '.join(repr(a) for a in (label, *args))})"


def _check_label(call: str, label: Any) -> None:
    if not isinstance(label, str) or not label:
        raise SpaceError(f"{call}: the label must be a non-empty string, got {label!r}")


def _param(name: str, label: Any, args: Sequence[Any], build: Callable[..., Distribution]) -> Param:
    call = _describe(name, label, args)
    _check_label(call, label)
    for arg in args:
        if isinstance(arg, Expr):
            raise SpaceError(
                f"{call}: bounds must be numbers; hypersearch does not support bounds that are "
                "themselves hyperparameters"
            )
    try:
        return Param(call, label, build(*args))
    except SpaceError as error:
        # drop hypersearch's own "uniform(1, 0): " prefix: the hp call says it in hyperopt's terms
        head, _, rest = str(error).partition(": ")
        raise SpaceError(f"{call}: {rest if head.endswith(')') and rest else error}") from None
    except TypeError as error:  # a bound that is not a number reaches math.exp / round
        raise SpaceError(f"{call}: bounds must be numbers ({error})") from None


def _on_q(value: float, q: float) -> float:
    """The multiple of q nearest `value`, written as briefly as a float allows (0.3, not
    0.30000000000000004)."""
    return float(f"{round(value / q) * q:.12g}")


def _number(call: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SpaceError(f"{call}: expected a number, got {value!r}")
    return float(value)


def uniform(label: str, low: float, high: float) -> Param:
    """A float uniform in [low, high]."""
    return _param("uniform", label, (low, high), Float)


def quniform(label: str, low: float, high: float, q: float) -> Param:
    """``round(uniform(low, high) / q) * q``: a float on the multiples of q."""

    def build(low: float, high: float, q: float) -> Float:
        q = _number("q", q)
        if q <= 0:
            raise SpaceError(f"q must be > 0 (got q={q})")
        return Float(_on_q(low, q), _on_q(high, q), q=q)

    return _param("quniform", label, (low, high, q), build)


def loguniform(label: str, low: float, high: float) -> Param:
    """``exp(uniform(low, high))``: bounds in log space, as in hyperopt."""
    return _param(
        "loguniform", label, (low, high), lambda lo, hi: Float(math.exp(lo), math.exp(hi), log=True)
    )


def qloguniform(label: str, low: float, high: float, q: float) -> Param:
    """``round(exp(uniform(low, high)) / q) * q``; bounds in log space. Never 0 (see above)."""

    def build(low: float, high: float, q: float) -> Float:
        q = _number("q", q)
        if q <= 0:
            raise SpaceError(f"q must be > 0 (got q={q})")
        return Float(max(_on_q(math.exp(low), q), q), _on_q(math.exp(high), q), log=True, q=q)

    return _param("qloguniform", label, (low, high, q), build)


def normal(label: str, mu: float, sigma: float) -> Param:
    """A float drawn from N(mu, sigma)."""
    return _param("normal", label, (mu, sigma), Normal)


def qnormal(label: str, mu: float, sigma: float, q: float) -> Param:
    """``round(normal(mu, sigma) / q) * q``."""
    return _param("qnormal", label, (mu, sigma, q), lambda m, s, q: Normal(m, s, q=q))


def lognormal(label: str, mu: float, sigma: float) -> Param:
    """``exp(normal(mu, sigma))``."""
    return _param("lognormal", label, (mu, sigma), lambda m, s: Normal(m, s, log=True))


def qlognormal(label: str, mu: float, sigma: float, q: float) -> Param:
    """``round(exp(normal(mu, sigma)) / q) * q``."""
    return _param("qlognormal", label, (mu, sigma, q), lambda m, s, q: Normal(m, s, log=True, q=q))


def randint(label: str, *args: int) -> Param:
    """``randint(label, upper)``: an int in 0..upper-1; ``randint(label, low, high)``: low..high-1."""
    if len(args) not in (1, 2):
        raise SpaceError(
            f"{_describe('randint', label, args)}: give randint(label, upper) or "
            "randint(label, low, high)"
        )
    bounds = (0, *args) if len(args) == 1 else args
    return _param("randint", label, args, lambda *_: Integer(bounds[0], _last(bounds[1])))


def _last(high: Any) -> Any:
    """The largest int below an exclusive upper bound (left as is when not a number: the
    distribution's own check says what is wrong with it)."""
    if isinstance(high, numbers.Real) and not isinstance(high, bool):
        return math.ceil(high) - 1
    return high


def uniformint(label: str, low: float, high: float, q: float = 1.0) -> Call:
    """``scope.int(quniform(label, low, high, q))``: the objective gets an int, the trial records
    the float, as in hyperopt."""
    return Call(int, (quniform(label, low, high, q),))


def choice(label: str, options: Sequence[Any]) -> Param:
    """One of `options` (constants or nested spaces); the objective gets the option itself."""
    call = f"hp.choice({label!r}, ...)"
    _check_label(call, label)
    if isinstance(options, (str, bytes)) or not isinstance(options, (Sequence, range)):
        raise SpaceError(f"{call}: options must be a list, got {type(options).__name__}")
    if len(options) == 0:
        raise SpaceError(f"{call}: options is empty; give at least one option")
    return Param(call, label, options=tuple(options))


def pchoice(label: str, p_options: Sequence[tuple[float, Any]]) -> Param:
    """One of the options of ``[(probability, option), ...]``, drawn with those probabilities."""
    call = f"hp.pchoice({label!r}, ...)"
    _check_label(call, label)
    try:
        pairs = [(p, option) for p, option in p_options]
    except (TypeError, ValueError):
        raise SpaceError(f"{call}: give a list of (probability, option) pairs") from None
    if not pairs:
        raise SpaceError(f"{call}: no options; give at least one (probability, option) pair")
    weights = tuple(_number(call, p) for p, _ in pairs)
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise SpaceError(f"{call}: probabilities must be >= 0 with a positive sum, got {weights}")
    return Param(call, label, options=tuple(o for _, o in pairs), weights=weights)


__all__ = [
    "choice",
    "lognormal",
    "loguniform",
    "normal",
    "pchoice",
    "qlognormal",
    "qloguniform",
    "qnormal",
    "quniform",
    "randint",
    "uniform",
    "uniformint",
]
