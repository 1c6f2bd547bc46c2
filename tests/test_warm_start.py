"""Warm start: another study's trials (or records of points evaluated elsewhere) seed the
sampler of a new study, from Python, YAML and the command line; they are stored with the
definition and not charged to the budget."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

import hypersearch as hs
from hypersearch.cli.main import cli
from hypersearch.settings import SettingError

SPACE = {"x": hs.uniform(-5, 5), "y": hs.uniform(-5, 5), "z": hs.uniform(-5, 5)}


def bowl(p: dict[str, float]) -> float:
    return (p["x"] - 1.3) ** 2 + (p["y"] + 2.1) ** 2 + 0.5 * (p["z"] - 0.4) ** 2


def trials_to_reach(study: hs.Study, goal: float) -> int:
    """How many trials the study ran before one was as good as `goal` (len + 1 if none)."""
    for k, trial in enumerate(study.trials, start=1):
        if trial.value is not None and trial.value <= goal:
            return k
    return len(study.trials) + 1


def test_a_warm_started_study_reaches_the_first_ones_best_sooner() -> None:
    warm_counts, cold_counts = [], []
    for seed in range(8):
        first = hs.minimize(bowl, SPACE, max_trials=40, seed=seed, verbose=False)
        goal = first.best_value
        warm = hs.minimize(bowl, SPACE, max_trials=25, seed=100 + seed, warm_start=first,
                           verbose=False)
        cold = hs.minimize(bowl, SPACE, max_trials=25, seed=100 + seed, verbose=False)
        assert len(warm.trials) == 25, "warm points are not charged to max_trials"
        warm_counts.append(trials_to_reach(warm, goal))
        cold_counts.append(trials_to_reach(cold, goal))
    # Cold, 25 trials rarely match 40; warm, the model starts where the first study ended.
    assert statistics.mean(warm_counts) < 0.6 * statistics.mean(cold_counts), (
        warm_counts, cold_counts)


def test_records_seed_the_model_from_the_first_trial() -> None:
    records = [{"params": {"x": x / 2, "y": y / 2, "z": 0.0}, "value": bowl(
        {"x": x / 2, "y": y / 2, "z": 0.0})} for x in range(-8, 9, 2) for y in range(-8, 9, 2)]
    study = hs.minimize(bowl, SPACE, max_trials=5, seed=0, warm_start=records, verbose=False)
    cold = hs.minimize(bowl, SPACE, max_trials=5, seed=0, verbose=False)
    # TPE models from trial 0 (81 points are past its startup): its first five are near the
    # best records; a cold start's five are draws from the prior.
    assert max(t.value for t in study.trials) < min(t.value for t in cold.trials) + 5
    assert statistics.mean(t.value for t in study.trials) < statistics.mean(
        t.value for t in cold.trials)


def test_points_that_do_not_fit_the_space_are_left_out(caplog: pytest.LogCaptureFixture) -> None:
    records = [{"params": {"x": 9.0, "y": 0.0, "z": 0.0}, "value": 1.0},  # outside the range
               {"params": {"x": 0.0, "y": 0.0}, "value": 2.0},  # z missing
               {"params": {"x": 1.0, "y": -2.0, "z": 0.0}, "value": 0.2}]
    study = hs.create_study(SPACE, warm_start=records, seed=0)
    assert [t.flat_params for t in study._warm_trials()] == [{"x": 1.0, "y": -2.0, "z": 0.0}]
    assert "2 of 3 points do not fit" in caplog.text


def test_a_grid_skips_the_points_already_evaluated() -> None:
    space = {"a": hs.choice([1, 2, 3]), "b": hs.choice(["u", "v"])}
    done = [{"params": {"a": 1, "b": "u"}, "value": 0.5}, {"params": {"a": 3, "b": "v"},
                                                           "value": 0.1}]
    study = hs.minimize(lambda p: p["a"], space, strategy="grid", warm_start=done, verbose=False)
    seen = {(t.params["a"], t.params["b"]) for t in study.trials}
    assert len(study.trials) == 4 and not seen & {(1, "u"), (3, "v")}


@pytest.mark.parametrize("bad, problem", [
    (3, "expected study names and/or {params, value} records, got int"),
    ([{"params": {"x": 1}}], "item 0: expected a study name or a record"),
    ([{"params": {"x": 1}, "value": math.nan}], "item 0: value must be a finite number, got nan"),
    ([{"params": [1], "value": 1}], "item 0: params must be a mapping"),
    ([{"params": {"x": object()}, "value": 1}], "item 0: params must be JSON values"),
    ([""], "item 0: a study name is empty"),
])
def test_bad_sources_are_refused_with_what_is_wrong(bad: object, problem: str) -> None:
    with pytest.raises(SettingError) as caught:
        hs.create_study(SPACE, warm_start=bad)
    assert caught.value.setting == "warm_start" and problem in caught.value.problem


def test_a_named_study_is_read_from_the_same_storage_and_stored_by_name(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    hs.minimize(bowl, SPACE, max_trials=30, seed=1, storage=url, name="first", verbose=False)
    follow = hs.minimize(bowl, SPACE, max_trials=5, seed=2, storage=url, name="second",
                         warm_start="first", verbose=False)
    assert follow.definition.warm_start == ("first",)
    assert len(follow._warm_trials()) == 30
    again = hs.load_study("second", url)  # the stored definition carries it
    assert again.definition.warm_start == ("first",) and len(again._warm_trials()) == 30
    with pytest.raises(hs.HypersearchError, match="no study named 'nope'"):
        hs.minimize(bowl, SPACE, max_trials=1, storage=url, name="third", warm_start="nope",
                    verbose=False)
    with pytest.raises(hs.HypersearchError, match="names the study itself"):
        hs.minimize(bowl, SPACE, max_trials=6, storage=url, name="second", verbose=False,
                    warm_start="second")


def test_the_command_line_takes_warm_start_studies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    hs.minimize(bowl, {"x": hs.uniform(-5, 5)}, max_trials=12, seed=1, storage=url,
                name="first", verbose=False)
    result = CliRunner().invoke(cli, [
        "random", "--storage", url, "--name", "cli", "--max-trials", "2", "--warm-start",
        "first", "--param", "x=uniform(-5, 5)", "--", "python", "-c", "print('loss=1')"])
    assert result.exit_code == 0, result.output
    assert hs.load_study("cli", url).definition.warm_start == ("first",)


def test_tell_a_point_evaluated_elsewhere_and_the_strategy_learns_from_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    study = hs.create_study(SPACE, storage=url, name="told", seed=0)
    assert study.tell(params={"x": 1.3, "y": -2.1, "z": 0.4}, value=0.0) is None
    assert study.trials == []  # not a trial of the study
    again = hs.load_study("told", url)
    assert [t.flat_params for t in again._warm_trials()] == [{"x": 1.3, "y": -2.1, "z": 0.4}]
    with pytest.raises(hs.SpaceError):
        study.tell(params={"x": 99.0, "y": 0.0, "z": 0.0}, value=1.0)
    with pytest.raises(SettingError, match="value must be a finite number"):
        study.tell(params={"x": 1.0, "y": 0.0, "z": 0.0}, value=math.inf)
    with pytest.raises(hs.HypersearchError, match="needs a trial, or params= and value="):
        study.tell(params={"x": 1.0})
