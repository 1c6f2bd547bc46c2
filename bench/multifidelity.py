"""Early stopping at equal compute: hypersearch's schedulers vs Optuna's pruners, in one run.

Every method tunes the same epoch-by-epoch training problems under the same compute budget,
counted in epochs: B = --budget full-length trials' worth (default 20, so 20 x max epochs). The
objective counts every epoch it trains, across all trials; the epoch that would pass B is never
trained, and the trial it belongs to is the method's last (cut short, recorded as failed). So
every method trains exactly B epochs.

    method            sampler                 early stopping (same options on both sides)
    random-full       this file's own uniform sampler (numpy, seeded): every trial trains to
                      the last epoch; the reference
    hs-median         hs "random"             scheduler="median"   n_startup_trials=5,
    optuna-median     Optuna TPESampler       MedianPruner         n_warmup_steps=0, interval 1
    hs-asha           hs "random"             scheduler="asha"     min_resource=1,
    optuna-sha        Optuna TPESampler       SuccessiveHalving    reduction_factor=3 (hs:
                                                                   max_resource=E, 1 bracket;
                                                                   Optuna: min_early_stopping_rate=0)
    hs-hyperband      hs "random"             scheduler="hyperband" min_resource=1,
    hs-bohb           hs "tpe"                scheduler="hyperband" max_resource=E,
    optuna-hyperband  Optuna TPESampler       HyperbandPruner       reduction_factor=3

Other methods, by the pattern <library>-<sampler>-<stopping>: hs-random-median, hs-tpe-asha,
optuna-random-sha, optuna-random-hyperband, hs-tpe-full, optuna-tpe-full (full: no early
stopping)... The defaults pair hypersearch's random sampling with Optuna's TPE (Optuna as it is
usually run); the optuna-random-* rows compare the stopping rules alone.

hypersearch runs ask/tell in a loop this file controls: ``study = hs.create_study(space,
strategy=, scheduler=, scheduler_options=, seed=s, storage="memory")``; per trial
``study.ask()``, then per epoch ``trial.report(epoch, loss=loss)`` and ``trial.should_stop()``;
``study.tell(trial, loss)`` after the last epoch, ``study.tell(trial, state="pruned")`` when told
to stop. Optuna runs ``study.optimize`` with an objective that calls ``trial.report(loss,
epoch)`` and raises ``optuna.TrialPruned`` when ``trial.should_prune()``; the budget ends it with
an exception. On both sides the decision that follows the last epoch's report is not asked for:
a trial that trained every epoch is complete.

Problems (each trial trains from scratch; one report per epoch, of the validation loss):

    curves        synthetic learning curves, 81 epochs, microseconds per epoch: 4 parameters
                  (lr, momentum, width, dropout); loss(e) = floor + (1 - floor) exp(-e / tau) +
                  overfitting drift + noise (sd 0.005). A high effective learning rate learns in
                  a few epochs but ends on a high floor, dropout learns slower and ends lower,
                  wide nets without dropout drift up: curves cross, so greedy stopping is wrong
                  often enough to matter
    mlp_digits    MLPClassifier (adam, 1 hidden layer) on scikit-learn's digits (70/30
                  stratified split, standardised), one epoch = one partial_fit pass, validation
                  log-loss; lr, alpha (log), hidden 8-128 (log), batch 64-512 (log); 27 epochs
                  of ~9 ms
    sgd_synthetic SGDClassifier on make_classification(4000 x 40, 12 informative, one cluster a
                  class, class_sep 0.8, flip_y 0.03, random_state=0), one partial_fit pass per
                  epoch, validation error; loss (hinge, log_loss, modified_huber), schedule
                  (constant, invscaling, optimal), eta0, alpha (log), power_t; 27 epochs of
                  ~2 ms

Models use random_state=0: a configuration's curve is the same whichever method asks for it.
hypersearch's random strategy draws trial k's parameters from (seed, k) alone, so the hs-random-*
rows of one seed see the same configurations in the same order (paired); they end on the very
same best trial whenever both rules let it run to the end.

Reported, per problem and method (medians over --seeds, default 0-9):
    best          the best final-epoch validation loss among the trials that trained every epoch
                  (full-length trials: the same quality measure for every method), at B epochs
    epochs to target   the epochs spent when that best first reached the target, the median over
                  seeds of random-full's best at B; with the number of seeds that reached it
                  ("—" when fewer than half did)
    trials        trials started (full-length ones in brackets)
    lib s         seconds per cell outside the training code (sampling, scheduling, storage)

Second table: per-report overhead of the stopping rule with a history of N = 100, 1,000, 10,000
finished trials (27-step curves of the curves problem), each (library, storage, N) in a fresh
spawned process, one after another (nothing else running). The history is written once with no
scheduler (hs: ask / report / tell; Optuna: study.add_trials), then each rule gets a fresh study
object on the same storage (hs: hs.load_study(name, storage, scheduler=..., ...), a revision;
Optuna: optuna.load_study(..., pruner=...)) and runs trials whose 27 reports are all timed:
hs trial.report (which returns the decision), Optuna trial.report + trial.should_prune. Their
curve is better than every stored one, so no measured trial is stopped and every report runs
the whole rule. Rows "none" are the same with no rule (the cost of reporting itself).

A cell holds: the mean µs per report over the trials after the first (up to 20 of them, or
--overhead-cap seconds, default 2); in brackets, the first trial's mean; then the mean ms of
the tell that ends a measured trial (hs buffers a trial's reports and writes them then). The
first trial reads the stored history. hs reads each (metric, step) ranking once and then keeps
it current from its own reports, re-reading it when it is older than 2 s on a shared storage
(never in memory): on SQLite the bracketed number is also what a report costs once epochs are
more than 2 s apart, and the first number may or may not include a re-read (it depends on how
long the first trial took). Optuna's pruners read the trials at every report.

Storages: memory (hs MemoryStorage; Optuna InMemoryStorage) and SQLite (the history written in
a folder on /dev/shm where there is one, then moved to a temporary folder on disk and measured
there), up to --sqlite-max (default 1000; writing 10,000 trials through ask / report / tell
takes 2-3 minutes, --sqlite-max 10000 adds them), Optuna on SQLite up to --optuna-sqlite-max
(default 100; its study.add_trials writes about 20 trials a second there). While hypersearch's
history is written the GIL switch interval is shortened (a tell waits about one switch
interval, 5 ms, for the report writer thread); the measurement runs with the default.

Execution: cells (problem, method, seed) run in --jobs spawned worker processes (BLAS/OpenMP
limited to --threads, default 1), each of which imports everything and trains a few epochs of
every problem before its first cell. Checks per cell: exactly B epochs trained; the library
holds as many trials as the objective started; its best complete value equals the best
full-length loss the objective saw. A failed check is printed and the cell left out.

Usage::

    python bench/multifidelity.py [--problems curves,mlp_digits,sgd_synthetic] [--methods ...]
        [--seeds 0-9] [--budget 20] [--jobs N] [--out results.jsonl] [--no-overhead]
        [--overhead-only] [--overhead-sizes 100,1000,10000] [--sqlite-max 1000] [--quick]

--quick: seeds 0-1, budget 8, overhead at 100 and 1,000 trials, SQLite at 100 only (a smoke run
of one to two minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import multiprocessing as mp
import os
import signal
import statistics
import sys
import tempfile
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from benchinfo import git_revision, run_isolated, source_fingerprint  # bench/ is the script folder
from efficiency import (
    Cat,
    Int,
    Real,
    check_value,
    environment,
    normalise,
    optuna_sample,
    parse_seeds,
    to_hypersearch,
)

if TYPE_CHECKING:
    import numpy as np

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
DEFAULT_METHODS = [
    "random-full",
    "hs-median",
    "hs-asha",
    "hs-hyperband",
    "hs-bohb",
    "optuna-median",
    "optuna-sha",
    "optuna-hyperband",
]
ALIASES = {  # short names of the defaults -> <library>-<sampler>-<stopping>
    "hs-median": "hs-random-median",
    "hs-asha": "hs-random-asha",
    "hs-hyperband": "hs-random-hyperband",
    "hs-bohb": "hs-tpe-hyperband",
    "optuna-median": "optuna-tpe-median",
    "optuna-sha": "optuna-tpe-sha",
    "optuna-hyperband": "optuna-tpe-hyperband",
}
SAMPLERS = {"hs": ("random", "tpe", "gp", "sobol"), "optuna": ("random", "tpe")}
STOPPING = {
    "hs": ("median", "asha", "hyperband", "full"),
    "optuna": ("median", "sha", "hyperband", "full"),
}
REFERENCE = "random-full"
REDUCTION = 3
MEDIAN_OPTIONS = {"n_startup_trials": 5, "n_warmup_steps": 0, "interval_steps": 1}
LOSS_CAP = 2.5  # a diverged model's log-loss (ln 10 = 2.30 is the uniform guess on digits)


# -- problems ----------------------------------------------------------------------------------


Stepper = Callable[[], float]  # trains one more epoch, returns the validation loss


@dataclass(frozen=True)
class Problem:
    name: str
    space: dict[str, Any]
    make: Callable[[dict[str, Any]], Stepper]  # a fresh model for these parameters
    max_epochs: int
    note: str
    epoch_ms: float  # rough cost of an epoch, to start the long cells first


CURVES_SPACE = {
    "lr": Real(1e-3, 1.0, log=True),
    "momentum": Real(0.0, 0.99),
    "width": Int(8, 512, log=True),
    "dropout": Real(0.0, 0.8),
}


def curve_shape(p: dict[str, Any]) -> tuple[float, float, float]:
    """(floor, tau, drift) of a configuration of the curves problem."""
    # effective learning rate, log10 and shifted to [0, 4]: lr and momentum / (1 - momentum)
    rate = math.log10(p["lr"]) + 3 + 0.5 * math.log10(1 / (1 - p["momentum"]))
    tau = 20 * 10 ** (-0.75 * rate) * (1 + 2 * p["dropout"])  # epochs: 20 (rate 0) .. 0.02
    width = math.log2(p["width"])  # 3 .. 9
    floor = (
        0.08
        + 0.3 * max(0.0, rate - 2.8) ** 2  # fast learners (rate > 2.8) end high
        + 0.02 * (width - 7) ** 2
        + 0.5 * (p["dropout"] - 0.05 * (width - 3)) ** 2  # wider nets want more dropout
    )
    drift = 0.04 * max(0.0, width - 5) * max(0.0, 0.3 - p["dropout"]) / 0.3  # overfitting
    return floor, tau, drift


def curve_loss(p: dict[str, Any], epoch: int, max_epochs: int = 81) -> float:
    """The noise-free loss of the curves problem after `epoch` epochs."""
    floor, tau, drift = curve_shape(p)
    return floor + (1 - floor) * math.exp(-epoch / tau) + drift * epoch / max_epochs


def make_curves(p: dict[str, Any]) -> Stepper:
    import numpy as np

    key = json.dumps(p, sort_keys=True).encode()
    rng = np.random.default_rng(zlib.crc32(key))  # the same noise whoever asks
    epoch = [0]

    def step() -> float:
        epoch[0] += 1
        return curve_loss(p, epoch[0]) + 0.005 * float(rng.standard_normal())

    return step


MLP_SPACE = {
    "lr": Real(1e-4, 1.0, log=True),
    "alpha": Real(1e-6, 1.0, log=True),
    "hidden": Int(8, 128, log=True),
    "batch": Int(64, 512, log=True),
}


@functools.cache
def _split(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_valid, y_valid), standardised on the training part."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if name == "digits":
        x, y = datasets.load_digits(return_X_y=True)
    elif name == "synthetic":
        x, y = datasets.make_classification(
            n_samples=4000,
            n_features=40,
            n_informative=12,
            n_redundant=8,
            n_clusters_per_class=1,
            class_sep=0.8,
            flip_y=0.03,
            random_state=0,
        )
    else:
        raise KeyError(name)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_tr)
    return scaler.transform(x_tr), y_tr, scaler.transform(x_va), y_va


def _log_loss(y: np.ndarray, proba: np.ndarray) -> float:
    import numpy as np

    with np.errstate(all="ignore"):
        picked = np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0)
        loss = float(-np.mean(np.log(picked)))
    return loss if math.isfinite(loss) and loss < LOSS_CAP else LOSS_CAP


def make_mlp_digits(p: dict[str, Any]) -> Stepper:
    import numpy as np
    from sklearn.neural_network import MLPClassifier

    x, y, xv, yv = _split("digits")
    classes = np.arange(10)
    model = MLPClassifier(
        hidden_layer_sizes=(p["hidden"],),
        learning_rate_init=p["lr"],
        alpha=p["alpha"],
        batch_size=p["batch"],
        random_state=0,
    )

    def step() -> float:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                model.partial_fit(x, y, classes=classes)
                proba = model.predict_proba(xv)
            except (ValueError, FloatingPointError, ArithmeticError):
                return LOSS_CAP
        return _log_loss(yv, proba)

    return step


SGD_SPACE = {
    "loss": Cat(("hinge", "log_loss", "modified_huber")),
    "schedule": Cat(("constant", "invscaling", "optimal")),
    "eta0": Real(1e-5, 1.0, log=True),
    "alpha": Real(1e-7, 1e-1, log=True),
    "power_t": Real(0.05, 0.9),
}


def make_sgd_synthetic(p: dict[str, Any]) -> Stepper:
    import numpy as np
    from sklearn.linear_model import SGDClassifier

    x, y, xv, yv = _split("synthetic")
    classes = np.array([0, 1])
    model = SGDClassifier(
        loss=p["loss"],
        learning_rate=p["schedule"],
        eta0=p["eta0"],
        alpha=p["alpha"],
        power_t=p["power_t"],
        random_state=0,
    )

    def step() -> float:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                model.partial_fit(x, y, classes=classes)
                error = float(np.mean(model.predict(xv) != yv))
            except (ValueError, FloatingPointError, ArithmeticError):
                return 0.5
        return error if math.isfinite(error) else 0.5

    return step


PROBLEMS = {
    p.name: p
    for p in (
        Problem("curves", CURVES_SPACE, make_curves, 81, "synthetic learning curves", 0.005),
        Problem("mlp_digits", MLP_SPACE, make_mlp_digits, 27, "MLP on digits, log-loss", 14.0),
        Problem(
            "sgd_synthetic",
            SGD_SPACE,
            make_sgd_synthetic,
            27,
            "SGD on make_classification, error",
            2.0,
        ),
    )
}


def sample(space: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A uniform sample of a flat neutral space (log scales uniform in the log; integers each
    with equal mass, like Optuna's and hypersearch's)."""
    out: dict[str, Any] = {}
    for name, node in space.items():
        if isinstance(node, Real):
            if node.log:
                out[name] = math.exp(rng.uniform(math.log(node.low), math.log(node.high)))
            else:
                out[name] = float(rng.uniform(node.low, node.high))
        elif isinstance(node, Int):
            if node.log:
                raw = math.exp(rng.uniform(math.log(node.low - 0.5), math.log(node.high + 0.5)))
                out[name] = min(node.high, max(node.low, round(raw)))
            else:
                out[name] = int(rng.integers(node.low, node.high + 1))
        elif isinstance(node, Cat):
            out[name] = node.options[int(rng.integers(len(node.options)))]
        else:
            out[name] = node
    return out


