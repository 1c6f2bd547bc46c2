"""Sample efficiency: best value found in 50 and 100 trials, hypersearch vs Optuna vs hyperopt.

Every method minimises the same objective functions, side by side in one run, over seeds 0..19:

    method           what runs (library defaults except the seed)
    hs-tpe           hs.minimize(f, space, strategy="tpe", max_trials=B, seed=s, verbose=False)
    hs-gp            the same with strategy="gp"
    hs-random        the same with strategy="random"  (any "hs-<strategy>" works, e.g. hs-sobol)
    optuna-tpe       optuna.create_study(sampler=TPESampler(seed=s)).optimize(f, n_trials=B)
    optuna-gp        the same with GPSampler(seed=s)
    hyperopt-tpe     hyperopt.fmin(f, hp_space, algo=tpe.suggest, max_evals=B, trials=Trials(),
                     rstate=np.random.default_rng(s))
    (also available: optuna-random, hyperopt-random)

Spaces. Each problem's space is written once in a small neutral notation (Real / Int / Cat below)
and translated mechanically into each library's idiom, so the three see the same space:

    Real(lo, hi)            hs.uniform(lo, hi)       suggest_float(lo, hi)       hp.uniform(lo, hi)
    Real(lo, hi, log=True)  hs.loguniform(lo, hi)    suggest_float(.., log=True) hp.loguniform(ln lo, ln hi)
    Int(lo, hi[, log])      hs.integer(lo, hi, log=) suggest_int(lo, hi, log=)   int(hp.quniform(lo-.5, hi+.5, 1))
                                                                                 log: int(hp.qloguniform(
                                                                                 ln(lo-.5), ln(hi+.5), 1))
    Cat([a, b, ...])        hs.choice([...])         suggest_categorical         hp.choice(label, [...])

(hyperopt's loguniform takes bounds in log space; the +-0.5 gives every integer equal mass, like
Optuna's and hypersearch's integers.) Conditional spaces are a Cat whose options are dicts holding
their own parameters: hypersearch gets a nested hs.choice, hyperopt a nested hp.choice, Optuna a
define-by-run function that suggests the option index (`suggest_categorical(path, [0, 1, 2])`)
and then only the chosen branch's parameters, named by their path (``model[2]/optimizer[1]/lr``).
Each library hands the objective the same nested dict ({"model": {"type": "net", ...}, ...}); the
harness checks every value it receives against the space (type, bounds, branch structure) and
records violations.

Problems (optimum: known for the synthetic ones; for the model-tuning tasks, the lowest value ever
seen in the results file for that problem, across all methods, seeds and trials):

    branin        2 continuous            optimum 0.397887
    hartmann6     6 continuous on [0,1]   optimum -3.32237
    rosenbrock5   5 continuous on [-5,10] optimum 0
    ackley10      10 continuous on [-32.768, 32.768]   optimum 0
    mixed         7 parameters: 3 integers (one log), 2 categoricals, 2 floats (one log), with
                  integer/categorical interactions; optimum 0
    conditional   a 3-way model choice, one branch holding a nested 2-way optimizer choice, with
                  branch-specific parameters (2 to 4 per branch) plus a shared log-integer;
                  optimum 0 (only in the nested sgd branch)
    svm_cancer    SVC(probability=True) on breast_cancer's raw, unscaled features: C, gamma
                  (log, 1e-8..1), kernel choice rbf | sigmoid (coef0); 3-fold CV log-loss
    hgb_cancer    HistGradientBoostingClassifier on breast_cancer: learning rate, max_iter 5-64,
                  max_leaf_nodes, min_samples_leaf, l2 (log), max_features; 3-fold CV log-loss
    mlp_wine      StandardScaler + MLPClassifier(max_iter=100) on wine: layers, units (log),
                  activation, alpha (log), solver choice adam (lr) | sgd (lr, momentum) | lbfgs;
                  3-fold CV log-loss

Integer-heavy model tuning (`--problems integer`; tree and neighbour models, mostly integers over
wide ranges, with flat regions and, for CV error, plateaus of tied values):

    knn_digits    KNeighborsClassifier on digits: n_neighbors 1-60, leaf_size 1-100 (no effect
                  on the predictions), p 1-4, weights; 3-fold CV log-loss (votes from
                  precomputed neighbour tables: a millisecond per evaluation)
    tree_cancer   DecisionTreeClassifier on breast_cancer: max_depth, min_samples_split,
                  min_samples_leaf, max_features, max_leaf_nodes, criterion; 3-fold CV error
    tree_digits   DecisionTreeClassifier on digits over a 288-point lattice (max_depth 1-12,
                  min_samples_leaf 1-12, criterion); 3-fold CV error: a small lattice, where a
                  sampler that re-proposes evaluated points wastes its budget
    forest_wine   RandomForestClassifier (2-40 trees) on wine: six settings, five of them
                  integers; 3-fold CV log-loss

Define-by-run against a declared space (`--problems dbr`): `stepped` is mixed's objective with
its width and batch on step= lattices (``Int(8, 1024, step=8)``, ``Int(16, 1024, step=16)``);
`stepped_dbr` is the same problem where hypersearch's sampler is driven define-by-run, one
``trial.suggest_*`` at a time through ``Sampler.suggest_param(Context(None, history, rng, number,
seed, direction), name, dist)``, exactly as the study layer calls it; `stepped_max` and
`stepped_dbr_max` maximise ``-f`` (hypersearch and Optuna get direction="maximize"; hyperopt,
which only minimises, gets f). Values are recorded as f in every case, so the four tables
compare directly: TPE on define-by-run should match TPE on the declared space, both directions.
A deterministic objective is memoised per worker process (a repeated configuration costs no
time; it still counts as a trial); the "repeats" column counts the trials of a run whose
configuration that run had already evaluated.

The model-tuning objectives are deterministic (fixed folds, random_state=0 everywhere) and cost
about 0.02-0.2 s per evaluation on one core. An evaluation that fails or returns a non-finite loss
(e.g. a diverging MLP) scores the log-loss of predicting the class frequencies, and is counted.

Budgets. Each (problem, method, seed) cell is ONE run of max(--budget) trials; the best after 50
trials is the best of that run's first 50. No sampler here sees the total budget (hypersearch's
sampler Context carries no max_trials; Optuna's samplers and hyperopt's suggest functions are not
given it), so this equals a 50-trial run.

Normalised score (Bayesmark's formula), per problem, method, budget and seed:
    score = 100 * (1 - (best - optimum) / (ref - optimum)), clipped to [0, 100],
where ref is the median over seeds of hs-random's FIRST trial value (when hs-random is absent
from the file, the median first trial over every method's seeds: every method starts with prior
samples). The per-problem score is the mean over seeds; the summary is the mean over problems.
A second summary keeps only the continuous problems of at most 10 dimensions (the GP comparison).

Execution. Cells run in --jobs worker processes (spawned; BLAS/OpenMP/torch limited to --threads
threads, default 1, set before numpy loads in the workers, for fairness), longest first. Each
worker first makes a 12-trial warm-up run of every method (not recorded), so no timed cell pays
for first imports (torch, scipy.optimize, scikit-learn). Each finished cell is
appended as one JSON line to --out (the values of all its trials in order, wall seconds of the
whole optimize call, seconds spent inside the objective, trial counts, space violations); cells
already in the file are skipped, so an interrupted run resumes, and files from several machines
can be concatenated and reported together (compare wall times only from the same machine).
Verification per cell: the objective ran exactly B times, the library's own record holds B
trials, all complete, and its reported best equals the minimum the objective returned.

Usage::

    python bench/efficiency.py [--problems all] [--methods hs-tpe,hs-gp,hs-random,optuna-tpe,
        optuna-gp,hyperopt-tpe] [--seeds 0-19] [--budget 50,100] [--jobs N]
        [--out bench/efficiency_results.jsonl] [--report-only] [--markdown] [--cell-timeout 1800]

hypersearch strategies that are not registered yet (hs-tpe, hs-gp while they are being written)
are skipped with a warning, and so is optuna-gp when torch is missing (Optuna's GPSampler needs
it: ``pip install torch==2.13.0``, the CPU build). Note that Optuna's GPSampler does not model
parameters of a dynamic (conditional) space: it samples them with its RandomSampler (it says so in
a warning, silenced here); that is its documented behaviour, and part of what is measured.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import multiprocessing as mp
import os
import platform
import random
import signal
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchinfo import (  # bench/ is the script folder
    available_methods,
    git_revision,
    source_fingerprint,
)

if TYPE_CHECKING:
    import numpy as np

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
DEFAULT_METHODS = ["hs-tpe", "hs-gp", "hs-random", "optuna-tpe", "optuna-gp", "hyperopt-tpe"]
OTHER_METHODS = ["optuna-random", "hyperopt-random"]
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "efficiency_results.jsonl")
RANDOM_REF = "hs-random"


# -- the neutral space notation and its translations ---------------------------------------------


@dataclass(frozen=True)
class Real:
    low: float
    high: float
    log: bool = False


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    log: bool = False
    step: int = 1  # values low + k step <= high (Optuna's step=)


@dataclass(frozen=True)
class Cat:
    options: tuple[Any, ...]


def _child(path: str, key: str) -> str:
    return f"{path}/{key}" if path else key


def _is_branchy(node: Cat) -> bool:
    return any(isinstance(o, dict) for o in node.options)


def to_hypersearch(node: Any) -> Any:
    import hypersearch as hs

    if isinstance(node, dict):
        return {k: to_hypersearch(v) for k, v in node.items()}
    if isinstance(node, Real):
        return hs.loguniform(node.low, node.high) if node.log else hs.uniform(node.low, node.high)
    if isinstance(node, Int):
        return hs.integer(node.low, node.high, log=node.log, step=node.step)
    if isinstance(node, Cat):
        return hs.choice([to_hypersearch(o) for o in node.options])
    return node


def optuna_sample(trial: Any, node: Any, path: str = "") -> Any:
    """Define-by-run: suggest the parameters of `node` (only the chosen branches)."""
    if isinstance(node, dict):
        return {k: optuna_sample(trial, v, _child(path, k)) for k, v in node.items()}
    if isinstance(node, Real):
        return trial.suggest_float(path, node.low, node.high, log=node.log)
    if isinstance(node, Int):
        if node.step != 1:
            return trial.suggest_int(path, node.low, node.high, step=node.step)
        return trial.suggest_int(path, node.low, node.high, log=node.log)
    if isinstance(node, Cat):
        if not _is_branchy(node):
            return trial.suggest_categorical(path, list(node.options))
        index = trial.suggest_categorical(path, list(range(len(node.options))))
        return optuna_sample(trial, node.options[index], f"{path}[{index}]")
    return node


def to_hyperopt(node: Any, path: str = "") -> Any:
    from hyperopt import hp
    from hyperopt.pyll import scope

    if isinstance(node, dict):
        return {k: to_hyperopt(v, _child(path, k)) for k, v in node.items()}
    if isinstance(node, Real):
        if node.log:
            return hp.loguniform(path, math.log(node.low), math.log(node.high))
        return hp.uniform(path, node.low, node.high)
    if isinstance(node, Int):
        if node.step != 1:  # the k of low + k step, uniform like the others' lattices
            top = (node.high - node.low) // node.step
            return scope.int(hp.quniform(path, -0.5, top + 0.5, 1)) * node.step + node.low
        if node.log:
            return scope.int(
                hp.qloguniform(path, math.log(node.low - 0.5), math.log(node.high + 0.5), 1)
            )
        return scope.int(hp.quniform(path, node.low - 0.5, node.high + 0.5, 1))
    if isinstance(node, Cat):
        return hp.choice(path, [to_hyperopt(o, f"{path}[{i}]") for i, o in enumerate(node.options)])
    return node


def check_value(node: Any, value: Any, path: str = "") -> list[str]:
    """Problems with `value` as a sample of `node` (empty when it is a valid sample)."""
    where = path or "<root>"
    if isinstance(node, dict):
        if not isinstance(value, dict) or set(value) != set(node):
            return [f"{where}: keys {sorted(value) if isinstance(value, dict) else value!r}"]
        return [p for k, v in node.items() for p in check_value(v, value[k], _child(path, k))]
    if isinstance(node, Real):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{where}: {value!r} is not a number"]
        return [] if node.low <= value <= node.high else [f"{where}: {value!r} out of range"]
    if isinstance(node, Int):
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{where}: {value!r} ({type(value).__name__}) is not an int"]
        if (value - node.low) % node.step:
            return [f"{where}: {value!r} is off the step {node.step} lattice"]
        return [] if node.low <= value <= node.high else [f"{where}: {value!r} out of range"]
    if isinstance(node, Cat):
        for i, option in enumerate(node.options):
            if isinstance(option, dict):
                if not check_value(option, value, f"{path}[{i}]"):
                    return []
            elif type(option) is type(value) and option == value:
                return []
        return [f"{where}: {value!r} matches no option"]
    return [] if value == node else [f"{where}: constant {value!r} != {node!r}"]


def normalise(value: Any) -> Any:
    """numpy scalars (hyperopt) to plain Python, so every library's dict looks the same."""
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    return value


