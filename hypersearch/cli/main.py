"""The `hypersearch` command: tune any command from the terminal (Spell `hyper` grammar).

    hypersearch random -n 20 -p 2 --param lr=0.0001:0.1:log --param units=16,32,64 \\
        -- python train.py --lr :lr: --units :units:

Exit status: 0 when the search ran, 2 for usage errors, 1 when every trial failed.
Only the public API is used here.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import click

from hypersearch.samplers import ALIASES, PLANNED, STRATEGIES

DEFAULT_STORAGE = "sqlite:///hypersearch.db"
SEARCH_STRATEGIES = tuple(STRATEGIES)  # grid, random, sobol, and the model-based ones
_WHOLE_RANGE = re.compile(r"[^=]+=[+-]?\d+:[+-]?\d+(:(linear|log))?", re.IGNORECASE)


class UsageError(click.UsageError):
    """Exit status 2 with a message naming the problem."""


def _fail_usage(message: str) -> None:
    raise UsageError(message)


def _storage_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--storage",
        default=None,
        metavar="URL",
        help=f"where studies live (default $HYPERSEARCH_STORAGE or {DEFAULT_STORAGE})",
    )(f)


def _storage_url(storage: str | None) -> str:
    import os

    return storage or os.environ.get("HYPERSEARCH_STORAGE") or DEFAULT_STORAGE


def _public_errors(f: Callable[..., Any]) -> Callable[..., Any]:
    """Turn hypersearch's own errors into one-line messages with exit status 2."""

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import hypersearch as hs

        try:
            return f(*args, **kwargs)
        except (hs.HypersearchError, ValueError) as error:
            raise UsageError(str(error)) from None

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hypersearch")
def cli() -> None:
    """Hyperparameter search for any command or Python function."""


# -- searching -------------------------------------------------------------------------------


def _search_options(f: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--param",
            "params",
            multiple=True,
            metavar="NAME=SPEC",
            help="name=v1,v2,v3 or name=MIN:MAX[:linear|log][:int|float]",
        ),
        click.option(
            "--json-param",
            "json_params",
            multiple=True,
            metavar="NAME=JSON",
            help="name='[...]': a JSON list of options",
        ),
        click.option(
            "-n",
            "--num-runs",
            type=click.IntRange(min=1),
            default=None,
            help="number of trials (the study's total budget)",
        ),
        click.option(
            "-p",
            "--parallel",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="trials run at once",
        ),
        click.option(
            "--metric", default="loss", show_default=True, help="the metric the command prints"
        ),
        click.option("--maximize/--minimize", default=False, help="direction (default: minimize)"),
        click.option(
            "--metric-agg",
            type=click.Choice(["last", "min", "max", "avg"]),
            default="last",
            show_default=True,
            help="how a run's series becomes its value",
        ),
        click.option(
            "--stop-condition",
            "stop_conditions",
            multiple=True,
            metavar="'METRIC OP VALUE'",
            help="end a trial early once met, e.g. 'loss > 10'",
        ),
        click.option(
            "--timeout",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="seconds per trial",
        ),
        click.option(
            "--max-time",
            type=click.FloatRange(min=0, min_open=True),
            default=None,
            help="seconds for the whole search",
        ),
        click.option(
            "--target", type=float, default=None, help="stop once the best value reaches this"
        ),
        click.option("--name", default=None, help="study name (reuse it to resume)"),
        _storage_option,
        click.option("--seed", type=int, default=None),
        click.option("--gpus", default=None, metavar="0,1", help="GPU indices to share out"),
        click.option("--gpus-per-trial", type=click.IntRange(min=1), default=1, show_default=True),
        click.option("-m", "--message", default=None, help="a note stored with the study"),
        click.option(
            "--shell", is_flag=True, help="run the command through /bin/sh (values are quoted)"
        ),
        click.option(
            "--resolution",
            type=click.IntRange(min=1),
            default=None,
            help="grid: values per continuous range",
        ),
        click.option(
            "--output-dir",
            default="hypersearch-runs",
            show_default=True,
            help="per-trial output folders",
        ),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _parse_gpus(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        gpus = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        _fail_usage(f"--gpus {text}: give GPU indices separated by commas, e.g. --gpus 0,1")
    if not gpus or any(g < 0 for g in gpus):
        _fail_usage(f"--gpus {text}: give GPU indices separated by commas, e.g. --gpus 0,1")
    return gpus


def _make_search_command(strategy: str) -> click.Command:
    @_search_options
    def command(**options: Any) -> None:
        _run_search(strategy, options)

    command.__doc__ = (
        f"{strategy.capitalize()} search over --param values for COMMAND (after --).\n\n"
        "Placeholders :name: in COMMAND are replaced by each trial's values."
    )
    return click.command(
        strategy,
        context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    )(command)


def _make_planned_command(strategy: str) -> click.Command:
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: Sequence[str]) -> None:
        _fail_usage(
            f"strategy '{strategy}' is not available yet; use one of: "
            + ", ".join(SEARCH_STRATEGIES)
        )

    command.__doc__ = f"{strategy}: model-based search (coming soon)."
    return click.command(strategy, context_settings={"ignore_unknown_options": True})(command)


