"""`Command`: a shell command as the objective (the public ``hs.Command``).

It holds what the user chose (the template, the metric and its aggregation, stop conditions,
timeout, GPUs, folders, environment), checks it once, and round-trips through a JSON-safe dict
(`to_config` / `from_config`) so a stored study can run the same command again on resume.
"""

from __future__ import annotations

import math
import numbers
import os
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from hypersearch.execution.command.executor import CommandSpec
from hypersearch.execution.command.template import CommandTemplate
from hypersearch.execution.metric_lines import (
    METRIC_NAME_RE,
    StopCondition,
    aggregate,
    parse_stop_condition,
)

# The keys of `to_config`, each a keyword of `Command` (``command`` is the positional one).
CONFIG_KEYS = (
    "command",
    "shell",
    "metric",
    "metric_agg",
    "stop_conditions",
    "timeout",
    "grace",
    "gpus",
    "gpus_per_trial",
    "output_dir",
    "cwd",
    "env",
)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _seconds(name: str, value: Any, *, zero: bool) -> float:
    """A finite number of seconds (> 0, or >= 0 when `zero`), as a float."""
    floor = "a non-negative" if zero else "a positive"
    try:
        ok = _is_real(value) and math.isfinite(value) and (value >= 0 if zero else value > 0)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be {floor} finite number of seconds, got {value!r}")
    return float(value)


def _argv(command: Any) -> str | list[str]:
    if isinstance(command, str):
        return command
    if isinstance(command, Sequence) and not isinstance(command, bytes | bytearray):
        tokens = list(command)
        bad = [t for t in tokens if not isinstance(t, str)]
        if not bad:
            return tokens
        raise ValueError(f"command must be a string or a list of strings; {bad[0]!r} is not one")
    raise ValueError(
        f"command must be a string or a list of strings, got {type(command).__name__} {command!r}"
    )


def _path(name: str, value: Any) -> str:
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        if isinstance(text, str) and text and "\0" not in text:
            return text
    raise ValueError(f"{name} must be a non-empty folder path, got {value!r}")


def _env(env: Any) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, Mapping):
        raise ValueError(f"env must be a mapping of variable names to strings, got {env!r}")
    out: dict[str, str] = {}
    for key, value in env.items():
        if not isinstance(key, str) or not key or "=" in key or "\0" in key:
            raise ValueError(f"env: {key!r} is not an environment variable name")
        if not isinstance(value, str) or "\0" in value:
            raise ValueError(f"env: the value of {key} must be a string without NUL, got {value!r}")
        out[key] = value
    return out


def _gpus(gpus: Any) -> tuple[int, ...] | None:
    if gpus is None:
        return None
    example = f"gpus must be a list of GPU indices such as [0, 1]; got {gpus!r}"
    if isinstance(gpus, str | bytes) or not isinstance(gpus, Sequence) or not gpus:
        raise ValueError(example)
    if any(isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in gpus):
        raise ValueError(example)
    seen: set[int] = set()
    for gpu in gpus:
        if gpu in seen:
            raise ValueError(f"gpus lists GPU {gpu} twice: {list(gpus)!r}")
        seen.add(gpu)
    return tuple(int(g) for g in gpus)


def _stop_conditions(conditions: Any) -> tuple[StopCondition, ...]:
    if isinstance(conditions, str | StopCondition):  # one condition, not its letters
        conditions = [conditions]
    if not isinstance(conditions, Sequence):
        raise ValueError(
            f"stop_conditions must be a list such as ['loss > 10'], got {conditions!r}"
        )
    out = []
    for condition in conditions:
        if isinstance(condition, StopCondition):
            out.append(condition)
        elif isinstance(condition, str):
            try:
                out.append(parse_stop_condition(condition))
            except ValueError as error:
                raise ValueError(f"stop_conditions: {error}") from None
        else:
            raise ValueError(
                f"stop_conditions: {condition!r} is not a condition such as 'loss > 10'"
            )
    return tuple(out)