def dimensions(node: Any) -> int:
    """Number of parameters (all branches counted)."""
    if isinstance(node, dict):
        return sum(dimensions(v) for v in node.values())
    if isinstance(node, (Real, Int)):
        return 1
    if isinstance(node, Cat):
        return 1 + sum(dimensions(o) for o in node.options if isinstance(o, dict))
    return 0


def is_continuous(node: Any) -> bool:
    if isinstance(node, dict):
        return all(is_continuous(v) for v in node.values())
    return not isinstance(node, (Int, Cat))


# -- synthetic problems ------------------------------------------------------------------------


def branin(p: dict[str, Any]) -> float:
    x1, x2 = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H6_ALPHA = (1.0, 1.2, 3.0, 3.2)
_H6_A = (
    (10, 3, 17, 3.5, 1.7, 8),
    (0.05, 10, 17, 0.1, 8, 14),
    (3, 3.5, 1.7, 10, 17, 8),
    (17, 8, 0.05, 10, 0.1, 14),
)
_H6_P = (
    (0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886),
    (0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991),
    (0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650),
    (0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381),
)


def hartmann6(p: dict[str, Any]) -> float:
    x = [p[f"x{j}"] for j in range(6)]
    return -sum(
        alpha * math.exp(-sum(a * (xj - pj) ** 2 for a, xj, pj in zip(A, x, P, strict=True)))
        for alpha, A, P in zip(_H6_ALPHA, _H6_A, _H6_P, strict=True)
    )


