"""The dashboard's second slice: live markers, chart data, export, files, notes and the
controls (token, read-only), on SQLite, and one control driving a running search."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from trial_setup import claim_with

import hypersearch as hs
from hypersearch.dashboard import create_app
from hypersearch.trial import Outcome, TrialState

OWNER = "test-owner"
BASE = "http://127.0.0.1:8080"


def _claim(store: Any, study: Any, params: dict[str, Any]) -> Any:
    return claim_with(store, study, params, OWNER)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def study(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """20 finished trials where x decides the value and y is noise, one running; a command
    output folder for trial 0. On SQLite and on PostgreSQL."""
    monkeypatch.chdir(tmp_path)
    url = (f"sqlite:///{tmp_path / 'd.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_url"))
    space = {"x": hs.uniform(0, 1), "y": hs.uniform(0, 1), "opt": hs.choice(["adam", "sgd"])}
    study = hs.create_study(space, storage=url, name="s", strategy="random", seed=3)
    store = study.storage
    for i in range(20):
        x, y = i / 20, (i * 7 % 20) / 20
        trial = _claim(store, study, {"x": x, "y": y, "opt": "sgd" if i % 2 else "adam"})
        for step in range(5):
            store.report(trial.id, OWNER, trial.lease_epoch, step, {"loss": x + 1 / (step + 1)})
        state = TrialState.PRUNED if i == 19 else TrialState.COMPLETE
        store.finish(trial.id, OWNER, trial.lease_epoch, Outcome(state, x * x, {"acc": 1 - x}))
    running = _claim(store, study, {"x": 0.5, "y": 0.5, "opt": "adam"})
    study._running = running  # type: ignore[attr-defined]
    out = tmp_path / "hypersearch-runs" / "s" / "0"
    (out / "sub").mkdir(parents=True)
    (out / "params.json").write_text('{"x": 0}')
    (out / "sub" / "model.txt").write_text("weights")
    (tmp_path / "secret.txt").write_text("top secret")
    (out / "link").symlink_to(tmp_path / "secret.txt")
    return study


def _client(study: Any, **options: Any) -> tuple[TestClient, str | None]:
    """The dashboard as `hypersearch dashboard` serves it: over the URL (read-only reads)."""
    app = create_app(study.storage.url, **options)
    return TestClient(app, base_url=BASE), app.state.token


def _get(client: TestClient, path: str, status: int = 200) -> Any:
    response = client.get("/api/v1/studies/s" + path)
    assert response.status_code == status, response.text
    return response.json()


def test_version_moves_on_finish_and_reports_on_report(study: Any) -> None:
    client, _ = _client(study)
    before = _get(client, "/version")
    assert before["running"] == 1
    running = study._running
    study.storage.report(running.id, OWNER, running.lease_epoch, 0, {"loss": 1.0})
    after = _get(client, "/version")
    assert after["version"] == before["version"] and after["reports"] > before["reports"]
    study.storage.finish(running.id, OWNER, running.lease_epoch, Outcome(TrialState.COMPLETE, 1))
    done = _get(client, "/version")
    assert done["version"] > after["version"] and done["running"] == 0


def test_chart_data(study: Any) -> None:
    client, _ = _client(study)
    history = _get(client, "/history")
    assert [p["number"] for p in history["points"]] == list(range(19)), "COMPLETE only"
    assert all(p["best"] == 0.0 for p in history["points"]), "trial 0 (x=0) is best"
    points = _get(client, "/points?min.x=0.5&max.value=0.5")
    assert [t["number"] for t in points["trials"]] == [10, 11, 12, 13, 14]
    assert points["total"] == 5
    kinds = {p["name"]: (p["kind"], p["options"]) for p in points["params"]}
    assert kinds == {"x": ("float", None), "y": ("float", None), "opt": ("choice", ["adam", "sgd"])}
    assert points["trials"][0]["params"]["opt"] == "adam"
    ranked = _get(client, "/importance")
    assert ranked["importance"][0]["name"] == "x", ranked
    assert abs(sum(r["importance"] for r in ranked["importance"]) - 1) < 1e-9
    assert "eta" in ranked["method"]
    timeline = _get(client, "/timeline")["trials"]
    assert len(timeline) == 21 and timeline[-1]["finished_at"] is None
    series = _get(client, "/series?metric=loss")
    assert series["metrics"] == ["loss"]
    assert {s["state"] for s in series["series"]} == {"COMPLETE", "PRUNED"}
    definition = _get(client, "/definition")
    assert definition["definition"]["settings"]["strategy"] == "random"
    assert _get(client, "/points?min.opt=1", 422)["error"]["message"].startswith("opt is a choice")
    assert "must be a number" in _get(client, "/trials?min.x=abc", 422)["error"]["message"]
    assert "cannot filter by 'zz'" in _get(client, "/points?max.zz=1", 422)["error"]["message"]


def test_export_follows_the_filter(study: Any) -> None:
    client, _ = _client(study)
    response = client.get("/api/v1/studies/s/export?format=csv&state=complete&max.x=0.2")
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["number"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert {"params.x", "params.opt", "metrics.acc", "value"} <= set(rows[0])
    as_json = client.get("/api/v1/studies/s/export?format=json&sort=value&order=desc").json()
    assert as_json[0]["number"] == 19 and len(as_json) == 21
    assert client.get("/api/v1/studies/s/export?format=xml").status_code == 422


def test_files_by_issued_id_only(study: Any) -> None:
    client, _ = _client(study)
    listing = _get(client, "/trials/0/files")
    assert [f["path"] for f in listing["files"]] == ["params.json", "sub/model.txt"], "no link"
    chosen = next(f for f in listing["files"] if f["path"] == "sub/model.txt")
    got = client.get(f"/api/v1/studies/s/trials/0/files/{chosen['id']}")
    assert got.status_code == 200 and got.content == b"weights"
    assert got.headers["content-type"] == "application/octet-stream"
    for bad in ("..%2F..%2Fsecret.txt", "sub%2Fmodel.txt", "link", "0" * 20):
        refused = client.get(f"/api/v1/studies/s/trials/0/files/{bad}")
        assert refused.status_code == 404 and b"top secret" not in refused.content, bad
    assert _get(client, "/trials/1/files") == {"root": None, "files": [], "more": False}


def test_controls_need_the_token(study: Any) -> None:
    client, token = _client(study)
    assert token, "a dashboard with controls makes its own token"
    assert client.get("/api/v1/studies/s").status_code == 200, "reads stay open on loopback"
    body = {"params": {"x": 0.3, "y": 0.1, "opt": "sgd"}}
    refused = client.post("/api/v1/studies/s/enqueue", json=body)
    assert refused.status_code == 401
    assert client.post("/api/v1/studies/s/stop").status_code == 401
    assert client.post("/api/v1/studies/s/notes").status_code in (401, 404, 405)
    auth = {"authorization": f"Bearer {token}"}
    queued = client.post("/api/v1/studies/s/enqueue", json=body, headers=auth)
    assert queued.status_code == 200 and queued.json()["number"] == 21
    assert study.trial(21).state is TrialState.WAITING
    wrong = client.post("/api/v1/studies/s/enqueue", json={"params": {"x": 7}}, headers=auth)
    assert wrong.status_code == 422 and "do not fit the space" in wrong.json()["error"]["message"]
    form = client.post("/api/v1/studies/s/budget", data={"max_trials": "40", "max_time": ""},
                       headers=auth)
    assert form.status_code == 200, form.text
    assert hs.load_study("s", study.storage).definition.max_trials == 40
    bad = client.post("/api/v1/studies/s/budget", json={"max_trials": 2.5}, headers=auth)
    assert bad.status_code == 422 and "whole number" in bad.json()["error"]["message"]
    note = client.post("/api/v1/studies/s/trials/3/notes", json={"text": "<b>odd</b>"},
                       headers=auth)
    assert note.status_code == 200
    assert _get(client, "/trials/3/notes")["notes"][0]["text"] == "<b>odd</b>"
    assert [t["note"] for t in _get(client, "/trials?limit=5")["trials"]] == [
        None, None, None, "<b>odd</b>", None], "the table's note column: one query a page"
    assert client.post("/api/v1/studies/s/trials/3/stop", headers=auth).status_code == 422
    assert client.post("/api/v1/studies/s/trials/99/stop", headers=auth).status_code == 404
    assert client.post("/api/v1/studies/s/stop", headers=auth).status_code == 200
    assert hs.load_study("s", study.storage).stop_requested()
    login = client.get(f"/login?token={token}", follow_redirects=False)
    assert login.status_code == 303 and "hs_token" in login.headers["set-cookie"]
    assert client.get("/login?token=wrong", follow_redirects=False).status_code == 401


def test_read_only_dashboard_refuses_controls(study: Any) -> None:
    client, token = _client(study, read_only=True)
    assert token is None
    response = client.post("/api/v1/studies/s/stop")
    assert response.status_code == 405 and "read-only" in response.json()["error"]["message"]
    assert not hs.load_study("s", study.storage).stop_requested()


def test_stopping_one_trial_of_a_running_search(tmp_path: Path) -> None:
    """The control reaches the worker through storage: the trial ends PRUNED at its next
    report with its curve kept, the others go on."""
    url = f"sqlite:///{tmp_path / 'live.db'}"
    started = threading.Event()

    def objective(params: dict[str, Any], trial: Any) -> float:
        for step in range(400 if trial.number == 0 else 3):
            started.set()
            if trial.report(step, loss=1.0 / (step + 1)) is hs.Decision.STOP:
                raise hs.TrialPruned()
            time.sleep(0.01)
        return params["x"]

    study = hs.create_study({"x": hs.uniform(0, 1)}, storage=url, name="live",
                            strategy="random", seed=0)
    runner = threading.Thread(target=study.optimize, args=(objective,),
                              kwargs={"max_trials": 3}, daemon=True)
    runner.start()
    assert started.wait(10)
    client, token = _client(study)
    asked = client.post("/api/v1/studies/live/trials/0/stop",
                        headers={"authorization": f"Bearer {token}"})
    assert asked.status_code == 200, asked.text
    runner.join(30)
    assert not runner.is_alive()
    first = hs.load_study("live", url).trial(0)
    assert first.state is TrialState.PRUNED and "asked to stop" in (first.failure_detail or "")
    curve = json.loads(client.get("/api/v1/studies/live/series?trials=0&metric=loss").text)["series"][0]
    assert 1 <= len(curve["steps"]) < 400
    assert [t.state for t in hs.load_study("live", url).trials[1:]] == [TrialState.COMPLETE] * 2


def test_minimize_with_dashboard_serves_while_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seen: list[Any] = []

    def objective(params: dict[str, Any]) -> float:
        if not seen:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/studies/live/version") as r:
                seen.append(json.loads(r.read()))
        return params["x"]

    hs.minimize(objective, {"x": hs.uniform(0, 1)}, max_trials=3, name="live",
                storage=f"sqlite:///{tmp_path / 'm.db'}", dashboard=port, verbose=False)
    assert seen and seen[0]["running"] == 1, "the page saw the running trial"
    printed = capsys.readouterr().err
    assert f"hypersearch dashboard on http://127.0.0.1:{port}/" in printed
    assert "log in with: " in printed
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)  # stopped with the search
    with pytest.raises(hs.HypersearchError, match="dashboard= is True or a port"):
        hs.minimize(objective, {"x": hs.uniform(0, 1)}, max_trials=1, dashboard=-3)