for _strategy in (*SEARCH_STRATEGIES, *ALIASES):
    if ALIASES.get(_strategy, _strategy) in SEARCH_STRATEGIES:
        cli.add_command(_make_search_command(_strategy))
    else:
        cli.add_command(_make_planned_command(_strategy))
for _strategy in PLANNED:
    if _strategy not in SEARCH_STRATEGIES:
        cli.add_command(_make_planned_command(_strategy))


def _run_search(strategy: str, options: dict[str, Any]) -> None:
    import hypersearch as hs
    from hypersearch.cli.params import ParamError, build_space

    argv = list(options["command"])
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        _fail_usage("give the command to run after --, e.g. -- python train.py --lr :lr:")
    if not options["params"] and not options["json_params"]:
        _fail_usage("give at least one --param, e.g. --param lr=0.0001:0.1:log")
    try:
        space = build_space(options["params"], options["json_params"])
    except ParamError as error:
        _fail_usage(str(error))
    for text in options["params"]:
        if _WHOLE_RANGE.fullmatch(text.strip()):
            click.echo(
                f"note: --param {text} is a real range (as in Spell); add :int for integers",
                err=True,
            )
    if strategy != "grid" and options["num_runs"] is None:
        _fail_usage(f"{strategy} search needs -n/--num-runs (how many trials to run)")
    try:
        command = hs.Command(
            argv,
            metric=options["metric"],
            metric_agg=options["metric_agg"],
            stop_conditions=options["stop_conditions"],
            timeout=options["timeout"],
            gpus=_parse_gpus(options["gpus"]),
            gpus_per_trial=options["gpus_per_trial"],
            shell=options["shell"],
            output_dir=options["output_dir"],
        )
        for name in command.template.check(space):
            click.echo(
                f"warning: parameter '{name}' appears in no :placeholder: of the command "
                "(it still reaches it as an HS_PARAM_* environment variable)",
                err=True,
            )
    except ValueError as error:
        _fail_usage(str(error))
    sampler = (
        hs.Grid(resolution=options["resolution"])
        if strategy == "grid"
        else ALIASES.get(strategy, strategy)
    )
    run = {
        "max_trials": options["num_runs"],
        "parallel": options["parallel"],
        "max_time": options["max_time"],
        "target": options["target"],
    }
    study = _create(
        space,
        sampler,
        options,
        config={
            "kind": "command",
            "command": command.to_config(),
            "run": run,
            "message": options["message"],
        },
    )
    _optimize(study, command, run)


@_public_errors
def _create(space: Any, sampler: Any, options: dict[str, Any], config: dict[str, Any]) -> Any:
    import hypersearch as hs

    return hs.create_study(
        space,
        name=options["name"],
        direction="maximize" if options["maximize"] else "minimize",
        metric=options["metric"],
        strategy=sampler,
        storage=_storage_url(options["storage"]),
        seed=options["seed"],
        config=config,
    )


def _optimize(study: Any, objective: Any, run: dict[str, Any]) -> None:
    """Run the search, then print its outcome and exit with the documented status."""
    import hypersearch as hs

    try:
        study.optimize(
            objective,
            max_trials=run.get("max_trials"),
            timeout=run.get("max_time"),
            target=run.get("target"),
            n_jobs=run.get("parallel", 1),
            verbose=True,
        )
    except KeyboardInterrupt:
        click.echo("\ninterrupted; resume with: hypersearch resume " + study.name, err=True)
        sys.exit(130)
    except (hs.HypersearchError, ValueError) as error:
        raise UsageError(str(error)) from None
    summary = study.summary()
    counts = summary.counts
    click.echo(
        f"\nstudy '{study.name}' in {study.storage.url}: "
        + ", ".join(f"{counts.get(s, 0)} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAILED"))
    )
    if summary.best_number is None:
        click.echo("no trial completed; see why with: hypersearch trials " + study.name, err=True)
        sys.exit(1)
    best = study.trial(summary.best_number)
    click.echo(f"best {study.metric or 'value'}: {best.value:g} (trial {best.number})")
    click.echo(f"best parameters: {json.dumps(best.params)}")


# -- study files -----------------------------------------------------------------------------


