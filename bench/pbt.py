"""Population Based Training vs random search at equal compute, on tasks whose best learning
rate changes during training.

    .venv/bin/python bench/pbt.py              # 10 seeds, both problems (~2 min)
    .venv/bin/python bench/pbt.py --quick      # 3 seeds

Each method trains a population of `--population` trials side by side, one epoch each in turn
(a simulated clock: the population advances in lockstep, as 8 workers on 8 equal machines):

    random-full   hs "random", no scheduler: every trial trains all its epochs
    hs-pbt        hs "random" + scheduler="pbt" (population_size=P, perturbation_interval=4,
                  quantile_fraction=0.25, resample_probability=0.25, factors 0.8 / 1.2)
    hs-asha       hs "random" + scheduler="asha" (reduction_factor=3), for reference

Compute is counted in epochs trained. PBT's population trains about P x E epochs (a successor
goes on from its donor's epoch); random-full and ASHA then get exactly the epochs PBT used on
that seed, as many trials as fit (ASHA's pruned trials free epochs for more of them); "trials"
counts those that ran to their end or were stopped by the scheduler. The objective saves its state
(weights and epoch, as JSON — no pickle) to ``trial.checkpoint_dir`` before each report and
loads ``trial.restore_from`` when set, as a user's training script would.

Problems:
    schedule     synthetic: skill grows by gain(lr, epoch), largest when log10(lr) follows
                 -1 - 2 epoch/E (0.1 down to 0.001); loss 1 / (1 + skill); 24 epochs
    sgd_digits   scikit-learn's SGDClassifier (log_loss, constant learning rate eta0 = lr) on
                 digits (70/30 split, standardised); one partial_fit pass per epoch; validation
                 log-loss; 20 epochs. A large rate learns fast and then rattles; a small one
                 refines but starts slowly: the best rate falls during training

Printed: per problem and method, the median (over seeds) best final loss, its interquartile
range, epochs trained, and trials run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import hypersearch as hs
from hypersearch.trial import Decision

# -- problems: (space, epochs, init(params, rng) -> state, step(params, state, epoch) -> loss) --


@dataclass(frozen=True)
class Problem:
    space: dict[str, Any]
    epochs: int
    train: Callable[[dict[str, Any], dict[str, Any] | None, int], tuple[dict[str, Any], float]]


def schedule_train(
    params: dict[str, Any], state: dict[str, Any] | None, epoch: int, epochs: int = 24
) -> tuple[dict[str, Any], float]:
    skill = 0.0 if state is None else state["skill"]
    target = -1.0 - 2.0 * epoch / epochs
    skill += max(1.0 - 0.5 * (math.log10(params["lr"]) - target) ** 2, -0.5)
    return {"skill": skill}, 1.0 / (1.0 + max(skill, 0.0))


_DIGITS: tuple[Any, ...] | None = None


def _digits() -> tuple[Any, ...]:
    global _DIGITS
    if _DIGITS is None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        x, y = load_digits(return_X_y=True)
        x_train, x_val, y_train, y_val = train_test_split(
            x, y, test_size=0.3, stratify=y, random_state=0
        )
        scaler = StandardScaler().fit(x_train)
        _DIGITS = (scaler.transform(x_train), scaler.transform(x_val), y_train, y_val)
    return _DIGITS


def sgd_train(
    params: dict[str, Any], state: dict[str, Any] | None, epoch: int
) -> tuple[dict[str, Any], float]:
    import warnings

    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import log_loss

    x_train, x_val, y_train, y_val = _digits()
    model = SGDClassifier(
        loss="log_loss", learning_rate="constant", eta0=params["lr"], alpha=1e-5,
        random_state=epoch,
    )  # fmt: skip
    classes = np.arange(10)
    if state is not None:  # resume from the checkpoint's weights
        model.partial_fit(x_train[:10], y_train[:10], classes=classes)
        model.coef_ = np.array(state["coef"])
        model.intercept_ = np.array(state["intercept"])
        model.t_ = state["t"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.partial_fit(x_train, y_train, classes=classes)
    probabilities = np.clip(model.predict_proba(x_val), 1e-6, 1.0)
    loss = float(log_loss(y_val, probabilities / probabilities.sum(1, keepdims=True), labels=classes))
    checkpoint = {"coef": model.coef_.tolist(), "intercept": model.intercept_.tolist(), "t": model.t_}
    return checkpoint, min(loss, 10.0)


PROBLEMS = {
    "schedule": Problem({"lr": hs.loguniform(1e-4, 1.0)}, 24, schedule_train),
    "sgd_digits": Problem({"lr": hs.loguniform(1e-5, 1.0)}, 20, sgd_train),
}


# -- the simulated population -------------------------------------------------------------------


def run(problem: Problem, study: hs.Study, population: int, budget: int | None) -> tuple[float, int]:
    """Train `population` trials side by side until every one ends (PBT's natural budget) or
    `budget` epochs are spent (then new trials start as others end). (best final loss, epochs)."""
    live: dict[int, list[Any]] = {}
    spent = 0
    best = math.inf

    def start() -> None:
        trial = study.ask()
        state, epoch = None, 0
        if trial.restore_from:
            with open(os.path.join(trial.restore_from, "state.json")) as f:
                saved = json.load(f)
            state, epoch = saved["state"], saved["epoch"]
        live[trial.number] = [trial, state, epoch]

    for _ in range(population):
        start()
    while live:
        for number in list(live):
            if budget is not None and spent >= budget:
                trial = live.pop(number)[0]
                study.tell(trial, state="fail")
                continue
            trial, state, epoch = live[number]
            state, loss = problem.train(trial.params, state, epoch)
            epoch += 1
            spent += 1
            path = os.path.join(trial.checkpoint_dir, "state.json")
            with open(path + ".tmp", "w") as f:
                json.dump({"state": state, "epoch": epoch}, f)
            os.replace(path + ".tmp", path)
            live[number] = [trial, state, epoch]
            if epoch >= problem.epochs:
                study.tell(trial, loss)
                best = min(best, loss)
                del live[number]
                if budget is not None and spent < budget:
                    start()
            elif trial.report(epoch, loss=loss) is not Decision.CONTINUE:
                study.tell(trial, state="pruned")
                del live[number]
                if budget is None or spent < budget:
                    start()
    return best, spent


def method(
    name: str, problem: Problem, seed: int, population: int, folder: str, budget: int | None
) -> dict[str, Any]:
    scheduler: dict[str, Any] = {}
    if name == "hs-pbt":
        scheduler = {"scheduler": "pbt", "scheduler_options": {
            "population_size": population, "perturbation_interval": 4}}  # fmt: skip
    elif name == "hs-asha":
        scheduler = {"scheduler": "asha", "scheduler_options": {
            "reduction_factor": 3, "max_resource": problem.epochs}}  # fmt: skip
    study = hs.create_study(
        problem.space, strategy="random", seed=seed, storage="memory",
        checkpoint_dir=os.path.join(folder, name), **scheduler,
    )  # fmt: skip
    started = time.perf_counter()
    best, spent = run(problem, study, population, budget)
    ran = study.get_trials(states=["complete", "pruned"])
    return {"best": best, "epochs": spent, "trials": len(ran),
            "seconds": time.perf_counter() - started}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="3 seeds")
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    args = parser.parse_args()
    seeds = range(3 if args.quick else args.seeds)
    methods = ["random-full", "hs-pbt", "hs-asha"]
    print(f"population {args.population}, seeds 0-{len(seeds) - 1}; compute in epochs")
    print(f"{'problem':<11} {'method':<12} {'best (median)':>13} {'IQR':>17} {'epochs':>7} "
          f"{'trials':>7} {'wins vs random':>15}")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        for problem_name in args.problems.split(","):
            problem = PROBLEMS[problem_name]
            results: dict[str, list[dict[str, Any]]] = {m: [] for m in methods}
            for seed in seeds:
                where = os.path.join(folder, f"{problem_name}{seed}")
                # PBT first: the others get the epochs it used
                pbt = method("hs-pbt", problem, seed, args.population, where, None)
                results["hs-pbt"].append(pbt)
                for m in methods:
                    if m != "hs-pbt":
                        results[m].append(
                            method(m, problem, seed, args.population, where, pbt["epochs"])
                        )
            for m in methods:
                bests = [r["best"] for r in results[m]]
                q1, _, q3 = statistics.quantiles(bests, n=4) if len(bests) > 1 else (bests[0],) * 3
                wins = sum(
                    b < r["best"] for b, r in zip(bests, results["random-full"], strict=True)
                )
                print(
                    f"{problem_name:<11} {m:<12} {statistics.median(bests):>13.4f} "
                    f"{f'[{q1:.4f}, {q3:.4f}]':>17} "
                    f"{statistics.median(r['epochs'] for r in results[m]):>7.0f} "
                    f"{statistics.median(r['trials'] for r in results[m]):>7.0f} "
                    f"{'' if m == 'random-full' else f'{wins}/{len(bests)}':>15}"
                )


if __name__ == "__main__":
    main()