def rosenbrock(p: dict[str, Any]) -> float:
    x = [p[f"x{j}"] for j in range(len(p))]
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))


def ackley(p: dict[str, Any]) -> float:
    x = [p[f"x{j}"] for j in range(len(p))]
    n = len(x)
    s1 = math.sqrt(sum(v * v for v in x) / n)
    s2 = sum(math.cos(2 * math.pi * v) for v in x) / n
    return -20 * math.exp(-0.2 * s1) - math.exp(s2) + 20 + math.e


MIXED_SPACE = {
    "layers": Int(1, 8),
    "units": Int(8, 1024, log=True),
    "batch": Int(16, 1024, log=True),
    "activation": Cat(("relu", "elu", "tanh", "sigmoid")),
    "optimizer": Cat(("adam", "sgd", "rmsprop")),
    "lr": Real(1e-5, 1.0, log=True),
    "dropout": Real(0.0, 0.8),
}
_ACT_OFFSET = {"relu": 0.0, "elu": 0.1, "tanh": 0.3, "sigmoid": 1.0}
_ACT_LAYERS = {"relu": 3, "elu": 4, "tanh": 2, "sigmoid": 1}
_OPT_OFFSET = {"adam": 0.0, "sgd": 0.05, "rmsprop": 0.1}
_OPT_LR = {"adam": 1e-3, "sgd": 1e-1, "rmsprop": 1e-2}


def mixed(p: dict[str, Any]) -> float:
    """Optimum 0: relu, 3 layers, 64 units, batch 128, adam with lr 1e-3, dropout 0.15. The best
    depth depends on the activation, the best lr on the optimizer and the batch, the best
    dropout on the width."""
    act, opt = p["activation"], p["optimizer"]
    lr_star = _OPT_LR[opt] * p["batch"] / 128
    return (
        ((p["layers"] - _ACT_LAYERS[act]) / 2) ** 2
        + (math.log2(p["units"]) - 6) ** 2 / 4
        + (math.log2(p["batch"]) - 7) ** 2 / 8
        + _ACT_OFFSET[act]
        + _OPT_OFFSET[opt]
        + math.log10(p["lr"] / lr_star) ** 2 / 2
        + 4 * (p["dropout"] - 0.05 * math.log2(p["units"] / 8)) ** 2
    )


CONDITIONAL_SPACE = {
    "model": Cat(
        (
            {"type": "linear", "l2": Real(1e-6, 1.0, log=True), "lr": Real(1e-4, 1.0, log=True)},
            {
                "type": "tree",
                "depth": Int(1, 12),
                "lr": Real(1e-3, 1.0, log=True),
                "subsample": Real(0.3, 1.0),
            },
            {
                "type": "net",
                "layers": Int(1, 4),
                "dropout": Real(0.0, 0.7),
                "optimizer": Cat(
                    (
                        {"name": "adam", "lr": Real(1e-5, 1e-1, log=True)},
                        {"name": "sgd", "lr": Real(1e-4, 1.0, log=True), "momentum": Real(0, 0.99)},
                    )
                ),
            },
        )
    ),
    "batch": Int(16, 512, log=True),
}


def conditional(p: dict[str, Any]) -> float:
    """Optimum 0, only in model=net, optimizer=sgd (lr 10^-1.3, momentum 0.9), 2 layers,
    dropout 0.2, batch 64. Best of the other branches: adam 0.15, tree 0.3, linear 0.6."""
    m = p["model"]
    value = (math.log2(p["batch"]) - 6) ** 2 / 8
    if m["type"] == "linear":
        return value + 0.6 + (math.log10(m["l2"]) + 3) ** 2 / 4 + (math.log10(m["lr"]) + 2) ** 2 / 2
    if m["type"] == "tree":
        return (
            value
            + 0.3
            + ((m["depth"] - 6) / 3) ** 2
            + (math.log10(m["lr"]) + 1) ** 2 / 2
            + 2 * (m["subsample"] - 0.8) ** 2
        )
    o = m["optimizer"]
    value += (m["layers"] - 2) ** 2 / 4 + 2 * (m["dropout"] - 0.2) ** 2
    if o["name"] == "adam":
        return value + 0.15 + (math.log10(o["lr"]) + 3) ** 2 / 2
    return value + (math.log10(o["lr"]) + 1.3) ** 2 / 2 + 8 * (o["momentum"] - 0.9) ** 2


# -- model-tuning problems (scikit-learn bundled data) -----------------------------------------


@functools.cache
def _dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn import datasets

    if name == "breast_cancer":
        return datasets.load_breast_cancer(return_X_y=True)
    if name == "wine":
        return datasets.load_wine(return_X_y=True)
    if name == "digits":
        return datasets.load_digits(return_X_y=True)
    raise KeyError(name)