@cli.command("run")
@click.argument("study_file", type=click.Path(dir_okay=False))
@_storage_option
@click.option("--name", default=None, help="override the file's study name")
def run_file(study_file: str, storage: str | None, name: str | None) -> None:
    """Run a study described in a YAML file (space, strategy, budget, command or objective)."""
    import hypersearch as hs
    from hypersearch.cli.study_file import StudyFileError, load_study_file

    try:
        spec = load_study_file(study_file)
    except (StudyFileError, OSError) as error:
        _fail_usage(str(error))
    if spec.command is not None:
        try:
            objective: Any = hs.Command(
                spec.command,
                metric=spec.metric,
                metric_agg=spec.metric_agg,
                stop_conditions=spec.stop_conditions,
                timeout=spec.timeout,
                gpus=spec.gpus,
                gpus_per_trial=spec.gpus_per_trial,
                shell=spec.shell,
            )
            objective.template.check(spec.space)
        except ValueError as error:
            _fail_usage(f"{study_file}: command: {error}")
        kind: dict[str, Any] = {"kind": "command", "command": objective.to_config()}
    else:
        objective = _import_objective(spec.objective, study_file)
        kind = {"kind": "python", "objective": spec.objective}
    run = {
        "max_trials": spec.max_trials,
        "parallel": spec.parallel,
        "max_time": spec.max_time,
        "target": spec.target,
    }
    options = {
        "name": name or spec.name,
        "maximize": spec.direction == "maximize",
        "metric": spec.metric,
        "storage": storage or spec.storage,
        "seed": spec.seed,
    }
    study = _create(
        spec.space, spec.strategy, options, {**kind, "run": run, "message": spec.message}
    )
    _optimize(study, objective, run)


def _import_objective(target: str | None, where: str) -> Callable[..., Any]:
    import importlib
    import os

    if not target or ":" not in target:
        _fail_usage(f"{where}: objective must look like 'module:function', got {target!r}")
    module_name, _, attribute = target.partition(":")  # type: ignore[union-attr]
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # objectives next to the study file, as scripts expect
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        _fail_usage(f"{where}: cannot import module {module_name!r} for the objective: {error}")
    function = getattr(module, attribute, None)
    if not callable(function):
        _fail_usage(f"{where}: {module_name!r} has no function {attribute!r}")
    return function  # type: ignore[return-value]


# -- looking at studies ----------------------------------------------------------------------


def _load(name: str, storage: str | None) -> Any:
    import hypersearch as hs

    try:
        return hs.load_study(name, _storage_url(storage))
    except hs.HypersearchError as error:
        raise UsageError(str(error)) from None


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*headers, box=None, pad_edge=False, header_style="bold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    Console(width=max(120, len(headers) * 14) if not sys.stdout.isatty() else None).print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


@cli.command("studies")
@_storage_option
def studies(storage: str | None) -> None:
    """List the studies in the storage."""
    import hypersearch as hs

    try:
        from hypersearch.storage import get_storage

        store = get_storage(_storage_url(storage))
        records = store.list_studies()
    except hs.HypersearchError as error:
        raise UsageError(str(error)) from None
    rows = []
    for record in records:
        summary = store.summary(record.id, record.direction)
        rows.append(
            [
                record.name,
                record.direction,
                record.metric or "value",
                record.config.get("strategy", ""),
                summary.n_trials,
                summary.counts.get("RUNNING", 0),
                _fmt(summary.best_value),
                time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created_at or 0)),
                record.config.get("message") or "",
            ]
        )
    if not rows:
        click.echo(f"no studies in {_storage_url(storage)}")
        return
    _table(
        [
            "name",
            "direction",
            "metric",
            "strategy",
            "trials",
            "running",
            "best",
            "created",
            "message",
        ],
        rows,
    )


@cli.command("trials")
@click.argument("study")
@_storage_option
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(["waiting", "running", "complete", "pruned", "failed"], case_sensitive=False),
)
@click.option(
    "--sort",
    default="number",
    show_default=True,
    help="number, value, duration, or a parameter name",
)
@click.option("--limit", type=click.IntRange(min=1), default=None)
def trials(
    study: str, storage: str | None, states: tuple[str, ...], sort: str, limit: int | None
) -> None:
    """List a study's trials."""
    loaded = _load(study, storage)
    records = loaded.get_trials([s.upper() for s in states] if states else None)
    param_names = list(dict.fromkeys(k for t in records for k in t.display_params()))
    key = _sort_key(sort, param_names, loaded.direction)
    records = sorted(records, key=key)[:limit]
    rows = [
        [
            t.number,
            t.state.value,
            _fmt(t.value),
            *(_fmt(t.display_params().get(p)) for p in param_names),
            _fmt(t.duration),
            t.failure_reason or "",
        ]
        for t in records
    ]
    _table(["#", "state", loaded.metric or "value", *param_names, "seconds", "failure"], rows)


