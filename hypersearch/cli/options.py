"""Command-line options made from the settings schema (hypersearch/study/schema.py).

Each option checks its value with the setting's own check, so a bad value gets the message a
Python or YAML user gets; an option left out is absent from `given()`, so a resume keeps what
is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import click

from hypersearch.settings import Setting, SettingError
from hypersearch.study.schema import BY_NAME, SETTINGS

# Settings given several times on the command line (each occurrence one item).
_REPEATED = {"stop_conditions", "tags", "env", "strategy_options", "scheduler_options",
             "resources_per_trial", "warm_start"}
_KEY_VALUE = {"env", "strategy_options", "scheduler_options", "resources_per_trial"}


class SettingType(click.ParamType):
    """A click type that checks text with a setting's own check."""

    def __init__(self, setting: Setting) -> None:
        self.setting = setting
        self.name = setting.kind.describe

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        if self.setting.name in _KEY_VALUE:
            return _key_value(self.setting, value, param, ctx)
        if self.setting.name == "retry_on":
            value = [part.strip() for part in value.split(",") if part.strip()]
            try:
                return self.setting.check(value)
            except SettingError as error:
                self.fail(error.problem, param, ctx)
        if self.setting.name in _REPEATED:
            return value
        try:
            return self.setting.parse(value)
        except SettingError as error:
            self.fail(error.problem, param, ctx)


def _key_value(setting: Setting, text: str, param: Any, ctx: Any) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep:
        raise click.BadParameter(
            f"expected {setting.metavar or 'KEY=VALUE'}, got {text!r}", ctx, param
        )
    if setting.name == "env":
        try:  # the name's check is the one Python and YAML users get
            setting.check({key: raw})
        except SettingError as error:
            raise click.BadParameter(error.problem, ctx, param) from None
        return key, raw
    if not key.strip():
        raise click.BadParameter(f"expected KEY=VALUE, got {text!r}", ctx, param)
    import yaml

    try:  # a number, true/false, null or a string, as YAML reads it
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


_METAVARS = {
    "a positive integer": "N",
    "an integer >= 0": "N",
    "a positive number of seconds": "SECONDS",
    "a finite number": "NUMBER",
    "a non-empty string": "TEXT",
}


def _metavar(setting: Setting) -> str:
    """A short metavar for help texts: N, SECONDS, TEXT, or the setting's name in capitals."""
    describe = setting.kind.describe.removesuffix(" or null")
    return (
        _METAVARS.get(describe) or _METAVARS.get(describe.split(" (")[0]) or (setting.name.upper())
    )


def setting_options(names: Iterable[str], *, defaults: bool = True) -> Callable[[Any], Any]:
    """A decorator adding one option per named setting (those with flags). `defaults=False`
    leaves the defaults out of the help (resume: an option left out keeps the stored value)."""

    def decorate(f: Any) -> Any:
        for name in reversed(list(names)):
            setting = BY_NAME[name]
            if not setting.flags:
                continue
            help_text = setting.help.replace("%", "%%")
            if defaults and setting.default not in (None, (), {}, False):
                default = setting.default
                if isinstance(default, tuple):  # as it is written here: a,b
                    default = ",".join(map(str, default))
                help_text += f" [default: {default}]"
            kwargs: dict[str, Any] = {"help": help_text, "default": None}
            if setting.kind.describe == "true or false":
                kwargs.update(is_flag=True, default=None)
            else:
                kwargs.update(
                    type=SettingType(setting), metavar=setting.metavar or _metavar(setting)
                )
                if name in _REPEATED:
                    kwargs.update(multiple=True, default=())
            f = click.option(*setting.flags, name, **kwargs)(f)
        return f

    return decorate


def given(options: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """The settings actually given on the command line, as schema values."""
    out: dict[str, Any] = {}
    for name in names:
        value = options.get(name)
        if value is None or (name in _REPEATED and value == ()):
            continue
        out[name] = dict(value) if name in _KEY_VALUE else value
    return out


SEARCH_SETTINGS = tuple(
    s.name for s in SETTINGS if s.flags and s.name not in ("strategy", "direction")
)
ALL_SETTINGS = tuple(s.name for s in SETTINGS if s.flags)
# `resume STUDY` names the study by its argument and takes --storage once, on its own.
MUTABLE_SETTINGS = tuple(
    s.name for s in SETTINGS if s.flags and s.mutable and s.group != "location"
)
