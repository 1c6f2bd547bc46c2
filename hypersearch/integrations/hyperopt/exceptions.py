"""hyperopt's exception names, as hypersearch errors (``except hyperopt.exceptions.X`` keeps working)."""

from __future__ import annotations

from hypersearch.errors import HypersearchError, SpaceError


class BadSearchSpace(SpaceError):
    """The search space cannot be built."""


class DuplicateLabel(BadSearchSpace):
    """Two different hyperparameters share one label."""


class InvalidTrial(HypersearchError, ValueError):
    """A trial document lacks a key hyperopt requires."""


class InvalidResultStatus(HypersearchError, ValueError):
    """The objective returned a status that is not one of STATUS_STRINGS."""


class InvalidLoss(HypersearchError, ValueError):
    """The objective returned status 'ok' without a numeric loss."""


class AllTrialsFailed(HypersearchError):
    """No trial finished with status 'ok' and a loss that is not NaN."""


class InvalidAnnotatedParameter(HypersearchError, ValueError):
    """``space="annotated"`` with an objective argument not annotated with an ``hp.*`` node."""


__all__ = [
    "AllTrialsFailed",
    "BadSearchSpace",
    "DuplicateLabel",
    "InvalidAnnotatedParameter",
    "InvalidLoss",
    "InvalidResultStatus",
    "InvalidTrial",
]
