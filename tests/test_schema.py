"""Each setting is declared once (hypersearch/study/schema.py) and reached the same way from
Python, the command line and YAML study files: same name, same default, same message for a bad
value. The README's table of study-file keys is made from the schema."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner, Result

import hypersearch as hs
from hypersearch.cli.main import cli
from hypersearch.cli.options import given
from hypersearch.cli.study_file import StudyFileError, parse_study_mapping, parse_study_text
from hypersearch.cli.yaml_space import space_to_yaml
from hypersearch.settings import Setting, SettingError
from hypersearch.study.definition import _jsonable
from hypersearch.study.schema import (
    BY_NAME,
    DEFAULT_COMMAND_METRIC,
    SETTINGS,
    STORED,
    aliases_for,
    canonical,
    yaml_reference,
)

ROOT = Path(__file__).resolve().parent.parent
SPACE = {"x": hs.uniform(0.0, 1.0)}
CMD = [sys.executable, "-c", "print('loss=0.5')"]
SEARCH_COMMANDS = ("random", "tpe", "gp", "grid", "sobol")
STARTS, ENDS = "<!-- settings-table:start -->", "<!-- settings-table:end -->"

# A good value of each setting: (Python/YAML value, command-line words, companion settings).
GOOD: dict[str, tuple[Any, list[str] | None, dict[str, Any]]] = {
    "name": ("n1", ["n1"], {}),
    "storage": ("memory", ["memory"], {}),
    "direction": ("maximize", ["maximize"], {}),
    "metric": ("acc", ["acc"], {}),
    "metric_agg": ("max", ["max"], {}),
    "seed": (5, ["5"], {}),
    "strategy": ("random", ["random"], {}),
    "strategy_options": ({"n_startup": 3}, ["n_startup=3"], {}),
    "scheduler": ("asha", ["asha"], {}),
    "scheduler_options": ({"reduction_factor": 2}, ["reduction_factor=2"], {"scheduler": "asha"}),
    "objective": ("mod:fn", None, {}),
    "command": (["echo", ":x:"], None, {}),
    "shell": (True, [], {"command": "echo :x:"}),
    "env": ({"A": "1"}, ["A=1"], {}),
    "cwd": ("/tmp", ["/tmp"], {}),
    "output_dir": ("runs", ["runs"], {}),
    "checkpoint_dir": ("ck", ["ck"], {}),
    "stop_conditions": (["loss > 5"], ["loss > 5"], {}),
    "trial_timeout": (30, ["30"], {}),
    "grace": (5, ["5"], {}),
    "gpus": ([0, 1], ["0,1"], {}),
    "gpus_per_trial": (2, ["2"], {"gpus": [0, 1]}),
    "max_trials": (7, ["7"], {}),
    "max_time": (60, ["60"], {}),
    "max_resource_total": (100, ["100"], {}),
    "target": (0.5, ["0.5"], {}),
    "patience": (4, ["4"], {}),
    "max_failures": (2, ["2"], {}),
    "n_jobs": (2, ["2"], {}),
    "max_running": (3, ["3"], {}),
    "executor": ("process", ["process"], {}),
    "resources_per_trial": ({"cpu": 2}, ["cpu=2"], {}),
    "retries": (1, ["1"], {}),
    "retry_on": (["crashed", "stale"], ["crashed,stale"], {}),
    "lease_seconds": (30, ["30"], {}),
    "message": ("hi", ["hi"], {}),
    "tags": (["a"], ["a"], {}),
    "warm_start": (["other"], ["other"], {}),
    "space_defaults": ({"x": 0.5}, None, {}),
}

# Bad values by kind: (Python/YAML value, command-line text or None where it cannot be written).
BAD_BY_KIND: dict[str, tuple[Any, str | None]] = {
    "a positive integer": (0, "0"),
    "a positive integer (or -1: every core)": (0, "0"),
    "an integer >= 0": (-1, "-1"),
    "a positive number of seconds": (0, "0"),
    "a finite number": ("x", "x"),
    "a non-empty string": ("", ""),
    "a study name (1-200 characters, no '/')": ("a/b", "a/b"),
    "true or false": ("yes", None),  # a flag on the command line: no value to get wrong
    "a list of strings": (3, None),  # every command-line word is a string
    "GPU indices such as 0,1": ("x", "x"),
    "a list of 'METRIC OP VALUE' strings": ("loss >> 1", "loss >> 1"),
    "a mapping of variable names to strings": ({"": "x"}, "=x"),
    "a mapping of option names to values": ({"bogus": 1}, "bogus=1"),
    "a command line (a string or a list of strings)": ([], None),
    "'module:function'": ("train", None),
    "a mapping of resource names (cpu, gpu, custom ones) to amounts": ({"gpu": -1}, "gpu=-1"),
    "study names and/or {params, value} records": ([""], ""),
}


def bad_value(setting: Setting) -> tuple[Any, str | None]:
    """A bad value of `setting`, derived from its kind."""
    describe = setting.kind.describe.removesuffix(" or null")
    if describe.startswith(("one of ", "a list of: ", "a strategy name", "a scheduler name")):
        return ["bogus"] if describe.startswith("a list of: ") else "bogus", "bogus"
    if describe.startswith("a storage URL"):
        return "", ""
    return BAD_BY_KIND[describe]


def problem_of(setting: Setting, value: Any) -> str:
    """What the schema says is wrong with `value` (as the study would check it)."""
    try:
        checked = setting.check(value)
    except SettingError as error:
        return error.problem
    with pytest.raises(SettingError) as caught:  # a rule of the definition (a strategy option)
        hs.create_study(SPACE, **{setting.name: checked})
    assert caught.value.setting == setting.name
    return caught.value.problem


def invoke(*args: str) -> Result:
    """The CLI in this process; its log handler is dropped afterwards (its stream closes)."""
    try:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)
    finally:
        logging.getLogger("hypersearch").handlers = []


def cli_settings(command: str, words: list[str]) -> dict[str, Any]:
    """The settings the command line gives `command` for `words`, parsed as click parses them
    (nothing runs)."""
    group_ctx = click.Context(cli)
    sub = cli.commands[command]
    head = {"run": ["study.yaml"], "resume": ["some-study"]}.get(command, [])
    tail = [] if command in ("run", "resume") else ["--", "true"]
    ctx = sub.make_context(command, [*head, *words, *tail], parent=group_ctx)
    return given(ctx.params, [s.name for s in SETTINGS])


def option_names(command: str) -> set[str]:
    return {
        opt
        for param in cli.commands[command].params
        if isinstance(param, click.Option)
        for opt in (*param.opts, *param.secondary_opts)
    }


@pytest.fixture(autouse=True)
def _no_env_storage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYPERSEARCH_STORAGE", raising=False)


# -- the schema itself -----------------------------------------------------------------------------


def test_every_setting_has_a_good_and_a_bad_value() -> None:
    assert set(GOOD) == set(BY_NAME), "add the new setting to GOOD (and BAD_BY_KIND if needed)"
    for setting in SETTINGS:
        bad_value(setting)  # a KeyError names a kind without a bad value


def test_defaults_pass_their_own_check() -> None:
    for setting in SETTINGS:
        assert _jsonable(setting.check(setting.default)) == _jsonable(setting.default), setting.name


def test_flags_and_aliases_are_unique() -> None:
    flags = [flag for s in SETTINGS for flag in s.flags]
    assert len(flags) == len(set(flags))
    for surface in ("python", "cli", "yaml"):
        aliases = aliases_for(surface)
        assert not set(aliases) & set(BY_NAME), surface  # an alias never hides a setting


# -- reachable from Python, the command line and YAML ----------------------------------------------


@pytest.mark.parametrize("name", [s.name for s in SETTINGS if s.group != "location"])
def test_python_keyword_reaches_the_stored_definition(name: str) -> None:
    value, _, companions = GOOD[name]
    expected = _jsonable(BY_NAME[name].check(value))
    study = hs.create_study(SPACE, **companions, **{name: value})
    assert study.definition.public_settings()[name] == expected
    if BY_NAME[name].mutable:  # Study.optimize and hs.minimize take it too
        other = hs.create_study(SPACE, **companions)
        other.revise(**{name: value})
        assert other.definition.public_settings()[name] == expected


def test_python_location_settings() -> None:
    study = hs.create_study(SPACE, name="n1", storage="memory")
    assert study.name == "n1" and study.storage.url.startswith("memory")


def test_minimize_takes_every_setting_as_a_keyword() -> None:
    study = hs.minimize(
        lambda p: p["x"], SPACE, verbose=False, max_trials=2, retries=1, lease_seconds=30,
        strategy="random", seed=3, tags=["t"], message="m",
    )  # fmt: skip
    settings = study.definition.public_settings()
    assert (settings["max_trials"], settings["retries"], settings["strategy"]) == (2, 1, "random")
    assert (settings["seed"], settings["tags"], settings["message"]) == (3, ["t"], "m")
    assert len(study.trials) == 2


@pytest.mark.parametrize("alias", sorted(aliases_for("python")))
def test_python_aliases(alias: str) -> None:
    name = aliases_for("python")[alias]
    value = GOOD[name][0]
    assert dict(canonical({alias: value}, "python")) == {name: BY_NAME[name].check(value)}


@pytest.mark.parametrize("name", [s.name for s in SETTINGS if s.flags])
def test_each_flag_is_an_option_of_the_commands_that_take_it(name: str) -> None:
    setting = BY_NAME[name]
    commands = ["run"] + ([] if name == "strategy" else list(SEARCH_COMMANDS))  # tpe: the name
    if setting.mutable and setting.group != "location":
        commands.append("resume")
    for command in commands:
        missing = set(setting.flags) - option_names(command)
        assert not missing, f"{command} lacks {missing}"
    if not setting.mutable:
        assert not set(setting.flags) & option_names("resume"), "an identity setting on resume"
    value, words, _ = GOOD[name]
    assert words is not None
    for flag in setting.flags:
        for command in commands:
            args = [flag, *words] if words else [flag]
            assert cli_settings(command, args)[name] == setting.check(value), (command, flag)


def test_resume_takes_no_location_setting_but_its_storage() -> None:
    options = option_names("resume")
    assert "--name" not in options
    storage = [p for p in cli.commands["resume"].params if "--storage" in getattr(p, "opts", ())]
    assert len(storage) == 1


@pytest.mark.parametrize("name", [s.name for s in SETTINGS])
def test_yaml_key_reaches_the_settings(name: str) -> None:
    value, _, companions = GOOD[name]
    base = {"objective": "mod:fn"} if name not in ("objective", "shell") else {}
    if name == "command":
        base = {}
    _, settings = parse_study_mapping({**base, **companions, name: value, "params": {"x": "0:1"}})
    if value is None:  # null: not given
        assert name not in settings
    else:
        assert settings[name] == BY_NAME[name].check(value)


@pytest.mark.parametrize("alias", sorted(aliases_for("yaml")))
def test_yaml_aliases(alias: str) -> None:
    name = aliases_for("yaml")[alias]
    _, settings = parse_study_mapping({"objective": "mod:fn", alias: GOOD[name][0]})
    assert settings[name] == BY_NAME[name].check(GOOD[name][0])


# -- the same default everywhere -------------------------------------------------------------------


def _stored(url: str, name: str) -> dict[str, Any]:
    return hs.load_study(name, url).definition.public_settings()


@pytest.fixture(scope="module")
def made_each_way(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Command studies made without any setting but those they need, each way: Python, the
    search commands, and study files; plus a Python study with no objective at all."""
    tmp = tmp_path_factory.mktemp("defaults")
    url = f"sqlite:///{tmp}/x.db"
    param = ["--param", "x=1,2"]
    hs.create_study(SPACE, name="python", storage=url, command=CMD)
    hs.create_study(SPACE, name="bare", storage=url)
    results = [
        invoke("random", "--storage", url, "--name", "cli", "-n", "1", *param, "--", *CMD),
        invoke("grid", "--storage", url, "--name", "cli-grid", *param, "--", *CMD),
    ]
    for name, extra in (("yaml", {"max_trials": 1}), ("yaml-grid", {"strategy": "grid"})):
        path = tmp / f"{name}.yaml"
        text = yaml.safe_dump({"name": name, "command": CMD, "params": {"x": "1,2"}, **extra})
        path.write_text(text)
        results.append(invoke("run", str(path), "--storage", url))
    for result in results:
        assert result.exit_code == 0, result.output
    yield {name: _stored(url, name) for name in (
        "python", "bare", "cli", "cli-grid", "yaml", "yaml-grid"
    )}  # fmt: skip


