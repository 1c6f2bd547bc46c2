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
import itertools
import json
import logging
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import click

from hypersearch.cli.options import (
    ALL_SETTINGS,
    MUTABLE_SETTINGS,
    SEARCH_SETTINGS,
    SettingType,
    given,
    setting_options,
)
from hypersearch.samplers import ALIASES, STRATEGIES
from hypersearch.study.schema import BY_NAME, DEFAULT_COMMAND_METRIC

DEFAULT_STORAGE = "sqlite:///hypersearch.db"
SEARCH_STRATEGIES = tuple(STRATEGIES)  # grid, random, sobol, and the model-based ones
_WHOLE_RANGE = re.compile(r"[^=]+=[+-]?\d+:[+-]?\d+(:(linear|log))?", re.IGNORECASE)


class UsageError(click.UsageError):
    """Exit status 2 with a message naming the problem."""


def _fail_usage(message: str) -> None:
    raise UsageError(message)


def _cli_error(error: Exception) -> click.ClickException:
    """What the terminal shows for `error`: a database that fails (full, read-only, gone) is
    not a usage mistake, so exit status 1 without the usage hint; anything else (a wrong URL
    or file included) exit status 2."""
    from hypersearch.errors import StorageFailure

    if isinstance(error, StorageFailure):
        return click.ClickException(str(error))
    return UsageError(str(error))


def _storage_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return setting_options(("storage",))(f)


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
            raise _cli_error(error) from None

    return wrapper


def _configure_logging(verbosity: int) -> None:
    """The library logs through `logging`; the terminal shows warnings (lost leases, retries,
    database back-off) unless -q, and progress details with -v."""
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    logger = logging.getLogger("hypersearch")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.handlers = [h for h in logger.handlers if not isinstance(h, logging.StreamHandler)]
    logger.addHandler(handler)
    logger.setLevel(level)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hypersearch")
@click.option("-v", "--verbose", count=True, help="say more (-vv: debug)")
@click.option("-q", "--quiet", is_flag=True, help="only errors (no warnings)")
def cli(verbose: int, quiet: bool) -> None:
    """Hyperparameter search for any command or Python function."""
    _configure_logging(-1 if quiet else verbose)


# -- searching -------------------------------------------------------------------------------


def _space_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--json-param",
        "json_params",
        multiple=True,
        metavar="NAME=JSON",
        help="name='[...]': a JSON list of options",
    )(f)
    return click.option(
        "--param",
        "params",
        multiple=True,
        metavar="NAME=SPEC",
        help="name=v1,v2,v3 or name=MIN:MAX[:linear|log][:int|float]",
    )(f)


def _direction_options(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--maximize/--minimize",
        "maximize",
        default=None,
        help="direction (the same as --direction maximize|minimize; default: minimize)",
    )(f)


_TITLES = {"tpe": "TPE", "gp": "Gaussian-process (GP-EI)", "bayes": "Bayesian (GP-EI)",
           "bayesian": "Bayesian (GP-EI)"}  # fmt: skip


def _dashboard_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--dashboard", is_flag=True, default=False,
        help="serve the dashboard on 127.0.0.1:8080 (or the next free port) while it runs",
    )(f)


def _ray_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--ray", "ray", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
        help="run trials as Ray tasks on the cluster at ADDRESS (default: $RAY_ADDRESS, else a "
             "Ray started here); the same as --executor ray",
    )(f)


def _use_ray(address: str | None, settings: dict[str, Any]) -> None:
    """--ray [ADDRESS]: the executor setting, and the cluster as Ray's own RAY_ADDRESS names it."""
    import os

    if address is None:
        return
    if settings.get("executor") not in (None, "ray"):
        _fail_usage(f"--ray contradicts --executor {settings['executor']}")
    settings["executor"] = "ray"
    if address:
        os.environ["RAY_ADDRESS"] = address


