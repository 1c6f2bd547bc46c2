"""BOHB-style TPE: with a halving scheduler (ASHA, Hyperband) TPE fits on the highest rung that
holds enough values, pruned trials included, and startup counts pruned trials."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import hypersearch as hs
from hypersearch.samplers.base import Context
from hypersearch.samplers.tpe import _BAD, _COMPLETE, _IGNORED, _PRUNED, TPE, _targets
from hypersearch.schedulers import ASHA, Chain, Hyperband, Patience, Threshold
from hypersearch.schedulers.halving import halving_of
from hypersearch.space import Space
from hypersearch.trial import FrozenTrial, TrialState

SPACE = Space({"x": hs.uniform(0.0, 1.0)})


def frozen(number: int, x: float, value: float | None, state: TrialState) -> FrozenTrial:
    return FrozenTrial(number=number, state=state, value=value, flat_params={"x": x})


def context(history: list[FrozenTrial], rung_values: Any = None, seed: int = 0) -> Context:
    number = len(history)
    rng = np.random.default_rng([seed, number])
    return Context(SPACE, history, rng, number, seed, rung_values=rung_values)


def prior_draw(history: list[FrozenTrial], seed: int = 0) -> dict[str, Any]:
    """What TPE proposes while it is still starting up: a prior draw from the same generator."""
    return SPACE.sample(context(history, seed=seed).rng)


# -- the rows TPE splits, by hand -------------------------------------------------------------


def test_targets_pick_the_highest_rung_with_enough_values() -> None:
    numbers = np.arange(6)
    values = np.array([0.5, 0.9, 0.8, 0.7, math.nan, 0.6])  # final (COMPLETE) or metric_agg
    states = np.array([_COMPLETE, _PRUNED, _PRUNED, _PRUNED, _BAD, _PRUNED], dtype=np.int8)
    rungs = {
        1: {0: 0.9, 1: 0.3, 2: 0.4, 3: 0.95, 5: 0.6},  # every finished trial
        3: {0: 0.7, 1: 0.2, 2: 0.35},  # three got this far
        9: {0: 0.5},  # only the complete one
    }
    ctx = context([], rungs)
    # n_startup 3: rung 3 is the highest level with 3 values (1 complete value, 1 at rung 9)
    y, rows, seen = _targets(ctx, numbers, values, states, 3)
    assert seen == 3
    assert rows.tolist() == [_COMPLETE, _COMPLETE, _COMPLETE, _BAD, _BAD, _BAD]
    assert y[:3].tolist() == [0.7, 0.2, 0.35] and np.isnan(y[3:]).all()
    # n_startup 4: down to rung 1, where trial 3 is worst and trial 5 (no value there) stays bad
    y, rows, seen = _targets(ctx, numbers, values, states, 4)
    assert seen == 5
    assert rows.tolist() == [_COMPLETE, _COMPLETE, _COMPLETE, _COMPLETE, _BAD, _COMPLETE]
    assert y[[0, 1, 2, 3, 5]].tolist() == [0.9, 0.3, 0.4, 0.95, 0.6]
    # n_startup 1: the complete trials' final values, the top level (pruned ones are bad)
    y, rows, seen = _targets(ctx, numbers, values, states, 1)
    assert seen == 1 and rows.tolist() == [_COMPLETE, _BAD, _BAD, _BAD, _BAD, _BAD]
    assert y[0] == 0.5 and np.isnan(y[1:]).all()
    # n_startup 6: no level holds 6 values: still starting up, counting the fullest level
    assert _targets(ctx, numbers, values, states, 6)[2] == 5


def test_targets_maximize_and_complete_trials_missing_at_the_rung() -> None:
    numbers = np.array([0, 2, 5])  # positions are not numbers: looked up by number
    values = np.array([1.0, 2.0, 3.0])
    states = np.array([_COMPLETE, _PRUNED, _PRUNED], dtype=np.int8)
    ctx = Context(SPACE, [], np.random.default_rng(0), 6, 0, "maximize", {3: {2: 0.5, 5: 0.9}})
    y, rows, seen = _targets(ctx, numbers, values, states, 2)
    assert seen == 2
    # trial 0 completed without a report at step 3: it tells nothing about that rung
    assert rows.tolist() == [_IGNORED, _COMPLETE, _COMPLETE]
    assert y[1:].tolist() == [-0.5, -0.9]  # losses: lower is better


def test_targets_without_rungs_count_pruned_towards_startup_only() -> None:
    numbers = np.arange(4)
    values = np.array([0.5, 0.9, math.nan, 0.7])
    states = np.array([_COMPLETE, _PRUNED, _PRUNED, _BAD], dtype=np.int8)
    y, rows, seen = _targets(context([]), numbers, values, states, 10)
    assert seen == 2  # the complete one and the pruned one with a value
    assert rows.tolist() == [_COMPLETE, _BAD, _BAD, _BAD]  # pruned trials are still bad
    assert y[0] == 0.5 and np.isnan(y[1:]).all()


# -- TPE's suggestions ------------------------------------------------------------------------


def test_startup_counts_pruned_trials() -> None:
    # ten pruned trials, none complete: the old rule (complete trials only) drew from the prior
    history = [frozen(i, 0.05 + 0.1 * i, 1.0 + i, TrialState.PRUNED) for i in range(10)]
    modelled = TPE(n_startup=10).suggest(context(history))
    assert modelled != prior_draw(history)
    assert TPE(n_startup=11).suggest(context(history)) == prior_draw(history)


def _asha_history() -> tuple[list[FrozenTrial], dict[int, dict[int, float]]]:
    """30 trials of an ASHA study over x in [0, 1]: at rung 1 (all 30) and rung 3 (the 12
    kept) the configurations near x = 0.85 are best; 4 completed, near x = 0.1-0.2 (lucky
    early trials, let through while the rungs were empty). Pruned values are the last reported,
    at whatever step each stopped: they do not compare, rung values do."""
    xs = np.linspace(0.0, 1.0, 30)
    loss = (xs - 0.85) ** 2
    kept = np.argsort(loss)[:8]
    early = [3, 4, 5, 6]  # completed
    history, rung1, rung3 = [], {}, {}
    for i, x in enumerate(xs):
        rung1[i] = float(loss[i] + 0.05)
        if i in early:
            history.append(frozen(i, float(x), float(loss[i]), TrialState.COMPLETE))
            rung3[i] = float(loss[i] + 0.02)
        elif i in kept:
            history.append(frozen(i, float(x), float(loss[i] + 0.02), TrialState.PRUNED))
            rung3[i] = float(loss[i] + 0.02)
        else:
            history.append(frozen(i, float(x), float(loss[i] + 0.05), TrialState.PRUNED))
    return history, {1: rung1, 3: rung3}


def test_tpe_fits_the_rung_values_of_pruned_trials() -> None:
    history, rungs = _asha_history()
    assert len(rungs[3]) == 12  # rung 3 holds n_startup values; the complete level only 4
    suggested = [
        TPE(n_startup=10).suggest(context(history, rungs, seed))["x"] for seed in range(20)
    ]
    # the good set at rung 3 is the best two of 12 there (x near 0.85)
    assert float(np.median(suggested)) == pytest.approx(0.85, abs=0.1)
    # without rung values (another scheduler) the pruned trials are bad and only the four
    # complete ones good; before rung values and pruned trials counted, these were prior draws
    final = [TPE(n_startup=10).suggest(context(history, None, s))["x"] for s in range(20)]
    assert float(np.median(final)) < 0.45


def test_enough_complete_trials_win_over_rungs() -> None:
    history, rungs = _asha_history()
    # n_startup 4: the four complete trials (x 0.1-0.2) are the top level
    suggested = [TPE(n_startup=4).suggest(context(history, rungs, s))["x"] for s in range(20)]
    assert float(np.median(suggested)) < 0.45


# -- the study: which scheduler, which values -------------------------------------------------


def test_halving_of_finds_asha_in_chains_and_wrappers() -> None:
    asha = ASHA(max_resource=27)
    assert halving_of(asha) is asha
    assert halving_of(Chain([Threshold(upper=10.0), asha])) is asha
    assert halving_of(Patience(patience=3, wraps=asha)) is asha
    assert halving_of(Threshold(upper=1.0)) is None and halving_of(None) is None
    assert Hyperband(max_resource=81).rungs(81) == [1, 3, 9, 27]
    assert ASHA(min_resource=2, reduction_factor=2).rungs(17) == [2, 4, 8, 16]
    assert ASHA(max_resource=27).rungs(5) == [1, 3]


def curve_of(x: float) -> dict[int, float]:
    """A deterministic learning curve over 9 epochs: fast early, lower late near x = 0.7."""
    return {e: (x - 0.7) ** 2 + 1.0 / e for e in range(1, 10)}


def run_asha(study: hs.Study, n: int) -> dict[int, dict[int, float]]:
    """n trials with ask / report / tell; returns what each reported (number -> curve)."""
    curves: dict[int, dict[int, float]] = {}
    for _ in range(n):
        trial = study.ask()
        curve = curve_of(trial.params["x"])
        curves[trial.number] = {}
        for epoch, loss in curve.items():
            trial.report(epoch, loss=loss)
            curves[trial.number][epoch] = loss
            if trial.should_stop():
                study.tell(trial, state="pruned")
                break
        else:
            study.tell(trial, loss)
    return curves


def expected_rungs(curves: dict[int, dict[int, float]]) -> dict[int, dict[int, float]]:
    out: dict[int, dict[int, float]] = {}
    for number, curve in curves.items():
        for rung in (1, 3):  # rungs below max_resource 9
            if max(curve) >= rung:
                out.setdefault(rung, {})[number] = curve[rung]
    return out


@pytest.mark.parametrize("scheduler", ["asha", "hyperband"])
def test_study_passes_rung_values_of_finished_trials(scheduler: str) -> None:
    study = hs.create_study(
        SPACE, strategy="tpe", storage="memory", seed=1, scheduler=scheduler,
        scheduler_options={"max_resource": 9},
    )  # fmt: skip
    curves = run_asha(study, 25)
    states = {t.state for t in study.trials}
    assert TrialState.PRUNED in states
    assert study._rung_values(study.trials) == expected_rungs(curves)
    # a running trial is not finished: it has no rung values yet
    running = study.ask()
    running.report(1, loss=0.0)
    assert running.number not in study._rung_values(study.trials)[1]


def test_no_rung_values_without_a_halving_scheduler_or_for_other_samplers() -> None:
    median = hs.create_study(SPACE, strategy="tpe", storage="memory", scheduler="median")
    run_asha(median, 3)
    assert median._rung_values(median.trials) is None
    gp = hs.create_study(SPACE, strategy="random", storage="memory", scheduler="asha")
    run_asha(gp, 3)
    assert gp._rung_values(gp.trials) is None


def test_bulk_read_equals_incremental_read(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'bohb.db'}"
    study = hs.create_study(
        SPACE, name="bohb", strategy="tpe", storage=url, seed=3, scheduler="asha",
        scheduler_options={"max_resource": 9},
    )  # fmt: skip
    curves = run_asha(study, 40)  # read one trial at a time, as each finished
    incremental = study._rung_values(study.trials)
    resumed = hs.load_study("bohb", url)  # a new reader: 40 new trials, one query per rung
    assert resumed._rung_values(resumed.trials) == incremental == expected_rungs(curves)
    # and both propose the same next point (the sampler is a function of storage)
    history = study.trials
    assert study._propose(history, len(history)) == resumed._propose(history, len(history))
    study.close()
    resumed.close()


def test_define_by_run_models_from_rung_values() -> None:
    # x decides; y only exists on half the trials (a conditional parameter, fitted on its own)
    study = hs.create_study(
        None, strategy="tpe", storage="memory", seed=2, scheduler="asha",
        scheduler_options={"max_resource": 9},
    )  # fmt: skip
    for _ in range(40):
        trial = study.ask()
        x = trial.suggest_float("x", 0.0, 1.0)
        if x > 0.5:
            trial.suggest_float("y", 0.0, 1.0)
        for epoch, loss in curve_of(x).items():
            trial.report(epoch, loss=loss)
            if trial.should_stop():
                study.tell(trial, state="pruned")
                break
        else:
            study.tell(trial, loss)
    late = np.array([t.flat_params["x"] for t in study.trials[20:]])
    # the model found the best region: a prior draw lands within 0.15 of 0.7 with chance 0.3
    assert np.mean(np.abs(late - 0.7) < 0.15) >= 0.6, late
