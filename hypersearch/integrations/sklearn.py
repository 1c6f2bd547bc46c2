"""scikit-learn's hyperparameter search, run by hypersearch: `SearchCV`.

A drop-in for ``GridSearchCV`` / ``RandomizedSearchCV`` built on scikit-learn's
``BaseSearchCV``: the cross-validation, scoring, refit, ``cv_results_`` and delegation
(``predict``, ``score``...) are scikit-learn's own; which candidates are tried is decided by a
hypersearch study (TPE by default), told each candidate's mean test score.

Example::

    import hypersearch as hs
    from hypersearch.sklearn import SearchCV

    space = {"clf__C": hs.loguniform(1e-3, 1e3), "clf__kernel": hs.choice(["rbf", "linear"])}
    search = SearchCV(make_pipeline(StandardScaler(), SVC()), space, n_trials=40, cv=5)
    search.fit(X, y).best_params_

Spaces: hypersearch's language (a dict of ``hs.*`` distributions, or an ``hs.Space``), or
scikit-learn's (``param_grid`` / ``param_distributions``: lists become ``hs.choice``; frozen
``scipy.stats`` ``uniform``, ``loguniform``/``reciprocal``, ``randint`` and ``norm`` become
``hs.uniform``, ``hs.loguniform``, ``hs.integer`` and ``hs.normal`` exactly; any other scipy
distribution is refused with a suggestion), also mixed in one dict. A list of dicts is a
choice between sub-grids, as in ``GridSearchCV``. Keys of a dict are sorted, as
``ParameterGrid`` does, so ``strategy="grid"`` walks candidates in ``GridSearchCV``'s order.

With ``scheduler=`` ("median", "asha"... or an ``hs.schedulers`` object) folds run one after
another per candidate: after fold k the candidate reports step k (k = 1..n_splits) with
``score`` = the mean of its first k fold scores; a candidate the scheduler stops ends PRUNED
in the study and stays in ``cv_results_`` with its computed folds (the others NaN, so its
mean is NaN and it ranks, tied, after every complete candidate) and
``cv_results_["pruned"]`` True.
"""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import sklearn.model_selection._search as sklearn_search
from joblib import effective_n_jobs
from sklearn.exceptions import FitFailedWarning
from sklearn.model_selection._search import BaseSearchCV
from sklearn.utils import get_tags
from sklearn.utils._param_validation import Interval, StrOptions

from hypersearch.errors import HypersearchError, StudyExhausted
from hypersearch.integrations._seeds import drawn_seed
from hypersearch.samplers import ALIASES, STRATEGIES, Sampler
from hypersearch.schedulers import Scheduler, schedulers
from hypersearch.space import Choice, Distribution, Float, Integer, Normal, Space
from hypersearch.storage import Storage
from hypersearch.study.study import Study, create_study
from hypersearch.trial import Decision, Trial

METRIC = "score"  # the study's metric: the mean test score of the refit metric, maximised


@dataclass(frozen=True)
class _Literal:
    """A value from a scikit-learn list kept whole: a dict or tuple there is one value, not a
    nested space (a ``class_weight`` dict may have int keys, which a space refuses)."""

    value: Any

    def __repr__(self) -> str:
        return repr(self.value)  # what the stored space shows


def _literal(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping | list | tuple | np.ndarray) or (
        isinstance(value, float) and not math.isfinite(value)
    ):
        return _Literal(value)
    return value


def _from_scipy(name: str, frozen: Any) -> Any:
    """A frozen scipy.stats distribution as the same hypersearch distribution."""
    kind = getattr(getattr(frozen, "dist", None), "name", type(frozen).__name__)
    low, high = (float(b) for b in frozen.support())
    if kind == "uniform":
        return Float(low, high)
    if kind in ("loguniform", "reciprocal"):
        # loc shifts a log-uniform off its log scale; the median tells (public API only)
        if low > 0 and abs(float(frozen.cdf(math.sqrt(low * high))) - 0.5) < 1e-9:
            return Float(low, high, log=True)
        raise ValueError(
            f"parameter {name!r}: scipy.stats.{kind} with loc != 0 is not log-uniform; "
            "give hs.loguniform(low, high) instead"
        )
    if kind == "randint":
        return int(low) if low == high else Integer(int(low), int(high))
    if kind == "norm":
        return Normal(float(frozen.mean()), float(frozen.std()))
    lo, hi = (float(frozen.ppf(q)) for q in (0.01, 0.99))
    raise ValueError(
        f"parameter {name!r}: scipy.stats.{kind} has no hypersearch equivalent (supported: "
        f"uniform, loguniform/reciprocal, randint, norm); write the prior you mean, e.g. "
        f"hs.uniform({lo:.6g}, {hi:.6g}) or hs.loguniform(...) for its 1%-99% range"
    )