# -- the epoch budget --------------------------------------------------------------------------


class BudgetSpent(Exception):
    """The next epoch would pass the budget: the method's run ends here."""


class Ledger:
    """Counts epochs across a method's trials and records what each trial reached."""

    def __init__(self, problem: Problem, budget: int) -> None:
        self.problem, self.budget = problem, budget
        self.used = 0
        self.trials = 0  # started
        self.full = 0  # trained every epoch
        self.stopped = 0  # stopped early by the rule
        self.cut = 0  # cut short by the budget
        self.best = math.inf  # best final loss of a full-length trial
        self.trajectory: list[tuple[int, float]] = []  # (epochs used, new best)
        self.train_s = 0.0  # seconds inside the training code
        self.violations: list[str] = []

    def train(
        self, params: dict[str, Any], report: Callable[[int, float], bool] | None
    ) -> tuple[float, bool]:
        """Train `params` epoch by epoch; `report(epoch, loss)` says whether to stop (it is not
        called for the decision after the last epoch: it only hears that report). Returns
        (the last loss, whether the trial trained every epoch); raises BudgetSpent."""
        params = normalise(params)
        problems = check_value(self.problem.space, params)
        if problems and len(self.violations) < 10:
            self.violations.extend(problems)
        self.trials += 1
        start = time.perf_counter()
        step = self.problem.make(params)
        self.train_s += time.perf_counter() - start
        last = self.problem.max_epochs
        loss = math.nan
        for epoch in range(1, last + 1):
            if self.used >= self.budget:
                self.cut += 1
                raise BudgetSpent
            self.used += 1
            start = time.perf_counter()
            loss = step()
            self.train_s += time.perf_counter() - start
            if report is not None and report(epoch, loss) and epoch < last:
                self.stopped += 1
                return loss, False
        self.full += 1
        if loss < self.best:
            self.best = loss
            self.trajectory.append((self.used, loss))
        return loss, True