def _make_search_command(strategy: str) -> click.Command:
    @_space_options
    @_dashboard_option
    @_ray_option
    @_direction_options
    @setting_options(("direction", *SEARCH_SETTINGS))
    @click.option(
        "--resolution",
        type=click.IntRange(min=1),
        default=None,
        help="grid: values per continuous or wide integer range (the option resolution=N)",
    )
    @click.argument("command", nargs=-1, type=click.UNPROCESSED)
    def command(**options: Any) -> None:
        _run_search(strategy, options)

    command.__doc__ = (
        f"{_TITLES.get(strategy, strategy.capitalize())} search over --param values for "
        "COMMAND (after --).\n\n"
        "Placeholders :name: in COMMAND are replaced by each trial's values. Options go before "
        "COMMAND; everything from COMMAND on is the command's own."
    )
    return click.command(strategy, context_settings={"allow_interspersed_args": False})(command)


for _strategy in (*SEARCH_STRATEGIES, *ALIASES):
    cli.add_command(_make_search_command(_strategy))


def _direction(options: dict[str, Any]) -> dict[str, Any]:
    maximize = options.pop("maximize", None)
    if maximize is None:
        return {}
    word = "maximize" if maximize else "minimize"
    if options.get("direction") not in (None, word):
        _fail_usage(f"--{word} contradicts --direction {options['direction']}")
    return {"direction": word}


def _run_search(strategy: str, options: dict[str, Any]) -> None:
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
    settings = {**given(options, ("direction", *SEARCH_SETTINGS)), **_direction(options)}
    _use_ray(options["ray"], settings)
    if strategy != "grid" and "max_trials" not in settings and options.get("name") is None:
        _fail_usage(f"{strategy} search needs -n/--num-runs (how many trials to run)")
    if options["resolution"] is not None:
        settings["strategy_options"] = {
            **settings.get("strategy_options", {}),
            "resolution": options["resolution"],
        }
    settings.update(strategy=ALIASES.get(strategy, strategy), command=tuple(argv))
    settings.setdefault("metric", DEFAULT_COMMAND_METRIC)
    study = _create(space, settings)
    _warn_unused_params(study)
    _optimize(study, dashboard=options["dashboard"])


def _warn_unused_params(study: Any) -> None:
    command = study.definition.command_objective()
    if command is None or study.space is None:
        return
    for name in command.template.check(study.space):
        click.echo(
            f"warning: parameter '{name}' appears in no :placeholder: of the command "
            "(it still reaches it as an HS_PARAM_* environment variable)",
            err=True,
        )


@_public_errors
def _create(space: Any, settings: dict[str, Any]) -> Any:
    import hypersearch as hs

    settings["storage"] = _storage_url(settings.get("storage"))
    return hs.create_study(space, **settings)


def _storage_flag(study: Any) -> str:
    url = study.storage.url
    return "" if url == DEFAULT_STORAGE else f" --storage {shlex.quote(url)}"


def _optimize(study: Any, objective: Any = None, dashboard: bool = False) -> None:
    """Run the search, then print its outcome and exit with the documented status."""
    import hypersearch as hs

    flag = _storage_flag(study)
    try:
        study.optimize(objective, verbose=True, dashboard=dashboard)
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted; resume with: hypersearch resume {shlex.quote(study.name)}{flag}",
            err=True,
        )
        sys.exit(130)
    except (hs.HypersearchError, ValueError) as error:
        raise _cli_error(error) from None
    summary = study.summary()
    counts = summary.counts
    click.echo(
        f"\nstudy '{study.name}' in {study.storage.url}: "
        + ", ".join(f"{counts.get(s, 0)} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAILED"))
    )
    if summary.best_number is None:
        if counts.get("PRUNED", 0):
            click.echo("no trial completed: every trial was stopped early (pruned)", err=True)
            return
        click.echo(
            "no trial completed; see why with: hypersearch trials "
            f"{shlex.quote(study.name)} --state failed{flag}",
            err=True,
        )
        sys.exit(1)
    best = study.trial(summary.best_number)
    click.echo(f"best {study.metric or 'value'}: {best.value:g} (trial {best.number})")
    click.echo(f"best parameters: {json.dumps(best.params, default=str)}")


