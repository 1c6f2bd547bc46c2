"""Paperspace Gradient's ``hyper_tune``, on hypersearch's storage instead of MongoDB.

Gradient's SDK ran ``hyper_tune(train_model, hparam_def, algo=tpe.suggest, max_evals=25)``:
hyperopt's ``fmin`` with ``MongoTrials`` on the experiment's MongoDB. Here the same call runs
``fmin`` of `hypersearch.hyperopt` with its results in the study ``$EXPERIMENT_NAME`` (default
``hyper-tune``) of ``$HYPERSEARCH_STORAGE`` (default ``sqlite:///hypersearch.db``), so more
machines may join it with ``hypersearch worker`` and a rerun continues it.

    from hypersearch import hyper_tune        # was: from gradient_sdk import hyper_tune
    from hypersearch.hyperopt import hp, tpe  # was: from hyperopt import hp, tpe

    best = hyper_tune(train_model, {"dropout": hp.uniform("dropout", 0, 0.8)}, max_evals=25)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from hypersearch.errors import HypersearchError

DEFAULT_STORAGE = "sqlite:///hypersearch.db"
DEFAULT_NAME = "hyper-tune"
MONGO_VARIABLES = ("MONGO_DB_HOST", "MONGO_DB_PORT")


class ConfigError(HypersearchError):
    """The storage hyper_tune is configured with cannot be used (Gradient's SDK raised its own
    ConfigError for a missing MongoDB setting)."""


def _storage_url() -> str:
    from hypersearch.storage import ENV_VAR

    url = os.environ.get(ENV_VAR, "").strip()
    mongo = [name for name in MONGO_VARIABLES if os.environ.get(name)]
    if not url and mongo:
        raise ConfigError(
            f"{' and '.join(mongo)} {'is' if len(mongo) == 1 else 'are'} set, as for Gradient's "
            "MongoDB of results; hypersearch does not store to MongoDB. Set "
            f"{ENV_VAR} to a database it does store to (postgresql://user@host/db for many "
            f"machines, sqlite:///hypersearch.db for one) and run again"
        )
    return url or DEFAULT_STORAGE


def hyper_tune(
    train_model: Callable[..., Any],
    hparam_def: Any,
    algo: Any = None,
    max_evals: int = 25,
    func: Callable[..., Any] | None = None,
) -> Any:
    """Run `func` (default: `hypersearch.hyperopt.fmin`) on `train_model` over the hyperopt space
    `hparam_def` for `max_evals` evaluations in total, its trials stored in the configured
    storage; returns what `func` returns (fmin: the best point, choices as indices)."""
    from hypersearch.integrations.hyperopt import Trials, fmin, tpe

    url = _storage_url()
    name = os.environ.get("EXPERIMENT_NAME", "").strip() or DEFAULT_NAME
    try:
        trials = Trials(storage=url, name=name)
    except HypersearchError as error:
        raise ConfigError(
            f"hyper_tune cannot use the storage {url} (from "
            f"{'$HYPERSEARCH_STORAGE' if os.environ.get('HYPERSEARCH_STORAGE') else 'the default'}"
            f"): {error}"
        ) from None
    run = fmin if func is None else func
    return run(train_model, space=hparam_def, trials=trials, algo=tpe.suggest if algo is None
               else algo, max_evals=max_evals)