def scheduler_options(stopping: str, max_epochs: int) -> dict[str, Any]:
    if stopping == "median":
        return dict(MEDIAN_OPTIONS)
    if stopping == "asha":
        return {
            "min_resource": 1,
            "max_resource": max_epochs,
            "reduction_factor": REDUCTION,
            "brackets": 1,
        }
    if stopping == "hyperband":
        return {"min_resource": 1, "max_resource": max_epochs, "reduction_factor": REDUCTION}
    raise ValueError(stopping)


def optuna_pruner(stopping: str, max_epochs: int) -> Any:
    import optuna

    if stopping == "median":
        return optuna.pruners.MedianPruner(**MEDIAN_OPTIONS)
    if stopping == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=1, reduction_factor=REDUCTION, min_early_stopping_rate=0
        )
    if stopping == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max_epochs, reduction_factor=REDUCTION
        )
    if stopping == "full":
        return optuna.pruners.NopPruner()
    raise ValueError(stopping)


def parse_method(method: str) -> tuple[str, str, str]:
    """(library, sampler, stopping) of a method name; ValueError for an unknown one."""
    if method == REFERENCE:
        return "own", "random", "full"
    parts = ALIASES.get(method, method).split("-")
    if (
        len(parts) != 3
        or parts[0] not in SAMPLERS
        or parts[1] not in SAMPLERS[parts[0]]
        or parts[2] not in STOPPING[parts[0]]
    ):
        raise ValueError(
            f"unknown method {method!r}: {REFERENCE}, {', '.join(ALIASES)}, or "
            "hs-<random|tpe|gp|sobol>-<median|asha|hyperband|full>, "
            "optuna-<random|tpe>-<median|sha|hyperband|full>"
        )
    return parts[0], parts[1], parts[2]


