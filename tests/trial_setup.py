"""Building stored trials by hand for the dashboard's tests: a trial with given parameters,
claimed (RUNNING) under a test owner, to report to and finish through the storage."""

from __future__ import annotations

from typing import Any


def claim_with(
    store: Any, study: Any, params: dict[str, Any], owner: str, lineage: Any = None
) -> Any:
    """Queue `params` (nested values, checked against the study's space) and claim it."""
    store.enqueue(study.id, study.space.validate(study.space.flatten(params)), lineage)
    claimed = store.claim(study.id, owner, propose=lambda h, n: None, uses_history=False,
                          max_trials=None, lease_seconds=3600.0)
    assert claimed is not None
    return claimed
