"""The dashboard (first slice) and the read API it shares with the CLI: every route and page on
a SQLite study with trials in every state, paging and sorting, 4xx messages, the security
defaults (Host/Origin checks, bind refusal, token) and escaping of stored strings."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient
from trial_setup import claim_with

import hypersearch as hs
from hypersearch.cli.main import cli
from hypersearch.dashboard import DashboardError, create_app, read_token
from hypersearch.dashboard.openapi import document
from hypersearch.storage import get_storage
from hypersearch.study import read
from hypersearch.trial import Outcome, TrialState

NAME = "dash <i>&?#%"  # a name that needs escaping and URL quoting
EVIL = "<script>alert('x')</script>"
OWNER = "test-owner"
TOKEN = "s3cret-token-of-some-length"
N_COMPLETE = 30  # with one each of PRUNED, FAILED, RUNNING, WAITING and a lineage child


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _claim(store: Any, study: Any, params: dict[str, Any], lineage: Any = None) -> Any:
    return claim_with(store, study, params, OWNER, lineage)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite study: 30 complete trials with curves, one pruned, one failed with an evil
    detail, one running with output, one child with a lineage, one waiting."""
    path = tmp_path_factory.mktemp("dash") / "dash.db"
    url = f"sqlite:///{path}"
    space = {"lr": hs.loguniform(1e-4, 1.0), "act": hs.choice(["relu", EVIL])}
    study = hs.create_study(space, storage=url, name=NAME, strategy="random", seed=1,
                            message=EVIL)
    store = study.storage
    for i in range(N_COMPLETE):
        trial = _claim(store, study, {"lr": 10 ** (-4 + 4 * i / N_COMPLETE), "act": "relu"})
        for step in range(10):
            store.report(trial.id, OWNER, trial.lease_epoch, step, {"loss": 1.0 / (step + i + 1)})
        store.append_logs(trial.id, OWNER, trial.lease_epoch, "stdout",
                          [(k, f"epoch {k}") for k in range(5)])
        assert store.finish(trial.id, OWNER, trial.lease_epoch,
                            Outcome(TrialState.COMPLETE, (i * 7) % N_COMPLETE / 10))
    pruned = _claim(store, study, {"lr": 0.5, "act": "relu"})
    store.finish(pruned.id, OWNER, pruned.lease_epoch, Outcome(TrialState.PRUNED, 9.0))
    failed = _claim(store, study, {"lr": 0.5, "act": EVIL})
    store.append_logs(failed.id, OWNER, failed.lease_epoch, "stderr", [(0, f"boom {EVIL}")])
    store.finish(failed.id, OWNER, failed.lease_epoch,
                 Outcome(TrialState.FAILED, failure_reason="error", failure_detail=f"E {EVIL}"))
    child = _claim(store, study, {"lr": 0.25, "act": "relu"},
                   lineage={"parent": 0, "step": 5, "changed": {"lr": [0.0001, 0.25]}})
    store.finish(child.id, OWNER, child.lease_epoch, Outcome(TrialState.COMPLETE, 0.05))
    running = _claim(store, study, {"lr": 0.1, "act": "relu"})
    store.append_logs(running.id, OWNER, running.lease_epoch, "stdout",
                      [(k, f"line {k}") for k in range(50)])
    store.append_logs(running.id, OWNER, running.lease_epoch, "stderr", [(0, "warn")])
    study.enqueue({"lr": 0.2, "act": "relu"})  # stays WAITING
    hs.create_study({"x": hs.uniform(0, 1)}, storage=url, name="empty", strategy="random")
    return url


@pytest.fixture(scope="module")
def client(url: str) -> TestClient:
    return TestClient(create_app(url), base_url="http://127.0.0.1:8080")


def _api(client: TestClient, path: str, status: int = 200) -> Any:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


S = f"/api/v1/studies/{_quote(NAME)}"
P = f"/studies/{_quote(NAME)}"


# -- a tiny validator for the JSON Schema subset the OpenAPI document uses --------------------


