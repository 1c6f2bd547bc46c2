"""hyperopt's ``fmin`` as an ask/tell loop over a hypersearch study, and ``space_eval``.

Each trial: the study's sampler proposes a flat assignment (`Study.ask`), the objective gets the
hyperopt point built from it, its result becomes a hyperopt document in `Trials` and is told to
the study (`Study.tell`). Budgets, timeout, loss threshold and early stopping follow hyperopt's
fmin loop.
"""

from __future__ import annotations

import inspect
import json
import logging
import numbers
import os
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from hypersearch.errors import HypersearchError, StudyExhausted
from hypersearch.integrations._seeds import drawn_seed
from hypersearch.integrations.hyperopt.algos import sampler_for
from hypersearch.integrations.hyperopt.base import (
    JOB_STATE_DONE,
    JOB_STATE_ERROR,
    JOB_STATE_NEW,
    JOB_STATE_RUNNING,
    RESULT_ATTR,
    STATUS_OK,
    STATUS_STRINGS,
    Trials,
    _when,
    new_doc,
    spec_from_misc,
    validate_loss_threshold,
    validate_timeout,
)
from hypersearch.integrations.hyperopt.exceptions import (
    InvalidAnnotatedParameter,
    InvalidLoss,
    InvalidResultStatus,
)
from hypersearch.integrations.hyperopt.pyll import Expr, evaluate
from hypersearch.integrations.hyperopt.space import HpSpace, as_hp_space

log = logging.getLogger("hypersearch.hyperopt")


def fmin(
    fn: Callable[..., Any],
    space: Any,
    algo: Any = None,
    max_evals: int | None = None,
    timeout: float | None = None,
    loss_threshold: float | None = None,
    trials: Trials | None = None,
    rstate: Any = None,
    allow_trials_fmin: bool = True,
    pass_expr_memo_ctrl: Any = None,
    catch_eval_exceptions: bool = False,
    verbose: bool = True,
    return_argmin: bool = True,
    points_to_evaluate: Sequence[Mapping[str, Any]] | None = None,
    max_queue_len: int = 1,
    show_progressbar: bool = True,
    early_stop_fn: Callable[..., Any] | None = None,
    trials_save_file: str = "",
) -> Any:
    """Minimise `fn` over `space`, as hyperopt's fmin; returns the argmin ``{label: value}``
    (a choice's value is its option index), or with ``return_argmin=False`` the best point
    itself (``space_eval(space, argmin)``).

    Differs from hyperopt where hyperopt's way cannot hold here: ``pass_expr_memo_ctrl`` is
    refused (there is no pyll graph); ``trials_save_file`` names a SQLite file that the study
    is saved to as each trial finishes (no pickle); ``points_to_evaluate`` is evaluated first
    even when `trials` is given (hyperopt ignores it then); `max_queue_len`,
    `allow_trials_fmin` and `verbose` are accepted and change nothing (trials run one by one
    in this process).
    """
    if pass_expr_memo_ctrl:
        raise NotImplementedError(
            "pass_expr_memo_ctrl=True is not supported by hypersearch.hyperopt: it hands the "
            "objective hyperopt's pyll graph, memo and Ctrl, which do not exist here; take the "
            "point as the objective's argument"
        )
    del allow_trials_fmin, verbose  # nothing to switch: one process, one loop, no pyll
    if not callable(fn):
        raise HypersearchError(f"fmin: fn must be callable, got {type(fn).__name__} {fn!r}")
    max_evals = _check_max_evals(max_evals)
    validate_timeout(timeout)
    validate_loss_threshold(loss_threshold)
    if isinstance(max_queue_len, bool) or not isinstance(max_queue_len, numbers.Integral) or max_queue_len < 1:
        raise HypersearchError(f"fmin: max_queue_len must be a positive integer, got {max_queue_len!r}")
    if early_stop_fn is not None and not callable(early_stop_fn):
        raise HypersearchError(f"fmin: early_stop_fn must be callable, got {early_stop_fn!r}")
    if isinstance(space, str) and space == "annotated":
        space, fn = _annotated(fn)
    trials = _trials_for(trials, trials_save_file)
    if algo is None:
        from hypersearch.integrations.hyperopt import tpe

        algo = tpe.suggest
        log.warning("TPE is being used as the default algorithm.")
    hp_space = as_hp_space(space)
    study = _study_for(trials, hp_space, sampler_for(algo), _seed(rstate), max_evals)
    if points_to_evaluate:
        _insert_points(trials, points_to_evaluate)
    queued = _queue_inserted(trials, hp_space, study)
    trials.refresh()
    loop = _Loop(fn, hp_space, trials, study, catch_eval_exceptions)
    loop.run(max(max_evals - len(trials), 0), queued, timeout, loss_threshold, early_stop_fn,
             show_progressbar)
    if trials._storage_url is not None:  # what other processes sharing the study ran, too
        trials._reload()
        trials.refresh()
    if return_argmin:
        if not trials.trials:
            raise HypersearchError("There are no evaluation tasks, cannot return argmin of task losses.")
        return trials.argmin
    if trials.trials:
        return space_eval(hp_space.expr, trials.argmin)
    return None