# -- study files -----------------------------------------------------------------------------


@cli.command("run")
@click.argument("study_file", type=click.Path(dir_okay=False, allow_dash=True))
@_direction_options
@_dashboard_option
@_ray_option
@click.option("--create-only", is_flag=True,
              help="store the study without running a trial (hypersearch worker runs it)")
@setting_options(ALL_SETTINGS)
def run_file(
    study_file: str, dashboard: bool, ray: str | None, create_only: bool, **options: Any
) -> None:
    """Run a study described in a YAML file (space, strategy, budget, command or objective).

    STUDY_FILE may be - for standard input (e.g. hypersearch show NAME --yaml | hypersearch
    run -). Options given here override the file's settings."""
    from hypersearch.cli.study_file import StudyFileError, load_study_file

    try:
        space, settings = load_study_file(study_file)
    except (StudyFileError, OSError) as error:
        _fail_usage(str(error))
    settings.update(given(options, ALL_SETTINGS))
    settings.update(_direction(options))
    _use_ray(ray, settings)
    if settings.get("command") is not None:
        settings.setdefault("metric", DEFAULT_COMMAND_METRIC)
    study = _create(space, settings)
    if settings.get("objective"):
        _check_importable(study)
    _warn_unused_params(study)
    if create_only:
        click.echo(f"study '{study.name}' stored in {study.storage.url}; run it with: "
                   f"hypersearch worker --study {shlex.quote(study.name)}{_storage_flag(study)}")
        return
    _optimize(study, dashboard=dashboard)


@_public_errors
def _check_importable(study: Any) -> None:
    from hypersearch.study.objectives import import_objective

    import_objective(study.definition.objective)


# -- looking at studies ----------------------------------------------------------------------


def _load(name: str, storage: str | None, writable: bool = False) -> Any:
    """A stored study; read-only commands never create a database where there is none."""
    import hypersearch as hs
    from hypersearch.storage import get_storage

    try:
        store = get_storage(_storage_url(storage), **({} if writable else {"create": False}))
        return hs.load_study(name, store)
    except hs.HypersearchError as error:
        raise _cli_error(error) from None


def _json_safe(value: Any) -> Any:
    from hypersearch.study.read import json_safe

    return json_safe(value)


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
    from hypersearch.study import read

    try:
        found = read.list_studies(_storage_url(storage))
    except hs.HypersearchError as error:
        raise _cli_error(error) from None
    rows = [
        [
            row.name,
            row.direction,
            row.metric or "value",
            row.strategy,
            row.n_trials,
            row.running,
            _fmt(row.best_value),
            time.strftime("%Y-%m-%d %H:%M", time.localtime(row.created_at or 0)),
            row.message or "",
        ]
        for row in found
    ]
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
    from hypersearch.study import read

    loaded = _load(study, storage)
    # the read API pages (at most read.MAX_PAGE trials a call); the terminal shows them all
    order = "asc" if sort != "value" or loaded.direction == "minimize" else "desc"
    records: list[Any] = []
    while limit is None or len(records) < limit:
        try:
            page = read.trial_page(
                loaded.storage, loaded.name, states=states, sort=sort, order=order,
                limit=read.MAX_PAGE, offset=len(records),
            )
        except read.ReadError as error:
            _fail_usage(f"--sort {sort}: {error}")
        records.extend(page.trials)
        if len(records) >= page.total or not page.trials:
            break
    records = records[:limit]
    param_names = page.param_names
    lineages = any(t.lineage for t in records)
    rows = [
        [
            t.number,
            t.state.value,
            _fmt(t.value),
            *(_fmt(t.display_params().get(p)) for p in param_names),
            _fmt(t.duration),
            t.failure_reason or "",
            *([_origin(t)] if lineages else []),
        ]
        for t in records
    ]
    headers = ["#", "state", loaded.metric or "value", *param_names, "seconds", "failure"]
    _table(headers + (["from"] if lineages else []), rows)


