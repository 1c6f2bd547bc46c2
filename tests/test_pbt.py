"""Population Based Training: explore stays inside the space, decisions on a simulated
population, lineage stored and shown, checkpoints handed over whole (even when the copier is
killed mid-copy), and the same for Python objectives, worker processes and shell commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import hypersearch as hs
from hypersearch.cli.main import cli
from hypersearch.execution.checkpoints import (
    MANIFEST,
    CheckpointError,
    CheckpointLayout,
    copy_atomically,
    verify,
)
from hypersearch.schedulers import PBT, SchedulerError, make_scheduler
from hypersearch.schedulers.pbt import perturb
from hypersearch.space import Choice, Float, Integer
from hypersearch.trial import Decision, TrialState
from tests import pbt_problem

HERE = Path(__file__).parent


# -- explore ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dist", "value", "factor", "expected"),
    [
        (Float(0.0, 1.0), 0.5, 1.2, 0.6),
        (Float(0.0, 1.0), 0.9, 1.2, 1.0),  # clipped to the bound
        (Float(1e-4, 1.0, log=True), 1e-3, 0.8, 8e-4),
        (Float(0.0, 1.0, q=0.1), 0.5, 1.2, 0.6),
        (Integer(1, 10), 5, 1.2, 6),
        (Integer(1, 10), 2, 1.2, 3),  # round(2.4) is 2 again: one step up
        (Integer(1, 10), 1, 0.8, 1),  # nothing below the bound
        (Choice(["a", "b", "c"]), 1, 1.2, 2),
        (Choice(["a", "b", "c"]), 0, 0.8, 0),
    ],
)
def test_perturb_multiplies_and_stays_inside(
    dist: Any, value: Any, factor: float, expected: Any
) -> None:
    got = perturb(dist, value, factor)
    assert got == pytest.approx(expected)
    assert dist.contains(got)


def test_explore_stays_in_the_space_and_respects_mutations_and_branches() -> None:
    space = hs.Space(
        {
            "lr": hs.loguniform(1e-5, 1.0),
            "layers": hs.integer(1, 8),
            "opt": hs.choice(["adam", {"sgd": {"momentum": hs.uniform(0.0, 0.99)}}]),
        }
    )
    rng = np.random.default_rng(0)
    pbt = PBT(resample_probability=0.5)
    donor = space.sample(rng)
    for _ in range(300):
        explored = pbt.explore(space, donor, rng)
        assert space.validate(explored) == explored
    frozen = PBT(mutations=["lr"], resample_probability=0.0)
    for _ in range(50):
        explored = frozen.explore(space, donor, rng)
        assert {k: v for k, v in explored.items() if k != "lr"} == {
            k: v for k, v in donor.items() if k != "lr"
        }
        assert explored["lr"] in (
            pytest.approx(donor["lr"] * 0.8),
            pytest.approx(donor["lr"] * 1.2),
        )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"population_size": 1}, "population_size must be an integer >= 2"),
        ({"quantile_fraction": 0.7}, r"quantile_fraction must be a number in \[0, 0.5\]"),
        ({"quantile_fraction": 0}, "quantile_fraction must be above 0"),
        ({"perturbation_factors": "0.8"}, "perturbation_factors must be a list"),
        ({"perturbation_factors": []}, "must not be empty"),
        ({"mutations": "lr"}, "mutations must be a list of parameter names"),
        ({"interval": 3}, "unknown option 'interval'"),
    ],
)
def test_bad_pbt_options_say_what_is_wrong(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SchedulerError, match=message):
        make_scheduler("pbt", options)


# -- a simulated population (ask/tell, one epoch per trial in turn) ------------------------------


def run_population(study: hs.Study, population: int) -> None:
    """`population` trials at once, advanced one epoch each in turn; a stopped trial's place is
    taken by the next asked one (its successor, when PBT queued one)."""
    live: dict[int, list[Any]] = {}

    def start() -> None:
        trial = study.ask()
        skill, epoch = pbt_problem.load(trial.restore_from)
        live[trial.number] = [trial, skill, epoch]

    for _ in range(population):
        start()
    while live:
        for number in list(live):
            trial, skill, epoch = live[number]
            skill += pbt_problem.gain(trial.params["lr"], epoch)
            epoch += 1
            pbt_problem.save(trial.checkpoint_dir, skill, epoch)
            live[number] = [trial, skill, epoch]
            decision = trial.report(epoch, loss=pbt_problem.loss_of(skill))
            if decision is not Decision.CONTINUE:
                study.tell(trial, state="pruned")
                del live[number]
                start()
            elif epoch >= pbt_problem.EPOCHS:
                study.tell(trial, pbt_problem.loss_of(skill))
                del live[number]


def pbt_study(tmp_path: Path, **options: Any) -> hs.Study:
    return hs.create_study(
        {"lr": hs.loguniform(1e-4, 1.0)}, storage="memory", seed=3, strategy="random",
        scheduler="pbt", checkpoint_dir=str(tmp_path / "ck"),
        scheduler_options={"population_size": 6, "perturbation_interval": 4, **options},
    )  # fmt: skip


def test_the_bottom_trials_continue_a_top_trials_checkpoint_with_explored_parameters(
    tmp_path: Path,
) -> None:
    study = pbt_study(tmp_path)
    run_population(study, 6)
    trials = {t.number: t for t in study.trials}
    successors = [t for t in trials.values() if t.lineage]
    assert len(successors) >= 5, "every perturbation step replaces the bottom trial"
    for successor in successors:
        lineage = successor.lineage
        assert lineage is not None
        stopped, donor = trials[lineage["replaces"]], trials[lineage["parent"]]
        assert stopped.state is TrialState.PRUNED
        assert f"(trial {successor.number})" in (stopped.failure_detail or "")
        step = lineage["step"]
        assert step % 4 == 0
        # the stopped trial was the worst of the population at that step; the donor among the
        # best, and running then
        assert (donor.lineage or {}).get("step", 0) <= step
        assert set(lineage["changed"]) == {"lr"}
        old, new = lineage["changed"]["lr"]
        assert old == pytest.approx(donor.flat_params["lr"])
        assert new == pytest.approx(successor.flat_params["lr"])
        # it started from the donor's checkpoint, not from scratch
        copy = tmp_path / "ck" / study.name / lineage["restore"]
        verify(copy)
        assert pbt_problem.load(str(copy))[1] >= step
    # every trial ran to the last epoch or was replaced: nothing is left waiting
    assert not study.get_trials(states=["WAITING"])
    # six trials started afresh; after them only successors start
    assert sum(1 for t in trials.values() if t.lineage is None) == 6
    with pytest.raises(hs.StudyExhausted, match="pbt population of 6 trials has started"):
        study.ask()


def test_pbt_beats_the_same_population_without_it(tmp_path: Path) -> None:
    with_pbt = pbt_study(tmp_path / "a")
    run_population(with_pbt, 6)
    without = hs.create_study(
        {"lr": hs.loguniform(1e-4, 1.0)}, storage="memory", seed=3, strategy="random",
        checkpoint_dir=str(tmp_path / "b"),
    )
    run_population(without, 6)  # the same six first configurations, trained to the end
    assert with_pbt.best_value < without.best_value


def test_no_checkpoint_means_no_exploit_and_a_warning(tmp_path: Path, caplog: Any) -> None:
    study = pbt_study(tmp_path)
    trials = [study.ask() for _ in range(6)]
    decisions = []
    for epoch in range(1, 9):
        for trial in trials:  # reports without saving anything
            decisions.append(trial.report(epoch, loss=float(trial.number)))
    assert set(decisions) == {Decision.CONTINUE}
    assert "saved nothing in its checkpoint folder" in caplog.text


# -- checkpoints are handed over whole -----------------------------------------------------------


def test_copy_is_whole_or_absent_and_a_damaged_copy_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "donor"
    (source / "sub").mkdir(parents=True)
    (source / "model.bin").write_bytes(os.urandom(4096))
    (source / "sub" / "opt.bin").write_bytes(os.urandom(100))
    target = tmp_path / "copy"
    assert copy_atomically(source, target)
    verify(target)
    assert (target / "sub" / "opt.bin").read_bytes() == (source / "sub" / "opt.bin").read_bytes()
    assert not copy_atomically(tmp_path / "empty", tmp_path / "none")
    assert not (tmp_path / "none").exists()
    with (target / "model.bin").open("r+b") as f:
        f.write(b"\0" * 16)
    with pytest.raises(CheckpointError, match="fails its checksum"):
        verify(target)
    (target / MANIFEST).unlink()
    with pytest.raises(CheckpointError, match="no readable manifest"):
        verify(target)


COPIER = """
import sys
from pathlib import Path
from hypersearch.execution.checkpoints import copy_atomically
print("go", flush=True)
copy_atomically(Path(sys.argv[1]), Path(sys.argv[2]))
print("done", flush=True)
"""


def test_a_copier_killed_mid_copy_never_leaves_a_partial_checkpoint(tmp_path: Path) -> None:
    source = tmp_path / "donor"
    source.mkdir()
    for i in range(60):
        (source / f"shard-{i}.bin").write_bytes(os.urandom(64 * 1024))
    caught_mid_copy = 0
    (tmp_path / "snapshots").mkdir()
    for attempt in range(12):
        target = tmp_path / "snapshots" / f"copy-{attempt}"
        process = subprocess.Popen(
            [sys.executable, "-c", COPIER, str(source), str(target)],
            stdout=subprocess.PIPE,
            cwd=HERE.parent,
        )
        assert process.stdout is not None and process.stdout.readline() == b"go\n"
        time.sleep(0.002 * attempt)
        process.send_signal(signal.SIGKILL)
        process.wait()
        leftovers = [
            p for p in target.parent.iterdir() if p.name.startswith(f".tmp-copy-{attempt}-")
        ]
        if target.exists():
            verify(target)  # a copy under its final name is always whole
        else:
            caught_mid_copy += bool(leftovers)
    assert caught_mid_copy >= 1, "no kill landed mid-copy; the test proved nothing"


def test_a_damaged_restore_copy_fails_its_trial_before_the_objective_runs(tmp_path: Path) -> None:
    study = pbt_study(tmp_path)
    layout: CheckpointLayout = study.checkpoints()
    donor = Path(layout.trial_dir(0))
    donor.mkdir(parents=True)
    (donor / "state.json").write_text('{"skill": 1.0, "epoch": 4}')
    name = layout.snapshot(0, 4, 1)
    assert name is not None
    (Path(layout.root) / name / "state.json").write_text('{"skill": 9.0, "epoch": 4}')
    study.storage.enqueue(study.id, {"lr": 0.01}, {"parent": 0, "step": 4, "replaces": 1,
                                                    "changed": {}, "restore": name})  # fmt: skip
    with pytest.raises(hs.HypersearchError, match="fails its checksum"):
        study.ask()
    (failed,) = study.get_trials(states=["FAILED"])
    assert failed.failure_reason == "infrastructure"


# -- end to end: worker processes, the CLI and shell commands ------------------------------------


def test_pbt_in_worker_processes_with_lineage_shown_by_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pbt.db'}"
    study = hs.minimize(
        pbt_problem.objective, {"lr": hs.loguniform(1e-4, 1.0)}, storage=url, name="pbt",
        strategy="random", seed=1, max_trials=12, n_jobs=4, checkpoint_dir=str(tmp_path / "ck"),
        scheduler="pbt", scheduler_options={"population_size": 4, "perturbation_interval": 4},
    )  # fmt: skip
    trials = study.trials
    successors = [t for t in trials if t.lineage]
    assert successors, "four workers in lockstep-ish must exploit at least once"
    for successor in successors:
        assert successor.user_attrs["started_at_epoch"] >= successor.lineage["step"]  # type: ignore[index]
    child = successors[-1]
    runner = CliRunner()
    shown = runner.invoke(cli, ["lineage", "pbt", str(child.number), "--storage", url])
    assert shown.exit_code == 0, shown.output
    assert f"trial {child.lineage['parent']}" in shown.output  # type: ignore[index]
    assert "lr" in shown.output
    listed = runner.invoke(cli, ["trials", "pbt", "--storage", url])
    assert listed.exit_code == 0, listed.output
    missing = runner.invoke(cli, ["lineage", "pbt", "999", "--storage", url])
    assert missing.exit_code == 2 and "no trial 999" in missing.output


def test_a_command_gets_its_checkpoint_and_restore_folders(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent((HERE / "pbt_problem.py").read_text()))
    study = hs.minimize(
        hs.Command([sys.executable, str(script), ":lr:", ":checkpoint_dir:", ":restore_dir:"],
                   metric="loss", output_dir=str(tmp_path / "runs")),
        {"lr": hs.loguniform(1e-4, 1.0)}, storage="memory", strategy="random", seed=2,
        max_trials=10, n_jobs=4, checkpoint_dir=str(tmp_path / "ck"),
        scheduler="pbt", scheduler_options={"population_size": 4, "perturbation_interval": 4},
    )  # fmt: skip
    successors = [t for t in study.trials if t.lineage]
    assert successors
    for trial in successors:
        lines = study.storage.get_logs(trial.id, "stdout")  # type: ignore[arg-type]
        assert lines and lines[0].text.startswith("started at epoch ")
        assert lines[0].text != "started at epoch 0", "a successor starts from its restore copy"
    pruned = [t for t in study.trials if t.state is TrialState.PRUNED]
    assert all("pbt: rank" in (t.failure_detail or "") for t in pruned)
    assert json.loads((tmp_path / "ck" / study.name / "trial-0" / "state.json").read_text())