# which study shows each setting's default (the others were given it)
_GIVEN = {
    "cli": {"strategy", "max_trials", "command"},
    "cli-grid": {"strategy", "command"},
    "yaml": {"max_trials", "command"},
    "yaml-grid": {"strategy", "command"},
    "python": {"command"},
    "bare": set(),
}


@pytest.mark.parametrize("name", [n for n in STORED if n != "seed"])
def test_same_default_from_python_cli_and_yaml(made_each_way: dict[str, Any], name: str) -> None:
    default = _jsonable(BY_NAME[name].default)
    for study, settings in made_each_way.items():
        if name in _GIVEN[study]:
            continue
        if name == "metric" and settings["command"] is not None:
            assert settings[name] == DEFAULT_COMMAND_METRIC, study  # a command's default metric
            continue
        assert settings[name] == default, f"{study}: {name} is {settings[name]!r}"


def test_seed_is_random_when_not_given_and_stored(made_each_way: dict[str, Any]) -> None:
    seeds = [settings["seed"] for settings in made_each_way.values()]
    assert all(isinstance(seed, int) and seed >= 0 for seed in seeds)
    assert len(set(seeds)) > 1


# -- the same message for a bad value everywhere ---------------------------------------------------


@pytest.mark.parametrize("name", [s.name for s in SETTINGS])
def test_bad_value_from_python(name: str) -> None:
    setting = BY_NAME[name]
    value, _ = bad_value(setting)
    problem = problem_of(setting, value)
    with pytest.raises(SettingError) as caught:
        hs.create_study(SPACE, **{name: value})
    assert problem in str(caught.value) and caught.value.setting == name
    if setting.mutable and setting.group != "location":
        study = hs.create_study(SPACE)
        with pytest.raises(SettingError, match=re.escape(problem)):
            study.optimize(lambda p: p["x"], verbose=False, **{name: value})
        with pytest.raises(SettingError, match=re.escape(problem)):
            hs.minimize(lambda p: p["x"], SPACE, verbose=False, **{name: value})


