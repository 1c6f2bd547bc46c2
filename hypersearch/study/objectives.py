"""What a study runs: a command, an importable ``module:function``, or an in-process callable.

`resolve_objective` turns what `Study.optimize` was given (or, given nothing, what the study
stored) into the callable or `hs.Command` to run, plus the settings that record it.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hypersearch.errors import HypersearchError
from hypersearch.study.schema import DEFAULT_COMMAND_METRIC

if TYPE_CHECKING:
    from hypersearch.study.definition import StudyDefinition
    from hypersearch.study.study import Study

_COMMAND_DEFAULTS = {"metric": DEFAULT_COMMAND_METRIC, "metric_agg": "last"}


def import_objective(target: str) -> Callable[..., Any]:
    """The function named by ``module:function`` (dots allowed in both parts), imported from
    the working directory too, as a script beside its study file expects."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise HypersearchError(f"objective must look like 'module:function', got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        value: Any = importlib.import_module(module_name)
    except SyntaxError as error:
        raise HypersearchError(
            f"objective {target!r}: {error.filename}:{error.lineno}: syntax error: {error.msg}"
        ) from None
    except ImportError as error:
        raise HypersearchError(f"objective {target!r}: cannot import {module_name!r}: {error}") from None
    except Exception as error:  # the module's own code failed while importing
        raise HypersearchError(
            f"objective {target!r}: importing {module_name!r} raised "
            f"{type(error).__name__}: {error}"
        ) from None
    for part in attribute.split("."):
        value = getattr(value, part, None)
    if not callable(value):
        raise HypersearchError(f"objective {target!r}: {module_name!r} has no function {attribute!r}")
    return value  # type: ignore[no-any-return]


def importable_target(function: Any) -> str | None:
    """``module:qualname`` when another process can import `function` by that name, else None
    (lambdas, closures, functions of the main script)."""
    module, qualname = getattr(function, "__module__", None), getattr(function, "__qualname__", "")
    if not module or module in ("__main__", "__mp_main__") or "<" in qualname:
        return None
    try:
        value: Any = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError):
        return None
    return f"{module}:{qualname}" if value is function else None


def _command_settings(command: Any, study: Study) -> dict[str, Any]:
    config = dict(command.to_config())
    settings = {
        "command": config.pop("command"),
        "trial_timeout": config.pop("timeout", None),
    }
    for name, default in _COMMAND_DEFAULTS.items():
        value = config.pop(name, default)
        if value != default or getattr(study.definition, name) is None:
            settings[name] = value  # a Command left at its default takes the study's metric
    settings.update(config)
    return settings


def resolve_objective(
    objective: Any, study: Study, definition: StudyDefinition | None = None
) -> tuple[Any, dict[str, Any], str | None]:
    """(what to run, the settings recording it, the in-process name or None); given no
    objective, the one `definition` (default: the study's) stores."""
    definition = definition or study.definition
    if objective is None:
        kind = definition.objective_kind
        if kind == "command":
            return definition.command_objective(), {}, None
        if kind == "python":
            return import_objective(definition.objective), {}, None
        if kind == "in_process":
            raise HypersearchError(
                f"study {study.name!r} runs the in-process objective {definition.in_process}, "
                "which only the process that started it can run (a lambda, a closure or a "
                "function of a script cannot be imported by another process). Pass the "
                "function: study.optimize(objective), or define it in an importable module "
                "and store it as objective='module:function'"
            )
        raise HypersearchError(
            f"study {study.name!r} has no stored objective (it was used through ask/tell); "
            "pass one: study.optimize(objective)"
        )
    if getattr(objective, "runs_as_command", False):
        return objective, _command_settings(objective, study), None
    if isinstance(objective, str):
        return import_objective(objective), {"objective": objective}, None
    if not callable(objective):
        raise HypersearchError(
            f"the objective must be a function, an hs.Command or 'module:function', got "
            f"{type(objective).__name__}"
        )
    if definition.objective_kind == "command":
        raise HypersearchError(
            f"study {study.name!r} runs a command ({definition.command!r}); it cannot be "
            "continued with a Python function. Use another name for a new study."
        )
    target = importable_target(objective)
    if target is not None:
        return objective, {"objective": target}, None
    name = getattr(objective, "__qualname__", None) or type(objective).__name__
    module = getattr(objective, "__module__", None) or "?"
    return objective, {}, f"{module}.{name}"
