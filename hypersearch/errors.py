"""Exceptions raised by hypersearch. Every message says what was wrong, where, and how to fix it."""

from __future__ import annotations


class HypersearchError(Exception):
    """Base class of every error raised on purpose by hypersearch."""


class SpaceError(HypersearchError, ValueError):
    """A search space or one of its distributions is invalid."""


class StrategyError(HypersearchError, ValueError):
    """An unknown strategy name, or a strategy that cannot serve this space."""


class StudyConflictError(HypersearchError):
    """A resumed study does not match what is stored (space, direction or metric)."""


class StorageError(HypersearchError):
    """The storage cannot be opened or used (bad URL, unreachable server, read-only file)."""


class StorageFailure(StorageError):
    """A database that worked fails: unreachable, or its disk full or read-only. Not a usage
    mistake: the command line exits 1 for it (2 for a wrong URL or file)."""


class StorageUnreachable(StorageFailure):
    """The database stayed unreachable (or busy) for the storage's whole patience; it may come
    back: a driver holds its results and tries again (study/driver.py)."""


class StudyNotFoundError(HypersearchError, KeyError):
    """No study of that name in the storage."""

    def __str__(self) -> str:  # KeyError would otherwise wrap the message in quotes
        return str(self.args[0]) if self.args else ""


class StudyExhausted(HypersearchError):
    """`Study.ask()` has nothing left to propose: the budget is spent or every grid point is taken."""


class StudyFull(HypersearchError):
    """The study's `max_running` trials run now: a claim waits until one of them ends."""

    def __init__(self, max_running: int) -> None:
        super().__init__(f"{max_running} trial(s) of the study run now (max_running)")


class TrialPruned(HypersearchError):
    """Raise from an objective to stop the trial early; it is recorded as PRUNED."""