def _origin(trial: Any) -> str:
    """Where a PBT trial came from: ``3@8`` is trial 3's checkpoint at step 8."""
    lineage = trial.lineage
    return "" if not lineage else f"{lineage['parent']}@{lineage['step']}"


@cli.command("lineage")
@click.argument("study")
@click.argument("trial", type=int)
@_storage_option
def lineage(study: str, trial: int, storage: str | None) -> None:
    """Show where a trial came from (Population Based Training): each ancestor whose checkpoint
    it continued, at which step, and which parameters changed."""
    loaded = _load(study, storage)
    try:
        record = loaded.trial(trial)
    except Exception as error:
        raise _cli_error(error) from None
    chain = [record]
    while chain[-1].lineage and len(chain) < 10_000:
        chain.append(loaded.trial(chain[-1].lineage["parent"]))
    for child, parent in itertools.pairwise(chain):
        link = child.lineage
        changes = ", ".join(
            f"{name} {_fmt(old)} -> {_fmt(new)}" for name, (old, new) in link["changed"].items()
        )
        click.echo(
            f"trial {child.number} ({child.state.value}, {_fmt(child.value)}) continued "
            f"trial {parent.number}'s checkpoint at step {link['step']}"
            f"{' in place of trial ' + str(link['replaces']) if 'replaces' in link else ''}; "
            f"{changes or 'no parameter changed'}"
        )
    root = chain[-1]
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in root.display_params().items())
    click.echo(f"trial {root.number} ({root.state.value}, {_fmt(root.value)}) started afresh: {params}")


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
                _json_safe(
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
        )
        return
    click.echo(
        f"study {loaded.name}: best {loaded.metric or 'value'} {trial.value:g} (trial {trial.number})"
    )
    for name, value in trial.display_params().items():
        click.echo(f"  {name} = {value}")


@cli.command("importance")
@click.argument("study")
@_storage_option
@click.option("--json", "as_json", is_flag=True, help="print a JSON object")
def importance(study: str, storage: str | None, as_json: bool) -> None:
    """Show which parameters matter: the share of the objective's variation each explains."""
    from hypersearch.study.importance import METHOD, MIN_TRIALS

    loaded = _load(study, storage)
    scores = loaded.importance()
    if as_json:
        click.echo(json.dumps({"study": loaded.name, "method": METHOD, "importance": scores}))
        return
    if not scores:
        click.echo(f"study {loaded.name}: importance needs at least {MIN_TRIALS} complete "
                   "trials", err=True)
        sys.exit(1)
    width = max(len(name) for name in scores)
    click.echo(f"study {loaded.name}: parameter importance ({METHOD})")
    for name, share in scores.items():
        click.echo(f"  {name:<{width}}  {share:6.1%}  {'#' * round(share * 40)}")


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
        text = json.dumps(_json_safe(records), indent=2) + "\n"
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
    from hypersearch.study import read

    loaded = _load(study, storage)
    try:
        loaded.trial(trial)
    except Exception as error:
        raise _cli_error(error) from None
    # each stream followed from its own last line (seq numbers are per stream)
    seen = {name: -1 for name in ([stream] if stream else ["stderr", "stdout"])}
    while True:
        finished = False
        for name in seen:
            while True:
                page = read.trial_logs(loaded.storage, loaded.name, trial, after=seen[name],
                                       stream=name)
                for line in page.lines:
                    click.echo(line.text, err=line.stream == "stderr")
                seen[name] = page.next_after.get(name, seen[name])
                finished = page.finished
                if not page.more:
                    break
        if not follow or finished:
            break
        time.sleep(1.0)