def space_eval(space: Any, hp_assignment: Mapping[str, Any]) -> Any:
    """The point of `space` for ``{label: value}`` (a choice's value is its option index), as the
    objective receives it; e.g. ``space_eval(space, fmin(...))``."""
    if isinstance(space, HpSpace):
        space = space.expr
    return evaluate(space, hp_assignment)


def generate_trials_to_calculate(points: Sequence[Mapping[str, Any]]) -> Trials:
    """A Trials holding `points` (``[{label: value}, ...]``) as new trials, which the next fmin
    with it evaluates before any suggestion."""
    trials = Trials()
    _insert_points(trials, points)
    return trials


# -- setting up ----------------------------------------------------------------------------------


def _check_max_evals(max_evals: Any) -> int:
    if max_evals is None:
        return sys.maxsize
    if isinstance(max_evals, float) and max_evals.is_integer():
        max_evals = int(max_evals)
    if isinstance(max_evals, bool) or not isinstance(max_evals, numbers.Integral) or max_evals < 0:
        raise HypersearchError(
            f"fmin: max_evals must be a non-negative integer or None, got {max_evals!r}"
        )
    return int(max_evals)


def _annotated(fn: Callable[..., Any]) -> tuple[dict[str, Any], Callable[[Mapping[str, Any]], Any]]:
    """``space="annotated"``: the space is the objective's argument annotations."""
    try:  # string annotations too (``from __future__ import annotations`` in the user's module)
        annotations = inspect.get_annotations(fn, eval_str=True)
    except Exception:
        annotations = inspect.getfullargspec(fn).annotations
    annotations = {k: v for k, v in annotations.items() if k != "return"}
    for name, node in annotations.items():
        if not isinstance(node, Expr):
            raise InvalidAnnotatedParameter(
                f'space="annotated": argument {name!r} of {getattr(fn, "__name__", fn)} is '
                f"annotated with {node!r}; annotate every argument with an hp.* node, e.g. "
                "def fn(x: hp.uniform('x', -1, 1)): ..."
            )
    return annotations, lambda point: fn(**point)


def _trials_for(trials: Any, save_file: str) -> Trials:
    if trials is not None:
        if not isinstance(trials, Trials):
            raise HypersearchError(
                f"fmin: trials must be a hypersearch.hyperopt.Trials, got {type(trials).__module__}."
                f"{type(trials).__name__} (hyperopt's own Trials, MongoTrials and SparkTrials do "
                "not run here; Trials(storage='sqlite:///file.db') persists)"
            )
        if save_file:
            raise HypersearchError(
                "fmin: trials_save_file with a given trials: hypersearch does not pickle Trials; "
                f"use Trials(storage='sqlite:///{save_file}') to keep every trial as it finishes"
            )
        return trials
    if save_file:
        return Trials(storage=f"sqlite:///{save_file}")
    return Trials()


def _seed(rstate: Any) -> int | None:
    """The study's seed from hyperopt's rstate (a Generator or a legacy RandomState), else from
    $HYPEROPT_FMIN_SEED as hyperopt does; None for a random one."""
    if rstate is None:
        env = os.environ.get("HYPEROPT_FMIN_SEED", "")
        if not env:
            return None
        rstate = np.random.default_rng(int(env))
    seed = drawn_seed(rstate)
    if seed is not None:
        return seed
    raise HypersearchError(
        f"fmin: rstate must be a numpy.random.Generator (np.random.default_rng(seed)) or a "
        f"RandomState, got {type(rstate).__name__}"
    )