def _sort_key(sort: str, params: Sequence[str], direction: str) -> Callable[[Any], Any]:
    sign = 1.0 if direction == "minimize" else -1.0
    if sort == "number":
        return lambda t: t.number
    if sort == "value":
        return lambda t: (t.value is None, sign * t.value if t.value is not None else 0.0)
    if sort == "duration":
        return lambda t: (t.duration is None, t.duration or 0.0)
    if sort in params:
        return lambda t: (t.display_params().get(sort) is None, str(t.display_params().get(sort)))
    _fail_usage(f"--sort {sort}: use number, value, duration or one of: {', '.join(params)}")
    raise AssertionError


@cli.command("best")
@click.argument("study")
@_storage_option
@click.option("--json", "as_json", is_flag=True, help="print a JSON object")
def best(study: str, storage: str | None, as_json: bool) -> None:
    """Show the best trial of a study."""
    loaded = _load(study, storage)
    try:
        trial = loaded.best_trial
    except ValueError as error:
        if as_json:
            click.echo(json.dumps({"study": study, "best": None}))
        click.echo(str(error), err=True)
        sys.exit(1)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "study": loaded.name,
                    "number": trial.number,
                    "value": trial.value,
                    "metric": loaded.metric,
                    "params": trial.params,
                    "metrics": trial.metrics,
                }
            )
        )
        return
    click.echo(
        f"study {loaded.name}: best {loaded.metric or 'value'} {trial.value:g} (trial {trial.number})"
    )
    for name, value in trial.display_params().items():
        click.echo(f"  {name} = {value}")


@cli.command("export")
@click.argument("study")
@_storage_option
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), default="csv", show_default=True
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="file (default: stdout)",
)
def export(study: str, storage: str | None, fmt: str, output: str | None) -> None:
    """Export every trial of a study as CSV or JSON."""
    records = _load(study, storage).to_records()
    if fmt == "json":
        text = json.dumps(records, indent=2, default=_json_default) + "\n"
    else:
        buffer = io.StringIO()
        columns = list(dict.fromkeys(k for record in records for k in record))
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)
        text = buffer.getvalue()
    if output:
        with open(output, "w") as f:
            f.write(text)
    else:
        click.echo(text, nl=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return str(value)


@cli.command("logs")
@click.argument("study")
@click.argument("trial", type=int)
@_storage_option
@click.option(
    "--stream", type=click.Choice(["stdout", "stderr"]), default=None, help="one stream only"
)
@click.option("-f", "--follow", is_flag=True, help="keep printing new lines until the trial ends")
def logs(study: str, trial: int, storage: str | None, stream: str | None, follow: bool) -> None:
    """Print the stored output of a trial."""
    loaded = _load(study, storage)
    try:
        record = loaded.trial(trial)
    except Exception as error:
        raise UsageError(str(error)) from None
    seen: dict[str, int] = {}
    while True:
        lines = loaded.storage.get_logs(record.id, stream)
        for line in lines:
            if line.seq > seen.get(line.stream, -1):
                seen[line.stream] = line.seq
                click.echo(line.text, err=line.stream == "stderr")
        if not follow or loaded.trial(trial).state.is_finished:
            break
        time.sleep(1.0)


@cli.command("resume")
@click.argument("study")
@_storage_option
@click.option("-n", "--num-runs", type=click.IntRange(min=1), default=None, help="new total budget")
def resume(study: str, storage: str | None, num_runs: int | None) -> None:
    """Continue a stopped or crashed study from what is stored (command, space, budget)."""
    import hypersearch as hs

    loaded = _load(study, storage)
    config = loaded.config
    run = dict(config.get("run") or {})
    if num_runs is not None:
        run["max_trials"] = num_runs
    if config.get("kind") == "command":
        objective: Any = hs.Command.from_config(config["command"])
    elif config.get("kind") == "python":
        objective = _import_objective(config.get("objective"), f"study {study}")
    else:
        _fail_usage(
            f"study {study!r} was not started from the command line; resume it from Python with "
            f"hs.load_study({study!r}, ...).optimize(objective, ...)"
        )
    loaded.clear_stop()
    _optimize(loaded, objective, run)


@cli.command("stop")
@click.argument("study")
@_storage_option
def stop(study: str, storage: str | None) -> None:
    """Ask every worker of a running study to stop (running trials are ended)."""
    loaded = _load(study, storage)
    loaded.request_stop()
    click.echo(f"stop requested for study '{loaded.name}'; workers stop within a second or two")


@cli.command("demo")
@_storage_option
@click.option("-n", "--num-runs", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("-p", "--parallel", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--name", default="demo-digits-mlp", show_default=True)
def demo(storage: str | None, num_runs: int, parallel: int, name: str) -> None:
    """Tune an MLP on scikit-learn's digits (epoch by epoch) into the local SQLite storage."""
    from hypersearch.cli.demo import run_demo

    run_demo(_storage_url(storage), num_runs, parallel, name)


def main() -> None:
    cli(prog_name="hypersearch")


if __name__ == "__main__":
    main()