@cli.command("resume")
@click.argument("study")
@_dashboard_option
@_ray_option
@setting_options(("storage", *MUTABLE_SETTINGS), defaults=False)
def resume(
    study: str, storage: str | None, dashboard: bool, ray: str | None, **options: Any
) -> None:
    """Continue a stopped or crashed study exactly as stored (command or objective, strategy
    and its options, limits). Options given here change the stored study, as a revision."""
    loaded = _load(study, storage, writable=True)
    changes = given(options, MUTABLE_SETTINGS)
    _use_ray(ray, changes)
    if changes:
        _revise(loaded, changes)
    _optimize(loaded, dashboard=dashboard)


@_public_errors
def _revise(study: Any, changes: dict[str, Any]) -> None:
    for name, (old, new) in study.revise(**changes).items():
        click.echo(f"{name}: {old!r} -> {new!r}", err=True)


@cli.command("worker")
@_storage_option
@click.option("--study", "study_name", default=None, metavar="NAME",
              help="serve this study")
@click.option("--all", "all_studies", is_flag=True,
              help="serve every study that has budget left, in turn")
@click.option("--slots", type=SettingType(BY_NAME["n_jobs"]), default=None, metavar="N",
              help="trials at once on this machine (default: the study's n_jobs; -1: one per "
                   "core)")
@click.option("--gpus", type=SettingType(BY_NAME["gpus"]), default=None, metavar="0,1",
              help="this machine's GPUs to share out among trials (CUDA_VISIBLE_DEVICES)")
@click.option("--gpus-per-trial", type=SettingType(BY_NAME["gpus_per_trial"]), default=None,
              metavar="N", help="GPUs each trial gets (needs --gpus)")
@click.option("--max-trials-here", type=click.IntRange(min=1), default=None, metavar="K",
              help="leave after running this many trials")
@click.option("--idle-exit", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
              help="wait this long for new work (a raised budget, queued trials) before "
                   "leaving; default: leave when there is none")
@_ray_option
def worker(
    storage: str | None, study_name: str | None, all_studies: bool, slots: int | None,
    gpus: list[int] | None, gpus_per_trial: int | None, max_trials_here: int | None,
    idle_exit: float | None, ray: str | None,
) -> None:
    """Run trials of stored studies on this machine, beside any other workers.

    Needs only the storage (a PostgreSQL URL for many machines, or an SQLite file for several
    processes on one) and a study: the objective, the strategy and the budget are the stored
    definition. Ctrl-C ends this worker's running trials, which are re-queued as the
    study's retry policy says."""
    import hypersearch as hs

    if (study_name is None) == (not all_studies):
        _fail_usage("name a study with --study NAME, or serve every study with --all")
    url = _storage_url(storage)
    local: dict[str, Any] = {}
    _use_ray(ray, local)
    try:
        ran = hs.run_worker(url, study_name, slots=slots, gpus=gpus,
                            gpus_per_trial=gpus_per_trial, max_trials_here=max_trials_here,
                            idle_exit=idle_exit, executor=local.get("executor"))
    except KeyboardInterrupt:
        click.echo("\nworker interrupted", err=True)
        sys.exit(130)
    except hs.HypersearchError as error:
        raise _cli_error(error) from None
    if not ran:
        click.echo(f"no study in {url} has work left" if study_name is None
                   else f"study '{study_name}' has no work left", err=True)
        return
    click.echo("worker done: " + ", ".join(f"{n} trial(s) of '{s}'" for s, n in ran.items()))


@cli.command("set")
@click.argument("study")
@setting_options(("storage", *MUTABLE_SETTINGS), defaults=False)
def set_settings(study: str, storage: str | None, **options: Any) -> None:
    """Change a study's settings while it runs, for example --max-trials 200 --parallel 4.

    The change is stored as a revision; every driver and worker serving the study reads it
    within seconds."""
    loaded = _load(study, storage)
    changes = given(options, MUTABLE_SETTINGS)
    if not changes:
        _fail_usage("nothing to change: give a setting, e.g. --max-trials 200 or --parallel 4")
    _revise(loaded, changes)


