"""Clock skew between workers: one worker's clock runs two hours ahead, another's two hours
behind, with leases of two seconds. Lease times come from the database's clock, so no worker
takes another's trial for stale and the budget is exact. (A clock is skewed in Python:
`time.time` of that worker's processes is shifted by a sitecustomize module.)"""

from __future__ import annotations

import os
import time
from pathlib import Path

import hypersearch as hs
from faults.harness import check_invariants, finish, start_worker
from hypersearch.trial import TrialState

SKEW = 7200.0
SITECUSTOMIZE = '''
import os, time
_real = time.time
_shift = float(os.environ["CLOCK_SHIFT"])
time.time = lambda: _real() + _shift
'''


def test_workers_with_skewed_clocks_never_steal_each_others_trials(
    url: str, workdir: Path
) -> None:
    skewed = workdir / "skewed"
    skewed.mkdir()
    (skewed / "sitecustomize.py").write_text(SITECUSTOMIZE)
    budget = 40
    hs.create_study({"x": hs.uniform(0, 1)}, name="skew", storage=url, max_trials=budget,
                    objective="fobj:clock", strategy="random", lease_seconds=2.0, seed=6)
    workers = [
        # each may run 14 of the 40 (so each runs some, however slowly it starts)
        start_worker(url, "skew", workdir, "--slots", "2", "--max-trials-here", "14",
                     env={"PYTHONPATH": os.pathsep.join(filter(None, (
                         str(skewed), str(workdir), os.environ.get("PYTHONPATH")))),
                          "CLOCK_SHIFT": str(shift)})
        for shift in (SKEW, -SKEW, 0.0)
    ]
    ended = finish(workers)
    assert [code for code, _ in ended] == [0, 0, 0], [err[-2000:] for _, err in ended]
    trials = check_invariants(url, "skew", budget)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * budget, "nothing went stale"
    offsets = {round((t.metrics["clock"] - time.time()) / SKEW) for t in trials}
    assert {1, -1} <= offsets, f"both skewed workers ran trials (clock offsets {offsets})"
