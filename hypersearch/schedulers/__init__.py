"""Early stopping: schedulers answer each report of a running trial (continue or stop; PBT also
continues a stopped trial from a better one's checkpoint).

Name one in a study (``scheduler="asha"``, ``scheduler_options={...}``; ``--scheduler asha
--scheduler-opt reduction_factor=3``; ``scheduler: asha`` in a study file) or pass an instance
(``scheduler=hs.schedulers.ASHA(min_resource=1)``). See `base` for the contract, `view` for
what a scheduler reads from storage.
"""

from __future__ import annotations

from hypersearch.schedulers.base import (
    CONTINUE,
    Chain,
    Exploit,
    Scheduler,
    SchedulerError,
    Verdict,
    make_scheduler,
    schedulers,
    stop,
)
from hypersearch.schedulers.halving import ASHA, Hyperband
from hypersearch.schedulers.pbt import PBT
from hypersearch.schedulers.rules import Median, Patience, Percentile, Threshold
from hypersearch.schedulers.view import StudyView

__all__ = [
    "ASHA",
    "CONTINUE",
    "PBT",
    "Chain",
    "Exploit",
    "Hyperband",
    "Median",
    "Patience",
    "Percentile",
    "Scheduler",
    "SchedulerError",
    "StudyView",
    "Threshold",
    "Verdict",
    "make_scheduler",
    "schedulers",
    "stop",
]
