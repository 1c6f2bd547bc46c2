"""The decision channel of shell-command trials: `hypersearch.client.listen / decision /
should_stop`, the decision file the command executor writes, and the grace period a listening
command gets to stop by itself (no framework needed)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

import hypersearch as hs
from hypersearch import client
from hypersearch.execution.metric_lines import client_listens
from hypersearch.trial import TrialState

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


@pytest.fixture(autouse=True)
def _no_channel(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (client.REPORT_FD_ENV, client.TRIAL_ENV, client.DECISION_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(client, "_LISTENING", set())
    monkeypatch.setattr(client, "_SEEN", [None, "CONTINUE"])


# -- the client side ------------------------------------------------------------------------------


def test_outside_a_trial_the_decision_is_continue_and_listen_prints_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client.listen()
    assert client.decision() == "CONTINUE" and client.should_stop() is False
    assert capsys.readouterr().out == ""


def test_decision_file_is_read_when_it_appears_and_listen_is_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "decision.json"
    monkeypatch.setenv(client.DECISION_FILE_ENV, str(path))
    assert client.should_stop() is False  # absent: go on
    assert client.should_stop() is False
    assert capsys.readouterr().out == '@hypersearch {"listens": true}\n'  # once per process
    assert client_listens(client.LISTEN_LINE)
    path.write_text(json.dumps({"decision": "STOP", "reason": "rung 1", "step": 3}))
    assert client.decision() == "STOP" and client.should_stop() is True
    path.write_text(json.dumps({"decision": "pause"}))
    os.utime(path, ns=(1, 1))  # another stat: read again
    assert client.decision() == "PAUSE"
    path.write_text("[1, 2]")  # not a decision hypersearch writes: still means "end now"
    os.utime(path, ns=(2, 2))
    assert client.decision() == "STOP"


def test_inside_a_python_objective_the_client_asks_the_trial() -> None:
    seen: list[tuple[str, bool]] = []

    def objective(params: dict[str, float], trial: hs.Trial) -> float:
        for step in range(1, 10):
            client.report(step, loss=10.0 + step)
            seen.append((client.decision(), client.should_stop()))
            if client.should_stop():
                raise hs.TrialPruned()
        return 0.0

    study = hs.minimize(objective, {"x": hs.uniform(0, 1)}, max_trials=1, storage="memory",
                        scheduler="threshold", scheduler_options={"upper": 5.0,
                        "n_warmup_steps": 3}, verbose=False)  # fmt: skip
    assert study.trials[0].state is TrialState.PRUNED
    assert seen == [("CONTINUE", False), ("CONTINUE", False), ("STOP", True)]


def test_the_readme_documents_the_channel() -> None:
    readme = (ROOT / "README.md").read_text()
    for text in ("HYPERSEARCH_DECISION_FILE", "client.should_stop()", '"listens": true'):
        assert text in readme, text
    doc = client.__doc__ or ""
    assert "HYPERSEARCH_DECISION_FILE" in doc and '{"listens": true}' in doc


# -- the executor side ------------------------------------------------------------------------------

LISTENER = """
    import json, os, signal, sys, time
    from hypersearch import client
    out = os.environ["HYPERSEARCH_OUTPUT_DIR"]
    def on_term(*_):
        open(os.path.join(out, "marker.txt"), "w").write("SIGTERM")
        sys.exit(143)
    signal.signal(signal.SIGTERM, on_term)
    client.listen()
    for epoch in range(1, 200):
        client.report(step=epoch, loss=10.0 + epoch)
        time.sleep(0.2)  # an epoch's work
        if client.should_stop() and STOPS:
            with open(os.environ["HYPERSEARCH_DECISION_FILE"]) as f:
                told = json.load(f)
            open(os.path.join(out, "marker.txt"), "w").write(
                f"stopped cleanly at epoch {epoch}: {told['decision']}")
            sys.exit(0)
    """


def run_listener(tmp_path: Path, stops: bool, grace: float) -> tuple[hs.Study, hs.FrozenTrial]:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(LISTENER).replace("STOPS", str(stops)))
    study = hs.create_study({"x": hs.choice([1])}, storage=f"sqlite:///{tmp_path}/c.db", name="c",
                            scheduler="threshold", scheduler_options={"upper": 5.0,
                            "n_warmup_steps": 3})  # fmt: skip
    command = hs.Command([PY, str(path), ":x:"], grace=grace, output_dir=str(tmp_path / "runs"))
    study.optimize(command, max_trials=1, verbose=False)
    return study, study.trials[0]


def test_a_listening_command_stops_by_itself_and_is_pruned_with_its_curve(
    tmp_path: Path,
) -> None:
    start = time.monotonic()
    study, trial = run_listener(tmp_path, stops=True, grace=60)
    assert time.monotonic() - start < 50  # it did not wait for the SIGTERM
    assert trial.state is TrialState.PRUNED, trial
    assert "exited by itself (code 0)" in (trial.failure_detail or ""), trial.failure_detail
    marker = (tmp_path / "runs" / "c" / "0" / "marker.txt").read_text()
    curve = [(p.step, p.value) for p in study.storage.get_metrics(trial.id) if p.name == "loss"]
    steps = [step for step, _ in curve]
    # STOP answers step 3; a loaded machine may let the script report once more first
    assert steps[:3] == [1, 2, 3] and len(steps) <= 5, steps
    assert marker == f"stopped cleanly at epoch {steps[-1]}: STOP", marker
    assert trial.value == curve[-1][1]


def test_a_listening_command_that_goes_on_gets_sigterm_after_the_grace(tmp_path: Path) -> None:
    start = time.monotonic()
    _, trial = run_listener(tmp_path, stops=False, grace=1.0)
    elapsed = time.monotonic() - start
    assert trial.state is TrialState.PRUNED, trial
    assert "exited by itself" not in (trial.failure_detail or "")
    assert (tmp_path / "runs" / "c" / "0" / "marker.txt").read_text() == "SIGTERM"
    assert elapsed < 30


def test_a_command_that_does_not_listen_is_terminated_at_once(tmp_path: Path) -> None:
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent("""
        import os, sys, time
        for epoch in range(1, 200):
            print(f"epoch {epoch} loss={10 + epoch}", flush=True)
            time.sleep(0.05)
        """))  # fmt: skip
    study = hs.create_study({"x": hs.choice([1])}, storage=f"sqlite:///{tmp_path}/c.db", name="c",
                            scheduler="threshold", scheduler_options={"upper": 5.0})  # fmt: skip
    start = time.monotonic()
    command = hs.Command([PY, str(path), ":x:"], grace=60, output_dir=str(tmp_path / "runs"))
    study.optimize(command, max_trials=1, verbose=False)
    trial = study.trials[0]
    assert trial.state is TrialState.PRUNED and time.monotonic() - start < 30
    decision = json.loads(
        (tmp_path / "runs" / "c" / "0" / ".hypersearch-decision.json").read_text()
    )
    assert decision["decision"] == "STOP" and decision["step"] == 1 and decision["reason"]


def test_a_command_reporting_through_the_client_is_not_read_twice_from_its_progress_lines(
    tmp_path: Path,
) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from hypersearch.client import report
        for epoch in range(1, 4):
            report(step=epoch, val_loss=1.0 / epoch)
            time.sleep(0.05)  # the report channel is read before the progress line
            print(f"Epoch {epoch}/3 - loss: 0.5 - val_loss: {1.0 / epoch:.4f}", flush=True)
    """))
    study = hs.minimize(
        hs.Command([PY, str(script)], metric="val_loss", output_dir=str(tmp_path / "runs")),
        {"x": hs.uniform(0, 1)}, storage="memory", max_trials=1,
    )  # fmt: skip
    (trial,) = study.trials
    points = [(p.step, p.value) for p in study.storage.get_metrics(trial.id) if p.name == "val_loss"]  # type: ignore[arg-type]
    assert points == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    assert not [p for p in study.storage.get_metrics(trial.id) if p.name == "loss"]  # type: ignore[arg-type]
