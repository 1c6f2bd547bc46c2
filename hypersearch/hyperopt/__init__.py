"""hyperopt's public API on hypersearch's engine. Change one line of a hyperopt script::

    from hypersearch.hyperopt import STATUS_OK, Trials, fmin, hp, tpe

and it runs with hyperopt's semantics and result shapes on hypersearch's spaces, samplers and
storage; ``Trials(storage="sqlite:///hpo.db", name="mnist")`` keeps the search in a database.
The implementation lives in `hypersearch.integrations.hyperopt`.
"""

from __future__ import annotations

from typing import Any

# the public submodules (hypersearch.hyperopt.hp, ...), then the names hyperopt exports; the
# fmin submodule loads first so that the fmin function, bound after it, keeps the name
from hypersearch.hyperopt import anneal, base, early_stop, exceptions, hp, pyll, rand, tpe
from hypersearch.hyperopt import fmin as _fmin_module  # noqa: F401
from hypersearch.integrations.hyperopt import __version__ as __version__
from hypersearch.integrations.hyperopt.base import (
    JOB_STATE_DONE,
    JOB_STATE_ERROR,
    JOB_STATE_NEW,
    JOB_STATE_RUNNING,
    STATUS_FAIL,
    STATUS_NEW,
    STATUS_OK,
    STATUS_RUNNING,
    STATUS_STRINGS,
    STATUS_SUSPENDED,
    Trials,
    trials_from_docs,
)
from hypersearch.integrations.hyperopt.fmin import fmin, space_eval

__all__ = [
    "JOB_STATE_DONE",
    "JOB_STATE_ERROR",
    "JOB_STATE_NEW",
    "JOB_STATE_RUNNING",
    "STATUS_FAIL",
    "STATUS_NEW",
    "STATUS_OK",
    "STATUS_RUNNING",
    "STATUS_STRINGS",
    "STATUS_SUSPENDED",
    "Trials",
    "__version__",
    "anneal",
    "base",
    "early_stop",
    "exceptions",
    "fmin",
    "hp",
    "pyll",
    "rand",
    "space_eval",
    "tpe",
    "trials_from_docs",
]

_MISSING = {
    "atpe": "hyperopt's Adaptive TPE is not available; use tpe.suggest",
    "mix": "hyperopt's mix of algorithms is not available; pick tpe, rand or anneal",
    "Domain": "there is no Domain: fmin takes the objective and the space",
    "MongoTrials": "use Trials(storage='postgresql://...' or 'sqlite:///file.db', name=...)",
    "SparkTrials": "trials run in this process; use hypersearch's n_jobs or workers to parallelise",
}


def __getattr__(name: str) -> Any:
    if name in _MISSING:
        raise AttributeError(f"hypersearch.hyperopt has no {name}: {_MISSING[name]}")
    raise AttributeError(f"module 'hypersearch.hyperopt' has no attribute {name!r}")