@cli.command("enqueue")
@click.argument("study")
@click.option("--params", "params_json", required=True, metavar="JSON",
              help='the configuration, e.g. \'{"lr": 0.01, "layers": 3}\'')
@_storage_option
def enqueue(study: str, params_json: str, storage: str | None) -> None:
    """Queue a configuration to run before any new suggestion (checked against the space)."""
    import hypersearch as hs

    try:
        params = json.loads(params_json)
    except json.JSONDecodeError as error:
        _fail_usage(f"--params is not JSON: {error.msg} at character {error.pos}")
    if not isinstance(params, dict):
        _fail_usage(f"--params must be a JSON object {{name: value}}, got {params_json!r}")
    loaded = _load(study, storage)
    try:
        number = loaded.enqueue(params)
    except (hs.HypersearchError, ValueError) as error:
        _fail_usage(f"--params: {error}")
    click.echo(f"queued as trial {number} of '{loaded.name}'")


@cli.command("workers")
@click.argument("study")
@click.option("--lift", "lift", default=None, metavar="HOST:PID|all",
              help="lift the quarantine of this worker process (or of all)")
@_storage_option
def workers(study: str, lift: str | None, storage: str | None) -> None:
    """List the processes (drivers and workers) that ran trials of a study, and the workers
    that quarantined themselves (their trials kept failing while others' completed)."""
    from hypersearch.study.read import workers as read_workers

    loaded = _load(study, storage)
    if lift is not None:
        lifted = loaded.lift_quarantine(None if lift == "all" else lift)
        if not lifted:
            _fail_usage(f"no quarantined worker {lift!r} in study '{loaded.name}'; "
                        "see them with: hypersearch workers " + shlex.quote(loaded.name))
        click.echo("lifted the quarantine of " + ", ".join(lifted))
        return
    for entry in loaded.quarantined().values():
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(entry["since"])))
        click.echo(f"quarantined: {entry['process']} since {since}: {entry['reason']}", err=True)
    rows = read_workers(loaded.storage, loaded.name)
    if not rows:
        click.echo(f"no trial of '{loaded.name}' has run yet")
        return
    now = time.time()
    _table(
        ["process", "trials", "running", "complete", "pruned", "failed", "last active"],
        [[r.process, r.trials, r.running, r.complete, r.pruned, r.failed,
          _ago(now - r.last_active) if r.last_active is not None else "-"] for r in rows],
    )


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 0):.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


@cli.command("doctor")
@click.argument("study")
@_storage_option
def doctor(study: str, storage: str | None) -> None:
    """Check a study's invariants (dense trial numbers, no trial running without a live lease,
    COMPLETE exactly with a value, the budget charged exactly, the database sound) after
    sweeping the leases of dead workers. Exit status 1 when an invariant is broken."""
    from hypersearch.study.doctor import check

    loaded = _load(study, storage)
    found = check(loaded)
    for note in found.notes:
        click.echo(f"note: {note}")
    for problem in found.problems:
        click.echo(f"problem: {problem}", err=True)
    if not found.healthy:
        sys.exit(1)
    click.echo(f"study '{loaded.name}': every invariant holds")


