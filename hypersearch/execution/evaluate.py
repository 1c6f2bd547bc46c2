"""Calling an objective once and turning what happened into an Outcome (shared by every executor)."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from typing import Any

from hypersearch.errors import HypersearchError, StorageError, TrialPruned
from hypersearch.execution.infrastructure import error_problem, on_this_host
from hypersearch.trial import FailureReason, Outcome, Trial, TrialState, parse_result

MAX_DETAIL = 20_000

# How the objective is called: objective(params), objective(params, trial), objective(trial)
PARAMS, PARAMS_TRIAL, TRIAL = "params", "params_trial", "trial"


def objective_style(objective: Callable[..., Any], define_by_run: bool) -> str:
    """Decide the calling convention from the objective's signature; clear error if none fits."""
    if not callable(objective):
        raise HypersearchError(f"the objective must be callable, got {type(objective).__name__}")
    try:
        signature = inspect.signature(objective)
    except (TypeError, ValueError):  # builtins and some C callables
        return TRIAL if define_by_run else PARAMS
    kinds = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = [p for p in kinds if p.default is p.empty]
    var_args = any(p.kind is p.VAR_POSITIONAL for p in signature.parameters.values())
    name = getattr(objective, "__name__", "objective")
    if len(required) > (1 if define_by_run else 2):
        expected = "(trial)" if define_by_run else "(params) or (params, trial)"
        raise HypersearchError(
            f"{name}{signature} needs {len(required)} arguments; hypersearch calls it as "
            f"{name}{expected}"
        )
    if not kinds and not var_args:
        raise HypersearchError(
            f"{name}{signature} takes no arguments; it must accept the parameters: "
            f"def {name}(params): ..."
        )
    if define_by_run:
        return TRIAL
    return PARAMS_TRIAL if len(required) == 2 or (len(required) < 2 and var_args) else PARAMS


def call_objective(objective: Callable[..., Any], style: str, trial: Trial) -> Any:
    if style == TRIAL:
        return objective(trial)
    if style == PARAMS_TRIAL:
        return objective(trial.params, trial)
    return objective(trial.params)


def evaluate(
    objective: Callable[..., Any], style: str, trial: Trial, metric: str | None
) -> Outcome:
    """Run the objective on one trial. Exceptions become FAILED outcomes with the traceback;
    TrialPruned becomes PRUNED; KeyboardInterrupt and SystemExit propagate."""
    try:
        result = call_objective(objective, style, trial)
    except TrialPruned as pruned:
        return Outcome(TrialState.PRUNED, failure_detail=str(pruned) or None)
    except StorageError as error:  # the database failed under the objective: not its fault
        return Outcome(
            TrialState.FAILED,
            failure_reason=FailureReason.INFRASTRUCTURE.value,
            failure_detail=f"storage failed while the objective ran: {error}",
        )
    except Exception as error:  # the objective's own failure: recorded, the study goes on
        detail = traceback.format_exc()
        if len(detail) > MAX_DETAIL:
            detail = detail[: MAX_DETAIL // 2] + "\n...\n" + detail[-MAX_DETAIL // 2 :]
        problem = error_problem(error)  # a full disk, no GPU: this host's, run it elsewhere
        return Outcome(
            TrialState.FAILED,
            failure_reason=FailureReason.ERROR.value if problem is None
            else FailureReason.INFRASTRUCTURE.value,
            failure_detail=f"{type(error).__name__}: {error}\n"
            + ("" if problem is None else on_this_host(problem) + "\n") + f"\n{detail}",
        )
    return parse_result(result, metric)
