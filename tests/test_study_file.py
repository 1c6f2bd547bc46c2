"""YAML study files (`hypersearch run STUDY.yaml`): settings, the space syntax, error paths."""

from __future__ import annotations

import os
import pickle
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hypersearch.space as hs
from hypersearch.cli.study_file import (
    StudyFileError,
    load_study_file,
    parse_study_mapping,
    parse_study_text,
)
from hypersearch.cli.yaml_space import space_to_yaml
from hypersearch.space import Choice, Float, Integer, Normal, Space
from hypersearch.study import create_study

FUZZ = settings(
    max_examples=int(os.environ.get("HYPERSEARCH_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

FULL = """\
name: mnist-cnn
strategy: sobol
direction: maximize
metric: val_acc
metric_agg: max
max_trials: 50
parallel: 4
timeout: 3600
max_time: 86400.5
target: 0.99
seed: 7
stop_conditions: ["val_loss > 5", "val_acc < 0.1"]
message: first try
storage: sqlite:///hs.db
gpus: [0, 1, 2, 3]
gpus_per_trial: 2
command: "python train.py --lr :lr: --units :units:"
params:
  units: 16:128:log:int
  act: relu,tanh
  epochs: 1:30:int
  batch: 32
space:
  lr: {loguniform: [1e-5, 1e-1]}
  optimizer:
    choice:
      - {name: adam, beta1: {uniform: [0.8, 0.99]}}
      - name: sgd
        momentum: {uniform: {low: 0.0, high: 0.99}}
        nesterov: {choice: [true, false]}
      - name: rmsprop
        schedule:
          choice:
            options:
              - {kind: step, gamma: {quniform: [0.1, 0.9, 0.1]}}
              - {kind: cosine, warmup: {integer: {low: 0, high: 10, step: 2}}}
            weights: [1, 3]
  layers: [{integer: [16, 256]}, {integer: {low: 16, high: 256, log: true}}, 64]
  init: {normal: [0, 0.02]}
  scale: {lognormal: {mu: 0, sigma: 1}}
  noise: {qnormal: [0, 1, 0.5]}
  width: {qlognormal: [2, 0.5, 4]}
  wd: {qloguniform: [1e-6, 1e-2, 1e-6]}
  batch_size: {choice: {options: [32, 64, 128], weights: [1, 2, 1]}}
  constants: {a: 1, b: [x, y], c: null, d: 2.5, e: true}
"""


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def error_of(text: str) -> str:
    with pytest.raises(StudyFileError) as caught:
        parse_study_text(textwrap.dedent(text), "study.yaml")
    return str(caught.value)


# -- a full file -----------------------------------------------------------------------------------


def test_full_file(tmp_path: Path) -> None:
    space, settings = load_study_file(write(tmp_path, FULL))
    assert settings == {
        "name": "mnist-cnn",
        "strategy": "sobol",
        "direction": "maximize",
        "metric": "val_acc",
        "metric_agg": "max",
        "max_trials": 50,
        "n_jobs": 4,  # parallel: an alias
        "trial_timeout": 3600.0,  # timeout: an alias
        "max_time": 86400.5,
        "target": 0.99,
        "seed": 7,
        "stop_conditions": ("val_loss > 5", "val_acc < 0.1"),
        "message": "first try",
        "storage": "sqlite:///hs.db",
        "gpus": (0, 1, 2, 3),
        "gpus_per_trial": 2,
        "command": "python train.py --lr :lr: --units :units:",
    }
    assert space is not None
    assert space["lr"] == hs.loguniform(1e-5, 1e-1)
    assert space["units"] == Integer(16, 128, log=True)
    assert space["epochs"] == Integer(1, 30)  # not the sexagesimal int 90 of YAML 1.1
    assert space["act"] == hs.choice(["relu", "tanh"])
    assert space["batch"] == 32
    assert space["init"] == Normal(0, 0.02)
    assert space["scale"] == Normal(0, 1, log=True)
    assert space["noise"] == Normal(0, 1, q=0.5)
    assert space["width"] == Normal(2, 0.5, log=True, q=4)
    assert space["wd"] == Float(1e-6, 1e-2, log=True, q=1e-6)
    assert space["layers"] == [Integer(16, 256), Integer(16, 256, log=True), 64]
    assert space["batch_size"].weights == (0.25, 0.5, 0.25)
    assert space["constants"] == {"a": 1, "b": ["x", "y"], "c": None, "d": 2.5, "e": True}
    optimizer = space["optimizer"]
    assert isinstance(optimizer, Choice)
    schedule = optimizer.options[2]["schedule"]
    assert schedule.weights == (0.25, 0.75)
    assert schedule.options[1]["warmup"] == Integer(0, 10, step=2)


def test_full_file_makes_the_study(tmp_path: Path) -> None:
    space, settings = load_study_file(write(tmp_path, FULL))
    settings.pop("storage")
    study = create_study(space, **settings)
    stored = study.definition.public_settings()
    assert (stored["strategy"], stored["n_jobs"], stored["trial_timeout"]) == ("sobol", 4, 3600.0)
    assert study.name == "mnist-cnn" and study.direction == "maximize"


def test_nested_conditional_space_samples_valid_values(tmp_path: Path) -> None:
    tree, _ = load_study_file(write(tmp_path, FULL))
    space = Space(tree)
    assert "optimizer[1]/momentum" in space.names
    assert "optimizer[2]/schedule[1]/warmup" in space.names
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        flat = space.validate(space.sample(rng))
        values = space.unflatten(flat)
        assert space.flatten(values) == flat
        optimizer = values["optimizer"]
        seen.add(optimizer["name"])
        if optimizer["name"] == "adam":
            assert set(optimizer) == {"name", "beta1"} and 0.8 <= optimizer["beta1"] <= 0.99
        elif optimizer["name"] == "sgd":
            assert 0 <= optimizer["momentum"] <= 0.99 and optimizer["nesterov"] in (True, False)
        else:
            schedule = optimizer["schedule"]
            if schedule["kind"] == "cosine":
                assert schedule["warmup"] in (0, 2, 4, 6, 8, 10)
            else:
                assert round(schedule["gamma"] * 10) / 10 == pytest.approx(schedule["gamma"])
        assert values["act"] in ("relu", "tanh") and 1 <= values["epochs"] <= 30
        assert values["layers"][2] == 64
    assert seen == {"adam", "sgd", "rmsprop"}


def test_the_space_survives_json_and_yaml() -> None:
    tree, _ = parse_study_text(FULL, "study.yaml")
    space = Space(tree)
    assert Space.from_json(space.to_json_str()) == space
    again, _ = parse_study_mapping({"command": "x", "space": space_to_yaml(space.tree)})
    assert Space(again) == space


def test_only_the_settings_written_are_returned() -> None:
    assert parse_study_mapping({"objective": "train:objective"}) == (
        None,  # no space: define-by-run
        {"objective": "train:objective"},
    )
    assert parse_study_mapping({"command": "x"}) == ({}, {"command": "x"})  # no parameters


def test_null_means_not_given() -> None:
    space, settings = parse_study_text("command: x\nmax_trials:\nstrategy: ~\nspace:\nparams:\n")
    assert settings == {"command": "x"} and space == {}


def test_command_forms() -> None:
    _, settings = parse_study_mapping({"command": ["python", "t.py", "--epochs", 10]})
    assert settings["command"] == ("python", "t.py", "--epochs", "10")
    _, settings = parse_study_mapping(
        {"command": "python t.py --lr :lr: | tee log", "shell": True, "params": {"lr": "1,2"}}
    )
    assert settings["shell"] is True


def test_objective_forms() -> None:
    _, settings = parse_study_mapping({"objective": "pkg.mod:Class.method"})
    assert settings["objective"] == "pkg.mod:Class.method"


def test_stop_conditions_single_string() -> None:
    _, settings = parse_study_mapping({"command": "x", "stop_conditions": "loss > 3"})
    assert settings["stop_conditions"] == ("loss > 3",)


def test_space_may_hold_ready_made_distributions() -> None:
    space, _ = parse_study_mapping({"command": "x", "space": {"lr": hs.uniform(0, 1)}})
    assert space == {"lr": hs.uniform(0, 1)}


def test_yaml_dialect_is_yaml_1_2_core() -> None:
    space, _ = parse_study_text(
        """\
        command: x
        space:
          a: 1e-5
          b: 010
          c: [yes, no, on, off]
          d: 2024-01-01
          e: 0x1F
          f: 0o17
          g: 1:30
          h: [true, False, TRUE]
          i: 1_000
          j: +5
          k: -.5
        """.replace("        ", "")
    )
    assert space == {
        "a": 1e-5,
        "b": 10,
        "c": ["yes", "no", "on", "off"],
        "d": "2024-01-01",
        "e": 31,
        "f": 15,
        "g": "1:30",
        "h": [True, False, True],
        "i": "1_000",
        "j": 5,
        "k": -0.5,
    }


def test_yaml_aliases_and_merges_work() -> None:
    space, _ = parse_study_text(
        textwrap.dedent(
            """\
            command: x
            space:
              base: &base {lr: {loguniform: [1.0e-5, 1.0e-1]}, wd: 0}
              opt: {choice: [{<<: *base, name: adam}, {<<: *base, name: sgd, wd: 0.1}]}
            """
        )
    )
    assert space is not None
    options = space["opt"].options
    assert options[0]["lr"] == hs.loguniform(1e-5, 1e-1)
    assert options[1]["wd"] == 0.1  # a merged key may be overridden


# -- errors: paths ---------------------------------------------------------------------------------


def test_error_path_inside_a_choice(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        command: x
        space:
          optimizer:
            choice:
              - {name: adam}
              - {name: sgd, momentum: {uniform: [1.0, 0.5]}}
        """,
    )
    with pytest.raises(StudyFileError) as caught:
        load_study_file(path)
    assert str(caught.value) == (
        f"{path}: space.optimizer.choice[1].momentum.uniform: low must be less than high "
        "(got low=1.0, high=0.5)"
    )
    assert caught.value.path == "space.optimizer.choice[1].momentum.uniform"
    assert caught.value.source == str(path)


def test_wrong_type_three_levels_deep() -> None:
    message = error_of(
        """\
        command: x
        space:
          model:
            encoder:
              layer:
                units: {integer: {low: many, high: 8}}
        """
    )
    assert (
        message
        == "study.yaml: space.model.encoder.layer.units.integer.low: expected a number, got 'many'"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "command: x\nmax_trials: ten\n",
            "study.yaml: max_trials: expected a positive integer, got 'ten'",
        ),
        ("command: x\nmax_trials: 0\n", "max_trials: expected a positive integer, got 0"),
        ("command: x\nmax_trials: 2.5\n", "max_trials: expected a positive integer, got 2.5"),
        ("command: x\nmax_trials: true\n", "max_trials: expected a positive integer, got true"),
        ("command: x\nparallel: 0\n", "parallel: expected a positive integer, got 0"),
        ("command: x\nparallel: -2\n", "parallel: expected a positive integer, got -2"),
        (
            "command: x\ngpus_per_trial: [1]\n",
            "gpus_per_trial: expected a positive integer, got [1]",
        ),
        (
            "command: x\nmax_trails: 10\n",
            "study.yaml: unknown key 'max_trails'; did you mean 'max_trials'?",
        ),
        ("command: x\nstop_condition: [a]\n", "did you mean 'stop_conditions'?"),
        ("command: x\nwhatever: 1\n", "unknown key 'whatever'; known keys: name, "),
        ("command: x\n3: 1\n", "unknown key 3"),
        ("command: x\ntimeout: 1\ntrial_timeout: 2\n", "trial_timeout is given twice"),
        (
            "command: x\ndirection: minimise\n",
            "direction: expected one of minimize, maximize, got 'minimise'; did you mean 'minimize'?",
        ),
        ("command: x\ndirection: up\n", "direction: expected one of minimize, maximize, got 'up'"),
        (
            "command: x\nmetric_agg: mean\n",
            "metric_agg: expected one of last, min, max, avg, got 'mean'",
        ),
        ("command: x\nmetric: 3\n", "metric: expected a non-empty string, got 3"),
        ("command: x\nmetric: ''\n", "metric: expected a non-empty string, got ''"),
        ("command: x\nname: [a]\n", "name: expected a non-empty string, got ['a']"),
        ("command: x\nstrategy: {a: 1}\n", "strategy: expected a strategy name, got a mapping"),
        ("command: x\nstrategy: tpee\n", "strategy: unknown strategy 'tpee'; did you mean 'tpe'?"),
        (
            "command: x\nstrategy_options: {n_startupp: 3}\n",
            "strategy_options: tpe: got an unexpected keyword argument 'n_startupp'",
        ),
        ("command: x\nstrategy: sobol\nstrategy_options: [1]\n", "strategy_options: expected"),
        ("command: x\ntimeout: 0\n", "timeout: expected a positive number of seconds, got 0"),
        ("command: x\ntimeout: .inf\n", "timeout: expected a positive number of seconds, got inf"),
        (
            "command: x\nmax_time: soon\n",
            "max_time: expected a positive number of seconds, got 'soon'",
        ),
        ("command: x\ntarget: high\n", "target: expected a finite number, got 'high'"),
        ("command: x\ntarget: .nan\n", "target: expected a finite number, got nan"),
        ("command: x\nseed: -1\n", "seed: expected an integer >= 0, got -1"),
        ("command: x\nseed: 1.5\n", "seed: expected an integer >= 0, got 1.5"),
        ("command: x\nstop_conditions: [a, 3]\n", "stop_conditions: expected a list of strings"),
        ("command: x\nstop_conditions: {a: 1}\n", "stop_conditions: expected a list of strings"),
        ("command: x\nstop_conditions: [loss]\n", "stop_conditions: stop condition 'loss' has no"),
        ("command: x\nenv: {'': a}\n", "env: '' is not an environment variable name"),
        ("command: x\nenv: [A]\n", "env: expected a mapping of names to strings"),
        ("command: x\nretry_on: [crash]\n", "retry_on: expected one of interrupted, stale"),
        ("command: x\nscheduler: mediann\n", "scheduler: unknown scheduler 'mediann'; did you mean"),
        ("command: x\nscheduler: asha\nscheduler_options: {eta: 3}\n", "unknown option 'eta'"),
        ("command: x\ngpus: 2\n", "gpus: expected GPU indices such as 0,1, got 2"),
        ("command: x\ngpus: []\n", "gpus: expected GPU indices such as 0,1, got []"),
        ("command: x\ngpus: [0, x]\n", "gpus: expected GPU indices such as 0,1, got [0, 'x']"),
        ("command: x\ngpus: [0, -1]\n", "gpus: expected GPU indices"),
        ("command: x\ngpus: [1, 1]\n", "gpus: GPU indices repeat in [1, 1]"),
        (
            "command: x\ngpus: [0]\ngpus_per_trial: 2\n",
            "study.yaml: gpus_per_trial: 2 GPUs per trial, but gpus lists only 1",
        ),
        ("command: x\ngpus_per_trial: 2\n", "gpus_per_trial: needs gpus"),
        ("command: x\nshell: yes\n", "shell: expected true or false, got 'yes'"),
        ("command: [x]\nshell: true\n", "shell: true needs the command as one string"),
        ("command: x\nstrategy: grid\nspace: {a: {uniform: [0, 1]}}\n", "study.yaml: space: "),
        (
            "command: x\nspace: {lr: 'loguniform(1e-4, 0.1)'}\n",
            "space.lr: 'loguniform(1e-4, 0.1)' is a string constant here; a distribution is a "
            "mapping: {loguniform: [1e-4, 0.1]}",
        ),
        (
            "max_trials: 3\n",
            "give 'command' (a command line with :name: placeholders) or 'objective'",
        ),
        ("command: x\nobjective: a:b\n", "give only one of 'command' and 'objective'"),
        ("command: ''\n", "command: expected a command line, got an empty string"),
        ("command: []\n", "command: expected a command line (a string or a list of strings)"),
        ("command: 3\n", "command: expected a command line"),
        ("command: [python, 1.5]\n", "command: expected a command line"),
        ("command: [python, [a]]\n", "command: expected a command line"),
        ("command: 'x :y:'\n", "study.yaml: command: the command uses :y: but the space has no"),
        (
            "objective: train\n",
            "objective: expected 'module:function' (e.g. train:objective), got 'train'",
        ),
        ("objective: 'a-b:c'\n", "objective: expected 'module:function'"),
        ("objective: 'a:'\n", "objective: expected 'module:function'"),
        ("objective: train.py:main\n", "give the module name, not the file (train:main)"),
        ("objective: 3\n", "objective: expected 'module:function' (e.g. train:objective), got 3"),
        ("", "study.yaml: the file is empty"),
        ("# only a comment\n", "study.yaml: the file is empty"),
        (
            "- a\n- b\n",
            "study.yaml: expected a mapping of settings (key: value lines), got ['a', 'b']",
        ),
        ("just text\n", "expected a mapping of settings (key: value lines), got 'just text'"),
    ],
)
def test_setting_errors(text: str, message: str) -> None:
    assert message in error_of(text)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("[1, 2]", "space: expected a mapping of parameter names, got a list"),
        ("{lr: {uniform: [0, 1, 2]}}", "space.lr.uniform: expected [low, high], got 3 value(s)"),
        ("{lr: {uniform: [0]}}", "space.lr.uniform: expected [low, high], got 1 value(s)"),
        (
            "{lr: {uniform: 3}}",
            "space.lr.uniform: expected a list [low, high] or a mapping {low: ..., high: ...}, got 3",
        ),
        (
            "{lr: {uniform: {low: 0, hihg: 1}}}",
            "space.lr.uniform: unknown argument 'hihg' (did you mean 'high'?); arguments: low, high",
        ),
        ("{lr: {uniform: {low: 0}}}", "space.lr.uniform: missing high"),
        ("{lr: {uniform: [a, 1]}}", "space.lr.uniform[0]: expected a number, got 'a'"),
        ("{lr: {uniform: [0, true]}}", "space.lr.uniform[1]: expected a number, got true"),
        ("{lr: {uniform: [0, .inf]}}", "space.lr.uniform: high must be finite"),
        ("{lr: {loguniform: [0, 1]}}", "space.lr.loguniform: a log scale needs low > 0"),
        ("{lr: {quniform: [0, 1, 2]}}", "space.lr.quniform: q=2.0 is wider than the range"),
        ("{lr: {quniform: {low: 0, high: 1, q: -1}}}", "space.lr.quniform: q must be > 0"),
        ("{n: {normal: [0, 0]}}", "space.n.normal: sigma must be > 0"),
        ("{n: {normal: {mu: 0, sigmaa: 1}}}", "unknown argument 'sigmaa' (did you mean 'sigma'?)"),
        ("{n: {integer: [1.5, 4]}}", "space.n.integer: low must be an integer, got float 1.5"),
        (
            "{n: {integer: {low: 1, high: 8, log: 1}}}",
            "space.n.integer.log: expected true or false, got 1",
        ),
        (
            "{n: {integer: {low: 0, high: 8, log: true}}}",
            "space.n.integer: a log scale needs low >= 1",
        ),
        ("{n: {integer: [1, 8, 0]}}", "space.n.integer: step must be >= 1"),
        ("{n: {integer: [5, 5]}}", "space.n.integer: low must be less than high"),
        ("{c: {choice: []}}", "space.c.choice: no options; give at least one"),
        (
            "{c: {choice: 3}}",
            "space.c.choice: expected a list of options or {options: [...], weights: [...]}, got 3",
        ),
        (
            "{c: {choice: {options: [1, 2], weights: [1]}}}",
            "space.c.choice: 1 weights for 2 options",
        ),
        (
            "{c: {choice: {options: [1, 2], weights: [1, x]}}}",
            "space.c.choice.weights[1]: expected a number, got 'x'",
        ),
        (
            "{c: {choice: {options: [1, 2], weights: 3}}}",
            "space.c.choice.weights: expected a list of numbers, got 3",
        ),
        ("{c: {choice: {options: [1, 2], weights: [-1, 2]}}}", "weights must be >= 0"),
        (
            "{c: {choice: {options: 3}}}",
            "space.c.choice.options: expected a list of options, got 3",
        ),
        ("{c: {choice: {weights: [1]}}}", "space.c.choice: missing options"),
        ("{c: {choice: {option: [1]}}}", "unknown argument 'option' (did you mean 'options'?)"),
        (
            "{c: {choice: [1, 2], weights: [1, 2]}}",
            "space.c: a distribution is a mapping with the single key 'choice', but this one also has 'weights'",
        ),
        (
            "{c: {uniform: [0, 1], log: true}}",
            "space.c: a distribution is a mapping with the single key 'uniform'",
        ),
        (
            "{c: {choice: [{a: {uniform: [0, 1]}}, {b: {choice: [{d: {integer: [1, x]}}]}}]}}",
            "space.c.choice[1].b.choice[0].d.integer[1]: expected a number, got 'x'",
        ),
        (
            "{c: {choice: {options: [1, {z: {normal: [0, -1]}}]}}}",
            "space.c.choice.options[1].z.normal: sigma must be > 0",
        ),
        ("{l: [1, [2, {uniform: [1, 0]}]]}", "space.l[1][1].uniform: low must be less than high"),
        ("{'a/b': 1}", "space: key 'a/b' is not a valid name"),
        ("{'': 1}", "space: key '' is not a valid name"),
        ("{m: {1: 2}}", "space.m: key 1 must be a string (quote it)"),
        ("{m: {null: 2}}", "space.m: key null must be a string"),
        (
            "{'odd key': {'x.y': {uniform: [1, 0]}}}",
            "space['odd key']['x.y'].uniform: low must be less than high",
        ),
        ("{a: .nan}", "space.a: constant nan is not finite"),
        ("{a: [1, -.inf]}", "space.a[1]: constant -inf is not finite"),
        ("{a: !!binary aGVsbG8=}", "space.a: unsupported value b'hello' of type bytes"),
        ("{a: !!set {x, y}}", "space.a: unsupported value"),
    ],
)
def test_space_errors(space: str, message: str) -> None:
    assert message in error_of(f"command: x\nspace: {space}\n")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("{lr: '0.1:0.01:log'}", "study.yaml: params.lr: MIN (0.1) must be less than MAX (0.01)"),
        ("{lr: '0:1:logg'}", "params.lr: unknown option ':logg' (did you mean ':log'?)"),
        (
            "{lr: [1, 2]}",
            "params.lr: expected a --param value such as '0.001:0.1:log' or '16,32,64', got a list; lists and mappings go under space:",
        ),
        ("{lr: true}", "params.lr: expected a --param value"),
        ("{lr: .inf}", "params.lr: expected a --param value"),
        ("{'1lr': 1}", "params['1lr']: invalid name"),
        ("{'a=b': '1'}", "params['a=b']: invalid name"),
        ("{3: '1'}", "params[3]: invalid name"),
        ("[lr]", "params: expected a mapping of name: --param value"),
        ("{lr: ''}", "params.lr: no value after '='"),
    ],
)
def test_params_errors(params: str, message: str) -> None:
    assert message in error_of(f"command: x\nparams: {params}\n")


def test_params_and_space_must_not_collide() -> None:
    message = error_of("command: x\nspace: {lr: 0.1}\nparams: {lr: '0.1,0.2'}\n")
    assert message == "study.yaml: params.lr: 'lr' is also defined under space; define it once"


def test_params_numbers_are_constants() -> None:
    assert parse_study_text("command: x\nparams: {a: 3, b: 0.5}\n")[0] == {"a": 3, "b": 0.5}


# -- errors: YAML and files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "command: x\nspace: {a: 1\n",
            "study.yaml: line 3, column 1: invalid YAML: expected ',' or '}'",
        ),
        (
            "command: x\n  bad: indent\n",
            "study.yaml: line 2, column 6: invalid YAML: mapping values are not allowed here",
        ),
        (
            "command: python t.py --lr :lr:\n",
            "quote a value that contains ': ' or ends with ':', e.g. command: \"python train.py --lr :lr:\"",
        ),
        (
            "command: x\ncommand: y\n",
            "study.yaml: line 2, column 1: invalid YAML: found the key 'command' twice",
        ),
        ("command: x\nspace: {a: 1, a: 2}\n", "found the key 'a' twice"),
        (
            "!!python/object/apply:os.system ['echo hi']\n",
            "invalid YAML: could not determine a constructor for the tag 'tag:yaml.org,2002:python/object/apply:os.system'",
        ),
        ("command: !!python/name:os.system\n", "could not determine a constructor"),
        ("command: x\nspace: {a: !!int 'abc'}\n", "'abc' is not an integer"),
        ("command: x\nspace: {a: !!float 'abc'}\n", "'abc' is not a number"),
        ("command: x\nspace: {a: !!bool 'maybe'}\n", "'maybe' is not true or false"),
        ("command: x\n---\ncommand: y\n", "invalid YAML: expected a single document"),
        ("command: x\nspace: {a: *nowhere}\n", "found undefined alias 'nowhere'"),
        ("command: \x00\n", "invalid YAML"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("=\n", "expected a mapping of settings"),
    ],
)
def test_yaml_errors(text: str, message: str) -> None:
    assert message in error_of(text)


def test_explicit_timestamp_stays_text() -> None:
    space, _ = parse_study_text("command: x\nspace: {a: !!timestamp 'nonsense'}\n")
    assert space == {"a": "nonsense"}


def test_alias_loop_is_refused() -> None:
    assert "space.a[0]: contains itself (a YAML alias loop)" in error_of(
        "command: x\nspace:\n  a: &a [*a]\n"
    )


def test_alias_bomb_is_refused_quickly() -> None:
    text = "command: x\nspace:\n  a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for level in "bcdefgh":
        previous = chr(ord(level) - 1)
        text += f"  {level}: &{level} [{', '.join(['*' + previous] * 10)}]\n"
    assert "the space is too large" in error_of(text)


def test_deep_python_mapping_is_refused() -> None:
    space: Any = 1
    for _ in range(500):
        space = {"a": space}
    with pytest.raises(StudyFileError, match="nested too deeply"):
        parse_study_mapping({"command": "x", "space": space})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StudyFileError, match=r"nope\.yaml: cannot read the file: No such file"):
        load_study_file(tmp_path / "nope.yaml")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(StudyFileError, match="cannot read the file"):
        load_study_file(tmp_path)


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "study.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(StudyFileError, match="not UTF-8 text"):
        load_study_file(path)


def test_path_objects_and_strings(tmp_path: Path) -> None:
    path = write(tmp_path, "command: x\n")
    assert load_study_file(path) == load_study_file(str(path))


def test_study_file_error_is_a_value_error_and_pickles() -> None:
    with pytest.raises(ValueError) as caught:
        parse_study_mapping({"command": "x", "max_trials": "ten"}, "s.yaml")
    error = caught.value
    assert isinstance(error, StudyFileError)
    assert (error.source, error.path, error.problem) == (
        "s.yaml",
        "max_trials",
        "expected a positive integer, got 'ten'",
    )
    again = pickle.loads(pickle.dumps(error))
    assert str(again) == str(error)


# -- fuzzing ---------------------------------------------------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from(["uniform", "choice", "integer", "options", "low", "1:2", "0.1:1:log", "a,b"])
)


DIST_KEYS = [
    "uniform", "loguniform", "quniform", "qloguniform", "normal", "lognormal", "qnormal",
    "qlognormal", "integer", "choice",
]  # fmt: skip
ARGUMENT_KEYS = ["options", "weights", "low", "high", "step", "log", "mu", "sigma", "q"]


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.text(max_size=8) | st.sampled_from([*DIST_KEYS, *ARGUMENT_KEYS, "a/b", ""])
    return st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=3)


YAMLISH = st.recursive(SCALARS, _containers, max_leaves=25)

DISTRIBUTION = st.one_of(
    st.builds(
        lambda kind, args: {kind: args},
        st.sampled_from(DIST_KEYS[:-1]),
        st.lists(st.integers(-3, 10) | st.floats(-3, 10) | st.booleans(), max_size=4)
        | st.dictionaries(
            st.sampled_from(["low", "high", "q", "mu", "sigma", "step", "log", "x"]),
            st.integers(-3, 10) | st.floats(-3, 10) | st.booleans(),
            max_size=4,
        ),
    ),
)
SPACE = st.recursive(
    DISTRIBUTION | SCALARS,
    lambda children: (
        _containers(children)
        | st.builds(lambda options: {"choice": options}, st.lists(children, max_size=3))
        | st.builds(
            lambda options, weights: {"choice": {"options": options, "weights": weights}},
            st.lists(children, max_size=3),
            st.lists(st.integers(-1, 3) | st.floats(-1, 3), max_size=3),
        )
    ),
    max_leaves=15,
)


def mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`valid` nine times in ten, anything otherwise: whole files then often pass validation."""
    return st.integers(0, 9).flatmap(lambda k: YAMLISH if k == 0 else valid)


WORD = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=8)
SETTINGS = st.one_of(
    st.fixed_dictionaries(
        {"command": mostly(WORD | st.lists(WORD | st.integers(), min_size=1, max_size=3))}
    ),
    st.fixed_dictionaries({"objective": mostly(st.sampled_from(["a:b", "a.b:c.d", "a.py:b"]))}),
).flatmap(
    lambda required: st.fixed_dictionaries(
        {key: st.just(value) for key, value in required.items()},
        optional={
            "name": mostly(WORD),
            "strategy": mostly(WORD),
            "direction": mostly(st.sampled_from(["minimize", "maximize"])),
            "metric": mostly(WORD),
            "metric_agg": mostly(st.sampled_from(["last", "min", "max", "avg"])),
            "max_trials": mostly(st.integers(1, 5) | st.none()),
            "parallel": mostly(st.integers(1, 5)),
            "timeout": mostly(st.floats(0.1, 10) | st.integers(1, 10)),
            "max_time": mostly(st.floats(0.1, 10)),
            "target": mostly(st.floats(allow_nan=False, allow_infinity=False)),
            "seed": mostly(st.integers(0, 2**70)),
            "stop_conditions": mostly(st.lists(WORD, max_size=2) | WORD),
            "message": mostly(WORD),
            "storage": mostly(WORD),
            "gpus": mostly(st.lists(st.integers(0, 7), min_size=2, max_size=4, unique=True)),
            "gpus_per_trial": mostly(st.integers(1, 2)),
            "shell": mostly(st.booleans()),
            "space": mostly(st.dictionaries(WORD, SPACE, max_size=3)),
            "params": mostly(
                st.dictionaries(
                    st.from_regex(r"[a-z_][a-z0-9_-]{0,4}", fullmatch=True),
                    st.sampled_from(["0.001:0.1:log", "1:8", "a,b", "3", "16:128:log:int"]),
                    max_size=3,
                )
            ),
        },
    )
)


def check_mapping(data: Any) -> None:
    try:
        space, settings = parse_study_mapping(data, "fuzz.yaml")
    except StudyFileError as error:
        assert str(error).startswith("fuzz.yaml: ")
        return
    if space is not None:
        Space(space)  # whatever validates must build
    assert ("command" in settings) != ("objective" in settings)
    given = {k: v for k, v in settings.items() if k != "storage"}
    create_study(None if space is None else Space(space), **given)  # and makes a study


@FUZZ
@given(YAMLISH)
def test_fuzz_arbitrary_data(data: Any) -> None:
    check_mapping(data)


@FUZZ
@given(SETTINGS)
def test_fuzz_settings(data: dict[str, Any]) -> None:
    check_mapping(data)


@FUZZ
@given(SETTINGS, st.text(max_size=12), YAMLISH)
def test_fuzz_settings_with_an_unknown_key(data: dict[str, Any], key: str, value: Any) -> None:
    data = {**data, key: value}
    check_mapping(data)


@FUZZ
@given(st.dictionaries(st.text(max_size=5), SPACE, max_size=4))
def test_fuzz_spaces(space: dict[str, Any]) -> None:
    check_mapping({"command": "x", "space": space})


@FUZZ
@given(SPACE)
def test_fuzz_spaces_that_sample(space: Any) -> None:
    try:
        tree, _ = parse_study_mapping({"command": "x", "space": {"p": space}})
    except StudyFileError:
        return
    built = Space(tree)
    rng = np.random.default_rng(0)
    for _ in range(3):
        built.unflatten(built.validate(built.sample(rng)))


YAML_TOKENS = st.sampled_from(
    [
        "command: x\n", "space:\n", "params:\n", "  ", "a: ", "{", "}", "[", "]", ", ", ": ",
        "- ", "\n", "&a ", "*a", "<<: ", "!!int ", "!!float ", "!!bool ", "!!timestamp ",
        "!!binary ", "!!set ", "!!python/object:os.system ", "uniform", "choice", "1", "0.5",
        "1e-5", ".inf", "'q'", '"', "#", "---\n", "? ", "|\n", "%YAML 1.2\n", "\t",
    ]
)  # fmt: skip


@FUZZ
@given(st.lists(YAML_TOKENS, max_size=25).map("".join) | st.text())
def test_fuzz_yaml_text(text: str) -> None:
    try:
        space, _ = parse_study_text(text, "fuzz.yaml")
    except StudyFileError as error:
        assert str(error).startswith("fuzz.yaml: ")
        return
    if space is not None:
        Space(space)