def _cv_error(model: Any, dataset: str) -> float:
    """3-fold stratified CV (fixed folds) misclassification rate: a metric with plateaus (many
    configurations tie), as tree and neighbour models often give."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x, y = _dataset(dataset)
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted = cross_val_predict(model, x, y, cv=folds)
    return float(np.mean(predicted != y))


def _memo(fn: Callable[[dict[str, Any]], float]) -> Callable[[dict[str, Any]], float]:
    """Deterministic objectives: a configuration seen before (a repeat) costs nothing again.
    Every call still counts as a trial; only the wall time of repeats shrinks."""
    seen: dict[str, float] = {}

    @functools.wraps(fn)
    def memo(p: dict[str, Any]) -> float:
        key = json.dumps(p, sort_keys=True)
        if key not in seen:
            seen[key] = fn(p)
        return seen[key]

    return memo


def _cv_log_loss(model: Any, dataset: str) -> float:
    """3-fold stratified CV (fixed folds) log-loss; failures score the class-prior log-loss."""
    import numpy as np
    from sklearn.metrics import log_loss
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x, y = _dataset(dataset)
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with np.errstate(all="ignore"):
                proba = cross_val_predict(model, x, y, cv=folds, method="predict_proba")
        if np.all(np.isfinite(proba)):
            loss = float(log_loss(y, proba))
            if math.isfinite(loss):
                return loss
    except (ValueError, FloatingPointError, ArithmeticError):
        pass
    _PENALISED[0] += 1
    prior = np.bincount(y) / len(y)
    return float(-np.sum(prior * np.log(prior)))


_PENALISED = [0]  # evaluations of the current cell that failed (per worker process)

SVM_SPACE = {
    "C": Real(1e-3, 1e3, log=True),
    "gamma": Real(1e-8, 1.0, log=True),
    "kernel": Cat(({"name": "rbf"}, {"name": "sigmoid", "coef0": Real(-1.0, 1.0)})),
}


def svm_cancer(p: dict[str, Any]) -> float:
    """SVC on the raw (unscaled) breast_cancer features, whose scales span four orders of
    magnitude: gamma must match them, and the log-loss optimum is a narrow ridge. (On scaled
    digits the Platt-calibrated log-loss has a flat top that every method reaches: 10% of random
    samples came within 0.04 of the best, for a first-trial median of ~1.8; it separated nothing.)"""
    from sklearn.svm import SVC

    k = p["kernel"]
    model = SVC(
        C=p["C"],
        gamma=p["gamma"],
        kernel=k["name"],
        coef0=k.get("coef0", 0.0),
        probability=True,
        random_state=0,
        max_iter=200_000,
    )
    return _cv_log_loss(model, "breast_cancer")


HGB_SPACE = {
    "learning_rate": Real(1e-3, 1.0, log=True),
    "max_iter": Int(5, 64, log=True),
    "max_leaf_nodes": Int(2, 64, log=True),
    "min_samples_leaf": Int(1, 100, log=True),
    "l2_regularization": Real(1e-8, 10.0, log=True),
    "max_features": Real(0.1, 1.0),
}


def hgb_cancer(p: dict[str, Any]) -> float:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(**p, early_stopping=False, random_state=0)
    return _cv_log_loss(model, "breast_cancer")


MLP_SPACE = {
    "layers": Int(1, 3),
    "units": Int(4, 128, log=True),
    "activation": Cat(("relu", "tanh", "logistic")),
    "alpha": Real(1e-7, 10.0, log=True),
    "solver": Cat(
        (
            {"name": "adam", "lr": Real(1e-5, 1.0, log=True)},
            {"name": "sgd", "lr": Real(1e-5, 1.0, log=True), "momentum": Real(0.0, 0.99)},
            {"name": "lbfgs"},
        )
    ),
}


def mlp_wine(p: dict[str, Any]) -> float:
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    s = p["solver"]
    model = MLPClassifier(
        hidden_layer_sizes=(p["units"],) * p["layers"],
        activation=p["activation"],
        alpha=p["alpha"],
        solver=s["name"],
        learning_rate_init=s.get("lr", 1e-3),
        momentum=s.get("momentum", 0.9),
        max_iter=100,
        random_state=0,
    )
    return _cv_log_loss(make_pipeline(StandardScaler(), model), "wine")


# -- integer-heavy model tuning: tree and neighbour models, wide integer ranges, flat regions ------

KNN_SPACE = {
    "n_neighbors": Int(1, 60),
    "leaf_size": Int(1, 100),  # no effect on the predictions: a flat dimension
    "p": Int(1, 4),
    "weights": Cat(("uniform", "distance")),
}


@functools.cache
def _knn_tables(p: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per fold of the fixed 3 folds: (test rows, distances, labels) of the 60 nearest
    training points under the Minkowski p-distance, computed once per worker process."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold
    from sklearn.neighbors import NearestNeighbors

    x, y = _dataset("digits")
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    out = []
    for train, test in folds.split(x, y):
        nn = NearestNeighbors(n_neighbors=60, p=p, algorithm="brute").fit(x[train])
        dist, idx = nn.kneighbors(x[test])
        out.append((test, dist, np.asarray(y[train])[idx]))
    return out


@_memo
def knn_digits(p: dict[str, Any]) -> float:
    """KNeighborsClassifier on the 8x8 digits, CV log-loss of its vote. The votes come from
    precomputed neighbour tables: the classifier's predict_proba (uniform: label shares of the
    k nearest; distance: 1/d weights, exact matches alone when there are any), up to the order
    of equidistant neighbours (log-loss within 1e-3), at a millisecond per evaluation."""
    import numpy as np
    from sklearn.metrics import log_loss

    y = _dataset("digits")[1]
    k = p["n_neighbors"]
    proba = np.zeros((len(y), 10))
    for test, dist, labels in _knn_tables(p["p"]):
        d, lab = dist[:, :k], labels[:, :k]
        if p["weights"] == "uniform":
            w = np.ones_like(d)
        else:
            with np.errstate(divide="ignore"):
                w = 1.0 / d
            exact = d == 0
            w = np.where(exact.any(axis=1, keepdims=True), exact.astype(float), w)
        votes = np.zeros((len(test), 10))
        np.add.at(votes, (np.repeat(np.arange(len(test)), k), lab.ravel()), w.ravel())
        proba[test] = votes / votes.sum(axis=1, keepdims=True)
    return float(log_loss(y, proba, labels=np.arange(10)))


TREE_SPACE = {
    "max_depth": Int(1, 30),
    "min_samples_split": Int(2, 100),
    "min_samples_leaf": Int(1, 60),
    "max_features": Int(1, 30),
    "max_leaf_nodes": Int(2, 200),
    "criterion": Cat(("gini", "entropy")),
}


@_memo
def tree_cancer(p: dict[str, Any]) -> float:
    """A decision tree on breast_cancer, scored by CV error: wide plateaus of tied values."""
    from sklearn.tree import DecisionTreeClassifier

    return _cv_error(DecisionTreeClassifier(**p, random_state=0), "breast_cancer")


# 12 x 12 x 2 = 288 configurations: 60 random trials repeat about 5 of them
SMALL_TREE_SPACE = {
    "max_depth": Int(1, 12),
    "min_samples_leaf": Int(1, 12),
    "criterion": Cat(("gini", "entropy")),
}


@_memo
def tree_digits(p: dict[str, Any]) -> float:
    """A decision tree on digits over a small lattice, CV error (deep trees: a plateau)."""
    from sklearn.tree import DecisionTreeClassifier

    return _cv_error(DecisionTreeClassifier(**p, random_state=0), "digits")


FOREST_SPACE = {
    "n_estimators": Int(2, 40),
    "max_depth": Int(1, 20),
    "min_samples_split": Int(2, 40),
    "min_samples_leaf": Int(1, 30),
    "max_features": Int(1, 13),
    "bootstrap": Cat((True, False)),
}


@_memo
def forest_wine(p: dict[str, Any]) -> float:
    """A small random forest on wine; CV log-loss."""
    from sklearn.ensemble import RandomForestClassifier

    return _cv_log_loss(RandomForestClassifier(**p, random_state=0, n_jobs=1), "wine")


# mixed's space with stepped widths and batches (Optuna's step=), for the define-by-run variants
STEPPED_SPACE = {
    **MIXED_SPACE,
    "units": Int(8, 1024, step=8),
    "batch": Int(16, 1024, step=16),
}


@dataclass(frozen=True)
class Problem:
    name: str
    space: dict[str, Any]
    fn: Callable[[dict[str, Any]], float]
    optimum: float | None  # None: the best value seen in the results file
    cost: float  # rough seconds per evaluation, to schedule long cells first
    note: str
    dataset: str | None = None
    # hypersearch runs it define-by-run (trial.suggest_* through Sampler.suggest_param), not
    # with a declared space; Optuna always does, hyperopt never can
    define_by_run: bool = False
    maximize: bool = False  # the libraries maximise -fn (hyperopt, minimise-only, takes fn)
    # the problem whose random first trials give the score's reference: a variant's scores then
    # compare with the original's (hs-random's first trial differs between define-by-run and a
    # declared space: one generator per parameter rather than one per trial)
    ref_from: str | None = None

    @property
    def dims(self) -> int:
        return dimensions(self.space)

    @property
    def continuous(self) -> bool:
        return is_continuous(self.space)


def _box(n: int, low: float, high: float) -> dict[str, Any]:
    return {f"x{j}": Real(low, high) for j in range(n)}


PROBLEMS = {
    p.name: p
    for p in (
        Problem(
            "branin",
            {"x1": Real(-5.0, 10.0), "x2": Real(0.0, 15.0)},
            branin,
            0.397887357729738,
            0.0,
            "2-d",
        ),
        Problem("hartmann6", _box(6, 0.0, 1.0), hartmann6, -3.32236801141551, 0.0, "6-d"),
        Problem("rosenbrock5", _box(5, -5.0, 10.0), rosenbrock, 0.0, 0.0, "5-d on [-5,10]"),
        Problem("ackley10", _box(10, -32.768, 32.768), ackley, 0.0, 0.0, "10-d"),
        Problem("mixed", MIXED_SPACE, mixed, 0.0, 0.0, "int/categorical/float"),
        Problem("conditional", CONDITIONAL_SPACE, conditional, 0.0, 0.0, "nested choices"),
        Problem("svm_cancer", SVM_SPACE, svm_cancer, None, 0.07, "CV log-loss", "breast_cancer"),
        Problem("hgb_cancer", HGB_SPACE, hgb_cancer, None, 0.08, "CV log-loss", "breast_cancer"),
        Problem("mlp_wine", MLP_SPACE, mlp_wine, None, 0.06, "CV log-loss", "wine"),
        Problem("knn_digits", KNN_SPACE, knn_digits, None, 0.1, "CV log-loss", "digits"),
        Problem("tree_cancer", TREE_SPACE, tree_cancer, None, 0.01, "CV error", "breast_cancer"),
        Problem("tree_digits", SMALL_TREE_SPACE, tree_digits, None, 0.02, "CV error", "digits"),
        Problem("forest_wine", FOREST_SPACE, forest_wine, None, 0.05, "CV log-loss", "wine"),
        Problem("stepped", STEPPED_SPACE, mixed, 0.0, 0.0, "mixed with step= integers"),
        Problem(
            "stepped_dbr",
            STEPPED_SPACE,
            mixed,
            0.0,
            0.0,
            "stepped, define-by-run",
            define_by_run=True,
            ref_from="stepped",
        ),
        Problem(
            "stepped_max",
            STEPPED_SPACE,
            mixed,
            0.0,
            0.0,
            "stepped, maximise -f",
            maximize=True,
            ref_from="stepped",
        ),
        Problem(
            "stepped_dbr_max",
            STEPPED_SPACE,
            mixed,
            0.0,
            0.0,
            "stepped, define-by-run, maximise -f",
            define_by_run=True,
            maximize=True,
            ref_from="stepped",
        ),
    )
}
# --problems accepts these names for lists
PROBLEM_SETS = {
    "synthetic": ["branin", "hartmann6", "rosenbrock5", "ackley10", "mixed", "conditional"],
    "integer": ["knn_digits", "tree_cancer", "tree_digits", "forest_wine"],
    "dbr": ["stepped", "stepped_dbr", "stepped_max", "stepped_dbr_max"],
}
PROBLEM_SETS["classic"] = [*PROBLEM_SETS["synthetic"], "svm_cancer", "hgb_cancer", "mlp_wine"]


# -- running one cell --------------------------------------------------------------------------


class CellTimeout(BaseException):  # not an Exception: no library may swallow it
    pass


_LIMITS: list[Any] = []


def init_worker(threads: int, methods: Sequence[str]) -> None:
    """Runs in each worker before any cell: one BLAS/OpenMP thread (the env vars were inherited
    from the parent before numpy loaded here; threadpoolctl covers libraries already loaded),
    then a short warm-up run of every method and the scikit-learn imports, so that no timed cell
    pays for first imports (torch, scipy.optimize, ...)."""
    import importlib
    import logging

    from threadpoolctl import threadpool_limits

    _LIMITS.append(threadpool_limits(limits=threads))
    warnings.filterwarnings("ignore")
    logging.getLogger("hypersearch").setLevel(logging.ERROR)
    for module in (
        "sklearn.svm",
        "sklearn.ensemble",
        "sklearn.neural_network",
        "sklearn.pipeline",
        "sklearn.preprocessing",
        "sklearn.model_selection",
        "sklearn.metrics",
        "sklearn.datasets",
        "sklearn.neighbors",
        "sklearn.tree",
    ):
        importlib.import_module(module)
    for method in methods:  # past the model-based samplers' random start-up (10 for Optuna GP)
        run_cell("branin", method, 12345, 12, threads, 0.0)


def _on_alarm(signum: int, frame: Any) -> None:
    raise CellTimeout("cell timed out")


def _library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("hypersearch", "optuna", "hyperopt", "numpy", "scipy", "scikit-learn", "torch"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


class _SamplerTrial:
    """A define-by-run trial that asks the sampler exactly as the study layer does:
    ``sampler.suggest_param(Context(None, history, rng, number, seed, direction), name, dist)``,
    with this trial among the pending ones of `history`, holding what it suggested so far.
    (Driven here rather than through hs.minimize so that this bench measures the sampler
    contract whatever state the study layer's call is in.)"""

    def __init__(self, sampler: Any, history: list[Any], number: int, seed: int, direction: str):
        from hypersearch.trial import FrozenTrial, TrialState

        self.sampler, self.history, self.number = sampler, history, number
        self.seed, self.direction = seed, direction
        self.flat: dict[str, Any] = {}
        self.dists: dict[str, Any] = {}
        self.record = FrozenTrial(
            number, TrialState.RUNNING, None, self.flat, distributions=self.dists
        )

    def _suggest(self, name: str, dist: Any) -> Any:
        import numpy as np

        from hypersearch.samplers import Context
        from hypersearch.trial import param_seed

        rng = np.random.default_rng(param_seed(self.seed, self.number, name))
        context = Context(None, self.history, rng, self.number, self.seed, self.direction)
        raw = self.sampler.suggest_param(context, name, dist)
        self.flat[name] = raw
        self.dists[name] = dist.to_json()
        return dist.options[raw] if hasattr(dist, "options") else raw

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        import hypersearch as hs

        return self._suggest(name, hs.loguniform(low, high) if log else hs.uniform(low, high))

    def suggest_int(
        self, name: str, low: int, high: int, *, log: bool = False, step: int = 1
    ) -> int:
        import hypersearch as hs

        return self._suggest(name, hs.integer(low, high, log=log, step=step))

    def suggest_categorical(self, name: str, options: list[Any]) -> Any:
        import hypersearch as hs

        return self._suggest(name, hs.choice(list(options)))


def _run_hs_define_by_run(
    strategy: str, f: Callable[[Any], float], problem: Problem, seed: int, budget: int
) -> tuple[int, int, float]:
    """A sequential define-by-run study over the sampler contract (see _SamplerTrial)."""
    import dataclasses

    from hypersearch.samplers import get_sampler
    from hypersearch.trial import TrialState

    sampler = get_sampler(strategy)
    direction = "maximize" if problem.maximize else "minimize"
    history: list[Any] = []
    for number in range(budget):
        trial = _SamplerTrial(sampler, history, number, seed, direction)
        history.append(trial.record)
        value = f(optuna_sample(trial, problem.space))
        history[-1] = dataclasses.replace(trial.record, state=TrialState.COMPLETE, value=value)
    best = (max if problem.maximize else min)(t.value for t in history)
    return len(history), len(history), best


def _run_hypersearch(
    strategy: str, f: Callable[[Any], float], problem: Problem, seed: int, budget: int
) -> tuple[int, int, float]:
    import hypersearch as hs

    if problem.define_by_run:
        return _run_hs_define_by_run(strategy, f, problem, seed, budget)
    run = hs.maximize if problem.maximize else hs.minimize
    study = run(
        f,
        to_hypersearch(problem.space),
        strategy=strategy,
        max_trials=budget,
        seed=seed,
        verbose=False,
    )
    trials = study.trials
    complete = [t for t in trials if t.state.value == "COMPLETE"]
    best = study.best_value if complete else math.nan
    study.close()
    return len(trials), len(complete), best


def _run_optuna(
    kind: str, f: Callable[[Any], float], problem: Problem, seed: int, budget: int, threads: int
) -> tuple[int, int, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if kind == "tpe":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(seed=seed)
    elif kind == "gp":
        import torch

        torch.set_num_threads(threads)
        sampler = optuna.samplers.GPSampler(seed=seed)
    elif kind == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        raise ValueError(f"unknown Optuna method {kind!r}")
    study = optuna.create_study(
        sampler=sampler, direction="maximize" if problem.maximize else "minimize"
    )
    space = problem.space
    study.optimize(lambda trial: f(optuna_sample(trial, space)), n_trials=budget)
    trials = study.trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    return len(trials), len(complete), study.best_value if complete else math.nan


def _run_hyperopt(
    kind: str, f: Callable[[Any], float], problem: Problem, seed: int, budget: int
) -> tuple[int, int, float]:
    import numpy as np
    from hyperopt import STATUS_OK, Trials, fmin, rand, tpe

    algo = {"tpe": tpe.suggest, "random": rand.suggest}[kind]
    trials = Trials()
    fmin(
        lambda params: {"loss": f(params), "status": STATUS_OK},
        to_hyperopt(problem.space),
        algo=algo,
        max_evals=budget,
        trials=trials,
        rstate=np.random.default_rng(seed),
        show_progressbar=False,
    )
    losses = [r["loss"] for r in trials.results if r.get("status") == STATUS_OK]
    return len(trials.trials), len(losses), min(losses) if losses else math.nan


def run_cell(
    problem_name: str,
    method: str,
    seed: int,
    budget: int,
    threads: int,
    timeout: float,
    source: str = "",
) -> dict[str, Any]:
    """Run one (problem, method, seed) for `budget` trials; the JSON record of it."""
    problem = PROBLEMS[problem_name]
    record: dict[str, Any] = {
        "problem": problem_name,
        "method": method,
        "seed": seed,
        "budget": budget,
        "source": source,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    values: list[float] = []
    maximizing = problem.maximize and not method.startswith("hyperopt")
    violations: list[str] = []
    inside = [0.0]
    configs: set[str] = set()
    repeats = [0]  # calls with a configuration this run evaluated before
    _PENALISED[0] = 0
    if problem.dataset is not None:
        _dataset(problem.dataset)  # load the data before the clock starts
    if problem_name == "knn_digits":
        for p in range(1, 5):
            _knn_tables(p)

    def f(params: Any) -> float:
        start = time.perf_counter()
        params = normalise(params)
        key = json.dumps(params, sort_keys=True, default=repr)
        repeats[0] += key in configs
        configs.add(key)
        problems = check_value(problem.space, params)
        if problems and len(violations) < 20:
            violations.extend(problems)
        value = float(problem.fn(params))
        values.append(value)  # recorded as fn: lower is better in every table
        inside[0] += time.perf_counter() - start
        return -value if maximizing else value

    old = signal.signal(signal.SIGALRM, _on_alarm) if timeout > 0 else None
    if timeout > 0:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    started = time.perf_counter()
    try:
        library, _, kind = method.partition("-")
        if library == "hs":
            n_trials, n_complete, best = _run_hypersearch(kind, f, problem, seed, budget)
        elif library == "optuna":
            n_trials, n_complete, best = _run_optuna(kind, f, problem, seed, budget, threads)
        elif library == "hyperopt":
            n_trials, n_complete, best = _run_hyperopt(kind, f, problem, seed, budget)
        else:
            raise ValueError(f"unknown method {method!r}")
        if maximizing:
            best = -best  # the library's best of -fn
        record["wall_s"] = time.perf_counter() - started
    except BaseException as error:  # the record says what failed
        record["wall_s"] = time.perf_counter() - started
        record["error"] = f"{type(error).__name__}: {error}\n{traceback.format_exc()[-2000:]}"
        n_trials = n_complete = 0
        best = math.nan
    finally:
        if timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    record.update(
        objective_s=inside[0],
        calls=len(values),
        n_trials=n_trials,
        n_complete=n_complete,
        library_best=best,
        penalised=_PENALISED[0],
        repeats=repeats[0],
        violations=violations,
        values=values,
        versions=_library_versions(),
    )
    checks = []
    if len(values) != budget:
        checks.append(f"objective ran {len(values)} times, expected {budget}")
    if n_trials != budget or n_complete != budget:
        checks.append(f"library holds {n_trials} trials ({n_complete} complete), expected {budget}")
    if values and not (abs(best - min(values)) <= 1e-12 * max(1.0, abs(best))):
        checks.append(f"library best {best!r} != objective minimum {min(values)!r}")
    if violations:
        checks.append(f"{len(violations)}+ values outside the space, e.g. {violations[0]}")
    record["checks"] = checks
    return record


# -- the results file --------------------------------------------------------------------------


def load_results(path: str) -> dict[tuple[str, str, int], dict[str, Any]]:
    """Successful records by (problem, method, seed); the longest run wins, then the first."""
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                print(f"warning: {path}:{line_no} is not JSON; ignored", file=sys.stderr)
                continue
            if rec.get("error") or rec.get("checks"):
                continue
            key = (rec["problem"], rec["method"], int(rec["seed"]))
            if key not in out or len(rec["values"]) > len(out[key]["values"]):
                out[key] = rec
    return out


def failed_records(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    return [r for r in recs if r.get("error") or r.get("checks")]


# -- the report --------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default)."""
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def fmt_value(x: float) -> str:
    if x != x:
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.3g}"
    return f"{x:.4g}"


def render(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in rows]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


@dataclass
class Reference:
    optimum: float
    optimum_note: str
    ref: float
    ref_note: str


def references(
    problem: Problem, recs: Sequence[dict[str, Any]], seeds: Sequence[int] | None = None
) -> Reference:
    """The optimum (known, or the best value in any record) and the random reference over the
    selected seeds (so adding seeds to the file does not move a table of other seeds)."""
    if problem.optimum is not None:
        optimum, note = problem.optimum, "known"
    else:
        seen = [v for r in recs for v in r["values"]]
        optimum = min(seen) if seen else math.nan
        note = f"best seen ({len(recs)} runs)"
    recs_ref = [r for r in recs if seeds is None or r["seed"] in seeds]
    firsts = [r["values"][0] for r in recs_ref if r["method"] == RANDOM_REF and r["values"]]
    ref_note = f"median first {RANDOM_REF} trial ({len(firsts)} seeds)"
    if not firsts:
        firsts = [r["values"][0] for r in recs_ref if r["values"]]
        ref_note = f"median first trial, all methods ({len(firsts)} runs: no {RANDOM_REF})"
    ref = statistics.median(firsts) if firsts else math.nan
    return Reference(optimum, note, ref, ref_note)


def problem_reference(
    name: str, results: dict[tuple[str, str, int], dict[str, Any]], seeds: Sequence[int] | None
) -> Reference:
    """`references` of problem `name`, with the random reference of its `ref_from` problem."""
    problem = PROBLEMS[name]
    ref = references(problem, [r for (p, _, _), r in results.items() if p == name], seeds)
    if problem.ref_from is not None:
        source = [r for (p, _, _), r in results.items() if p == problem.ref_from]
        if source:
            other = references(PROBLEMS[problem.ref_from], source, seeds)
            ref.ref, ref.ref_note = other.ref, f"{other.ref_note} of {problem.ref_from}"
    return ref


def score(best: float, ref: Reference) -> float:
    span = ref.ref - ref.optimum
    if not span > 0:
        return math.nan
    return min(100.0, max(0.0, 100.0 * (1.0 - (best - ref.optimum) / span)))


def report(
    path: str,
    problems: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int] | None,
    budgets: Sequence[int],
    markdown: bool,
) -> str:
    results = load_results(path)
    out: list[str] = []
    if not results:
        out.append(f"(no successful cells in {path})")
    known_methods = sorted({m for (_, m, _) in results}, key=_method_order)
    methods = [m for m in methods if m in known_methods] or known_methods
    scores: dict[tuple[str, str, int], float] = {}  # (problem, method, budget) -> mean score
    walls: dict[tuple[str, str], tuple[float, float, int]] = {}
    for name in problems:
        problem = PROBLEMS[name]
        all_recs = [r for (p, _, _), r in results.items() if p == name]
        if not all_recs:
            continue
        ref = problem_reference(name, results, seeds)
        rows = []
        for method in methods:
            recs = [
                r
                for (p, m, s), r in sorted(results.items())
                if p == name and m == method and (seeds is None or s in seeds)
            ]
            if not recs:
                continue
            cells = [method, str(len(recs))]
            for b in budgets:
                bests = [min(r["values"][:b]) for r in recs if len(r["values"]) >= b]
                if not bests:
                    cells += ["n/a", "n/a"]
                    continue
                med, q1, q3 = (quantile(bests, q) for q in (0.5, 0.25, 0.75))
                mean_score = statistics.fmean(score(x, ref) for x in bests)
                if mean_score == mean_score:  # NaN when ref <= optimum: left out of the means
                    scores[(name, method, b)] = mean_score
                cells += [
                    f"{fmt_value(med)} [{fmt_value(q1)}, {fmt_value(q3)}]",
                    f"{mean_score:.1f}",
                ]
            wall = statistics.median(r["wall_s"] for r in recs)
            sampler = statistics.median(r["wall_s"] - r["objective_s"] for r in recs)
            walls[(name, method)] = (wall, sampler, len(recs[0]["values"]))
            penalised = sum(r.get("penalised", 0) for r in recs)
            repeated = [r["repeats"] for r in recs if "repeats" in r]
            cells += [
                f"{wall:.2f}",
                f"{sampler:.2f}",
                str(penalised),
                f"{statistics.median(repeated):g}" if repeated else "n/a",
            ]
            rows.append(cells)
        headers = ["method", "seeds"]
        for b in budgets:
            headers += [f"best@{b} median [IQR]", f"score@{b}"]
        headers += ["wall s/run", "sampler s/run", "failed evals", "repeats (median)"]
        out.append(
            f"\n### {name} ({problem.note}, {problem.dims} parameters; optimum "
            f"{fmt_value(ref.optimum)} ({ref.optimum_note}); ref {fmt_value(ref.ref)} "
            f"({ref.ref_note}))\n"
        )
        out.append(render(headers, rows, markdown))

    def summary(title: str, names: Sequence[str]) -> None:
        names = [n for n in names if any((n, m, b) in scores for m in methods for b in budgets)]
        if not names:
            return
        rows = []
        for method in methods:
            cells = [method]
            for b in budgets:
                got = [scores[(n, method, b)] for n in names if (n, method, b) in scores]
                text = f"{statistics.fmean(got):.1f}" if got else "n/a"
                if got and len(got) < len(names):
                    text += f" ({len(got)}/{len(names)} problems)"
                cells.append(text)
            wall = [walls[(n, method)][0] for n in names if (n, method) in walls]
            cells.append(f"{sum(wall):.1f}" if wall else "n/a")
            if any(c != "n/a" for c in cells[1:]):
                rows.append(cells)
        out.append(f"\n### {title}: {', '.join(names)}\n")
        out.append(
            render(
                ["method", *[f"mean score@{b}" for b in budgets], "sum of median wall s"],
                rows,
                markdown,
            )
        )

    summary("Mean normalised score, all problems", problems)
    summary(
        "Mean normalised score, continuous problems of <= 10 dimensions",
        [n for n in problems if PROBLEMS[n].continuous and PROBLEMS[n].dims <= 10],
    )
    sources = {
        r.get("source", "?") for (p, m, _), r in results.items() if p in problems and m in methods
    }
    if len(sources) > 1:
        out.append(f"\nNote: these results come from {len(sources)} versions of hypersearch:")
        out.extend(f"  {src}" for src in sorted(sources))
    bad = failed_records(path)
    if bad:
        out.append(
            f"\n{len(bad)} failed cell record(s) in {path} (left out above, retried on "
            "the next run):"
        )
        for r in bad[:10]:
            why = r.get("error") or "; ".join(r.get("checks", []))
            out.append(
                f"  {r['problem']} {r['method']} seed {r['seed']}: {why.splitlines()[0][:200]}"
            )
    return "\n".join(out)


def _method_order(method: str) -> tuple[int, str]:
    order = DEFAULT_METHODS + OTHER_METHODS
    return (order.index(method) if method in order else len(order), method)


# -- main --------------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = part.split("-")
            seeds.extend(range(int(lo), int(hi) + 1))
        elif part:
            seeds.append(int(part))
    return sorted(set(seeds))


def environment() -> list[str]:
    versions = _library_versions()
    return [
        f"hypersearch source now: git {git_revision()}, files sha1 {source_fingerprint()}",
        f"date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        f"machine: {os.cpu_count()} cores (nproc), {platform.platform()}, "
        f"python {platform.python_version()}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "load average (1/5/15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()),
    ]


def paired(
    path: str,
    problems: Sequence[str],
    pair: tuple[str, str],
    seeds: Sequence[int] | None,
    budgets: Sequence[int],
) -> str:
    """Seed-paired difference of two methods: per seed, the mean over `problems` of
    score(a) - score(b); then the mean over seeds ± its standard error. Seeds where either
    method misses a problem are left out."""
    results = load_results(path)
    refs = {name: problem_reference(name, results, seeds) for name in problems}
    a, b = pair
    lines = [f"\nPaired difference {a} - {b} of the mean score over {', '.join(problems)}:"]
    for budget in budgets:
        diffs = []
        for seed in sorted({s for (_, _, s) in results if seeds is None or s in seeds}):
            per_problem = []
            for name in problems:
                ra, rb = results.get((name, a, seed)), results.get((name, b, seed))
                if ra is None or rb is None or min(len(ra["values"]), len(rb["values"])) < budget:
                    break
                best_a, best_b = min(ra["values"][:budget]), min(rb["values"][:budget])
                per_problem.append(score(best_a, refs[name]) - score(best_b, refs[name]))
            else:
                diffs.append(statistics.fmean(per_problem))
        if len(diffs) < 2:
            lines.append(f"  budget {budget}: fewer than 2 seeds with both methods")
            continue
        mean = statistics.fmean(diffs)
        se = statistics.stdev(diffs) / math.sqrt(len(diffs))
        lines.append(
            f"  budget {budget}: {mean:+.2f} ± {se:.2f} (standard error, {len(diffs)} seeds)"
        )
    return "\n".join(lines)


def _cost(problem: Problem, method: str, budget: int) -> float:
    """A rough guess of a cell's seconds, to start the long ones first."""
    per_trial = problem.cost + (0.1 if method.endswith("-gp") else 0.003)
    return per_trial * budget * (1 + problem.dims / 10)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--problems",
        default="all",
        help=f"comma-separated subset of {','.join(PROBLEMS)}, or the lists "
        f"{','.join(PROBLEM_SETS)} (default all)",
    )
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated; hs-<strategy> for any hypersearch strategy; also "
        + ",".join(OTHER_METHODS),
    )
    parser.add_argument("--seeds", default="0-19", help="e.g. 0-19 or 0,1,5")
    parser.add_argument(
        "--budget",
        default="50,100",
        help="budgets to report; each run has the largest (default 50,100)",
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=DEFAULT_OUT, help="JSONL results file (appended)")
    parser.add_argument("--report-only", action="store_true", help="print the tables, run nothing")
    parser.add_argument("--markdown", action="store_true", help="print tables as Markdown")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads per worker")
    parser.add_argument("--cell-timeout", type=float, default=1800.0, help="seconds; 0: none")
    parser.add_argument(
        "--paired",
        metavar="A,B",
        help="also print the seed-paired difference of two methods' mean score, e.g. hs-gp,optuna-gp",
    )
    args = parser.parse_args(argv)

    problems = []
    for part in args.problems.split(","):
        part = part.strip()
        names = list(PROBLEMS) if part == "all" else PROBLEM_SETS.get(part, [part] if part else [])
        problems += [n for n in names if n not in problems]
    unknown = [p for p in problems if p not in PROBLEMS]
    if unknown:
        parser.error(f"unknown problems {unknown}; choose from {','.join(PROBLEMS)}")
    budgets = sorted({int(b) for b in args.budget.split(",") if b.strip()})
    if not budgets or budgets[0] < 1:
        parser.error("--budget needs positive integers")
    seeds = parse_seeds(args.seeds)
    pair = tuple(m.strip() for m in (args.paired or "").split(",") if m.strip())
    if args.paired is not None and len(pair) != 2:
        parser.error(f"--paired needs two methods, A,B; got {args.paired!r}")
    requested = [m.strip() for m in args.methods.split(",") if m.strip()]

    print("\n".join(environment()))
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"results file: {args.out}")
    if not args.report_only:
        methods = available_methods(requested, DEFAULT_METHODS + OTHER_METHODS)
        run_budget = budgets[-1]
        done = load_results(args.out)
        cells = [
            (p, m, s)
            for p in problems
            for m in methods
            for s in seeds
            if not ((p, m, s) in done and len(done[(p, m, s)]["values"]) >= run_budget)
        ]
        skipped = len(problems) * len(methods) * len(seeds) - len(cells)
        print(
            f"{len(cells)} cells to run ({skipped} already in the file), budget {run_budget}, "
            f"{args.jobs} jobs"
        )
        random.Random(0).shuffle(cells)
        cells.sort(key=lambda c: -_cost(PROBLEMS[c[0]], c[1], run_budget))
        run_cells(cells, methods, run_budget, args)
    print(
        f"\nSample efficiency (file {os.path.basename(args.out)}; best value: lower is better; "
        "score: 100 = optimum, 0 = no better than the median first random trial):"
    )
    print(report(args.out, problems, requested, seeds, budgets, args.markdown))
    if len(pair) == 2:
        print(paired(args.out, problems, (pair[0], pair[1]), seeds, budgets))
    return 0


