"""hypersearch.sklearn.SearchCV: scikit-learn's estimator checks, parity with GridSearchCV,
spaces (ours, scikit-learn's lists and scipy distributions), multi-metric refit, error_score,
stored studies and pruning across folds."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from typing import Any

import numpy as np
import pytest
from joblib import parallel_config

pytest.importorskip("sklearn")

import scipy.stats as st
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import load_breast_cancer, load_iris, make_classification
from sklearn.decomposition import PCA
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

import hypersearch as hs
from hypersearch.sklearn import SearchCV, as_search_space
from hypersearch.space import Choice, Float, Integer, Normal


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def cancer() -> tuple[np.ndarray, np.ndarray]:
    return load_breast_cancer(return_X_y=True)


# -- scikit-learn's own estimator checks ------------------------------------------------------

# as scikit-learn checks GridSearchCV (its _test_common/instance_generator.py), with a tree
# for the classifier: LogisticRegression's fits made the checks several times slower
_CHECKED = [
    SearchCV(Ridge(), {"alpha": [0.1, 1.0]}, n_trials=2, cv=2, error_score="raise"),
    SearchCV(DecisionTreeClassifier(random_state=0), {"min_samples_leaf": hs.integer(1, 4)},
             n_trials=2, cv=2, error_score="raise"),
    SearchCV(Pipeline([("pca", PCA()), ("ridge", Ridge())]), {"ridge__alpha": [0.1, 1.0]},
             n_trials=2, cv=2, error_score="raise"),
]


# No check is expected to fail. scikit-learn marks check_supervised_y_2d expected-fail for
# GridSearchCV ("DataConversionWarning not caught"): BaseSearchCV does not copy the
# estimator's multi_output tag (nor allow_nan, which fails check_estimators_nan_inf for a
# tree), so the checks expect errors the estimator rightly never gives. SearchCV copies both.
@parametrize_with_checks(_CHECKED)
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


# -- parity with GridSearchCV ----------------------------------------------------------------


@pytest.mark.parametrize("scoring", [None, {"acc": "accuracy", "bal": "balanced_accuracy"}])
def test_grid_matches_gridsearchcv(iris: Any, scoring: Any) -> None:
    X, y = iris
    grid = {"max_depth": [1, 2, 3, None], "min_samples_leaf": [1, 5, 20], "criterion": ["gini"]}
    refit = True if scoring is None else "bal"
    tree = DecisionTreeClassifier(random_state=0)
    theirs = GridSearchCV(tree, grid, cv=3, scoring=scoring, refit=refit).fit(X, y)
    ours = SearchCV(tree, grid, strategy="grid", n_trials=None, cv=3, scoring=scoring,
                    refit=refit).fit(X, y)
    assert sorted(ours.cv_results_) == sorted(theirs.cv_results_)
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]  # the same order too
    for key, value in theirs.cv_results_.items():
        if "test" in key:
            np.testing.assert_allclose(ours.cv_results_[key], value, err_msg=key)
        elif key.startswith("param_"):
            assert list(ours.cv_results_[key]) == list(value), key
    assert ours.best_params_ == theirs.best_params_
    assert ours.best_score_ == theirs.best_score_
    assert ours.best_index_ == theirs.best_index_
    assert ours.n_splits_ == theirs.n_splits_ == 3
    assert ours.multimetric_ == theirs.multimetric_
    assert ours.refit_time_ >= 0
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X))
    assert ours.score(X, y) == theirs.score(X, y)
    # the study saw every candidate, told its mean (refit) test score
    study = ours.study_
    assert [t.state.value for t in study.trials] == ["COMPLETE"] * 12
    name = "score" if scoring is None else "bal"
    means = [t.value for t in study.trials]
    np.testing.assert_allclose(means, ours.cv_results_[f"mean_test_{name}"])
    assert study.trials[0].user_attrs["split_test_scores"][name] == pytest.approx(
        [ours.cv_results_[f"split{k}_test_{name}"][0] for k in range(3)])


def test_list_of_grids_matches_gridsearchcv(iris: Any) -> None:
    X, y = iris
    grids = [{"kernel": ["linear"], "C": [0.1, 1.0]}, {"kernel": ["rbf"], "gamma": [0.01, 1.0]}]
    theirs = GridSearchCV(SVC(), grids, cv=3).fit(X, y)
    ours = SearchCV(SVC(), grids, strategy="grid", n_trials=None, cv=3).fit(X, y)
    assert ours.cv_results_["params"] == theirs.cv_results_["params"]
    assert ours.cv_results_["param_gamma"].mask.tolist() == [True, True, False, False]
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"],
                               theirs.cv_results_["mean_test_score"])
    assert ours.best_params_ == theirs.best_params_


def test_grid_smaller_than_n_trials_stops_at_its_end(iris: Any) -> None:
    X, y = iris
    ours = SearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3]},
                    strategy="grid", n_trials=50, cv=3).fit(X, y)
    assert len(ours.cv_results_["params"]) == 3


# -- strategies and spaces -------------------------------------------------------------------


def test_tpe_beats_the_default_tree() -> None:
    X, y = make_classification(n_samples=400, n_features=10, n_informative=4, flip_y=0.2,
                               random_state=0)
    tree = DecisionTreeClassifier(random_state=0)
    default = cross_val_score(tree, X, y, cv=3).mean()
    space = {"max_depth": hs.integer(1, 20), "min_samples_leaf": hs.integer(1, 60, log=True)}
    search = SearchCV(tree, space, n_trials=25, cv=3, random_state=0).fit(X, y)
    assert search.best_score_ >= default + 0.02  # an overgrown tree on noisy labels loses
    assert len(search.cv_results_["params"]) == 25
    assert search.study_.sampler.name == "tpe"


def test_pipeline_names_with_our_space(cancer: Any) -> None:
    X, y = cancer
    pipe = make_pipeline(StandardScaler(), SVC())
    space = {"svc__C": hs.loguniform(1e-3, 1e3), "svc__kernel": hs.choice(["rbf", "linear"])}
    search = SearchCV(pipe, space, n_trials=6, cv=3, random_state=1).fit(X, y)
    assert set(search.best_params_) == {"svc__C", "svc__kernel"}
    assert 1e-3 <= search.best_params_["svc__C"] <= 1e3
    svc = search.best_estimator_.named_steps["svc"]
    assert search.best_params_["svc__C"] == svc.C
    assert search.best_params_["svc__kernel"] == svc.kernel
    assert search.predict(X[:5]).shape == (5,)
    assert set(search.cv_results_["param_svc__kernel"]) <= {"rbf", "linear"}


def test_scipy_distributions_map_exactly() -> None:
    space = as_search_space({
        "a": st.uniform(2, 3),
        "b": st.loguniform(1e-4, 1e-1),
        "c": st.reciprocal(1, 100),
        "d": st.randint(3, 10),
        "e": st.norm(1.0, 2.0),
        "f": [1, "two", None],
        "g": np.array([0.5, 1.5]),
    })
    dists = {name: param.dist for name, param in space.params.items()}
    assert dists["a"] == Float(2.0, 5.0)
    assert dists["b"] == Float(1e-4, 1e-1, log=True)
    assert dists["c"] == Float(1.0, 100.0, log=True)
    assert dists["d"] == Integer(3, 9)  # randint's high is exclusive
    assert dists["e"] == Normal(1.0, 2.0)
    assert isinstance(dists["f"], Choice) and dists["f"].options == (1, "two", None)
    assert dists["g"].options == (0.5, 1.5)
    with pytest.raises(ValueError, match=r"'x'.*scipy.stats.expon has no hypersearch"):
        as_search_space({"x": st.expon(scale=100)})
    with pytest.raises(ValueError, match="loc != 0"):
        as_search_space({"x": st.loguniform(1, 10, loc=5)})
    with pytest.raises(ValueError, match="'x': the list of values is empty"):
        as_search_space({"x": []})
    with pytest.raises(TypeError, match="param_space must be"):
        as_search_space("C")
    with pytest.raises(ValueError, match=r"every value in it is a fixed constant; give each "
                       r"parameter a list of values"):
        as_search_space({"C": "x"})  # a constant here, as in the space language


def test_scipy_distributions_search(iris: Any) -> None:
    X, y = iris
    space = {"C": st.loguniform(1e-2, 1e2), "class_weight": [None, {0: 1, 1: 3, 2: 1}]}
    search = SearchCV(SVC(), space, n_trials=5, cv=3, strategy="random",
                      random_state=0).fit(X, y)
    values = search.cv_results_["param_C"]
    assert all(1e-2 <= c <= 1e2 for c in values)
    weights = list(search.cv_results_["param_class_weight"])
    assert all(w is None or w == {0: 1, 1: 3, 2: 1} for w in weights)  # a dict kept whole


def test_multimetric_refit_name_false_and_callable(iris: Any) -> None:
    X, y = iris
    scoring = {"acc": "accuracy", "f1": "f1_macro"}
    space = {"max_depth": [1, 2, 3, 4]}
    tree = DecisionTreeClassifier(random_state=0)
    search = SearchCV(tree, space, strategy="grid", cv=3, scoring=scoring, refit="f1").fit(X, y)
    results = search.cv_results_
    assert {"mean_test_acc", "rank_test_acc", "mean_test_f1", "split2_test_f1"} <= set(results)
    assert search.best_index_ == int(np.argmin(results["rank_test_f1"]))
    assert search.best_score_ == results["mean_test_f1"][search.best_index_]
    assert search.scorer_.keys() == {"acc", "f1"}
    assert [t.value for t in search.study_.trials] == pytest.approx(list(results["mean_test_f1"]))

    unrefit = SearchCV(tree, space, strategy="grid", cv=3, scoring=scoring, refit=False)
    unrefit.fit(X, y)
    assert not hasattr(unrefit, "best_estimator_") and not hasattr(unrefit, "best_index_")
    with pytest.raises(AttributeError):
        unrefit.predict(X)

    def lowest_depth_index(cv_results: dict[str, Any]) -> int:
        return int(np.argmin(cv_results["param_max_depth"]))

    chosen = SearchCV(tree, space, strategy="grid", cv=3, scoring=scoring,
                      refit=lowest_depth_index).fit(X, y)
    assert chosen.best_params_ == {"max_depth": 1}
    with pytest.raises(ValueError, match="refit"):
        SearchCV(tree, space, cv=3, scoring=scoring, refit=True).fit(X, y)


def test_parallel_batches(iris: Any) -> None:
    X, y = iris
    search = SearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": hs.integer(1, 8)},
                      n_trials=5, cv=2, n_jobs=2, random_state=0)
    with parallel_config(backend="threading"):  # batches of 2, without starting processes
        search.fit(X, y)
    assert len(search.cv_results_["params"]) == 5
    assert all(t.state.value == "COMPLETE" for t in search.study_.trials)


def test_random_state_seeds_the_study(iris: Any) -> None:
    X, y = iris
    space = {"min_impurity_decrease": hs.uniform(0.0, 0.1)}

    def run(random_state: Any) -> list[float]:
        search = SearchCV(DecisionTreeClassifier(random_state=0), space, n_trials=3, cv=2,
                          strategy="random", random_state=random_state).fit(X, y)
        return list(search.cv_results_["param_min_impurity_decrease"])

    assert run(7) == run(7) != run(8)
    assert len(run(np.random.RandomState(0))) == len(run(np.random.default_rng(0))) == 3


# -- failures ----------------------------------------------------------------------------------


class _Fragile(ClassifierMixin, BaseEstimator):
    """A classifier whose fit fails for x > 0.5."""

    def __init__(self, x: float = 0.0) -> None:
        self.x = x

    def fit(self, X: Any, y: Any) -> _Fragile:
        if self.x > 0.5:
            raise ValueError("x too large")
        self.classes_ = np.unique(y)
        self.majority_ = np.bincount(y).argmax()
        return self

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.majority_)


@pytest.mark.filterwarnings("ignore:One or more of the test scores are non-finite")
def test_error_score_nan_fails_the_trial(iris: Any) -> None:
    X, y = iris
    search = SearchCV(_Fragile(), {"x": [0.0, 1.0, 0.2]}, strategy="grid", cv=2)
    with pytest.warns(FitFailedWarning):
        search.fit(X, y)
    results = search.cv_results_
    assert np.isnan(results["mean_test_score"][1]) and np.isnan(results["split0_test_score"][1])
    assert results["rank_test_score"][1] == 3
    states = [t.state.value for t in search.study_.trials]
    assert states == ["COMPLETE", "FAILED", "COMPLETE"]
    assert "NaN" in search.study_.trials[1].failure_detail or "nan" in (
        search.study_.trials[1].failure_detail)
    assert search.best_params_["x"] in (0.0, 0.2)
    # nothing could be fitted: GridSearchCV's error, and GridSearchCV itself is unchanged
    with pytest.warns(FitFailedWarning), pytest.raises(ValueError, match="All the fits of the 2"):
        SearchCV(_Fragile(), {"x": [1.0, 2.0]}, strategy="grid", cv=2).fit(X, y)
    with pytest.raises(ValueError, match="All the 4 fits failed"):
        GridSearchCV(_Fragile(), {"x": [1.0, 2.0]}, cv=2).fit(X, y)


def test_error_score_raise_fails_the_trial_and_raises(iris: Any) -> None:
    X, y = iris
    search = SearchCV(_Fragile(), {"x": [1.0]}, strategy="grid", cv=2, error_score="raise")
    with pytest.raises(ValueError, match="x too large"):
        search.fit(X, y)
    assert [t.state.value for t in search.study_.trials] == ["FAILED"]


def test_inputs_are_validated(iris: Any) -> None:
    X, y = iris
    tree = DecisionTreeClassifier()
    with pytest.raises(InvalidParameterError, match="'n_trials' parameter of SearchCV must be"):
        SearchCV(tree, {"max_depth": [1, 2]}, n_trials=0).fit(X, y)
    with pytest.raises(InvalidParameterError, match="'strategy' parameter of SearchCV"):
        SearchCV(tree, {"max_depth": [1, 2]}, strategy="annealing").fit(X, y)
    with pytest.raises(InvalidParameterError, match="'scheduler' parameter of SearchCV"):
        SearchCV(tree, {"max_depth": [1, 2]}, scheduler="sometimes").fit(X, y)
    with pytest.raises(ValueError, match="needs strategy='grid'"):
        SearchCV(tree, {"max_depth": [1, 2]}, n_trials=None).fit(X, y)
    with pytest.raises(hs.SpaceError, match=r"continuous|resolution"):
        SearchCV(tree, {"min_impurity_decrease": hs.uniform(0, 1)}, strategy="grid").fit(X, y)
    # a name the estimator does not have: scikit-learn's own message; the trial is FAILED
    search = SearchCV(tree, {"depth": [1, 2]}, n_trials=2, cv=2)
    with pytest.raises(ValueError, match="Invalid parameter 'depth'"):
        search.fit(X, y)
    assert {t.state.value for t in search.study_.trials} == {"FAILED"}


# -- stored studies ------------------------------------------------------------------------------


def test_storage_keeps_the_study(iris: Any, tmp_path: Any) -> None:
    X, y = iris
    url = f"sqlite:///{tmp_path / 'cv.db'}"
    space = {"max_depth": hs.integer(1, 8)}
    tree = DecisionTreeClassifier(random_state=0)
    first = SearchCV(tree, space, n_trials=4, cv=3, storage=url, name="iris-tree",
                     random_state=0).fit(X, y)
    study = hs.load_study("iris-tree", url)
    assert study.direction == "maximize" and study.metric == "score"
    trials = study.trials
    assert len(trials) == 4 and all(t.state.value == "COMPLETE" for t in trials)
    assert [t.value for t in trials] == pytest.approx(list(first.cv_results_["mean_test_score"]))
    assert trials[0].metrics["mean_test_score"] == pytest.approx(trials[0].value)
    assert len(trials[0].user_attrs["split_test_scores"]["score"]) == 3
    # the same storage and name continue the study: its strategy sees the earlier trials
    second = SearchCV(tree, space, n_trials=3, cv=3, storage=url, name="iris-tree",
                      random_state=0).fit(X, y)
    assert len(second.cv_results_["params"]) == 3
    assert len(hs.load_study("iris-tree", url).trials) == 7


# -- pruning across folds ---------------------------------------------------------------------------


def test_scheduler_prunes_across_folds() -> None:
    X, y = make_classification(n_samples=300, n_features=8, n_informative=3, random_state=0)
    space = {"max_depth": hs.integer(1, 12), "min_samples_leaf": hs.integer(1, 80)}
    search = SearchCV(DecisionTreeClassifier(random_state=0), space, n_trials=16, cv=5,
                      strategy="random", scheduler="median", random_state=0).fit(X, y)
    results = search.cv_results_
    states = [t.state.value for t in search.study_.trials]
    pruned = np.array([s == "PRUNED" for s in states])
    assert 0 < pruned.sum() < len(states) and set(states) <= {"COMPLETE", "PRUNED"}
    assert results["pruned"].tolist() == pruned.tolist()
    assert all(len(results[k]) == 16 for k in results)
    splits = np.array([results[f"split{k}_test_score"] for k in range(5)]).T
    assert np.isfinite(splits[~pruned]).all()
    assert np.isfinite(splits[pruned, 0]).all()  # a pruned candidate keeps its computed folds
    assert np.isnan(splits[pruned, -1]).all()  # and not the others
    assert np.isnan(results["mean_test_score"][pruned]).all()
    assert results["rank_test_score"][pruned].min() > results["rank_test_score"][~pruned].max()
    assert not pruned[search.best_index_]
    assert search.n_splits_ == 5
    # each fold is a step of the study: the running mean of the fold scores
    trial = search.study_.trials[int(np.flatnonzero(~pruned)[0])]
    assert trial.value == pytest.approx(results["mean_test_score"][int(np.flatnonzero(~pruned)[0])])


def test_scheduler_object_and_asha(iris: Any) -> None:
    X, y = iris
    asha = hs.schedulers.ASHA(min_resource=1, max_resource=4, reduction_factor=2)
    search = SearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": hs.integer(1, 6)},
                      n_trials=8, cv=4, scheduler=asha, random_state=0).fit(X, y)
    assert len(search.cv_results_["params"]) == 8
    assert search.study_.definition.settings["scheduler"] == "asha"


# -- estimator plumbing ----------------------------------------------------------------------------


def test_clone_and_pickle(iris: Any) -> None:
    X, y = iris
    search = SearchCV(DecisionTreeClassifier(random_state=0), {"max_depth": [1, 2, 3]},
                      strategy=hs.Grid(shuffle=True), cv=2, random_state=0)
    copied = clone(search)  # a Grid holds a lock, which deepcopy refuses
    assert copied.strategy is not search.strategy and copied.strategy.shuffle
    copied.fit(X, y)
    restored = pickle.loads(pickle.dumps(copied))  # the study (a storage handle) stays behind
    assert not hasattr(restored, "study_")
    np.testing.assert_array_equal(restored.predict(X), copied.predict(X))


def test_import_hypersearch_does_not_import_sklearn() -> None:
    code = "import sys, hypersearch; hypersearch.TPE; hypersearch.Space; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
