"""An Optuna objective runs unchanged (README "Coming from ... Optuna"): define-by-run
suggestions, Optuna's `trial.report(value, step)` and `should_prune()`, MedianPruner's options."""

from __future__ import annotations

import pytest

import hypersearch as hs


def objective(trial):  # written for Optuna
    x = trial.suggest_float("x", -10, 10)
    layers = trial.suggest_int("layers", 1, 4)
    kind = trial.suggest_categorical("kind", ["a", "b"])
    for step in range(8):
        trial.report((x - 2) ** 2 + layers + 1 / (step + 1), step)
        if trial.should_prune():
            raise hs.TrialPruned()
    return (x - 2) ** 2 + layers + (kind == "b")


def test_an_optuna_objective_with_pruning_runs_unchanged() -> None:
    study = hs.create_study(direction="minimize", scheduler="median", seed=0,
                            scheduler_options={"n_startup_trials": 5, "n_warmup_steps": 2})
    study.enqueue({"x": 2.0, "layers": 1, "kind": "a"})  # Optuna's enqueue_trial
    study.optimize(objective, max_trials=30, verbose=False)
    states = {t.state for t in study.trials}
    assert hs.TrialState.PRUNED in states and hs.TrialState.COMPLETE in states
    assert study.best_params == {"x": 2.0, "layers": 1, "kind": "a"} and study.best_value == 1.0
    pruned = next(t for t in study.trials if t.state is hs.TrialState.PRUNED)
    curve = study.storage.get_metrics(pruned.id)
    assert curve and {p.name for p in curve} == {"value"}  # report(value, step) records "value"


def test_the_report_forms_cannot_be_mixed() -> None:
    study = hs.create_study()
    trial = study.ask()
    with pytest.raises(TypeError, match=r"\(step, \*\*metrics\), or Optuna's \(value, step\)"):
        trial.report(0.5, 1, loss=0.2)


def test_an_enqueued_value_outside_its_distribution_fails_the_trial_saying_so() -> None:
    study = hs.create_study(seed=0)
    study.enqueue({"x": 20.0, "layers": 1, "kind": "a"})
    study.optimize(objective, max_trials=1, verbose=False)
    trial = study.trials[0]
    assert trial.state is hs.TrialState.FAILED
    assert "the enqueued value 20.0 of 'x' is not in uniform(-10.0, 10.0)" in trial.failure_detail