def _study_for(trials: Trials, hp_space: HpSpace, sampler: Any, seed: int | None,
               max_evals: int) -> Any:
    """The study behind `trials`, created on first use, else resumed with this algo. In a
    database, `max_evals` is the study's budget: fmin processes on several machines sharing
    one Trials(storage=..., name=...) run max_evals evaluations between them, as MongoTrials
    workers did."""
    from hypersearch.study import create_study

    storage = trials._open_storage()
    settings: dict[str, Any] = {"name": trials._name, "storage": storage, "strategy": sampler}
    if trials._storage_url is not None and max_evals > 0:
        settings["max_trials"] = max_evals
    if seed is not None and storage.get_study(trials._name) is None:
        settings["seed"] = seed  # a stored study keeps its seed: a resume continues its stream
    trials.study = create_study(hp_space.space, **settings)
    return trials.study


def _insert_points(trials: Trials, points: Sequence[Mapping[str, Any]]) -> None:
    if isinstance(points, Mapping) or not isinstance(points, Sequence) or not all(
        isinstance(p, Mapping) for p in points
    ):
        raise HypersearchError(
            "points_to_evaluate must be a list of dicts {label: value}, e.g. [{'x': 0.0}], got "
            f"{points!r}"
        )
    tids = trials.new_trial_ids(len(points))
    trials.insert_trial_docs(
        [new_doc(tid, dict(point), list(point), trials._exp_key) for tid, point in zip(tids, points, strict=True)]
    )


def _queue_inserted(trials: Trials, hp_space: HpSpace, study: Any) -> dict[int, dict[str, Any]]:
    """Queue in the study the documents inserted by hand (new points to evaluate, finished trials
    to learn from): ``{study trial number: document}``."""
    queued = {}
    for doc in trials._dynamic_trials:
        if doc["tid"] in trials._told or doc["state"] not in (JOB_STATE_NEW, JOB_STATE_DONE):
            continue
        flat = hp_space.flat(spec_from_misc(doc["misc"]), where=f"trial {doc['tid']!r}")
        _rewrite_vals(doc, hp_space, flat)
        # as given, even outside the space (hyperopt evaluates such points; Study.enqueue checks)
        queued[study.storage.enqueue(study.id, flat)] = doc
        trials._told.add(doc["tid"])
    return queued


def _rewrite_vals(doc: dict[str, Any], hp_space: HpSpace, flat: Mapping[str, Any]) -> None:
    vals = hp_space.vals(flat)
    doc["misc"]["idxs"] = {k: [doc["tid"]] if k in vals else [] for k in hp_space.labels}
    doc["misc"]["vals"] = {k: [vals[k]] if k in vals else [] for k in hp_space.labels}


# -- the loop ------------------------------------------------------------------------------------