def _dimension(name: str, value: Any) -> Any:
    """One entry of a space dict: hypersearch's as is, scikit-learn's converted."""
    if isinstance(value, Distribution | Space):
        return value.tree if isinstance(value, Space) else value
    if hasattr(value, "rvs"):
        if hasattr(value, "dist") and hasattr(value, "support"):
            return _from_scipy(name, value)
        raise ValueError(
            f"parameter {name!r}: {type(value).__name__} has an rvs method but is not a frozen "
            "scipy.stats distribution; give a list or an hs.* distribution"
        )
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise ValueError(f"parameter {name!r}: an array of values must be 1-dimensional")
        value = value.tolist()
    if isinstance(value, list | tuple):
        if not value:
            raise ValueError(f"parameter {name!r}: the list of values is empty")
        return Choice([_literal(v) for v in value])
    return value  # a constant, as in hypersearch's language


def _space_dict(grid: Mapping[str, Any]) -> dict[str, Any]:
    for key in grid:
        if not isinstance(key, str):
            raise TypeError(f"parameter names must be strings, got {key!r}")
    # sorted, as ParameterGrid: strategy="grid" then walks GridSearchCV's order (and ties)
    return {key: _dimension(key, grid[key]) for key in sorted(grid)}


def as_search_space(param_space: Any) -> Space:
    """The `Space` searched for `param_space` (see the module docstring).

    Example: ``as_search_space({"C": [0.1, 1, 10]})`` is ``Space({"C": hs.choice([0.1, 1, 10])})``.
    """
    if isinstance(param_space, Space):
        space = param_space
    elif isinstance(param_space, Mapping):
        space = Space(_space_dict(param_space))
    elif isinstance(param_space, list | tuple) and all(isinstance(g, Mapping) for g in param_space):
        if not param_space:
            raise ValueError("param_space is an empty list; give at least one dict")
        grids = [_space_dict(g) for g in param_space]
        space = Space(grids[0] if len(grids) == 1 else Choice(grids))
    else:
        raise TypeError(
            "param_space must be a dict {name: values or distribution}, a list of such dicts "
            f"or an hs.Space, got {type(param_space).__name__}"
        )
    if not space.names:
        raise ValueError(
            "param_space has no parameter to search: every value in it is a fixed constant; "
            "give each parameter a list of values (as GridSearchCV takes), a scipy.stats "
            "distribution or an hs distribution, e.g. {'svc__C': [0.1, 1, 10]}"
        )
    return space


def _study_seed(random_state: Any) -> int | None:
    """random_state as the study's seed: an int is the seed; a RandomState or Generator gives
    one (so two fits with the same generator differ, as in scikit-learn)."""
    if isinstance(random_state, numbers.Integral):
        return int(random_state)
    return drawn_seed(random_state)


_searching = threading.local()  # .ids: the SearchCVs running batches in this thread
_install_lock = threading.Lock()


def _searches() -> set[int]:
    if not hasattr(_searching, "ids"):
        _searching.ids = set()
    return _searching.ids  # type: ignore[no-any-return]


def _warn_not_raise_in_batches() -> None:
    """BaseSearchCV raises when every fit of one evaluate_candidates call fails: right when
    a call holds the whole grid, wrong when it holds one candidate of many (that candidate
    must get error_score, as in GridSearchCV). So for a SearchCV's own calls only (the
    caller's ``self``; a GridSearchCV, nested or not, gets the original) that case warns,
    and `_run_search` raises if every candidate of the fit failed. Installed once."""
    with _install_lock:
        original = getattr(sklearn_search, "_warn_or_raise_about_fit_failures", None)
        if original is None or getattr(original, "_hypersearch", False):
            return

        def warn_or_raise(results: Any, error_score: Any) -> None:
            try:
                original(results, error_score)
            except ValueError as error:
                caller = sys._getframe(1).f_locals.get("self")  # evaluate_candidates's search
                if id(caller) not in _searches() or "fits failed" not in str(error):
                    raise
                warnings.warn(str(error), FitFailedWarning, stacklevel=2)

        warn_or_raise._hypersearch = True  # type: ignore[attr-defined]
        sklearn_search._warn_or_raise_about_fit_failures = warn_or_raise