class Command:
    """A shell command as the objective: ``study.optimize(hs.Command("python train.py --lr :lr:"))``.

    The trial's value is `metric_agg` (last, min, max, avg) of the `metric` series the command
    prints (``val_acc=0.91``, JSON lines, Keras progress lines, or `hypersearch.report`).
    `stop_conditions` such as ``"loss > 10"`` end a trial early (PRUNED); `timeout` (seconds)
    fails it; `gpus` with `gpus_per_trial` hands each trial its own ``CUDA_VISIBLE_DEVICES``.
    `env` adds environment variables; `cwd` is where the command runs; each trial's files go to
    ``output_dir/<study>/<trial number>``. Bad arguments raise ValueError naming the argument.
    """

    runs_as_command = True  # the driver runs it with a CommandExecutor

    def __init__(
        self,
        command: str | Sequence[str],
        *,
        metric: str = "loss",
        metric_agg: str = "last",
        stop_conditions: Sequence[str | StopCondition] = (),
        timeout: float | None = None,
        grace: float = 10.0,
        gpus: Sequence[int] | None = None,
        gpus_per_trial: int = 1,
        shell: bool = False,
        output_dir: str = "hypersearch-runs",
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not isinstance(shell, bool):
            raise ValueError(f"shell must be true or false, got {shell!r}")
        self.template = CommandTemplate(_argv(command), shell=shell)  # TemplateError if empty
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"metric must be a non-empty name, got {metric!r}")
        if METRIC_NAME_RE.fullmatch(metric) is None:  # the runner's parser would refuse it
            raise ValueError(
                f"metric {metric!r} is invalid: it must match {METRIC_NAME_RE.pattern} "
                "(e.g. 'val_acc', 'keras/val_accuracy')"
            )
        if not isinstance(metric_agg, str):
            raise ValueError(f"metric_agg must be a name such as 'last', got {metric_agg!r}")
        try:
            aggregate([], metric_agg)  # raises a ValueError listing the valid ones
        except ValueError as error:
            raise ValueError(f"metric_agg: {error}") from None
        if isinstance(gpus_per_trial, bool) or not isinstance(gpus_per_trial, int):
            raise ValueError(f"gpus_per_trial must be a positive integer, got {gpus_per_trial!r}")
        if gpus_per_trial < 1:
            raise ValueError(f"gpus_per_trial must be a positive integer, got {gpus_per_trial!r}")
        self.metric, self.metric_agg = metric, metric_agg
        self.stop_conditions = _stop_conditions(stop_conditions)
        self.timeout = None if timeout is None else _seconds("timeout", timeout, zero=False)
        self.grace = _seconds("grace", grace, zero=True)
        self.gpus = _gpus(gpus)
        if self.gpus is not None and gpus_per_trial > len(self.gpus):
            raise ValueError(
                f"gpus_per_trial {gpus_per_trial} is more than the {len(self.gpus)} GPU(s) "
                f"in gpus {list(self.gpus)}"
            )
        self.gpus_per_trial = gpus_per_trial
        self.output_dir = _path("output_dir", output_dir)
        self.cwd = None if cwd is None else _path("cwd", cwd)
        self.env = _env(env)

    def spec(self, study_name: str, deadline: float | None) -> CommandSpec:
        return CommandSpec(
            template=self.template,
            metric=self.metric,
            metric_agg=self.metric_agg,
            stop_conditions=self.stop_conditions,
            timeout=self.timeout,
            deadline=deadline,
            grace=self.grace,
            gpus=self.gpus,
            gpus_per_trial=self.gpus_per_trial,
            output_root=self.output_dir,
            study_name=study_name,
            cwd=self.cwd,
            extra_env=self.env,
        )

    def to_config(self) -> dict[str, Any]:
        """JSON-safe form, stored with a study so `hypersearch resume` can run it again;
        ``Command.from_config(c.to_config()) == c``."""
        argv = self.template.argv
        return {
            # a shell command is one string (as the definition takes it back)
            "command": " ".join(argv) if self.template.shell else list(argv),
            "shell": self.template.shell,
            "metric": self.metric,
            "metric_agg": self.metric_agg,
            "stop_conditions": [str(c) for c in self.stop_conditions],
            "timeout": self.timeout,
            "grace": self.grace,
            "gpus": None if self.gpus is None else list(self.gpus),
            "gpus_per_trial": self.gpus_per_trial,
            "output_dir": self.output_dir,
            "cwd": self.cwd,
            "env": dict(self.env),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Command:
        """The Command that `to_config` described. Keys left out take their defaults (configs
        stored before ``env`` existed have none); an unknown key or a bad value raises
        ValueError naming the key."""
        if not isinstance(config, Mapping):
            raise ValueError(f"a command config must be a mapping, got {type(config).__name__}")
        unknown = [key for key in config if key not in CONFIG_KEYS]
        if unknown:
            raise ValueError(
                f"command config: unknown key {unknown[0]!r}; known keys: {', '.join(CONFIG_KEYS)}"
            )
        if "command" not in config:
            raise ValueError("command config: the key 'command' is missing")
        options = {key: value for key, value in config.items() if key != "command"}
        try:
            return cls(config["command"], **options)
        except ValueError as error:
            raise ValueError(f"command config: {error}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Command):
            return NotImplemented
        return self.to_config() == other.to_config()

    __hash__ = None  # type: ignore[assignment]  # mutable attributes: equal, not hashable

    def __repr__(self) -> str:
        return f"Command({shlex.join(self.template.argv)!r}, metric={self.metric!r})"
