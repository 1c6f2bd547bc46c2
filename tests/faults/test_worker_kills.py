"""R1, R2, R6, R7, R9: `kill -9` of workers at random moments (mid-trial, mid-write), with
workers starting and stopping all along, on one SQLite file and on PostgreSQL. Nothing is lost:
every trial of a killed worker is failed ``stale`` and re-run with its parameters, the budget is
exact, no finished trial changes, the database stays sound. The marked slow run makes ≥ 50
kills per backend (bench/RESULTS.md records one)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

import hypersearch as hs
from faults.harness import Watch, check_invariants, finish, start_worker


def kill_workers_at_random(url: str, workdir: Path, kills: int, budget: int, workers: int,
                           seed: int) -> dict[str, int]:
    hs.create_study({"x": hs.uniform(0, 1)}, name="kills", storage=url, max_trials=budget,
                    objective="fobj:steady", strategy="random", lease_seconds=2.0, seed=seed)
    rng = random.Random(seed)
    watch = Watch(url, "kills")
    alive = [start_worker(url, "kills", workdir, "--idle-exit", "4") for _ in range(workers)]
    everyone = list(alive)
    killed, deadline = 0, time.monotonic() + 400
    while killed < kills and time.monotonic() < deadline:
        time.sleep(rng.uniform(0.1, 0.7))
        running = watch.look()
        alive = [w for w in alive if w.poll() is None]
        if not alive:
            break  # the budget ran out before the kills did: the assertion below says so
        # Mostly a worker in the middle of a trial (a slow machine would otherwise spend the
        # kills on workers still starting up), sometimes any worker, whatever it is doing.
        busy = [w for w in alive if w.pid in running]
        if not busy and killed % 3 != 2:
            continue
        victim = rng.choice(busy if busy and killed % 3 != 2 else alive)
        victim.kill()  # SIGKILL: no goodbye, whatever it was doing
        victim.wait()
        killed += 1
        replacement = start_worker(url, "kills", workdir, "--idle-exit", "4")
        alive.append(replacement)
        everyone.append(replacement)
    ended = finish(everyone)
    assert all(code in (0, -9) for code, _ in ended), [e for c, e in ended if c not in (0, -9)]
    assert killed >= kills, f"only {killed} kills before the study ended; raise the budget"
    trials = check_invariants(url, "kills", budget, watch)
    stale = [t for t in trials if t.failure_reason == "stale"]
    assert stale, "the kills should have caught trials running"
    study = hs.load_study("kills", url)
    kept = sum(1 for t in stale for p in study.storage.get_metrics(t.id))  # type: ignore[arg-type]
    study.close()
    return {"kills": killed, "trials": len(trials), "stale": len(stale), "reports_kept": kept}


def test_killing_workers_at_random_loses_nothing(url: str, workdir: Path) -> None:
    kill_workers_at_random(url, workdir, kills=5, budget=80, workers=3, seed=1)


@pytest.mark.slow
def test_fifty_kills_per_backend(url: str, workdir: Path) -> None:
    found = kill_workers_at_random(url, workdir, kills=50, budget=1500, workers=4, seed=2)
    print(f"\n{url.split(':')[0]}: {found}")
    assert found["reports_kept"] > 0, "reports of killed trials stay stored"


@pytest.mark.slow
@pytest.mark.parametrize("backend, processes", [("sqlite", 32), ("postgres", 64)])
def test_many_processes_on_one_study_keep_the_exact_budget(
    backend: str, processes: int, workdir: Path, request: pytest.FixtureRequest
) -> None:
    """R6 (32 processes on one SQLite file) and R7 (64 workers on PostgreSQL): exact counts,
    no "database is locked" failure, no connection left open afterwards."""
    url = (f"sqlite:///{workdir}/hs.db" if backend == "sqlite"
           else str(request.getfixturevalue("postgres_url")))
    budget = 10 * processes
    hs.create_study({"x": hs.uniform(0, 1)}, name="many", storage=url, max_trials=budget,
                    objective="fobj:quick", strategy="random", seed=3)
    ended = finish([start_worker(url, "many", workdir) for _ in range(processes)], timeout=600)
    assert all(code == 0 for code, _ in ended), [err[-1000:] for c, err in ended if c]
    assert not any("locked" in err for _, err in ended)
    trials = check_invariants(url, "many", budget)
    assert all(t.state.value == "COMPLETE" for t in trials)
    if backend == "postgres":
        server = request.getfixturevalue("postgres_server")
        assert server.connections(url) == 0, "connections left open"


def test_a_grid_served_by_workers_killed_at_random_runs_each_point_once(
    url: str, workdir: Path
) -> None:
    """R8 under kills: every grid point ends COMPLETE exactly once; a point whose worker was
    killed is re-run (the same parameters), never handed out twice while it runs."""
    points = [round(0.05 * i, 2) for i in range(30)]
    hs.create_study({"x": hs.choice(points)}, name="grid", storage=url, objective="fobj:steady",
                    strategy="grid", lease_seconds=2.0)
    rng = random.Random(8)
    alive = [start_worker(url, "grid", workdir, "--idle-exit", "4") for _ in range(3)]
    everyone, killed = list(alive), 0
    while killed < 3:
        time.sleep(rng.uniform(0.3, 0.8))
        alive = [w for w in alive if w.poll() is None]
        if not alive:
            break
        victim = rng.choice(alive)
        victim.kill()
        victim.wait()
        killed += 1
        alive.append(start_worker(url, "grid", workdir, "--idle-exit", "4"))
        everyone.append(alive[-1])
    ended = finish(everyone)
    assert all(code in (0, -9) for code, _ in ended), [e for c, e in ended if c not in (0, -9)]
    trials = check_invariants(url, "grid", len(points))
    done = sorted(t.params["x"] for t in trials if t.state.value == "COMPLETE")
    assert done == points, "every grid point exactly once"