class _Loop:
    """One fmin call's trials, one at a time."""

    def __init__(self, fn: Callable[..., Any], hp_space: HpSpace, trials: Trials, study: Any, catch: bool) -> None:
        self.fn, self.hp_space, self.trials, self.study, self.catch = fn, hp_space, trials, study, catch

    def run(self, n_suggest: int, queued: dict[int, dict[str, Any]], timeout: float | None,
            loss_threshold: float | None, early_stop_fn: Callable[..., Any] | None,
            show_progressbar: bool) -> None:
        start = time.monotonic()
        best_loss, stop_args, suggested = float("inf"), [], 0
        n_new = sum(1 for d in queued.values() if d["state"] == JOB_STATE_NEW)
        progress = _Progress(len(self.trials) - n_new, len(self.trials) + n_suggest, show_progressbar)
        try:
            while any(d["state"] == JOB_STATE_NEW for d in queued.values()) or suggested < n_suggest:
                if timeout is not None and time.monotonic() - start >= timeout:
                    break
                if loss_threshold is not None and best_loss < loss_threshold:
                    break
                try:
                    trial = self.study.ask()
                except StudyExhausted:
                    break
                doc = queued.pop(trial.number, None)
                if doc is not None and doc["state"] == JOB_STATE_DONE:
                    self._tell(trial, doc)  # a finished trial inserted by hand: learn, no run
                    continue
                if doc is None:
                    suggested += 1
                    vals = self.hp_space.vals(trial.flat_params)
                    doc = new_doc(trial.number, vals, self.hp_space.labels, self.trials._exp_key)
                    self.trials._insert_trial_docs([doc])
                    self.trials._told.add(doc["tid"])
                self._evaluate(trial, doc)
                self.trials.refresh()
                losses = [x for x in self.trials.losses() if x is not None and not np.isnan(x)]
                if losses:
                    best_loss = min(losses)
                progress.update(len(self.trials), best_loss)
                if early_stop_fn is not None:
                    stop, stop_args = early_stop_fn(self.trials, *stop_args)
                    if stop:
                        log.info("Early stop triggered. Stopping iterations as condition is reach.")
                        break
        finally:
            progress.close()
            self.trials.refresh()

    def _evaluate(self, trial: Any, doc: dict[str, Any]) -> None:
        now = _when(time.time())
        doc.update(state=JOB_STATE_RUNNING, book_time=now, refresh_time=now)
        try:
            result = _result_dict(self.fn(self.hp_space.point(spec_from_misc(doc["misc"]))))
        except Exception as error:
            doc.update(state=JOB_STATE_ERROR, refresh_time=_when(time.time()))
            doc["misc"]["error"] = (str(type(error)), str(error))
            self.study.tell(trial, state="fail", error="".join(
                traceback.format_exception_only(error)).strip()[-2000:])
            log.error("job exception: %s", error)
            if not self.catch:
                self.trials.refresh()
                raise
            return
        for key, value in dict(result.pop("attachments", None) or {}).items():
            self.trials.trial_attachments(doc)[key] = value
        doc.update(state=JOB_STATE_DONE, result=result, refresh_time=_when(time.time()))
        self._tell(trial, doc)

    def _tell(self, trial: Any, doc: Mapping[str, Any]) -> None:
        """Tell the study a finished document's result: its numbers as metrics, its JSON-safe
        keys as a user attribute (what a reload shows); the rest stays in memory."""
        result = doc["result"]
        trial.set_user_attr(RESULT_ATTR, {k: v for k, v in result.items() if isinstance(k, str) and _jsonable(v)})
        if result.get("status") != STATUS_OK or not isinstance(result.get("loss"), numbers.Real):
            self.study.tell(trial, state="fail")
            return
        numbers_only = {k: v for k, v in result.items() if _is_number(v) and isinstance(k, str)}
        self.study.tell(trial, {**numbers_only, "loss": float(result["loss"])})


def _result_dict(value: Any) -> dict[str, Any]:
    """hyperopt's rules for what the objective returns: a number is the loss; a dict needs a
    'status' in STATUS_STRINGS and, when 'ok', a 'loss' that converts to float."""
    if isinstance(value, numbers.Real):
        return {"loss": float(value), "status": STATUS_OK}
    if not isinstance(value, Mapping):
        raise InvalidResultStatus(
            f"the objective returned {type(value).__name__} {value!r}: return a number (the loss) "
            "or a dict {'loss': ..., 'status': STATUS_OK}"
        )
    result = dict(value)
    if result.get("status") not in STATUS_STRINGS:
        raise InvalidResultStatus(
            f"the objective's result needs a 'status' in {STATUS_STRINGS}, got {result!r}"
        )
    if result["status"] == STATUS_OK:
        try:
            result["loss"] = float(result["loss"])
        except (TypeError, KeyError, ValueError):
            raise InvalidLoss(
                f"a result with status 'ok' needs a numeric 'loss', got {result!r}"
            ) from None
    return result


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and bool(np.isfinite(value))


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


class _Progress:
    """A one-line progress display on a terminal's stderr (hyperopt shows a tqdm bar)."""

    def __init__(self, done: int, total: int, enabled: Any) -> None:
        self.total = total
        self.enabled = bool(enabled) and sys.stderr.isatty()
        self.shown = False
        self.update(done, float("inf"))

    def update(self, done: int, best: float) -> None:
        if not self.enabled:
            return
        total = "?" if self.total >= sys.maxsize // 2 else self.total
        best_text = "" if best == float("inf") else f", best loss: {best:.6g}"
        sys.stderr.write(f"\r{done}/{total} trials{best_text}   ")
        sys.stderr.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            sys.stderr.write("\n")


__all__ = ["fmin", "generate_trials_to_calculate", "space_eval"]
