"""The public Python API: studies, ask/tell, optimize, minimize/maximize.

Every keyword setting (``max_trials``, ``n_jobs``, ``strategy``, ``storage``, ``name``...) is
declared once in hypersearch/study/schema.py; `hypersearch.study.schema.SETTINGS` lists them with
their types, defaults and help.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypersearch.study.definition import StudyDefinition
from hypersearch.study.study import Study, create_study, load_study


def _search(
    direction: str, objective: Any, space: Any, verbose: bool, executor: Any, settings: Any,
    dashboard: bool | int = False,
) -> Study:
    if "direction" in settings:
        from hypersearch.errors import HypersearchError

        raise HypersearchError(
            f"direction= is implied by hs.{direction[:-1]}e(); use create_study(direction=...)"
        )
    study = create_study(space, direction=direction, **settings)
    return study.optimize(objective, verbose=verbose, executor=executor, dashboard=dashboard)


def minimize(
    objective: Callable[..., Any] | Any,
    space: Any = None,
    *,
    verbose: bool = True,
    executor: Any = None,
    dashboard: bool | int = False,
    **settings: Any,
) -> Study:
    """Search `space` for the parameters that minimise `objective`; returns the Study.

    Settings (all optional): ``strategy`` ("tpe", "gp", "random", "sobol", "grid" or a sampler
    such as ``hs.TPE(n_startup=20)``), ``max_trials``, ``timeout`` (seconds for the search; also
    ``max_time``), ``target``, ``patience``, ``max_failures``, ``n_jobs``, ``storage``, ``name``,
    ``seed``, ``metric``, ``retries``, ``trial_timeout``... (hypersearch.study.schema).
    Calling it again with the same `name` and a persistent `storage` resumes the study;
    `max_trials` is the total across all workers and resumes. ``dashboard=True`` shows the
    search live in the browser while it runs (the URL is printed).

    Example::

        study = hs.minimize(lambda p: (p["x"] - 2) ** 2, {"x": hs.uniform(-5, 5)}, max_trials=50)
        study.best_params  # {'x': 2.01...}
    """
    return _search("minimize", objective, space, verbose, executor, settings, dashboard)


def maximize(
    objective: Callable[..., Any] | Any,
    space: Any = None,
    *,
    verbose: bool = True,
    executor: Any = None,
    dashboard: bool | int = False,
    **settings: Any,
) -> Study:
    """Like `minimize`, for objectives to maximise (accuracy, reward)."""
    return _search("maximize", objective, space, verbose, executor, settings, dashboard)


__all__ = ["Study", "StudyDefinition", "create_study", "load_study", "maximize", "minimize"]


def zoom(study: Study, top: float = 0.2, margin: float = 0.1) -> Any:
    """A narrower space around the best trials of `study`: ``hs.zoom(study, top=0.2)``
    (`Study.zoom`)."""
    return study.zoom(top=top, margin=margin)
