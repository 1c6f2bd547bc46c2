"""The study's settings, each declared once.

Python keywords (`hs.minimize`, `create_study`, `Study.optimize`), the command-line options
(`hypersearch tpe|run|resume ...`) and the YAML keys of a study file all come from, or are
checked against, `SETTINGS`. tests/test_schema.py walks it; README's YAML reference is made by
`yaml_reference()` (a test fails when they drift).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hypersearch.settings import (
    FLAG,
    GPU_LIST,
    JSON_MAPPING,
    NON_NEGATIVE_INT,
    NUMBER,
    POSITIVE_INT,
    SECONDS,
    STR_MAPPING,
    STRINGS,
    TEXT,
    Kind,
    Setting,
    one_of,
    optional,
    show,
)

DIRECTIONS = ("minimize", "maximize")
METRIC_AGGS = ("last", "min", "max", "avg")
RETRY_REASONS = ("interrupted", "stale", "infrastructure", "crashed")
EXECUTORS = ("auto", "inprocess", "process", "ray")
DEFAULT_STRATEGY = "tpe"
DEFAULT_COMMAND_METRIC = "loss"


def _strategy_name(value: Any) -> str:
    from hypersearch.samplers import ALIASES, STRATEGIES
    from hypersearch.settings import did_you_mean

    if not isinstance(value, str):
        raise ValueError(f"expected a strategy name, got {show(value)}")
    key = ALIASES.get(value.strip().lower(), value.strip().lower())
    if key not in STRATEGIES:
        names = list(STRATEGIES)
        raise ValueError(
            f"unknown strategy {value!r}{did_you_mean(key, names)}; valid: {', '.join(names)}"
        )
    return key


def _retry_reasons(value: Any) -> tuple[str, ...]:
    reasons = STRINGS.convert(value)
    for reason in reasons:
        one_of(*RETRY_REASONS).convert(reason)
    return tuple(dict.fromkeys(r.lower() for r in reasons))


def _command(value: Any) -> str | tuple[str, ...]:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("expected a command line, got an empty string")
        return value
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError(f"expected a command line (a string or a list of strings), got {show(value)}")


def _objective_target(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected 'module:function' (e.g. train:objective), got {show(value)}")
    text = value.strip()
    module, _, function = text.partition(":")
    if module.endswith(".py") and function:
        name = module[:-3].replace("/", ".")
        raise ValueError(f"give the module name, not the file ({name}:{function}), got {value!r}")
    if not module or not function or not all(
        part.isidentifier() for part in (*module.split("."), *function.split("."))
    ):
        raise ValueError(f"expected 'module:function' (e.g. train:objective), got {value!r}")
    return text


def _stop_conditions(value: Any) -> tuple[str, ...]:
    from hypersearch.execution.metric_lines import parse_stop_condition

    conditions = STRINGS.convert(value)
    for condition in conditions:
        parse_stop_condition(condition)  # ValueError saying what is wrong
    return conditions


def _environment(value: Any) -> dict[str, str]:
    env = STR_MAPPING.convert(value)
    for key in env:
        if not key or "=" in key or "\0" in key:
            raise ValueError(
                f"{key!r} is not an environment variable name (non-empty, without '=')"
            )
        if "\0" in env[key]:
            raise ValueError(f"the value of {key} contains a NUL byte")
    return env


def _resources(value: Any) -> dict[str, float]:
    import math

    mapping = JSON_MAPPING.convert(value)
    if not mapping:
        raise ValueError("expected at least one resource, e.g. {cpu: 1, gpu: 1}")
    out: dict[str, float] = {}
    for name, amount in mapping.items():
        if not name.strip():
            raise ValueError("a resource name is empty")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not (
                math.isfinite(amount) and amount >= 0):
            raise ValueError(f"resource {name!r} needs a number >= 0, got {show(amount)}")
        key = name.strip()
        out[key.lower() if key.lower() in ("cpu", "gpu") else key] = amount
    return out


def _warm_start(value: Any) -> tuple[Any, ...]:
    from hypersearch.study.warm_start import check_sources

    return check_sources(value)


def _scheduler_name(value: Any) -> str:
    from hypersearch.schedulers import schedulers
    from hypersearch.settings import did_you_mean

    name = TEXT.convert(value)
    known = schedulers()
    if name not in known:
        raise ValueError(
            f"unknown scheduler {name!r}{did_you_mean(name, list(known))} "
            f"(choose one of: {', '.join(known)})"
        )
    return name


def _study_name(value: Any) -> str:
    from hypersearch.storage import check_study_name

    return check_study_name(TEXT.convert(value))  # the storage's rule: one message everywhere


def _storage(value: Any) -> Any:
    from hypersearch.storage import Storage

    if isinstance(value, Storage):
        return value  # Python only: an open storage object
    return TEXT.convert(value)


def _n_jobs(value: Any) -> int:
    if value == -1 and not isinstance(value, bool):
        return -1  # every core of the machine that runs it (scikit-learn's and Optuna's habit)
    return POSITIVE_INT.convert(value)


def jobs_here(n_jobs: int) -> int:
    """Trials at once on this machine for the setting `n_jobs` (-1: one per core)."""
    import os

    return (os.cpu_count() or 1) if n_jobs == -1 else n_jobs


STRATEGY = Kind("a strategy name: tpe, gp, random, sobol, grid", _strategy_name)
COMMAND = Kind("a command line (a string or a list of strings)", _command)
OBJECTIVE = Kind("'module:function'", _objective_target)
RETRY_ON = Kind("a list of: " + ", ".join(RETRY_REASONS), _retry_reasons)
N_JOBS = Kind("a positive integer (or -1: every core)", _n_jobs, POSITIVE_INT.parse)
STUDY_NAME = Kind("a study name (1-200 characters, no '/')", _study_name)
STORAGE = Kind("a storage URL (sqlite:///file.db, postgresql://..., memory)", _storage)
SCHEDULER = Kind(
    "a scheduler name: median, percentile, threshold, patience, asha, hyperband, pbt",
    _scheduler_name,
)
STOP_CONDITIONS = Kind("a list of 'METRIC OP VALUE' strings", _stop_conditions)
ENVIRONMENT = Kind("a mapping of variable names to strings", _environment)
WARM_START = Kind("study names and/or {params, value} records", _warm_start)
RESOURCES = Kind("a mapping of resource names (cpu, gpu, custom ones) to amounts", _resources)

# Groups: "identity" never changes once a study exists; the rest may change on resume (each
# change is stored as a revision). "location" settings say where a study lives, not what it
# is: they are not stored in its definition.
SETTINGS: tuple[Setting, ...] = (
    Setting("name", optional(STUDY_NAME), None, "study name (reuse it to resume)", ("--name",),
            group="location"),
    Setting("storage", optional(STORAGE), None,
            "where studies live (default $HYPERSEARCH_STORAGE or sqlite:///hypersearch.db)",
            ("--storage",), group="location", metavar="URL"),
    Setting("direction", one_of(*DIRECTIONS), "minimize", "minimize or maximize the metric",
            ("--direction",), mutable=False, group="identity"),
    Setting("metric", optional(TEXT), None,
            f"the metric to optimise (commands: the name they print, default "
            f"{DEFAULT_COMMAND_METRIC!r}; Python: a key of the returned dict)",
            ("--metric",), mutable=False, group="identity"),
    Setting("metric_agg", one_of(*METRIC_AGGS), "last",
            "how a command's series of the metric becomes the trial's value",
            ("--metric-agg",), mutable=False, group="identity"),
    Setting("seed", optional(NON_NEGATIVE_INT), None,
            "seed of every strategy (random when not given; stored)", ("--seed",),
            mutable=False, group="identity"),
    Setting("strategy", STRATEGY, DEFAULT_STRATEGY, "how the next trial is chosen",
            ("--strategy",), group="strategy"),
    Setting("strategy_options", JSON_MAPPING, {},
            "the strategy's own settings, e.g. n_startup=20 for tpe, resolution=5 for grid",
            ("--strategy-opt",), group="strategy", metavar="KEY=VALUE"),
    Setting("scheduler", optional(SCHEDULER), None,
            "stops poor trials early from their reports: median, asha, hyperband, pbt...",
            ("--scheduler",), group="strategy", metavar="NAME"),
    Setting("scheduler_options", JSON_MAPPING, {},
            "the scheduler's own settings, e.g. reduction_factor=3 for asha",
            ("--scheduler-opt",), group="strategy", metavar="KEY=VALUE"),
    Setting("warm_start", WARM_START, (),
            "what earlier searches found seeds the strategy: names of studies in this storage "
            "and/or {params, value} records (not charged to max_trials)", ("--warm-start",),
            group="strategy", metavar="STUDY"),
    Setting("space_defaults", JSON_MAPPING, {},
            "the values old trials had for parameters a grown space added (see 'Growing a "
            "space')", group="strategy"),
    Setting("checkpoint_dir", TEXT, "hypersearch-checkpoints",
            "where trials keep checkpoints (trial.checkpoint_dir, :checkpoint_dir:); shared by "
            "all workers for pbt", ("--checkpoint-dir",), group="strategy", metavar="DIR"),
    Setting("objective", optional(OBJECTIVE), None,
            "a Python objective as module:function (instead of a command)",
            mutable=False, group="objective"),
    Setting("command", optional(COMMAND), None,
            "the command each trial runs, with :name: placeholders", mutable=False,
            group="objective"),
    Setting("shell", FLAG, False, "run the command through /bin/sh (values are quoted)",
            ("--shell",), mutable=False, group="objective"),
    Setting("env", ENVIRONMENT, {}, "extra environment variables for each trial's command",
            ("--env",), group="objective", metavar="NAME=VALUE"),
    Setting("cwd", optional(TEXT), None, "working directory of each trial's command", ("--cwd",),
            group="objective", metavar="DIR"),
    Setting("output_dir", TEXT, "hypersearch-runs", "per-trial output folders",
            ("--output-dir",), group="objective", metavar="DIR"),
    Setting("stop_conditions", STOP_CONDITIONS, (), "end a trial early once met, e.g. 'loss > 10'",
            ("--stop-condition",), group="objective", metavar="'METRIC OP VALUE'"),
    Setting("trial_timeout", optional(SECONDS), None, "seconds one trial may run",
            ("--trial-timeout", "--timeout"), group="objective",
            aliases={"timeout": ("cli", "yaml")}, metavar="SECONDS"),
    Setting("grace", SECONDS, 10.0,
            "seconds a stopped command gets to exit by itself when it listens for decisions, "
            "then between SIGTERM and SIGKILL", ("--grace",),
            group="objective", metavar="SECONDS"),
    Setting("gpus", optional(GPU_LIST), None, "GPU indices to share out among trials",
            ("--gpus",), group="objective", metavar="0,1"),
    Setting("gpus_per_trial", POSITIVE_INT, 1, "GPUs each trial gets (needs gpus)",
            ("--gpus-per-trial",), group="objective"),
    Setting("max_trials", optional(POSITIVE_INT), None,
            "the study's total budget of trials, across every worker and resume",
            ("-n", "--num-runs", "--max-trials"), group="limits"),
    Setting("max_resource_total", optional(POSITIVE_INT), None,
            "stop once the trials' reported steps (epochs) add up to this: a compute budget",
            ("--max-resource-total",), group="limits", metavar="STEPS"),
    Setting("max_time", optional(SECONDS), None, "seconds for the whole search (this run)",
            ("--max-time",), group="limits", aliases={"timeout": ("python",)},
            metavar="SECONDS"),
    Setting("target", optional(NUMBER), None, "stop once the best value reaches this",
            ("--target",), group="limits"),
    Setting("patience", optional(POSITIVE_INT), None,
            "stop after this many completed trials without improvement", ("--patience",),
            group="limits"),
    Setting("max_failures", optional(POSITIVE_INT), None,
            "stop after this many failed trials (in this run)", ("--max-failures",),
            group="limits"),
    Setting("n_jobs", N_JOBS, 1, "trials run at once by this process",
            ("-p", "--parallel", "--n-jobs"), group="limits", aliases={"parallel": ("yaml",)}),
    Setting("max_running", optional(POSITIVE_INT), None,
            "trials running at once in the whole study, across every worker and driver "
            "(checked in each claim; -p/--parallel is one process's)", ("--max-running",),
            group="limits"),
    Setting("executor", one_of(*EXECUTORS), "auto",
            "where trials run: auto (Python: in this process for 1 job, else child processes), "
            "inprocess, process, or ray (Ray tasks on the cluster of $RAY_ADDRESS, or a Ray "
            "started here)", ("--executor",), group="limits"),
    Setting("resources_per_trial", optional(RESOURCES), None,
            "what one trial needs on a Ray cluster (default cpu=1); one NAME=AMOUNT per option: "
            "--resources-per-trial cpu=2 --resources-per-trial gpu=1",
            ("--resources-per-trial",), group="limits", metavar="NAME=AMOUNT"),
    Setting("retries", NON_NEGATIVE_INT, 3,
            "times a configuration is re-run after an interruption that was not its fault",
            ("--retries",), group="limits"),
    Setting("retry_on", RETRY_ON, ("interrupted", "stale", "infrastructure"),
            "which endings are re-run: interrupted (Ctrl-C, stop), stale (worker lost), "
            "infrastructure (the database failed), crashed (the objective's process died)",
            ("--retry-on",), group="limits"),
    Setting("lease_seconds", SECONDS, 60.0,
            "a running trial's lease; a worker silent this long loses its trial",
            ("--lease",), group="limits", metavar="SECONDS"),
    Setting("message", optional(TEXT), None, "a note stored with the study",
            ("-m", "--message"), group="notes"),
    Setting("tags", STRINGS, (), "labels stored with the study", ("--tag",), group="notes"),
)  # fmt: skip

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
STORED: tuple[str, ...] = tuple(s.name for s in SETTINGS if s.group != "location")
IMMUTABLE: tuple[str, ...] = tuple(s.name for s in SETTINGS if not s.mutable)


def aliases_for(surface: str) -> dict[str, str]:
    """alias -> setting name, for one of "python", "cli", "yaml"."""
    return {
        alias: s.name for s in SETTINGS for alias, where in s.aliases.items() if surface in where
    }


def canonical(given: dict[str, Any], surface: str, where: str = "") -> Iterator[tuple[str, Any]]:
    """(setting name, checked value) for each given key; unknown keys raise SettingError with
    a suggestion. `where` prefixes messages (a file name)."""
    from hypersearch.settings import SettingError, did_you_mean

    aliases = aliases_for(surface)
    given = _scheduler_instance(given)
    for key, value in given.items():
        name = aliases.get(key, key)
        setting = BY_NAME.get(name)
        if setting is None:
            known = [*BY_NAME, *aliases]
            raise SettingError(
                f"{where}{key}", f"unknown setting{did_you_mean(key, known)}"
            )
        try:
            yield name, setting.check(value)
        except SettingError as error:  # named as the user wrote it (an alias, a file key)
            raise SettingError(f"{where}{key}", error.problem) from None


def _scheduler_instance(given: dict[str, Any]) -> dict[str, Any]:
    """``scheduler=hs.schedulers.ASHA(...)`` (Python) as the stored name and options."""
    from hypersearch.schedulers import Scheduler

    value = given.get("scheduler")
    if not isinstance(value, Scheduler):
        return given
    from hypersearch.settings import SettingError

    if given.get("scheduler_options"):
        raise SettingError(
            "scheduler_options", "give options in the scheduler object or here, not both"
        )
    return {**given, "scheduler": value.name, "scheduler_options": value.config()}


def _yaml_value(value: Any) -> str:
    """A default as a study file writes it (flow style: [a, b], {k: v})."""
    import yaml

    text = yaml.safe_dump([value], default_flow_style=True, width=1000).strip()
    return text[1:-1]  # the list around it


def yaml_reference() -> str:
    """The README's table of study-file keys, made from SETTINGS: each key (and the other
    names a file may use), what it takes, its default, its command-line options, whether it may
    change on resume, and what it means."""
    lines = [
        "| key | value | default | command line | on resume | meaning |",
        "|---|---|---|---|---|---|",
    ]
    for s in SETTINGS:
        default = "—" if s.default in (None, (), {}) else f"`{_yaml_value(s.default)}`"
        names = ", ".join([f"`{s.name}`", *(f"`{a}`" for a, w in s.aliases.items() if "yaml" in w)])
        flags = ", ".join(f"`{flag}`" for flag in s.flags) or "—"
        if s.name == "command":
            flags = "after `--`"
        resume = "—" if s.group == "location" else ("may change" if s.mutable else "fixed")
        meaning = s.help.replace("|", "\\|")
        aliases = [a for a, w in s.aliases.items() if "python" in w]
        if aliases:
            meaning += " (Python: also " + ", ".join(f"`{a}=`" for a in aliases) + ")"
        lines.append(
            f"| {names} | {s.kind.describe} | {default} | {flags} | {resume} | {meaning} |"
        )
    lines.append(
        "| `space` | the space language (below) | — | — | fixed | the search space |"
    )
    lines.append(
        "| `params` | `--param` strings by name | — | `--param` | fixed | more parameters, in "
        "the `--param` grammar |"
    )
    return "\n".join(lines)