def _run_reference(ledger: Ledger, seed: int) -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(seed)
    try:
        while True:
            ledger.train(sample(ledger.problem.space, rng), None)
    except BudgetSpent:
        pass
    return {"library_trials": ledger.trials, "library_best": ledger.best}


def _run_hypersearch(ledger: Ledger, sampler: str, stopping: str, seed: int) -> dict[str, Any]:
    import hypersearch as hs

    problem = ledger.problem
    settings: dict[str, Any] = {"strategy": sampler, "seed": seed, "storage": "memory"}
    if stopping != "full":
        settings.update(
            scheduler=stopping, scheduler_options=scheduler_options(stopping, problem.max_epochs)
        )
    study = hs.create_study(
        to_hypersearch(problem.space),
        name=f"{problem.name}-{sampler}-{stopping}-{seed}",
        **settings,
    )
    decisions: dict[str, int] = {}
    told_after_stop = [0]

    try:
        while True:
            trial = study.ask()

            def report(epoch: int, loss: float, trial: Any = trial) -> bool:
                decision = trial.report(epoch, loss=loss)
                decisions[str(decision)] = decisions.get(str(decision), 0) + 1
                if epoch == problem.max_epochs and trial.should_stop():
                    told_after_stop[0] += 1
                return trial.should_stop()

            try:
                loss, full = ledger.train(trial.params, report)
            except BudgetSpent:
                study.tell(trial, state="fail")
                break
            if full:
                study.tell(trial, loss)
            else:
                study.tell(trial, state="pruned")
        trials = study.trials
        complete = [t for t in trials if t.state.value == "COMPLETE"]
        states: dict[str, int] = {}
        for t in trials:
            states[t.state.value] = states.get(t.state.value, 0) + 1
        return {
            "library_trials": len(trials),
            "library_best": min(t.value for t in complete) if complete else math.inf,
            "library_states": states,
            "decisions": decisions,
            "stop_after_last_epoch": told_after_stop[0],
        }
    finally:
        study.close()


