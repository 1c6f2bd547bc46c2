"""hypersearch: hyperparameter search that runs anywhere and loses nothing.

Example::

    import hypersearch as hs

    space = {
        "lr": hs.loguniform(1e-5, 1e-1),
        "optimizer": hs.choice([{"name": "adam"}, {"name": "sgd", "momentum": hs.uniform(0, 0.99)}]),
    }
    study = hs.minimize(train, space, max_trials=100, n_jobs=4, storage="sqlite:///hs.db", name="mnist")
    print(study.best_params)
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

logging.getLogger("hypersearch").addHandler(logging.NullHandler())

# Public names and the module defining each. They load on first use, so `import hypersearch`
# stays cheap, and a training script calling `hypersearch.report(...)` imports no numpy.
_EXPORTS = {
    "hypersearch.client": ["report"],
    "hypersearch.execution.command": ["Command"],
    "hypersearch.errors": [
        "HypersearchError",
        "SpaceError",
        "StorageError",
        "StrategyError",
        "StudyConflictError",
        "StudyExhausted",
        "StudyNotFoundError",
        "TrialPruned",
    ],
    "hypersearch.samplers": ["GP", "TPE", "Grid", "Random", "Sampler", "Sobol"],
    "hypersearch.space": [
        "Space",
        "choice",
        "integer",
        "loguniform",
        "lognormal",
        "normal",
        "qloguniform",
        "qlognormal",
        "qnormal",
        "quniform",
        "uniform",
    ],
    "hypersearch.study": ["Study", "create_study", "load_study", "maximize", "minimize", "zoom"],
    "hypersearch.trial": ["Decision", "FailureReason", "FrozenTrial", "Trial", "TrialState"],
    "hypersearch.study.definition": ["StudyDefinition"],
    "hypersearch.study.worker": ["run_worker"],
    "hypersearch.execution.protocol": ["Executor"],
    "hypersearch.integrations.gradient": ["hyper_tune"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "GP",
    "TPE",
    "Command",
    "Decision",
    "Executor",
    "FailureReason",
    "FrozenTrial",
    "Grid",
    "HypersearchError",
    "Random",
    "Sampler",
    "Sobol",
    "Space",
    "SpaceError",
    "StorageError",
    "StrategyError",
    "Study",
    "StudyConflictError",
    "StudyDefinition",
    "StudyExhausted",
    "StudyNotFoundError",
    "Trial",
    "TrialPruned",
    "TrialState",
    "__version__",
    "choice",
    "create_study",
    "hyper_tune",
    "integer",
    "load_study",
    "lognormal",
    "loguniform",
    "maximize",
    "minimize",
    "normal",
    "qlognormal",
    "qloguniform",
    "qnormal",
    "quniform",
    "report",
    "run_worker",
    "uniform",
    "zoom",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'hypersearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from hypersearch.client import report
    from hypersearch.errors import (
        HypersearchError,
        SpaceError,
        StorageError,
        StrategyError,
        StudyConflictError,
        StudyExhausted,
        StudyNotFoundError,
        TrialPruned,
    )
    from hypersearch.execution.command import Command
    from hypersearch.execution.protocol import Executor
    from hypersearch.integrations.gradient import hyper_tune
    from hypersearch.samplers import GP, TPE, Grid, Random, Sampler, Sobol
    from hypersearch.space import (
        Space,
        choice,
        integer,
        lognormal,
        loguniform,
        normal,
        qlognormal,
        qloguniform,
        qnormal,
        quniform,
        uniform,
    )
    from hypersearch.study import Study, create_study, load_study, maximize, minimize, zoom
    from hypersearch.study.definition import StudyDefinition
    from hypersearch.trial import Decision, FailureReason, FrozenTrial, Trial, TrialState
