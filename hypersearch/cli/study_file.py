"""YAML study files for ``hypersearch run STUDY.yaml`` (and ``hypersearch show NAME --yaml``).

Example::

    name: mnist-cnn
    strategy: tpe
    strategy_options: {n_startup: 20}
    direction: maximize
    metric: val_acc
    metric_agg: max
    max_trials: 50
    n_jobs: 4                   # trials at once (also: parallel)
    trial_timeout: 3600         # seconds per trial (also: timeout)
    command: "python train.py --lr :lr: --units :units: --act :act:"  # quoted: ends in ':'
    # or: command: [python, train.py, --lr, ":lr:"]   or: objective: train:objective
    params:                     # the --param grammar, one string per parameter
      units: 16:128:log
      act: relu,tanh
    space:                      # the full space language (hypersearch/cli/yaml_space.py)
      lr: {loguniform: [1e-5, 1e-1]}

Every key is a setting of hypersearch/study/schema.py (README: "Study files" lists them, made
from the schema), plus ``space`` and ``params``. A null value means "not given". Unknown keys are
errors with a suggestion. Every problem raises `StudyFileError` naming the file and the YAML path
of the bad value::

    study.yaml: space.optimizer.choice[1].momentum.uniform: low must be less than high (got low=1.0, high=0.5)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from hypersearch.cli.yaml_dialect import StudyFileError, read_yaml
from hypersearch.cli.yaml_space import parse_space, space_to_yaml
from hypersearch.settings import SettingError, did_you_mean, show
from hypersearch.study.schema import BY_NAME, aliases_for

__all__ = [
    "StudyFileError",
    "definition_to_yaml",
    "load_study_file",
    "parse_study_mapping",
    "parse_study_text",
]

_SPACE_KEYS = ("space", "params")


def load_study_file(path: str | os.PathLike[str]) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Read and validate a YAML study file ("-": standard input); (space, settings)."""
    source = os.fspath(path)
    try:
        if source == "-":
            text, source = sys.stdin.read(), "<stdin>"
        else:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
    except UnicodeDecodeError as error:
        raise StudyFileError(
            source, "", f"not UTF-8 text ({error.reason} at byte {error.start})"
        ) from None
    except OSError as error:
        raise StudyFileError(
            source, "", f"cannot read the file: {error.strerror or error}"
        ) from None
    return parse_study_text(text, source)


def parse_study_text(
    text: str, source: str = "<study>"
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Parse YAML text (the contents of a study file); (space, settings)."""
    return parse_study_mapping(read_yaml(text, source), source)


def parse_study_mapping(
    data: Any, source: str = "<study>"
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Validate a study mapping (a parsed YAML file); (space tree, settings by schema name).

    The space is None when the file declares none for a Python objective (define-by-run) and
    {} for a command without parameters. Only the settings written are returned; the rules
    between them (gpus_per_trial needs gpus, the strategy's own options...) are checked too.

    >>> parse_study_mapping({"objective": "train:objective", "max_trials": "ten"})
    Traceback (most recent call last):
    ...
    hypersearch.cli.yaml_dialect.StudyFileError: <study>: max_trials: expected a positive integer, got 'ten'
    """
    if data is None:
        raise StudyFileError(source, "", "the file is empty; a study needs a command or an objective")
    if not isinstance(data, Mapping):
        raise StudyFileError(
            source, "", f"expected a mapping of settings (key: value lines), got {show(data)}"
        )
    aliases = aliases_for("yaml")
    settings: dict[str, Any] = {}
    for key, value in data.items():
        if key in _SPACE_KEYS:
            continue
        name = aliases.get(key, key) if isinstance(key, str) else key
        setting = BY_NAME.get(name)
        if setting is None:
            known = [*BY_NAME, *aliases, *_SPACE_KEYS]
            raise StudyFileError(
                source,
                "",
                f"unknown key {show(key)}{did_you_mean(key, known)}; known keys: "
                + ", ".join(known),
            )
        if name in settings:
            raise StudyFileError(source, str(key), f"{name} is given twice (as {key} and {name})")
        if value is None:
            continue  # null: not given
        if name == "command" and isinstance(value, list):
            # [train.py, --epochs, 10]: an integer word is exact as text (a float is not)
            value = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        try:
            settings[name] = setting.check(value)
        except SettingError as error:
            raise StudyFileError(source, str(key), error.problem) from None
    if settings.get("command") is None and settings.get("objective") is None:
        raise StudyFileError(
            source,
            "",
            "give 'command' (a command line with :name: placeholders) or 'objective' "
            "(module:function)",
        )
    if settings.get("command") is not None and settings.get("objective") is not None:
        raise StudyFileError(source, "", "give only one of 'command' and 'objective'")
    space: dict[str, Any] | None = parse_space(data.get("space"), data.get("params"), source)
    if not space and data.get("space") is None and data.get("params") is None:
        # no space written: a Python objective is define-by-run; a command has no parameters
        space = None if settings.get("command") is None else {}
    _check_definition(space, settings, data, source)
    return space, settings


def _check_definition(
    space: dict[str, Any] | None, settings: dict[str, Any], data: Mapping[Any, Any], source: str
) -> None:
    """The rules between settings (and the strategy's own checks), as `hypersearch run` applies
    them, reported at the key that was written."""
    from hypersearch.errors import SpaceError, StrategyError
    from hypersearch.space import Space
    from hypersearch.study.definition import StudyDefinition

    aliases = aliases_for("yaml")
    try:
        StudyDefinition.build(None if space is None else Space(space), settings)
    except SettingError as error:
        key = next(
            (k for k in data if isinstance(k, str) and aliases.get(k, k) == error.setting),
            error.setting,
        )
        raise StudyFileError(source, str(key), error.problem) from None
    except StrategyError as error:
        raise StudyFileError(source, "strategy", str(error)) from None
    except SpaceError as error:
        raise StudyFileError(source, "space", str(error)) from None


def definition_to_yaml(name: str, definition: Any) -> str:
    """A stored definition as a study file that `hypersearch run` accepts."""
    document: dict[str, Any] = {"name": name}
    for key, value in definition.public_settings().items():
        if value != _json(BY_NAME[key].default):
            document[key] = value
    if definition.space is not None:
        document["space"] = space_to_yaml(definition.space.tree)
    if definition.in_process:
        document["objective"] = None  # a note below says why
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=None, width=100)
    if definition.in_process:
        text += (
            f"# the objective ran in-process only ({definition.in_process}); give\n"
            "# objective: module:function here to run this file elsewhere\n"
        )
    return text


def _json(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value