@pytest.mark.parametrize("name", [s.name for s in SETTINGS])
def test_bad_value_from_yaml(name: str) -> None:
    setting = BY_NAME[name]
    value, _ = bad_value(setting)
    base: dict[str, Any] = {} if name in ("command", "objective") else {"command": CMD}
    text = yaml.safe_dump({**base, name: value, "params": {"x": "0:1"}})
    with pytest.raises(StudyFileError) as caught:
        parse_study_text(text, "study.yaml")
    assert caught.value.path == name
    assert problem_of(setting, value) in str(caught.value)


@pytest.fixture(scope="module")
def stored_study(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('bad')}/x.db"
    hs.create_study(SPACE, name="s", storage=url, command=CMD)
    return url


@pytest.mark.parametrize("name", [s.name for s in SETTINGS if s.flags])
def test_bad_value_from_the_command_line(name: str, stored_study: str, tmp_path: Path) -> None:
    setting = BY_NAME[name]
    value, text = bad_value(setting)
    if text is None:
        assert setting.kind.describe in ("true or false", "a list of strings")
        return
    problem = problem_of(setting, value)
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump({"command": CMD, "params": {"x": "0:1"}}))
    runs = [
        ("run", str(study_file), "--storage", stored_study),
    ]
    if name != "strategy":  # `hypersearch tpe`: the strategy is the command's name
        runs.append(("tpe", "-n", "1", "--storage", stored_study, "--param", "x=0:1"))
    if setting.mutable and setting.group != "location":
        runs.append(("resume", "s", "--storage", stored_study))
    for head in runs:
        tail = ("--", *CMD) if head[0] == "tpe" else ()
        args = [*head, setting.flags[-1], text, *tail]
        if name == "storage":
            args = [a for a in args if a != stored_study]
            args.remove("--storage")
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert problem in result.stderr, (args, result.stderr)
    assert len(hs.load_study("s", stored_study).definition.revisions) == 0


