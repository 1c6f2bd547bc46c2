"""R10 and R4: the database goes away under running workers (a private PostgreSQL restarted
mid-study; every client connection dropped) and comes back. Workers back off and go on; trials
running meanwhile keep running and their results land once it is back; no trial fails for it
and none is written twice."""

from __future__ import annotations

import time
from pathlib import Path

import hypersearch as hs
from faults.harness import PrivatePostgres, Watch, check_invariants, finish, start_worker
from hypersearch.trial import TrialState


def _wait_for_trials(url: str, name: str, at_least: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        study = hs.load_study(name, url)
        done = study.summary().counts.get(TrialState.COMPLETE.value, 0)
        study.close()
        if done >= at_least:
            return
        time.sleep(0.2)
    raise AssertionError(f"fewer than {at_least} trials completed in {seconds} s")


def test_postgres_restarts_and_dropped_connections_cost_no_trial(
    private_postgres: PrivatePostgres, workdir: Path
) -> None:
    url = private_postgres.url
    budget = 60
    hs.create_study({"x": hs.uniform(0, 1)}, name="outage", storage=url, max_trials=budget,
                    objective="fobj:steady", strategy="random", lease_seconds=30.0, seed=4)
    watch = Watch(url, "outage")
    workers = [start_worker(url, "outage", workdir, "--idle-exit", "3") for _ in range(3)]
    _wait_for_trials(url, "outage", 8)
    watch.look()
    private_postgres.restart(down_seconds=3.0)  # R10: the server is gone for 3 s
    _wait_for_trials(url, "outage", 25)
    watch.look()
    assert private_postgres.terminate_clients() > 0  # R4: every connection dropped at once
    _wait_for_trials(url, "outage", 35)
    private_postgres.restart(down_seconds=1.0)
    ended = finish(workers)
    assert [code for code, _ in ended] == [0, 0, 0], [err[-2000:] for _, err in ended]
    assert any("unreachable" in err or "retrying" in err for _, err in ended), "backoff logged"
    trials = check_invariants(url, "outage", budget, watch)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * budget, [
        (t.number, t.failure_reason, t.failure_detail) for t in trials if t.failure_reason]


def test_an_outage_longer_than_the_storage_patience_holds_results_until_it_ends(
    private_postgres: PrivatePostgres, workdir: Path
) -> None:
    """Each storage call waits only 1 s here (HYPERSEARCH_STORAGE_PATIENCE): the 8 s outage
    outlasts it many times. The workers hold finished trials, claim nothing, keep running
    what runs, and write the held results once the server is back: nothing lost, nothing twice."""
    url = private_postgres.url
    budget = 40
    hs.create_study({"x": hs.uniform(0, 1)}, name="long", storage=url, max_trials=budget,
                    objective="fobj:steady", strategy="random", lease_seconds=60.0, seed=5)
    env = {"HYPERSEARCH_STORAGE_PATIENCE": "1"}
    workers = [start_worker(url, "long", workdir, "--idle-exit", "3", "--slots", "2", env=env)
               for _ in range(2)]
    _wait_for_trials(url, "long", 6)
    private_postgres.restart(down_seconds=8.0)
    ended = finish(workers)
    assert [code for code, _ in ended] == [0, 0], [err[-3000:] for _, err in ended]
    assert any("holding" in err for _, err in ended), [err[-2000:] for _, err in ended]
    assert any("answers again" in err for _, err in ended)
    trials = check_invariants(url, "long", budget)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * budget, [
        (t.number, t.failure_reason, t.failure_detail) for t in trials if t.failure_reason]