def _valid(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    schemas = document()["components"]["schemas"]
    if "$ref" in schema:
        _valid(value, schemas[schema["$ref"].rsplit("/", 1)[1]], where)
        return
    for part in schema.get("allOf", []):
        _valid(value, part, where)
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else types
        python = {"object": dict, "array": list, "string": str, "boolean": bool,
                  "null": type(None), "integer": int, "number": (int, float)}
        ok = any(isinstance(value, python[t]) and not (t in ("integer", "number")
                 and isinstance(value, bool)) for t in names)
        assert ok, f"{where}: {value!r} is not {names}"
    if isinstance(value, dict):
        for key in schema.get("required", []):
            assert key in value, f"{where}: missing {key!r}"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                _valid(value[key], sub, f"{where}.{key}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, sub in value.items():
                _valid(sub, extra, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _valid(item, schema["items"], f"{where}[{i}]")


def _check_schema(client: TestClient, path: str, route: str) -> Any:
    body = _api(client, path)
    spec = document()["paths"][route]["get"]["responses"]["200"]
    _valid(body, spec["content"]["application/json"]["schema"])
    return body


# -- the JSON API -----------------------------------------------------------------------------


def test_studies_have_counts_by_state_and_best(client: TestClient) -> None:
    body = _check_schema(client, "/api/v1/studies", "/api/v1/studies")
    rows = {s["name"]: s for s in body["studies"]}
    row = rows[NAME]
    assert row["counts"] == {"WAITING": 1, "RUNNING": 1, "COMPLETE": N_COMPLETE + 1,
                             "PRUNED": 1, "FAILED": 1}
    assert row["running"] == 1 and row["message"] == EVIL  # JSON carries it raw
    assert (row["best_number"], row["best_value"]) == (0, 0.0)
    assert rows["empty"]["n_trials"] == 0 and rows["empty"]["best_value"] is None


def test_one_study_and_unknown_study_messages(client: TestClient) -> None:
    row = _check_schema(client, S, "/api/v1/studies/{name}")
    assert row["name"] == NAME and row["started_at"] <= row["last_finished_at"]
    missing = _api(client, "/api/v1/studies/nope", 404)
    assert missing["error"]["message"].startswith("no study named 'nope'")
    bad = _api(client, "/api/v1/studies/%20x", 422)
    assert "invalid study name" in bad["error"]["message"]
    assert _api(client, "/api/v1/nothing", 404)["error"]["message"] == "no such page: /api/v1/nothing"


def test_trials_page_sort_filter_and_paging(client: TestClient) -> None:
    route = "/api/v1/studies/{name}/trials"
    first = _check_schema(client, f"{S}/trials?limit=10", route)
    assert first["total"] == N_COMPLETE + 5 and [t["number"] for t in first["trials"]] == list(range(10))
    assert first["param_names"] == ["lr", "act"]
    last = _api(client, f"{S}/trials?limit=10&offset=30")
    assert [t["number"] for t in last["trials"]] == list(range(30, 35))
    assert _api(client, f"{S}/trials?offset=1000")["trials"] == []
    by_value = _api(client, f"{S}/trials?sort=value&limit=500")["trials"]
    values = [t["value"] for t in by_value]
    present = [v for v in values if v is not None]
    assert present == sorted(present) and values[-3:] == [None, None, None], "no value: last"
    down = [t["value"] for t in _api(client, f"{S}/trials?sort=value&order=desc&limit=500")["trials"]]
    assert down[0] == 9.0 and down[-1] is None
    lrs = [t["params"]["lr"] for t in _api(client, f"{S}/trials?sort=lr&limit=500")["trials"]]
    assert lrs == sorted(lrs), "parameters sort as numbers"
    shown = _api(client, f"{S}/trials?state=failed,pruned&sort=params.act")
    assert [(t["state"], t["params"]["act"]) for t in shown["trials"]] == [
        ("PRUNED", "relu"), ("FAILED", EVIL)], "a choice sorts in the order of its options"
    assert _api(client, f"{S}/trials?state=running&state=waiting")["total"] == 2


@pytest.mark.parametrize(("query", "message"), [
    ("sort=nope", "cannot sort by 'nope'; use one of: number, value, duration, state, lr, act"),
    ("limit=0", "limit must be from 1 to 500, got 0"),
    ("limit=501", "limit must be from 1 to 500, got 501"),
    ("limit=ten", "limit must be an integer, got 'ten'"),
    ("offset=-1", "offset must be at least 0, got -1"),
    ("order=up", "order must be 'asc' or 'desc', got 'up'"),
    ("state=done", "unknown state 'done'; use one of: waiting, running, complete, pruned, failed"),
])
def test_bad_trial_queries_answer_422(client: TestClient, query: str, message: str) -> None:
    assert _api(client, f"{S}/trials?{query}", 422)["error"] == {"status": 422, "message": message}


def test_one_trial(client: TestClient) -> None:
    route = "/api/v1/studies/{name}/trials/{number}"
    failed = _check_schema(client, f"{S}/trials/{N_COMPLETE + 1}", route)
    assert failed["state"] == "FAILED" and failed["failure_detail"] == f"E {EVIL}"
    assert failed["params"] == {"lr": 0.5, "act": EVIL}, "choices shown as their options"
    child = _api(client, f"{S}/trials/{N_COMPLETE + 2}")
    assert child["lineage"]["parent"] == 0
    assert "no trial 999" in _api(client, f"{S}/trials/999", 404)["error"]["message"]
    assert _api(client, f"{S}/trials/x", 422)["error"]["message"] == (
        "a trial number is an integer, got 'x'")


def test_logs_after_a_sequence_number(client: TestClient) -> None:
    route = "/api/v1/studies/{name}/trials/{number}/logs"
    running = N_COMPLETE + 3
    every = _check_schema(client, f"{S}/trials/{running}/logs", route)
    assert len(every["lines"]) == 51 and every["next_after"] == {"stderr": 0, "stdout": 49}
    assert not every["finished"] and not every["more"]
    later = _api(client, f"{S}/trials/{running}/logs?stream=stdout&after=45")
    assert [x["text"] for x in later["lines"]] == [f"line {k}" for k in range(46, 50)]
    few = _api(client, f"{S}/trials/{running}/logs?stream=stdout&limit=3")
    assert few["more"] and few["next_after"] == {"stdout": 2}
    assert _api(client, f"{S}/trials/0/logs")["finished"]
    assert "stream must be" in _api(client, f"{S}/trials/0/logs?stream=x", 422)["error"]["message"]
    assert "limit must be from 1 to 2000" in _api(
        client, f"{S}/trials/0/logs?limit=5000", 422)["error"]["message"]


def test_series_of_many_trials_downsampled(client: TestClient) -> None:
    route = "/api/v1/studies/{name}/series"
    body = _check_schema(client, f"{S}/series?metric=loss&trials=0,1,{N_COMPLETE + 1}", route)
    assert body["metric"] == "loss"
    assert [s["number"] for s in body["series"]] == [0, 1], "a trial without reports is absent"
    assert body["series"][1]["steps"] == list(range(10))
    assert body["series"][1]["values"][0] == 0.5
    small = _api(client, f"{S}/series?metric=loss&trials=0&max_points=3")["series"][0]
    assert small["steps"] == [0, 4, 9] or small["steps"] == [0, 5, 9]
    assert len(_api(client, f"{S}/series?metric=loss")["series"]) == N_COMPLETE
    assert _api(client, f"{S}/series?trials=a", 422)["error"]["message"].startswith("trials is")
    many = ",".join(str(i) for i in range(1001))
    assert "at most 1000 trials" in _api(client, f"{S}/series?trials={many}", 422)["error"]["message"]
    assert "max_points must be from 1 to 1000" in _api(
        client, f"{S}/series?max_points=0", 422)["error"]["message"]


def test_openapi_document_names_every_api_route(client: TestClient, url: str) -> None:
    served = _api(client, "/api/openapi.json")
    assert served["openapi"].startswith("3.") and served == document()
    app_routes = {r.path for r in create_app(url).routes if r.path.startswith("/api/v1")}
    assert set(served["paths"]) == app_routes


# -- the pages --------------------------------------------------------------------------------


def _page(client: TestClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe" not in csp, "scripts only from files"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    return response.text


def _no_raw_script(text: str) -> None:
    scripts = re.findall(r"<script[^>]*>", text.lower())
    assert all(re.fullmatch(r'<script src="/static/[\w./-]+" defer>', s) for s in scripts), scripts
    assert "&lt;script&gt;" in text


def test_studies_page_escapes_the_message(client: TestClient) -> None:
    text = _page(client, "/")
    _no_raw_script(text)
    assert f'href="{P}"' in text and "dash &lt;i&gt;&amp;?#%" in text
    assert 'href="/api/openapi.json"' in text


def test_study_page_table_sort_links_and_pager(client: TestClient) -> None:
    text = _page(client, P + "?limit=10")
    _no_raw_script(text)
    assert "trials 1–10 of 35" in text and 'rel="next"' in text and 'rel="prev"' not in text
    assert "sort=value&amp;order=asc" in text, "a column header sorts by it"
    page3 = _page(client, P + "?limit=10&offset=30&sort=number&order=desc")
    assert "trials 31–35 of 35" in page3 and 'rel="prev"' in page3
    assert 'data-chart="history"' in text, "the history is drawn from /history by plotly"
    failed = _page(client, P + "?state=failed")
    assert "FAILED" in failed and "trials 1–1 of 1" in failed
    assert "cannot sort by" in _page(client, P + "?sort=zzz", 422)
    assert "no study named" in _page(client, "/studies/nope", 404)


def test_trial_pages_show_failure_logs_metrics_lineage(client: TestClient) -> None:
    failed = _page(client, f"{P}/trials/{N_COMPLETE + 1}")
    _no_raw_script(failed)
    assert 'id="failure"' in failed and "E &lt;script&gt;" in failed
    assert "boom &lt;script&gt;" in failed and 'class="stderr"' in failed
    done = _page(client, f"{P}/trials/3")
    assert 'data-chart="trial-curves"' in done and "loss" in done and "epoch 4" in done
    assert 'id="lineage"' not in done
    child = _page(client, f"{P}/trials/{N_COMPLETE + 2}")
    assert 'id="lineage"' in child and f'href="{P}/trials/0"' in child
    assert "no trial 999" in _page(client, f"{P}/trials/999", 404)


# -- security defaults --------------------------------------------------------------------------


def test_host_header_of_another_name_is_refused(url: str) -> None:
    app = create_app(url)
    rebound = TestClient(app, base_url="http://evil.example:8080").get("/api/v1/studies")
    assert rebound.status_code == 421 and "DNS rebinding" in rebound.json()["error"]["message"]
    for host in ("localhost:8080", "127.0.0.1", "[::1]:8080"):
        assert TestClient(app).get("/", headers={"host": host}).status_code == 200, host


def test_cross_site_requests_refused_and_nothing_mutates(client: TestClient) -> None:
    evil = client.post("/api/v1/studies", headers={"origin": "http://evil.example"})
    assert evil.status_code == 403 and "cross-site" in evil.json()["error"]["message"]
    same = client.post("/api/v1/studies", headers={"origin": "http://127.0.0.1:8080"})
    assert same.status_code == 401 and "token" in same.json()["error"]["message"]
    auth = {"authorization": f"Bearer {client.app.state.token}"}  # type: ignore[attr-defined]
    assert client.delete(S, headers=auth).status_code == 405


def test_non_loopback_bind_needs_a_token(url: str, tmp_path: Path) -> None:
    with pytest.raises(DashboardError, match=re.escape("refusing to serve the dashboard on '0.0.0.0'")):
        create_app(url, host="0.0.0.0")
    runner = CliRunner()
    refused = runner.invoke(cli, ["dashboard", "--storage", url, "--host", "192.168.1.5"])
    assert refused.exit_code == 2 and "without a token" in refused.output
    short = tmp_path / "short"
    short.write_text("abc\n")
    with pytest.raises(DashboardError, match="use at least 16"):
        read_token(short)
    good = tmp_path / "token"
    good.write_text(TOKEN + "\n")
    assert read_token(good) == TOKEN


def test_token_guards_every_route_when_set(url: str) -> None:
    app = create_app(url, host="0.0.0.0", token=TOKEN)
    anyone = TestClient(app, base_url="http://myhost.lan:8080")
    assert anyone.get("/api/v1/studies").status_code == 401
    assert anyone.get("/", headers={"authorization": "Bearer wrong"}).status_code == 401
    ok = anyone.get("/api/v1/studies", headers={"authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    login = anyone.get(f"/login?token={TOKEN}", follow_redirects=False)
    assert login.status_code == 303 and "httponly" in login.headers["set-cookie"].lower()
    assert anyone.get("/").status_code == 200, "the cookie set by the login link"
    assert TestClient(app).get("/login?token=nope").status_code == 401


# -- the read API and the CLI on it -----------------------------------------------------------


def test_read_api_bounds(url: str) -> None:
    store = get_storage(url, create=False)
    with pytest.raises(read.ReadError, match="limit must be from 1 to 500"):
        read.trial_page(store, NAME, limit=read.MAX_PAGE + 1)
    assert len(read.trial_page(store, NAME, limit=read.MAX_PAGE).trials) == N_COMPLETE + 5
    with pytest.raises(hs.StudyNotFoundError):
        read.study_row(store, "nope")
    with pytest.raises(read.TrialNotFoundError):
        read.trial(store, NAME, 12345)
    assert read.downsample(list(range(1000)), 5) == [0, 250, 500, 749, 999]
    assert read.downsample([1, 2], 5) == [1, 2] and read.downsample([1, 2, 3], 1) == [3]
    points = read.history(store, NAME)
    assert len(points) == N_COMPLETE + 1 and points[0] == (0, 0.0, 0.0)
    assert all(best == 0.0 for _, _, best in points), "trial 0 is the best from the start"
    assert len(read.history(store, NAME, max_points=4)) == 4
    tail = read.trial_logs(store, NAME, N_COMPLETE + 3, limit=10, tail=True)
    assert tail.more and [x.text for x in tail.lines][-1] == "line 49" and len(tail.lines) == 10


def test_cli_reads_through_the_read_api(url: str) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["studies", "--storage", url])
    assert listed.exit_code == 0 and NAME in listed.output
    table = runner.invoke(cli, ["trials", NAME, "--storage", url, "--sort", "value", "--limit", "3"])
    assert table.exit_code == 0, table.output
    rows = [line.split()[0] for line in table.output.splitlines()[1:] if line.strip()]
    assert rows == ["0", str(N_COMPLETE + 2), "13"], "best first, the lineage child second"
    assert "from" in table.output.splitlines()[0], "a lineage column: trial 32 came from 0"
    bad = runner.invoke(cli, ["trials", NAME, "--storage", url, "--sort", "nope"])
    assert bad.exit_code == 2 and "--sort nope: cannot sort by 'nope'" in bad.output
    logs = runner.invoke(cli, ["logs", NAME, str(N_COMPLETE + 3), "--storage", url])
    assert logs.exit_code == 0 and "line 49" in logs.output and "warn" in logs.output


def test_import_hypersearch_does_not_import_the_web_stack() -> None:
    code = ("import sys, hypersearch, hypersearch.study.read; "
            "print(sorted(m for m in ('starlette', 'jinja2', 'uvicorn', 'httpx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dashboard_command_on_a_missing_database_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = CliRunner().invoke(cli, ["dashboard", "--storage", f"sqlite:///{missing}"])
    assert result.exit_code == 2 and "no database at" in result.output
    assert not missing.exists()
    assert "dashboard" in CliRunner().invoke(cli, ["--help"]).output