def _run_optuna(ledger: Ledger, sampler: str, stopping: str, seed: int) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    problem = ledger.problem
    chosen: optuna.samplers.BaseSampler = (
        optuna.samplers.TPESampler(seed=seed)
        if sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    study = optuna.create_study(sampler=chosen, pruner=optuna_pruner(stopping, problem.max_epochs))

    def objective(trial: optuna.Trial) -> float:
        def report(epoch: int, loss: float) -> bool:
            trial.report(loss, epoch)
            return epoch < problem.max_epochs and trial.should_prune()

        loss, full = ledger.train(optuna_sample(trial, problem.space), report)
        if not full:
            raise optuna.TrialPruned()
        return loss

    with contextlib.suppress(BudgetSpent):
        study.optimize(objective, n_trials=10**7, gc_after_trial=False)
    trials = study.trials
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    return {
        "library_trials": len(trials),
        "library_best": min(t.value for t in complete) if complete else math.inf,
        "library_states": states,
    }


class CellTimeout(BaseException):  # not an Exception: no library may swallow it
    pass


def _on_alarm(signum: int, frame: Any) -> None:
    raise CellTimeout("cell timed out")


def run_cell(
    problem_name: str, method: str, seed: int, budget: int, timeout: float = 0.0, source: str = ""
) -> dict[str, Any]:
    """One (problem, method, seed) run of `budget` full trials' worth of epochs: its record."""
    problem = PROBLEMS[problem_name]
    epochs = budget * problem.max_epochs
    record: dict[str, Any] = {
        "problem": problem_name,
        "method": method,
        "seed": seed,
        "budget_trials": budget,
        "budget_epochs": epochs,
        "source": source,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    ledger = Ledger(problem, epochs)
    library, sampler, stopping = parse_method(method)
    old = signal.signal(signal.SIGALRM, _on_alarm) if timeout > 0 else None
    if timeout > 0:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    try:
        if library == "own":
            extra = _run_reference(ledger, seed)
        elif library == "hs":
            extra = _run_hypersearch(ledger, sampler, stopping, seed)
        else:
            extra = _run_optuna(ledger, sampler, stopping, seed)
    except BaseException as error:  # the record says what failed
        record["error"] = f"{type(error).__name__}: {error}\n{traceback.format_exc()[-3000:]}"
    finally:
        record["wall_s"] = time.perf_counter() - started
        if timeout > 0:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    record.update(
        epochs_used=ledger.used,
        trials=ledger.trials,
        full=ledger.full,
        stopped=ledger.stopped,
        cut=ledger.cut,
        best=ledger.best,
        trajectory=ledger.trajectory,
        train_s=ledger.train_s,
        violations=ledger.violations,
        **extra,
    )
    checks = []
    if "error" not in record:
        if ledger.used != epochs:
            checks.append(f"trained {ledger.used} epochs, budget {epochs}")
        if extra.get("library_trials") != ledger.trials:
            checks.append(
                f"library holds {extra.get('library_trials')} trials, objective started "
                f"{ledger.trials}"
            )
        lib_best = extra.get("library_best", math.nan)
        if not (lib_best == ledger.best or abs(lib_best - ledger.best) <= 1e-12):
            checks.append(f"library best {lib_best!r} != best full-length loss {ledger.best!r}")
        if ledger.violations:
            checks.append(f"values outside the space, e.g. {ledger.violations[0]}")
    record["checks"] = checks
    return record


# -- workers -----------------------------------------------------------------------------------

_LIMITS: list[Any] = []


def init_worker(threads: int) -> None:
    """Each worker, before its first cell: BLAS/OpenMP threads limited (the environment was
    set before numpy loaded here; threadpoolctl covers what is loaded), every import made and
    a few epochs of every problem trained, so that no timed cell pays for first imports."""
    import logging

    from threadpoolctl import threadpool_limits

    _LIMITS.append(threadpool_limits(limits=threads))
    warnings.filterwarnings("ignore")
    logging.getLogger("hypersearch").setLevel(logging.ERROR)
    import numpy as np
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with contextlib.suppress(Exception):  # reported by the cells that need it
        import hypersearch.study  # noqa: F401
    rng = np.random.default_rng(0)
    for problem in PROBLEMS.values():
        step = problem.make(sample(problem.space, rng))
        for _ in range(2):
            step()


def hs_available() -> str | None:
    """None when hypersearch's schedulers can run here; else why not."""
    try:
        from hypersearch.schedulers import make_scheduler
        from hypersearch.study.definition import StudyDefinition  # noqa: F401

        for name in ("median", "asha", "hyperband"):
            make_scheduler(name, scheduler_options(name, 27))
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def run_cells(
    cells: Sequence[tuple[str, str, int]], budget: int, args: argparse.Namespace
) -> list[dict[str, Any]]:
    source = f"git {git_revision()}, files sha1 {source_fingerprint()}"
    for name in THREAD_ENV:  # inherited by the spawned workers before they import numpy
        os.environ[name] = str(args.threads)
    started = time.perf_counter()
    records: list[dict[str, Any]] = []
    sink = open(args.out, "a") if args.out else None  # noqa: SIM115 - closed below
    ctx = mp.get_context("spawn")
    try:
        with ProcessPoolExecutor(
            args.jobs, mp_context=ctx, initializer=init_worker, initargs=(args.threads,)
        ) as pool:
            pending: dict[Future[dict[str, Any]], tuple[str, str, int]] = {
                pool.submit(run_cell, p, m, s, budget, args.cell_timeout, source): (p, m, s)
                for p, m, s in cells
            }
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
                            "checks": [],
                            "error": f"{type(error).__name__}: {error}",
                        }
                    records.append(rec)
                    if sink is not None:
                        sink.write(json.dumps(rec) + "\n")
                        sink.flush()
                    bad = rec.get("error") or "; ".join(rec.get("checks", []))
                    print(
                        f"  [{time.perf_counter() - started:6.1f}s] {len(records)}/{len(cells)} "
                        f"{p:13s} {m:17s} seed {s:2d}  best {rec.get('best', math.nan):8.4f}  "
                        f"trials {rec.get('trials', 0):4d}  {rec.get('wall_s', math.nan):6.2f} s"
                        + (f"  FAILED: {bad.strip().splitlines()[-1][:200]}" if bad else ""),
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        if sink is not None:
            sink.close()
    elapsed = time.perf_counter() - started
    busy = sum(r.get("wall_s", 0.0) for r in records)
    print(
        f"ran {len(cells)} cells in {elapsed:.0f} s wall, {busy:.0f} worker-seconds, "
        f"{sum(bool(r.get('error') or r.get('checks')) for r in records)} failed"
    )
    return records


# -- the quality table -------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    if len(values) < 2:
        return (values[0], values[0]) if values else (math.nan, math.nan)
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def epochs_to(record: dict[str, Any], target: float) -> float:
    """Epochs spent when the run's best full-length loss first reached `target` (inf: never)."""
    for used, best in record["trajectory"]:
        if best <= target:
            return float(used)
    return math.inf


def quality_report(
    records: Sequence[dict[str, Any]], problems: Sequence[str], methods: Sequence[str]
) -> str:
    good = [r for r in records if not r.get("error") and not r.get("checks")]
    out = []
    for name in problems:
        problem = PROBLEMS[name]
        rows = [r for r in good if r["problem"] == name]
        if not rows:
            continue
        ref = [r["best"] for r in rows if r["method"] == REFERENCE and math.isfinite(r["best"])]
        target = _median(ref) if ref else math.nan
        epochs = rows[0]["budget_epochs"]
        seeds = sorted({r["seed"] for r in rows})
        out.append(
            f"\n### {name} ({problem.note}; {len(problem.space)} parameters, "
            f"{problem.max_epochs} epochs per trial; budget {epochs} epochs = "
            f"{rows[0]['budget_trials']} full trials; {len(seeds)} seeds; target = "
            f"{REFERENCE}'s median best {target:.4g})\n"
        )
        out.append(
            "| method | best loss (median) | 25%–75% | epochs to target (median) | reached "
            "| trials (full) | lib s |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|")
        for method in methods:
            mine = [r for r in rows if r["method"] == method]
            if not mine:
                continue
            bests = [r["best"] for r in mine]
            lo, hi = _quartiles(bests)
            reach = [epochs_to(r, target) for r in mine] if math.isfinite(target) else []
            reached = sum(math.isfinite(e) for e in reach)
            med_reach = _median(reach) if reach else math.inf
            trials = _median([r["trials"] for r in mine])
            full = _median([r["full"] for r in mine])
            lib = _median([r["wall_s"] - r["train_s"] for r in mine])
            out.append(
                f"| {method} | {_median(bests):.4f} | {lo:.4f}–{hi:.4f} | "
                f"{f'{med_reach:.0f}' if math.isfinite(med_reach) else '—'} | "
                f"{reached}/{len(mine)} | {trials:.0f} ({full:.0f}) | {lib:.2f} |"
            )
    bad = [r for r in records if r.get("error") or r.get("checks")]
    if bad:
        out.append(f"\n{len(bad)} failed cell(s), left out above:")
        for r in bad[:12]:
            why = r.get("error") or "; ".join(r["checks"])
            lines = why.strip().splitlines()
            out.append(
                f"  {r['problem']} {r['method']} seed {r['seed']}: {lines[0][:160]}"
                + (f" ... {lines[-1][:200]}" if len(lines) > 1 else "")
            )
    return "\n".join(out)


# -- the overhead table ------------------------------------------------------------------------

OVERHEAD_STEPS = 27


def _overhead_history(n: int) -> list[tuple[dict[str, Any], list[float]]]:
    """n configurations of the curves problem and their first OVERHEAD_STEPS losses."""
    import numpy as np

    rng = np.random.default_rng(12345)
    out = []
    for _ in range(n):
        params = sample(CURVES_SPACE, rng)
        step = make_curves(params)
        out.append((params, [step() for _ in range(OVERHEAD_STEPS)]))
    return out


def _timed_trials(
    run_trial: Callable[[], tuple[list[float], float, int]], cap_s: float, max_trials: int
) -> dict[str, Any]:
    """Run measured trials until `cap_s` seconds or `max_trials`: mean µs per report etc."""
    first, first_tell, stops = run_trial()  # reads the stored history: timed apart
    reports: list[float] = []
    tells: list[float] = []
    start = time.perf_counter()
    for _ in range(max_trials):
        times, tell, stopped = run_trial()
        reports.extend(times)
        tells.append(tell)
        stops += stopped
        if time.perf_counter() - start > cap_s:
            break
    return {
        "report_us": 1e6 * statistics.fmean(reports),
        "report_median_us": 1e6 * statistics.median(reports),
        "first_report_us": 1e6 * statistics.fmean(first),
        "tell_ms": 1e3 * statistics.fmean(tells),
        "first_tell_ms": 1e3 * first_tell,
        "reports": len(reports),
        "stops": stops,
    }


def _scratch(prefix: str) -> tuple[str, str]:
    """(a folder to write the history in: on tmpfs where there is one, a folder on disk)."""
    shm = "/dev/shm"
    fast = tempfile.mkdtemp(prefix=prefix, dir=shm if os.path.isdir(shm) else None)
    disk = tempfile.mkdtemp(prefix=prefix)
    _SCRATCH.extend([fast, disk])
    return fast, disk


_SCRATCH: list[str] = []  # removed at the end of the measuring process


def _move_db(fast: str, disk: str) -> str:
    """Move overhead.db (and any -wal/-shm beside it) from `fast` to `disk`; the new path."""
    import shutil

    for name in os.listdir(fast):
        if name.startswith("overhead.db"):
            shutil.move(os.path.join(fast, name), os.path.join(disk, name))
    return os.path.join(disk, "overhead.db")


def overhead_hs(storage_kind: str, n: int, cap_s: float, max_trials: int) -> dict[str, Any]:
    """hypersearch, one storage, a history of n trials: every rule measured on it."""
    import logging

    import hypersearch as hs
    from hypersearch.storage.memory import MemoryStorage

    logging.getLogger("hypersearch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    history = _overhead_history(n)
    space = to_hypersearch(CURVES_SPACE)
    fast, disk = _scratch("hs-overhead-")
    store: Any = MemoryStorage() if storage_kind == "memory" else f"sqlite:///{fast}/overhead.db"
    start = time.perf_counter()
    switch = sys.getswitchinterval()
    # a tell waits for the report writer thread, about one GIL switch interval: shortened
    # while the history is written (not measured), restored for the measurement
    sys.setswitchinterval(1e-4)
    study = hs.create_study(space, strategy="random", seed=0, storage=store, name="overhead")
    for params, curve in history:
        study.enqueue(params)
        trial = study.ask()
        for step, loss in enumerate(curve, 1):
            trial.report(step, loss=loss)
        study.tell(trial, curve[-1])
    study.close()
    sys.setswitchinterval(switch)
    if storage_kind != "memory":  # written on tmpfs, measured on disk
        study.storage.close()
        store = f"sqlite:///{_move_db(fast, disk)}"
    out: dict[str, Any] = {"populate_s": time.perf_counter() - start, "rules": {}}
    for rule in ("none", "median", "asha"):
        settings: dict[str, Any] = {}
        if rule != "none":
            settings = {
                "scheduler": rule,
                "scheduler_options": scheduler_options(rule, OVERHEAD_STEPS),
            }
        live = hs.load_study("overhead", store, **settings)

        def run_trial(live: Any = live) -> tuple[list[float], float, int]:
            trial = live.ask()
            times = []
            stopped = 0
            for step in range(1, OVERHEAD_STEPS + 1):
                t0 = time.perf_counter()
                trial.report(step, loss=0.0)
                times.append(time.perf_counter() - t0)
                stopped += bool(trial.should_stop())
            t0 = time.perf_counter()
            live.tell(trial, 0.0)
            return times, time.perf_counter() - t0, stopped

        out["rules"][rule] = _timed_trials(run_trial, cap_s, max_trials)
        live.close()
    return out


def overhead_optuna(storage_kind: str, n: int, cap_s: float, max_trials: int) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore")
    history = _overhead_history(n)
    dists: dict[str, Any] = {}
    for name, node in CURVES_SPACE.items():
        if isinstance(node, Real):
            dists[name] = optuna.distributions.FloatDistribution(node.low, node.high, log=node.log)
        else:
            dists[name] = optuna.distributions.IntDistribution(node.low, node.high, log=node.log)
    fast, disk = _scratch("optuna-overhead-")
    storage: Any = (
        optuna.storages.InMemoryStorage()
        if storage_kind == "memory"
        else optuna.storages.RDBStorage(f"sqlite:///{fast}/overhead.db")
    )
    start = time.perf_counter()
    study = optuna.create_study(study_name="overhead", storage=storage)
    study.add_trials(
        [
            optuna.trial.create_trial(
                value=curve[-1],
                params=params,
                distributions=dists,
                intermediate_values=dict(enumerate(curve, 1)),
            )
            for params, curve in history
        ]
    )
    if storage_kind != "memory":  # written on tmpfs, measured on disk
        storage.remove_session()
        storage.engine.dispose()
        storage = optuna.storages.RDBStorage(f"sqlite:///{_move_db(fast, disk)}")
    out: dict[str, Any] = {"populate_s": time.perf_counter() - start, "rules": {}}
    for rule in ("none", "median", "sha"):
        pruner = optuna_pruner("full" if rule == "none" else rule, OVERHEAD_STEPS)
        live = optuna.load_study(
            study_name="overhead",
            storage=storage,
            sampler=optuna.samplers.RandomSampler(seed=0),
            pruner=pruner,
        )

        def run_trial(live: Any = live) -> tuple[list[float], float, int]:
            trial = live.ask(dists)
            times = []
            stopped = 0
            for step in range(1, OVERHEAD_STEPS + 1):
                t0 = time.perf_counter()
                trial.report(0.0, step)
                prune = trial.should_prune()
                times.append(time.perf_counter() - t0)
                stopped += bool(prune)
            t0 = time.perf_counter()
            live.tell(trial, 0.0)
            return times, time.perf_counter() - t0, stopped

        out["rules"][rule] = _timed_trials(run_trial, cap_s, max_trials)
    return out


def _overhead_cell(
    library: str, storage_kind: str, n: int, cap_s: float, max_trials: int, threads: int
) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    _LIMITS.append(threadpool_limits(limits=threads))
    import shutil

    fn = overhead_hs if library == "hs" else overhead_optuna
    try:
        return fn(storage_kind, n, cap_s, max_trials)
    finally:
        for folder in _SCRATCH:
            shutil.rmtree(folder, ignore_errors=True)


def run_overhead(args: argparse.Namespace, hs_ok: bool) -> list[dict[str, Any]]:
    sizes = sorted({int(s) for s in args.overhead_sizes.split(",") if s.strip()})
    jobs: list[tuple[str, str, int]] = []
    for storage_kind in ("memory", "sqlite"):
        for n in sizes:
            if hs_ok and (storage_kind == "memory" or n <= args.sqlite_max):
                jobs.append(("hs", storage_kind, n))
            if storage_kind == "memory" or n <= args.optuna_sqlite_max:
                jobs.append(("optuna", storage_kind, n))
    for name in THREAD_ENV:
        os.environ[name] = str(args.threads)
    results = []
    for library, storage_kind, n in jobs:
        started = time.perf_counter()
        answer = run_isolated(
            _overhead_cell,
            (library, storage_kind, n, args.overhead_cap, 20, args.threads),
            args.overhead_timeout,
        )
        took = time.perf_counter() - started
        rec = {"library": library, "storage": storage_kind, "n": n, "wall_s": took}
        if isinstance(answer, dict):
            rec.update(answer)
            brief = ", ".join(f"{k} {v['report_us']:.0f} µs" for k, v in answer["rules"].items())
            print(
                f"  overhead {library:6s} {storage_kind:6s} n={n:<6d} populate "
                f"{answer['populate_s']:.1f} s; {brief}  ({took:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
        else:
            rec["error"] = str(answer)
            print(
                f"  overhead {library} {storage_kind} n={n}: FAILED "
                f"{str(answer).strip().splitlines()[-1][:200]}",
                file=sys.stderr,
                flush=True,
            )
        results.append(rec)
        if args.out:
            with open(args.out, "a") as sink:
                sink.write(json.dumps({"overhead": rec}) + "\n")
    return results


def overhead_report(results: Sequence[dict[str, Any]]) -> str:
    sizes = sorted({r["n"] for r in results})
    out = [
        "\n### Per-report overhead of the stopping rule, history of N finished trials with "
        f"{OVERHEAD_STEPS}-step curves\n\nCells: mean µs per report, the rule's decision "
        "included (in brackets: the first measured trial's, which reads the stored history) · "
        "mean ms per tell.\n",
        "| library | rule | storage | " + " | ".join(f"N={n:,}" for n in sizes) + " |",
        "|---|---|---|" + "---:|" * len(sizes),
    ]
    rules = {"hs": ("none", "median", "asha"), "optuna": ("none", "median", "sha")}
    names = {
        "hs": {"none": "none", "median": "median", "asha": "asha"},
        "optuna": {"none": "NopPruner", "median": "MedianPruner", "sha": "SuccessiveHalving"},
    }
    for storage_kind in ("memory", "sqlite"):
        for library in ("hs", "optuna"):
            mine = {
                r["n"]: r
                for r in results
                if r["library"] == library and r["storage"] == storage_kind
            }
            if not mine:
                continue
            for rule in rules[library]:
                cells = []
                for n in sizes:
                    r = mine.get(n)
                    if r is None:
                        cells.append("")
                    elif "error" in r:
                        cells.append("failed")
                    else:
                        m = r["rules"][rule]
                        cell = (
                            f"{m['report_us']:.0f} ({m['first_report_us']:.0f}) µs · "
                            f"{m['tell_ms']:.2f} ms"
                        )
                        if m["stops"]:
                            cell += f" ({m['stops']} stops!)"
                        cells.append(cell)
                out.append(
                    f"| {library} | {names[library][rule]} | {storage_kind} | "
                    + " | ".join(cells)
                    + " |"
                )
    populate = [
        f"{r['library']} {r['storage']} N={r['n']:,}: {r['populate_s']:.1f} s"
        for r in results
        if "populate_s" in r
    ]
    if populate:
        out.append("\nWriting the history took: " + "; ".join(populate))
    failed = [r for r in results if "error" in r]
    for r in failed:
        out.append(
            f"\nfailed: {r['library']} {r['storage']} N={r['n']}: "
            + " / ".join(line for line in r["error"].strip().splitlines()[-3:])[:400]
        )
    return "\n".join(out)


# -- main --------------------------------------------------------------------------------------


def _cost(problem: Problem, method: str, budget: int) -> float:
    """A rough guess of a cell's seconds, to start the long ones first."""
    epochs = budget * problem.max_epochs
    return epochs * (
        problem.epoch_ms / 1000 + (0.0002 if "tpe" in ALIASES.get(method, method) else 0.0001)
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated")
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated; also <hs|optuna>-<sampler>-<stopping> (see the module docstring)",
    )
    parser.add_argument("--seeds", default=None, help="e.g. 0-9 or 0,1,5 (default 0-9)")
    parser.add_argument(
        "--budget", type=int, default=None, help="epochs, in full-length trials (default 20)"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads per worker")
    parser.add_argument("--cell-timeout", type=float, default=600.0, help="seconds; 0: none")
    parser.add_argument("--out", default=None, help="also append every record to this JSONL file")
    parser.add_argument("--no-overhead", action="store_true", help="skip the overhead table")
    parser.add_argument("--overhead-only", action="store_true", help="only the overhead table")
    parser.add_argument(
        "--overhead-sizes", default=None, help="history sizes (default 100,1000,10000)"
    )
    parser.add_argument(
        "--overhead-cap",
        type=float,
        default=None,
        help="seconds of measured trials per rule and cell (default 2; at least one trial)",
    )
    parser.add_argument("--overhead-timeout", type=float, default=600.0)
    parser.add_argument(
        "--sqlite-max", type=int, default=None, help="largest N on SQLite (default 1000)"
    )
    parser.add_argument(
        "--optuna-sqlite-max", type=int, default=100, help="largest N for Optuna on SQLite"
    )
    parser.add_argument("--quick", action="store_true", help="a one-minute smoke run")
    args = parser.parse_args(argv)
    args.seeds = args.seeds or ("0-1" if args.quick else "0-9")
    args.budget = args.budget or (8 if args.quick else 20)
    args.overhead_sizes = args.overhead_sizes or ("100,1000" if args.quick else "100,1000,10000")
    args.overhead_cap = args.overhead_cap or (0.5 if args.quick else 2.0)
    args.sqlite_max = args.sqlite_max or (100 if args.quick else 1000)
    if args.quick:
        args.optuna_sqlite_max = min(args.optuna_sqlite_max, 100)

    problems = [p.strip() for p in args.problems.split(",") if p.strip()]
    unknown = [p for p in problems if p not in PROBLEMS]
    if unknown:
        parser.error(f"unknown problems {unknown}; choose from {','.join(PROBLEMS)}")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for method in methods:
        try:
            parse_method(method)
        except ValueError as error:
            parser.error(str(error))
    seeds = parse_seeds(args.seeds)

    print("\n".join(environment()))
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    why = hs_available()
    if why is not None:
        print(f"warning: hypersearch's schedulers do not load ({why}); skipping the hs-* methods")
        methods = [m for m in methods if not m.startswith("hs-")]
    records: list[dict[str, Any]] = []
    if not args.overhead_only:
        budget = args.budget
        cells = [(p, m, s) for p in problems for m in methods for s in seeds]
        cells.sort(key=lambda c: -_cost(PROBLEMS[c[0]], c[1], budget))
        print(f"{len(cells)} cells, budget {budget} full trials per cell, {args.jobs} jobs")
        records = run_cells(cells, budget, args)
    overhead: list[dict[str, Any]] = []
    if not args.no_overhead:
        print("overhead measurements, one process at a time:", file=sys.stderr)
        overhead = run_overhead(args, why is None)
    if records:
        print(
            "\nEarly stopping at equal compute (validation loss of the best full-length trial; "
            "lower is better):"
        )
        print(quality_report(records, problems, methods))
    if overhead:
        print(overhead_report(overhead))
    return 0


if __name__ == "__main__":
    sys.exit(main())