# -- unknown names -----------------------------------------------------------------------------


def test_unknown_option_suggests_the_flag() -> None:
    result = invoke("tpe", "--maximise", "-n", "1", "--param", "x=0:1", "--", *CMD)
    assert result.exit_code == 2
    assert re.search(r"No such option:? '?--maximise'?", result.stderr)
    assert re.search(r"Did you mean .*--maximize\b", result.stderr)


def test_unknown_option_of_run_and_resume(tmp_path: Path) -> None:
    result = invoke("run", str(tmp_path / "x.yaml"), "--max-trial", "3")
    assert result.exit_code == 2 and re.search(r"Did you mean .*--max-trials\b", result.stderr)
    result = invoke("resume", "x", "--num-run", "3")
    assert result.exit_code == 2 and re.search(r"Did you mean .*--num-runs\b", result.stderr)


def test_unknown_yaml_key_suggests_the_setting(tmp_path: Path) -> None:
    with pytest.raises(StudyFileError, match="did you mean 'max_trials'"):
        parse_study_text("command: x\nmax_trial: 3\n", "study.yaml")
    path = tmp_path / "study.yaml"
    path.write_text("command: x\nmax_trial: 3\n")
    result = invoke("run", str(path))
    assert result.exit_code == 2
    assert "max_trial" in result.stderr and "did you mean 'max_trials'" in result.stderr