@cli.command("show")
@click.argument("study")
@_storage_option
@click.option("--yaml", "as_yaml", is_flag=True, help="the definition as a study file")
@click.option("--json", "as_json", is_flag=True, help="the definition as JSON")
def show(study: str, storage: str | None, as_yaml: bool, as_json: bool) -> None:
    """Print a study's stored definition and its revisions."""
    from hypersearch.cli.study_file import definition_to_yaml

    loaded = _load(study, storage)
    definition = loaded.definition
    if as_yaml and as_json:
        _fail_usage("give --yaml or --json, not both")
    if as_yaml:
        click.echo(definition_to_yaml(loaded.name, definition), nl=False)
        return
    if as_json:
        document = {
            "name": loaded.name,
            **definition.to_document(),
            "space": None if definition.space is None else definition.space.to_json(),
        }
        click.echo(json.dumps(_json_safe(document), indent=2))
        return
    summary = loaded.summary()
    click.echo(f"study {loaded.name} in {loaded.storage.url}")
    click.echo(f"  trials: {summary.n_trials} charged, " + ", ".join(
        f"{n} {state.lower()}" for state, n in sorted(summary.counts.items())
    ))
    if definition.in_process:
        click.echo(f"  objective: in-process only ({definition.in_process})")
    for name, value in definition.public_settings().items():
        if value not in (None, [], {}):
            click.echo(f"  {name}: {json.dumps(_json_safe(value))}")
    if definition.space is not None:
        click.echo("  space:")
        for name, text in definition.space.describe().items():
            click.echo(f"    {name}: {text}")
    click.echo(f"  revisions: {len(definition.revisions) or 'none'}")
    for revision in definition.revisions:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(revision.time))
        what = ", ".join(f"{k} {v[0]!r} -> {v[1]!r}" for k, v in revision.changes.items())
        click.echo(f"    {when}  {what}")


@cli.command("stop")
@click.argument("study")
@click.option("--trial", "trial_number", type=click.IntRange(min=0), default=None,
              help="stop only this running trial (at its next report; it ends PRUNED)")
@_storage_option
def stop(study: str, trial_number: int | None, storage: str | None) -> None:
    """Ask every worker of a running study to stop (running trials are ended), or with
    --trial N only trial N."""
    import hypersearch as hs

    loaded = _load(study, storage)
    if trial_number is None:
        loaded.request_stop()
        click.echo(f"stop requested for study '{loaded.name}'; workers stop within a second or two")
        return
    try:
        loaded.stop_trial(trial_number)
    except hs.HypersearchError as error:
        _fail_usage(str(error))
    click.echo(f"trial {trial_number} of '{loaded.name}' stops at its next report (it ends PRUNED)")


@cli.command("kill")
@click.argument("study")
@click.argument("trial", type=click.IntRange(min=0))
@_storage_option
def kill(study: str, trial: int, storage: str | None) -> None:
    """End running trial TRIAL now, wherever it runs: FAILED (killed), not re-run. (`stop
    STUDY --trial N` lets it stop at its next report, PRUNED, keeping its curve.)"""
    import hypersearch as hs

    loaded = _load(study, storage)
    try:
        loaded.kill_trial(trial)
    except hs.HypersearchError as error:
        _fail_usage(str(error))
    click.echo(f"trial {trial} of '{loaded.name}' is ended within a few seconds by the worker "
               "running it (FAILED, killed)")


@cli.command("dashboard")
@_storage_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on; any other than loopback needs --token-file")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--token-file", type=click.Path(dir_okay=False), default=None,
              help="file holding the access token (at least 16 characters)")
@click.option("--open", "open_browser", is_flag=True, help="open the page in a web browser")
@click.option("--read-only", is_flag=True,
              help="no controls (stop, enqueue, budget, notes): only look")
def dashboard(
    storage: str | None, host: str, port: int, token_file: str | None, open_browser: bool,
    read_only: bool,
) -> None:
    """Serve the web dashboard of the studies in the storage: live trial tables and charts,
    logs, and controls behind the login link it prints (needs the dashboard extra: pip install
    'hypersearch[dashboard]')."""
    import hypersearch as hs

    try:
        from hypersearch.dashboard import server
        from hypersearch.dashboard.security import read_token
    except ImportError as error:
        _fail_usage(
            f"the dashboard needs the dashboard extra ({error}): pip install 'hypersearch[dashboard]'"
        )
    try:
        token = read_token(token_file) if token_file else None
        server.serve(_storage_url(storage), host=host, port=port, token=token,
                     read_only=read_only, open_browser=open_browser)
    except (hs.HypersearchError, ValueError) as error:
        raise _cli_error(error) from None


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