class _OneFold:
    """A splitter giving only fold `index` of `folds` (made once per fit, so a shuffling
    splitter without a seed still gives every fold of one partition)."""

    def __init__(self, folds: _Folds, index: int) -> None:
        self.folds, self.index = folds, index

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return 1

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[Any]:
        if self.folds.splits is None:
            self.folds.splits = list(self.folds.cv.split(X, y, groups))
        yield self.folds.splits[self.index]


@dataclass
class _Folds:
    cv: Any
    splits: list[Any] | None = None


class SearchCV(BaseSearchCV):
    """Cross-validated search over `param_space`, the candidates proposed by hypersearch.

    Parameters are GridSearchCV's (``scoring``, ``refit``, ``cv``, ``n_jobs``, ``error_score``,
    ``return_train_score``, ``verbose``, ``pre_dispatch``) and:

    - ``param_space``: hypersearch's space language or scikit-learn's grid / distributions;
    - ``strategy``: "tpe", "gp", "random", "sobol", "grid" or a sampler (``hs.TPE(...)``);
    - ``n_trials``: candidates tried in one ``fit`` (None: the whole grid, strategy "grid"
      only; a grid smaller than `n_trials` ends with its last point);
    - ``scheduler``: prune candidates across folds (see the module docstring);
    - ``storage``, ``name``: where the study lives (None: in memory) and its name; a fit on
      a stored study of the same name continues it (the strategy sees its earlier trials;
      ``cv_results_`` shows this fit's candidates);
    - ``random_state``: the study's seed.

    After ``fit``: everything GridSearchCV gives, and ``study_`` (the hypersearch Study;
    not pickled with the estimator). Batches of ``n_jobs`` candidates are proposed at once
    (one at a time with ``n_jobs=1``); each candidate is a trial told its mean test score,
    FAILED when the score is NaN (a fit failed with ``error_score=np.nan``). A numeric
    `error_score` is a score, as in GridSearchCV, and is told as one.

    Example::

        search = SearchCV(SVC(), {"C": hs.loguniform(1e-3, 1e3)}, n_trials=30).fit(X, y)
        search.best_params_, search.best_score_
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseSearchCV._parameter_constraints,
        "param_space": [dict, list, tuple, Space],
        "strategy": [StrOptions({*STRATEGIES, *ALIASES}), Sampler],
        "n_trials": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "scheduler": [StrOptions(set(schedulers())), Scheduler, None],
        "storage": [str, Storage, None],
        "name": [str, None],
        "random_state": ["random_state", np.random.Generator],
    }

    def __init__(
        self,
        estimator: Any,
        param_space: Any,
        *,
        strategy: str | Sampler = "tpe",
        n_trials: int | None = 50,
        cv: Any = 5,
        scoring: Any = None,
        refit: bool | str | Callable[..., int] = True,
        n_jobs: int | None = 1,
        scheduler: str | Scheduler | None = None,
        storage: Any = None,
        name: str | None = None,
        random_state: Any = None,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        verbose: int = 0,
        pre_dispatch: int | str = "2*n_jobs",
    ) -> None:
        super().__init__(
            estimator=estimator,
            scoring=scoring,
            n_jobs=n_jobs,
            refit=refit,
            cv=cv,
            verbose=verbose,
            pre_dispatch=pre_dispatch,
            error_score=error_score,
            return_train_score=return_train_score,
        )
        self.param_space = param_space
        self.strategy = strategy
        self.n_trials = n_trials
        self.scheduler = scheduler
        self.storage = storage
        self.name = name
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # BaseSearchCV copies the estimator's classifier/regressor tags but not these: the
        # data goes to the estimator as it is, so a 2-D y (Ridge) or a NaN (a tree) is
        # accepted exactly when the estimator accepts it
        inner = get_tags(self.estimator)
        tags.target_tags.multi_output = inner.target_tags.multi_output
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        return tags

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__())
        state.pop("study_", None)  # a handle on storage (locks, connections), not a result
        return state

    # -- the search ----------------------------------------------------------------------------

    def _study(self) -> Study:
        space = as_search_space(self.param_space)
        if self.n_trials is None and not (
            self.strategy == "grid" or getattr(self.strategy, "name", None) == "grid"
        ):
            raise ValueError(
                "n_trials=None (the whole grid) needs strategy='grid'; give a number of trials"
            )
        settings: dict[str, Any] = {}
        if self.scheduler is not None:
            settings["scheduler"] = self.scheduler  # stored as its name and options
        seed = _study_seed(self.random_state)
        if seed is not None:
            settings["seed"] = seed
        return create_study(
            space,
            name=self.name,
            storage="memory" if self.storage is None else self.storage,
            direction="maximize",
            metric=METRIC,
            strategy=copy.deepcopy(self.strategy),  # a fresh sampler per fit (Sampler.__reduce__)
            **settings,
        )

    def _ask(self, study: Study, n: int) -> list[Trial]:
        trials: list[Trial] = []
        try:
            while len(trials) < n:
                trials.append(study.ask())
        except StudyExhausted:  # the grid is done (or its rest is taken by other workers)
            pass
        return trials

    def _candidate(self, trial: Trial) -> dict[str, Any]:
        params = trial.params
        return {k: v.value if isinstance(v, _Literal) else v for k, v in params.items()}

    def _run_search(self, evaluate_candidates: Callable[..., dict[str, Any]]) -> None:
        study = self._study()
        self.study_ = study
        batch = effective_n_jobs(self.n_jobs)  # as many candidates as fit at once
        pending: list[Trial] = []
        done = 0
        _warn_not_raise_in_batches()
        if self.error_score != "raise":
            _searches().add(id(self))
        self._n_failed = 0
        try:
            while self.n_trials is None or done < self.n_trials:
                wanted = batch if self.n_trials is None else min(batch, self.n_trials - done)
                pending = self._ask(study, wanted)
                if not pending:
                    break
                if self.scheduler is None:
                    self._evaluate(study, pending, evaluate_candidates)
                else:
                    self._evaluate_by_fold(study, pending, evaluate_candidates)
                done += len(pending)
                pending = []
            if done == 0:
                raise ValueError(
                    f"study {study.name!r} has no candidate left to try (its grid is done); "
                    "give another name for a new search"
                )
            if self._n_failed == done:  # GridSearchCV's error when nothing could be fitted
                raise ValueError(
                    f"All the fits of the {done} candidates failed. It is very likely that your "
                    "model is misconfigured. You can try to debug the error by setting "
                    "error_score='raise' (the FitFailedWarnings above have the details)."
                )
        except BaseException:
            for trial in pending:  # an error raised (error_score='raise'): theirs
                with contextlib.suppress(HypersearchError):  # those already told
                    study.tell(trial, state="fail")
            raise
        finally:
            _searches().discard(id(self))
            study.close()
            self.__dict__.pop("_by_fold", None)
            self.__dict__.pop("_n_failed", None)

    def _refit_name(self, results: Mapping[str, Any]) -> tuple[str, list[str]]:
        """The metric the study maximises, and every metric's name."""
        names = [key[len("mean_test_"):] for key in results if key.startswith("mean_test_")]
        if isinstance(self.refit, str) and self.refit in names:
            return self.refit, names
        return ("score" if "score" in names else names[0]), names

    def _tell(self, study: Study, trial: Trial, results: Mapping[str, Any], row: int) -> None:
        metric, names = self._refit_name(results)
        n_splits = self.n_splits_  # called between evaluate_candidates calls: the real one
        trial.set_user_attr("cv_results_index", row)
        trial.set_user_attr("split_test_scores", {
            name: [_json_number(results[f"split{k}_test_{name}"][row]) for k in range(n_splits)]
            for name in names
        })
        mean = float(results[f"mean_test_{metric}"][row])
        if not math.isfinite(mean):
            self._n_failed += 1
            study.tell(trial, {
                "status": "fail",
                "error": f"mean test {metric} is {mean} (a fit or score failed; see the "
                         "FitFailedWarning)",
            })
            return
        extras = {f"mean_test_{name}": float(results[f"mean_test_{name}"][row]) for name in names}
        extras.update({f"std_test_{n}": float(results[f"std_test_{n}"][row]) for n in names})
        extras["mean_fit_time"] = float(results["mean_fit_time"][row])
        study.tell(trial, {METRIC: mean, **{k: v for k, v in extras.items() if math.isfinite(v)}})

    def _evaluate(
        self, study: Study, trials: list[Trial], evaluate_candidates: Callable[..., Any]
    ) -> None:
        results = evaluate_candidates([self._candidate(t) for t in trials])
        first = len(results["params"]) - len(trials)  # results hold every candidate so far
        for i, trial in enumerate(trials):
            self._tell(study, trial, results, first + i)

    # -- pruning across folds ------------------------------------------------------------------

    def _evaluate_by_fold(
        self, study: Study, trials: list[Trial], evaluate_candidates: Callable[..., Any]
    ) -> None:
        """Fold k of every candidate still running, k = 0, 1...; each fold is a report.

        evaluate_candidates runs all `n_splits_` folds of a candidate, so each call here runs
        one fold: n_splits_ reads 1 during the call (BaseSearchCV reads it at each call) and
        `_format_results` puts the rows back together as candidates × folds."""
        by_fold = self.__dict__.setdefault("_by_fold", {
            "n_splits": self.n_splits_,
            "folds": _Folds(self._checked_cv_orig),
            "candidates": [],  # params of each candidate, in cv_results_ order
            "rows": [],  # (candidate, fold) of each row evaluate_candidates has run
            "pruned": [],
        })
        n_splits = by_fold["n_splits"]
        index = {}
        for trial in trials:
            index[trial.number] = len(by_fold["candidates"])
            by_fold["candidates"].append(self._candidate(trial))
            by_fold["pruned"].append(False)
        running = list(trials)
        results: dict[str, Any] = {}
        for k in range(n_splits):
            if not running:
                break
            by_fold["rows"].extend((index[t.number], k) for t in running)
            self.n_splits_ = 1
            try:
                results = evaluate_candidates(
                    [by_fold["candidates"][index[t.number]] for t in running],
                    cv=_OneFold(by_fold["folds"], k),
                )
            finally:
                self.n_splits_ = n_splits
            metric, _ = self._refit_name(results)
            still = []
            for trial in running:
                row = index[trial.number]
                scores = [results[f"split{j}_test_{metric}"][row] for j in range(k + 1)]
                if not math.isfinite(scores[-1]):
                    self._tell(study, trial, results, row)  # a failed fold: FAILED now
                    continue
                decision = trial.report(k + 1, **{METRIC: float(np.mean(scores))},
                                        fold_score=float(scores[-1]))
                if decision is not Decision.CONTINUE and k < n_splits - 1:
                    by_fold["pruned"][row] = True
                    results["pruned"][row] = True  # fit keeps this dict: the last call's
                    self._tell_pruned(study, trial, results, row, k + 1)
                else:
                    still.append(trial)
            running = still
        for trial in running:
            self._tell(study, trial, results, index[trial.number])

    def _tell_pruned(
        self, study: Study, trial: Trial, results: Mapping[str, Any], row: int, folds: int
    ) -> None:
        _, names = self._refit_name(results)
        trial.set_user_attr("cv_results_index", row)
        trial.set_user_attr("split_test_scores", {
            name: [_json_number(results[f"split{k}_test_{name}"][row]) for k in range(folds)]
            for name in names
        })
        study.tell(trial, state="pruned")

    def _format_results(
        self,
        candidate_params: list[dict[str, Any]],
        n_splits: int,
        out: list[dict[str, Any]],
        more_results: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        by_fold = self.__dict__.get("_by_fold")
        if by_fold is None:
            return super()._format_results(candidate_params, n_splits, out, more_results)
        # one row per (candidate, fold) run so far: candidates × folds, NaN where not run
        n_splits = by_fold["n_splits"]
        candidates = by_fold["candidates"]
        grid: list[dict[str, Any] | None] = [None] * (len(candidates) * n_splits)
        for (candidate, fold), result in zip(by_fold["rows"], out, strict=True):
            grid[candidate * n_splits + fold] = result
        missing = _not_run(out[0])
        full = [missing if result is None else result for result in grid]
        with warnings.catch_warnings():
            # pruned candidates' means are NaN by design; failed fits warn on their own
            warnings.filterwarnings("ignore", "One or more of the", UserWarning)
            results = super()._format_results(list(candidates), n_splits, full, more_results)
        results["pruned"] = np.array(by_fold["pruned"], dtype=bool)
        return results


def _not_run(like: Mapping[str, Any]) -> dict[str, Any]:
    """_fit_and_score's result for a fold never run: NaN scores and times."""

    def nan(value: Any) -> Any:
        return {k: np.nan for k in value} if isinstance(value, Mapping) else np.nan

    out = {key: nan(value) for key, value in like.items()}
    if "n_test_samples" in like:
        out["n_test_samples"] = 0
    if "fit_error" in like:
        out["fit_error"] = None
    return out


def _json_number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


__all__ = ["SearchCV", "as_search_space"]