def run_cells(
    cells: Sequence[tuple[str, str, int]],
    methods: Sequence[str],
    budget: int,
    args: argparse.Namespace,
) -> None:
    if not cells:
        return
    fingerprint = source_fingerprint()
    source = f"git {git_revision()}, files sha1 {fingerprint}"
    for name in THREAD_ENV:  # inherited by the spawned workers before they import numpy
        os.environ[name] = str(args.threads)
    started = time.perf_counter()
    busy = 0.0
    failures = 0
    ctx = mp.get_context("spawn")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    with (
        ProcessPoolExecutor(
            args.jobs, mp_context=ctx, initializer=init_worker, initargs=(args.threads, methods)
        ) as pool,
        open(args.out, "a") as sink,
    ):
        pending: dict[Future[dict[str, Any]], tuple[str, str, int]] = {
            pool.submit(run_cell, p, m, s, budget, args.threads, args.cell_timeout, source): (
                p,
                m,
                s,
            )
            for p, m, s in cells
        }
        finished = 0
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    p, m, s = pending.pop(future)
                    try:
                        rec = future.result()
                    except Exception as error:  # the worker died
                        rec = {
                            "problem": p,
                            "method": m,
                            "seed": s,
                            "budget": budget,
                            "error": f"{type(error).__name__}: {error}",
                            "values": [],
                        }
                    sink.write(json.dumps(rec) + "\n")
                    sink.flush()
                    finished += 1
                    busy += rec.get("wall_s", 0.0)
                    bad = rec.get("error") or "; ".join(rec.get("checks", []))
                    failures += bool(bad)
                    vals = rec.get("values") or [math.nan]
                    print(
                        f"  [{time.perf_counter() - started:7.1f}s] {finished}/{len(cells)} "
                        f"{p:12s} {m:14s} seed {s:2d}  best {fmt_value(min(vals)):>10s}  "
                        f"{rec.get('wall_s', math.nan):6.2f} s"
                        + (f"  FAILED: {bad.splitlines()[0][:150]}" if bad else ""),
                        file=sys.stderr,
                        flush=True,
                    )
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            raise
    elapsed = time.perf_counter() - started
    if source_fingerprint() != fingerprint:
        print(
            "WARNING: hypersearch's source files changed during the run; the hs-* cells may mix "
            "two versions (records carry the version of the run's start; each worker imports "
            "hypersearch once, at its start)"
        )
    print(
        f"ran {len(cells)} cells in {elapsed:.0f} s wall, {busy:.0f} worker-seconds "
        f"({busy / elapsed if elapsed else 0:.1f} busy workers on average), "
        f"{failures} failed"
    )


if __name__ == "__main__":
    sys.exit(main())
