"""``no_progress_loss``: hyperopt's early-stop function, with its ``(trials, *args) -> (stop, args)``
protocol (fmin calls ``early_stop_fn(trials, *args)`` after every trial and passes the returned
args back the next time)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def no_progress_loss(iteration_stop_count: int = 20, percent_increase: float = 0.0) -> Callable[..., tuple[bool, list[Any]]]:
    """Stop once `iteration_stop_count` trials in a row have not improved the best loss by more
    than `percent_increase` percent. A trial without a loss (status 'fail') counts as no
    progress (hyperopt's version raises KeyError on it)."""

    def stop_fn(trials: Any, best_loss: float | None = None, iteration_no_progress: int = 0) -> tuple[bool, list[Any]]:
        new_loss = trials.trials[-1]["result"].get("loss") if trials.trials else None
        if best_loss is None:
            return False, [new_loss, iteration_no_progress + 1]
        threshold = best_loss - abs(best_loss * (percent_increase / 100.0))
        if new_loss is not None and new_loss < threshold:
            best_loss, iteration_no_progress = new_loss, 0
        else:
            iteration_no_progress += 1
        return iteration_no_progress >= iteration_stop_count, [best_loss, iteration_no_progress]

    return stop_fn


__all__ = ["no_progress_loss"]