def test_unknown_python_keyword_suggests_the_setting() -> None:
    with pytest.raises(SettingError, match="did you mean 'max_trials'"):
        hs.create_study(SPACE, max_trial=3)


def test_a_near_miss_of_a_distribution_is_an_error() -> None:
    with pytest.raises(StudyFileError) as caught:
        parse_study_text("command: x\nspace:\n  lr: {logunifrom: [1.0e-4, 0.1]}\n", "s.yaml")
    assert caught.value.path == "space.lr.logunifrom"
    assert "did you mean 'loguniform'?" in caught.value.problem
    assert "{constant: {logunifrom: ...}}" in caught.value.problem


def test_constant_writes_a_constant_mapping() -> None:
    space, _ = parse_study_text(
        "command: x\nspace:\n  lr: {constant: {logunifrom: [1.0e-4, 0.1]}}\n"
        "  u: {constant: {uniform: 3}}\n  y: {uniform: [0, 1]}\n"
    )
    assert space is not None
    assert space["lr"] == {"logunifrom": [1e-4, 0.1]}
    assert space["u"] == {"uniform": 3}
    written = space_to_yaml(hs.Space(space).tree)
    assert written["lr"] == {"constant": {"logunifrom": [1e-4, 0.1]}}
    assert written["u"] == {"constant": {"uniform": 3}}
    again, _ = parse_study_mapping({"command": "x", "space": written})
    assert hs.Space(again) == hs.Space(space)


# -- README's reference of study-file keys ---------------------------------------------------------


def test_readme_yaml_reference_is_made_from_the_schema() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.count(STARTS) == 1 and readme.count(ENDS) == 1, "README lacks the markers"
    table = readme.split(STARTS)[1].split(ENDS)[0].strip("\n")
    assert table == yaml_reference(), (
        "README's settings table differs from the schema; regenerate it with:\n"
        "  .venv/bin/python -c 'from hypersearch.study.schema import yaml_reference; "
        "print(yaml_reference())'\n"
        f"and paste the output between {STARTS} and {ENDS}"
    )


def test_yaml_reference_lists_every_key_alias_and_flag() -> None:
    table = yaml_reference()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    for setting in SETTINGS:
        row = next((r for r in rows if r.startswith(f"| `{setting.name}`")), None)
        assert row is not None, setting.name
        for alias, where in setting.aliases.items():
            assert (f"`{alias}`" in row) == ("yaml" in where), (setting.name, alias)
        for flag in setting.flags:
            assert f"`{flag}`" in row, (setting.name, flag)
    assert len(rows) == len(SETTINGS) + 2  # and space, params


def test_readme_study_file_example_is_valid() -> None:
    section = (ROOT / "README.md").read_text().split("## Study files", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    space, settings = parse_study_text(example, "README.md")
    assert settings["name"] == "mnist-cnn" and space is not None and "optimizer" in space
