"""A hyperopt drop-in on hypersearch's engine: ``from hypersearch.hyperopt import fmin, tpe, hp,
Trials, STATUS_OK`` runs a hyperopt script unchanged, with hyperopt's result shapes (argmin with
choice indices, trial documents), on hypersearch's space language, samplers and storage.

The public import path is `hypersearch.hyperopt` (which re-exports this package); see
`fmin.fmin` for what differs from hyperopt.
"""

from __future__ import annotations

from hypersearch.integrations.hyperopt import anneal, early_stop, exceptions, hp, pyll, rand, tpe
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

__version__ = "0.3.0+hypersearch"  # the hyperopt API this mirrors

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
    "anneal",
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
