"""`hypersearch demo`: tune a real model on real data, end to end, in about a minute.

The model is scikit-learn's MLP on the bundled digits data, trained epoch by epoch by an
ordinary script (`hypersearch.demo.train_digits`) that prints Keras-style progress lines. The
demo runs it as a command study, several trials at once, into the local SQLite storage.
"""

from __future__ import annotations

import sys

import click

EPOCHS = 15


def run_demo(storage: str, num_runs: int, parallel: int, name: str) -> None:
    import hypersearch as hs
    from hypersearch.cli.main import UsageError, _create, _optimize

    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise UsageError(
            "the demo trains a scikit-learn model: pip install 'hypersearch[demo]'"
        ) from None
    space = {
        "hidden": hs.integer(16, 256, log=True),
        "layers": hs.integer(1, 2),
        "lr": hs.loguniform(1e-4, 1e-1),
        "alpha": hs.loguniform(1e-6, 1e-1),
        "batch_size": hs.choice([32, 64, 128]),
        "activation": hs.choice(["relu", "tanh"]),
    }
    argv = [sys.executable, "-m", "hypersearch.demo.train_digits"]
    for name_ in ("hidden", "layers", "lr", "alpha", "batch_size", "activation"):
        argv += [f"--{name_.replace('_', '-')}", f":{name_}:"]
    argv += ["--epochs", str(EPOCHS)]
    click.echo(
        f"Tuning an MLP on scikit-learn's digits: {num_runs} trials, {parallel} at a time, "
        f"{EPOCHS} epochs each, stored in {storage} as study '{name}'.\n"
    )
    study = _create(
        space,
        {
            "name": name,
            "storage": storage,
            "direction": "maximize",
            "metric": "val_acc",
            "metric_agg": "max",
            "strategy": "random",
            "seed": 0,
            "command": argv,
            "stop_conditions": ["val_loss > 5"],  # diverged: no point training on
            "trial_timeout": 120,
            "max_trials": num_runs,
            "n_jobs": parallel,
            "message": "hypersearch demo",
        },
    )
    _optimize(study)
    flag = "" if storage == "sqlite:///hypersearch.db" else f" --storage {storage}"
    click.echo(
        "\nLook at the results:\n"
        f"  hypersearch studies{flag}\n"
        f"  hypersearch trials {name} --sort value{flag}\n"
        f"  hypersearch best {name}{flag}\n"
        f"  hypersearch logs {name} {study.best_trial.number}{flag}\n"
        f"  hypersearch export {name} --format csv{flag} > {name}.csv\n"
        f"  hypersearch dashboard{flag}   # the same in a browser, http://127.0.0.1:8080/"
    )
