"""What the framework callbacks share: checking their arguments, turning a framework's logs
into metrics, reporting them and reading the decision (no framework imported here).

Example::

    reporter = Reporter(None, "val_loss", "ReportCallback")
    reporter.start()                                   # declares listening in a shell command
    stop = reporter.report(1, {"loss": 0.5, "val_loss": 0.6})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hypersearch import client

# the client's rule for metric names (kept there; repeated in metric_lines)
_NAME_RE = client._NAME_RE


def _number(value: Any) -> float | None:
    """A logged value as a float: Python and numpy numbers, 0-d arrays and one-element tensors;
    None for anything else (strings, bools, vectors)."""
    if isinstance(value, bool | str | bytes):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError, OverflowError):  # RuntimeError: torch vectors
        return None


class Reporter:
    """Reports one epoch's logs for a callback named `who`, to `trial` (a live hypersearch
    trial) or, when it is None, through `hypersearch.client` (the running Python objective's
    trial, or the shell command's report channel and decision file)."""

    def __init__(self, trial: Any, monitor: str, who: str) -> None:
        if not isinstance(monitor, str) or _NAME_RE.fullmatch(monitor) is None:
            raise ValueError(
                f"{who}: monitor must be a metric name such as 'val_loss' (letters, digits, "
                f"'_', '.', '-', '/'; not starting with a digit), got {monitor!r}"
            )
        if trial is not None and not (
            callable(getattr(trial, "report", None))
            and callable(getattr(trial, "should_stop", None))
        ):
            raise TypeError(
                f"{who}: trial must be the hypersearch trial your objective received (with "
                f"report() and should_stop()) or None, got {type(trial).__name__}"
            )
        self.trial = trial
        self.monitor = monitor
        self.who = who

    def start(self) -> None:
        """At the start of training: a shell command declares that it reads its decisions."""
        if self.trial is None:
            client.listen()

    def metrics(self, logs: Mapping[str, Any] | None, step: int) -> dict[str, float]:
        """The numeric entries of `logs` with valid names; ValueError without the monitor."""
        metrics: dict[str, float] = {}
        for name, value in (logs or {}).items():
            number = _number(value)
            if number is not None and isinstance(name, str) and _NAME_RE.fullmatch(name):
                metrics[name] = number
        if self.monitor not in metrics:
            present = ", ".join(sorted(map(str, logs or {}))) or "none"
            raise ValueError(
                f"{self.who}: monitor {self.monitor!r} is not among the metrics logged at "
                f"epoch {step} (present: {present}); pass monitor= one of them, or log "
                f"{self.monitor!r} (for a validation metric, give the fit validation data)"
            )
        return metrics

    def report(self, step: int, logs: Mapping[str, Any] | None) -> bool:
        """Report `logs` at `step`; True when hypersearch says the trial ends now."""
        metrics = self.metrics(logs, step)
        # the monitored metric first: the order reports are shown in
        ordered = {self.monitor: metrics.pop(self.monitor), **metrics}
        if self.trial is not None:
            self.trial.report(step, **ordered)
            return bool(self.trial.should_stop())
        client.report(step, **ordered)
        return client.should_stop()
