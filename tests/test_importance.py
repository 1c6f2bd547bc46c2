"""Parameter importance: `study.importance()` and `hypersearch importance` rank the parameter
that truly drives the objective first, on problems whose importance is known by construction."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

import hypersearch as hs
from hypersearch.cli.main import cli

SEEDS = range(5)


def _search(objective, space, seed: int, trials: int = 60, **settings):
    return hs.minimize(objective, space, strategy="random", max_trials=trials, seed=seed,
                       verbose=False, **settings)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_parameter_that_drives_the_objective_ranks_first(seed: int) -> None:
    space = {"x": hs.uniform(0, 1), "y": hs.uniform(0, 1), "noise": hs.choice(["a", "b", "c"])}
    study = _search(lambda p: 10 * (p["x"] - 0.5) ** 2 + 1.5 * p["y"], space, seed)
    scores = study.importance()
    assert list(scores)[:2] == ["x", "y"], scores
    assert math.isclose(sum(scores.values()), 1.0)
    assert scores["noise"] < 0.15, scores


@pytest.mark.parametrize("seed", SEEDS)
def test_a_log_scaled_rate_and_a_choice_are_judged_on_their_own_scale(seed: int) -> None:
    space = {"lr": hs.loguniform(1e-5, 1e-1), "opt": hs.choice(["adam", "sgd"]),
             "width": hs.integer(8, 64)}

    def loss(p):  # the best rate is 1e-3; the optimizer less; width not at all
        return abs(math.log10(p["lr"]) + 3) + (0.6 if p["opt"] == "sgd" else 0.0)

    scores = _search(loss, space, seed).importance()
    assert list(scores)[:2] == ["lr", "opt"], scores


@pytest.mark.parametrize("seed", SEEDS)
def test_conditional_parameters_count_where_they_are_active(seed: int) -> None:
    space = {"model": hs.choice([{"kind": "tree", "depth": hs.integer(1, 10)},
                                 {"kind": "linear", "alpha": hs.loguniform(1e-4, 1)}]),
             "unused": hs.uniform(0, 1)}

    def loss(p):
        model = p["model"]
        return 5.0 + abs(model["depth"] - 6) if model["kind"] == "tree" else 1.0

    scores = _search(loss, space, seed).importance()
    assert next(iter(scores)) == "model", scores  # which branch: the main effect
    assert scores["unused"] < 0.15, scores


def test_importance_needs_a_few_complete_trials() -> None:
    study = _search(lambda p: p["x"], {"x": hs.uniform(0, 1)}, 0, trials=3)
    assert study.importance() == {}


def test_the_command_prints_a_ranking_and_json(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    _search(lambda p: 10 * p["x"] + 0.1 * p["y"], {"x": hs.uniform(0, 1), "y": hs.uniform(0, 1)},
            1, storage=url, name="imp")
    runner = CliRunner()
    shown = runner.invoke(cli, ["importance", "imp", "--storage", url])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert "parameter importance" in lines[0]
    assert lines[1].split()[0] == "x" and "%" in lines[1]
    as_json = runner.invoke(cli, ["importance", "imp", "--storage", url, "--json"])
    found = json.loads(as_json.output)
    assert list(found["importance"]) == ["x", "y"] and "eta" in found["method"]
    missing = runner.invoke(cli, ["importance", "nope", "--storage", url])
    assert missing.exit_code != 0 and "nope" in missing.output


def test_the_command_says_when_there_is_too_little_to_judge(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/hs.db"
    _search(lambda p: p["x"], {"x": hs.uniform(0, 1)}, 0, trials=2, storage=url, name="few")
    shown = CliRunner().invoke(cli, ["importance", "few", "--storage", url])
    assert shown.exit_code == 1 and "at least 4 complete trials" in shown.output


@pytest.mark.parametrize("seed", SEEDS)
def test_a_handful_of_trials_already_points_at_the_parameter_that_matters(seed: int) -> None:
    space = {"x": hs.uniform(0, 1), "kind": hs.choice(["a", "b"])}
    scores = _search(lambda p: p["x"], space, seed, trials=8).importance()
    assert next(iter(scores)) == "x" and scores["x"] > 0.6, scores  # 1 trial a bin gave x 0
