"""Progress in the terminal.

- ``bar``: a rich progress bar (trials done / budget, best so far, running, failed) for Python
  objectives, only when stderr is a terminal.
- ``table``: for command trials in a terminal, a live table of the running trials with their
  latest metrics above the same summary line.
- ``lines``: for command trials when stderr is not a terminal (CI logs, nohup), one plain line
  per finished trial.
"""

from __future__ import annotations

import contextlib
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hypersearch.execution.executors import Finished
    from hypersearch.study.definition import StudyDefinition
    from hypersearch.study.study import Study


def choose_style(verbose: bool, commands: bool) -> str | None:
    if not verbose:
        return None
    if sys.stderr.isatty():
        return "table" if commands else "bar"
    return "lines" if commands else None


class Progress:
    def __init__(self, study: Study, definition: StudyDefinition, style: str | None) -> None:
        self.study = study
        self.limits = definition
        self.style = style
        self.done = _done(study.summary()) if style is not None else 0  # a resume goes on counting
        self.best: float | None = None
        self._live: Any = None
        self._bar: Any = None
        self._summary: Any = None
        self._started = time.monotonic()
        if style == "bar":
            from rich.progress import BarColumn, MofNCompleteColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                "[bold]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                "{task.fields[status]}",
                refresh_per_second=4,
            )
            self._task = self._bar.add_task(study.name, total=definition.max_trials, status="starting")
            self._bar.start()
        elif style == "table":
            from rich.console import Console
            from rich.live import Live

            self._live = Live(console=Console(stderr=True), refresh_per_second=4, transient=False)
            self._live.start()

    def finished(self, finished: Finished) -> None:
        """One trial of this driver ended (used by the ``lines`` style)."""
        self.done += 1
        if self.style != "lines":
            return
        outcome = finished.outcome
        sign = 1.0 if self.study.direction == "minimize" else -1.0
        if (
            outcome.value is not None
            and outcome.state.value == "COMPLETE"
            and (self.best is None or sign * outcome.value < sign * self.best)
        ):
            self.best = outcome.value
        metric = self.study.metric or "value"
        text = f"trial {finished.trial.number} {outcome.state.value}"
        if outcome.value is not None:
            text += f" {metric}={outcome.value:.6g}"
        if outcome.failure_reason:
            first = (outcome.failure_detail or "").strip().splitlines()[:1]
            text += f" ({outcome.failure_reason}{': ' + first[0] if first else ''})"
        budget = f"/{self.limits.max_trials}" if self.limits.max_trials else ""
        best = f"{self.best:.6g}" if self.best is not None else "-"
        print(f"{text}  [done {self.done}{budget}, best {best}]", file=sys.stderr, flush=True)

    def update(self, summary: Any, running: list[dict[str, Any]] | None = None) -> None:
        self._summary = summary
        if self._bar is not None:
            self._bar.update(self._task, completed=_done(summary), status=_status(summary))
        elif self._live is not None:
            self._live.update(self._render(summary, running or []))

    def _render(self, summary: Any, running: list[dict[str, Any]]) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(
            "trial", "parameters", "latest metrics", "seconds", box=None, header_style="bold"
        )
        for row in running:
            params = ", ".join(f"{k}={_short(v)}" for k, v in row["params"].items())
            metrics = ", ".join(f"{k}={v:.4g}" for k, v in row["metrics"].items()) or "…"
            table.add_row(str(row["number"]), params[:80], metrics[:60], f"{row['seconds']:.0f}")
        budget = f"/{self.limits.max_trials}" if self.limits.max_trials else ""
        elapsed = time.monotonic() - self._started
        line = f"[bold]{self.study.name}[/bold]  done {_done(summary)}{budget}  {_status(summary)}  {elapsed:.0f}s"
        return Group(table, line)

    def close(self, reason: str | None) -> None:
        if self.style is None:
            return
        with contextlib.suppress(Exception):  # the storage may be what failed; close anyway
            self.update(self.study.summary())
        if self._bar is not None:
            self._bar.stop()
        if self._live is not None:
            self._live.stop()
        if reason:
            print(f"stopped: {reason}", file=sys.stderr, flush=True)


def _done(summary: Any) -> int:
    return sum(summary.counts.get(state, 0) for state in ("COMPLETE", "PRUNED", "FAILED"))


def _status(summary: Any) -> str:
    best = "—" if summary.best_value is None else f"{summary.best_value:.6g}"
    return (
        f"best {best} (trial {summary.best_number})  running {summary.counts.get('RUNNING', 0)}  "
        f"failed {summary.counts.get('FAILED', 0)}"
    )


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
