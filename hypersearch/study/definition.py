"""The stored study: one versioned JSON document holding everything needed to run it.

`StudyDefinition` is what `hs.load_study(name, url).optimize()` and `hypersearch resume` run
with no other input: the space, every setting of schema.py (strategy with its options, the
objective, limits, retry policy, lease...), and the revisions made on resume.

Example::

    >>> d = StudyDefinition.build(None, {"strategy": "random", "max_trials": 10, "seed": 1})
    >>> d.max_trials, d.strategy, d.revise({"max_trials": 20})[1]
    (10, 'random', {'max_trials': [10, 20]})
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hypersearch.errors import HypersearchError, StudyConflictError
from hypersearch.settings import SettingError
from hypersearch.space import Space
from hypersearch.study.schema import BY_NAME, DEFAULT_COMMAND_METRIC, IMMUTABLE, STORED

SCHEMA_VERSION = 1
# Settings that say what a command trial runs; Command objects are built from exactly these.
COMMAND_SETTINGS = (
    "command", "shell", "env", "cwd", "output_dir", "stop_conditions", "trial_timeout", "grace",
    "gpus", "gpus_per_trial",
)  # fmt: skip


@dataclass(frozen=True)
class Revision:
    """A change made when the study was resumed: {setting: [old, new]}."""

    time: float
    changes: Mapping[str, list[Any]]

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "changes": dict(self.changes)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class StudyDefinition:
    """A study's complete definition. Read settings as attributes: ``definition.max_trials``.

    `in_process` names a Python objective that only the process that started the study can run
    (a lambda, a closure, a function of the main script); other processes refuse it.
    """

    space: Space | None
    settings: Mapping[str, Any]
    in_process: str | None = None
    revisions: tuple[Revision, ...] = ()
    _sampler: Any = field(default=None, compare=False, repr=False)

    def __getattr__(self, name: str) -> Any:
        settings = self.__dict__.get("settings")
        if settings is not None and name in settings:
            return settings[name]
        raise AttributeError(f"StudyDefinition has no setting {name!r}")

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        space: Space | None,
        given: Mapping[str, Any],
        *,
        in_process: str | None = None,
        sampler: Any = None,
    ) -> StudyDefinition:
        """A new definition from settings by schema name (each checked); defaults fill the rest."""
        values = {name: BY_NAME[name].default for name in STORED}
        values.update({k: BY_NAME[k].check(v) for k, v in given.items() if k in values})
        if values["command"] is not None and values["metric"] is None:
            values["metric"] = DEFAULT_COMMAND_METRIC  # stored as every surface stores it
        if values["seed"] is None:
            import secrets

            values["seed"] = secrets.randbits(31)
        definition = cls(space, values, in_process, (), sampler)
        definition.check()
        return definition

    def check(self) -> None:
        """Rules between settings; each error names the setting to fix."""
        s = self.settings
        if s["command"] is not None and s["objective"] is not None:
            raise SettingError("objective", "give either a command or an objective, not both")
        if s["shell"] and s["command"] is not None and not isinstance(s["command"], str):
            raise SettingError("shell", "true needs the command as one string, not a list")
        if s["gpus"] is None and s["gpus_per_trial"] != 1:
            raise SettingError(
                "gpus_per_trial", "needs gpus (the GPU indices to share out), e.g. gpus=[0, 1]"
            )
        if s["gpus"] is not None and s["gpus_per_trial"] > len(s["gpus"]):
            raise SettingError(
                "gpus_per_trial",
                f"{s['gpus_per_trial']} GPUs per trial, but gpus lists only {len(s['gpus'])}",
            )
        if s["command"] is not None and self.space is None:
            raise SettingError("command", "a command objective needs a declared search space")
        sampler = self.sampler()
        sampler.check_space(self.space)
        if s["scheduler"] is None and s["scheduler_options"]:
            raise SettingError(
                "scheduler_options", "given without a scheduler; name one, e.g. scheduler=asha"
            )
        unknown = [k for k in s["space_defaults"] if self.space is None or k not in self.space.params]
        if unknown:
            from hypersearch.settings import did_you_mean

            names = [] if self.space is None else self.space.names
            raise SettingError("space_defaults", f"{unknown[0]!r} is not a parameter of the "
                               f"space{did_you_mean(unknown[0], names)}")
        self.build_scheduler()  # its options are checked
        command = self.command_objective()  # template and stop conditions parse
        if command is not None:
            try:
                command.template.check(self.space)  # each :placeholder: names a parameter
            except ValueError as error:
                raise SettingError("command", str(error)) from None

    def sampler(self) -> Any:
        """The strategy, built from its name and options (the instance given, if any)."""
        if self._sampler is not None:
            return self._sampler
        from hypersearch.samplers import STRATEGIES

        cls = STRATEGIES[self.strategy]
        try:
            sampler = cls(**self.strategy_options)
        except TypeError as error:
            problem = str(error).replace(f"{cls.__name__}.__init__() ", "")
            raise SettingError("strategy_options", f"{self.strategy}: {problem}") from None
        object.__setattr__(self, "_sampler", sampler)
        return sampler

    def build_scheduler(self) -> Any:
        """The scheduler that answers reports: the named one and the stop conditions (a
        threshold rule), or None when there is neither."""
        from hypersearch.schedulers import Chain, SchedulerError, Threshold, make_scheduler

        rules = []
        if self.stop_conditions:
            rules.append(Threshold(conditions=self.stop_conditions))
        if self.settings["scheduler"] is not None:
            try:
                rules.append(make_scheduler(self.settings["scheduler"], self.scheduler_options))
            except SchedulerError as error:
                raise SettingError("scheduler_options", str(error)) from None
            except TypeError as error:  # a nested scheduler's own options
                raise SettingError("scheduler_options", f"{self.scheduler}: {error}") from None
        if not rules:
            return None
        return rules[0] if len(rules) == 1 else Chain(rules)

    def command_objective(self) -> Any:
        """The `hs.Command` this study runs, or None for a Python objective."""
        if self.command is None:
            return None
        from hypersearch.execution.command import Command

        options = {name: self.settings[name] for name in COMMAND_SETTINGS}
        try:
            return Command(
                options.pop("command"),
                metric=self.metric or DEFAULT_COMMAND_METRIC,
                metric_agg=self.metric_agg,
                stop_conditions=options.pop("stop_conditions"),
                timeout=options.pop("trial_timeout"),
                gpus=options.pop("gpus"),
                **options,
            )
        except ValueError as error:
            raise SettingError("command", str(error)) from None

    @property
    def objective_kind(self) -> str | None:
        """"command", "python" (importable), "in_process", or None (ask/tell only)."""
        if self.command is not None:
            return "command"
        if self.objective is not None:
            return "python"
        return "in_process" if self.in_process else None

    # -- changing on resume --------------------------------------------------------------------

    def revise(self, given: Mapping[str, Any]) -> tuple[StudyDefinition, dict[str, list[Any]]]:
        """This definition with `given` (checked settings) applied, and what changed.

        Identity settings (space, direction, metric, seed, the objective) may be given only
        with their stored value; a difference raises StudyConflictError listing each one.
        A stored None (a metric, an objective) is filled in once: a study may be created
        before its objective is known.
        """
        changes: dict[str, list[Any]] = {}
        conflicts: list[str] = []
        values = dict(self.settings)
        # A study made before its objective (create_study, then optimize) records it once.
        no_objective = values["command"] is None and values["objective"] is None
        for name, given_value in given.items():
            if name not in values:
                continue  # where a study lives (name, storage) is not part of it
            value, old = BY_NAME[name].check(given_value), values[name]
            if value is None and BY_NAME[name].default is None and name in IMMUTABLE:
                continue  # an identity setting not given keeps its stored value
            if value == old:
                continue
            fillable = old is None or (no_objective and BY_NAME[name].group == "objective")
            if name in IMMUTABLE and not fillable:
                conflicts.append(f"{name}: stored {_shown(old)}, given {_shown(value)}")
                continue
            values[name] = value
            changes[name] = [_jsonable(old), _jsonable(value)]
        if conflicts:
            raise StudyConflictError(
                "the study already exists with a different definition:\n  - "
                + "\n  - ".join(conflicts)
                + "\nThese never change once a study exists: use another name for a new study."
            )
        if not changes:
            return self, {}
        revised = StudyDefinition(
            self.space,
            values,
            self.in_process,
            (*self.revisions, Revision(time.time(), changes)),
            None if "strategy" in changes or "strategy_options" in changes else self._sampler,
        )
        revised.check()
        return revised, changes

    def grow(self, space: Space, command: Any = None) -> StudyDefinition:
        """This definition over `space`, a growth of its own (hypersearch.space.growth); old
        trials take `space_defaults` for the parameters it adds. A command study may take a
        new `command` with it (one that passes the added parameters). Stored as a revision."""
        assert self.space is not None
        changes: dict[str, list[Any]] = {"space": [self.space.describe(), space.describe()]}
        settings = dict(self.settings)
        if command is not None and self.command is not None:
            command = BY_NAME["command"].check(command)
            if command != self.command:
                changes["command"] = [_jsonable(self.command), _jsonable(command)]
                settings["command"] = command
        grown = StudyDefinition(
            space,
            settings,
            self.in_process,
            (*self.revisions, Revision(time.time(), changes)),
            self._sampler,
        )
        grown.check()
        return grown

    def with_sampler(self, sampler: Any) -> StudyDefinition:
        return StudyDefinition(
            self.space, self.settings, self.in_process, self.revisions, sampler
        )

    # -- stored form ---------------------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        """The JSON stored in the study row (the space has its own column)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "settings": _jsonable(dict(self.settings)),
            "in_process": self.in_process,
            "revisions": [r.to_json() for r in self.revisions],
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any], space: Space | None) -> StudyDefinition:
        version = document.get("schema_version")
        if not isinstance(version, int):
            raise HypersearchError(
                "the stored study has no definition this version can read (schema_version "
                f"{version!r}); upgrade the storage with this version of hypersearch"
            )
        if version > SCHEMA_VERSION:
            import hypersearch

            raise HypersearchError(
                f"the study was written by a newer hypersearch (definition schema {version}; "
                f"this is {hypersearch.__version__}, schema {SCHEMA_VERSION}); upgrade "
                "hypersearch to run it"
            )
        stored = dict(document.get("settings") or {})
        values = {name: BY_NAME[name].default for name in STORED}
        for name, value in stored.items():
            if name in values:  # a setting since removed is ignored
                values[name] = BY_NAME[name].check(value)
        if values["seed"] is None:
            values["seed"] = 0
        revisions = tuple(
            Revision(float(r["time"]), dict(r["changes"])) for r in document.get("revisions", ())
        )
        return cls(space, values, document.get("in_process"), revisions)

    def public_settings(self) -> dict[str, Any]:
        """Every stored setting as JSON values, in schema order."""
        return {name: _jsonable(self.settings[name]) for name in STORED}


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else repr(_jsonable(value))
