"""hyperopt's public API on hypersearch's engine. Change one line of a hyperopt script::

    from hypersearch.hyperopt import STATUS_OK, Trials, fmin, hp, tpe

and it runs with hyperopt's semantics and result shapes on hypersearch's spaces, samplers and
storage; ``Trials(storage="sqlite:///hpo.db", name="mnist")`` keeps the search in a database.
The implementation lives in `hypersearch.integrations.hyperopt`.
"""

from __future__ import annotations

from typing import Any

# The names hyperopt exports, as the implementation lists them. The fmin submodule loads first
# so that the fmin function, bound after it, keeps the name (importing a submodule later would
# rebind it); the other submodules (hypersearch.hyperopt.hp...) load when imported.
from hypersearch.hyperopt import fmin as _fmin_module  # noqa: F401
from hypersearch.integrations.hyperopt import *  # noqa: F403
from hypersearch.integrations.hyperopt import __all__ as _exported
from hypersearch.integrations.hyperopt import __version__ as __version__

__all__ = sorted({*_exported, "__version__", "base"})

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
