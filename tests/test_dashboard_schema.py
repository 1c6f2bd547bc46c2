"""R21: schemathesis over the dashboard's own OpenAPI document (``/api/openapi.json``).

The app is built by `create_app` on a temporary SQLite study with trials in every state,
metrics, logs and an output folder, and driven in-process through the ASGI transport (no
network). Every operation of the served document is fuzzed, so a route added later is covered
without touching this file: no 5xx, every answer (status, content type, headers, body) as the
document says, inputs outside the document rejected; every mutating route refuses a request
without the token (401) and, with it, answers as documented. Deterministic (derandomized,
bounded examples per operation); the whole file runs in well under a minute.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.core.parameters import ParameterLocation
from starlette.routing import Route
from starlette.testclient import TestClient
from trial_setup import claim_with

import hypersearch as hs
from hypersearch.dashboard import create_app
from hypersearch.execution.folders import trial_output_dir
from hypersearch.storage import MemoryStorage
from hypersearch.trial import Outcome, TrialState

NAME = "fuzz <b>&"  # needs escaping and URL quoting
OWNER = "schema-owner"
N_COMPLETE = 6  # then one PRUNED, one FAILED, one RUNNING, one WAITING
N_TRIALS = N_COMPLETE + 4
EXAMPLES = 25  # per operation and mode; the document's bounds and enums keep this meaningful


def _claim(store: Any, study: Any, params: dict[str, Any]) -> Any:
    return claim_with(store, study, params, OWNER)


def build_study(folder: Path) -> str:
    """A SQLite study in `folder`: complete trials with curves and logs, one pruned, one failed,
    one running (reporting, with output), one waiting; files in the first trial's folder."""
    url = f"sqlite:///{folder / 'schema.db'}"
    runs = folder / "runs"
    space = {"lr": hs.loguniform(1e-4, 1.0), "act": hs.choice(["relu", "<tanh>"]),
             "layers": hs.integer(1, 4)}
    study = hs.create_study(space, storage=url, name=NAME, strategy="random", seed=3,
                            output_dir=str(runs), max_trials=100)
    store = study.storage
    for i in range(N_COMPLETE):
        trial = _claim(store, study, {"lr": 10 ** (-3 + i / 3), "act": "relu", "layers": 1 + i % 3})
        for step in range(5):
            store.report(trial.id, OWNER, trial.lease_epoch, step,
                         {"loss": 1.0 / (step + i + 1), "acc": step / 10})
        store.append_logs(trial.id, OWNER, trial.lease_epoch, "stdout",
                          [(k, f"epoch {k}") for k in range(3)])
        assert store.finish(trial.id, OWNER, trial.lease_epoch,
                            Outcome(TrialState.COMPLETE, (i * 5) % N_COMPLETE / 3))
    pruned = _claim(store, study, {"lr": 0.5, "act": "relu", "layers": 2})
    store.report(pruned.id, OWNER, pruned.lease_epoch, 0, {"loss": 3.0})
    store.finish(pruned.id, OWNER, pruned.lease_epoch, Outcome(TrialState.PRUNED, 3.0))
    failed = _claim(store, study, {"lr": 0.5, "act": "<tanh>", "layers": 3})
    store.append_logs(failed.id, OWNER, failed.lease_epoch, "stderr", [(0, "boom <b>")])
    store.finish(failed.id, OWNER, failed.lease_epoch,
                 Outcome(TrialState.FAILED, failure_reason="error", failure_detail="E <b>"))
    running = _claim(store, study, {"lr": 0.1, "act": "relu", "layers": 1})
    store.report(running.id, OWNER, running.lease_epoch, 0, {"loss": 0.7})
    store.append_logs(running.id, OWNER, running.lease_epoch, "stdout", [(0, "running")])
    study.enqueue({"lr": 0.2, "act": "relu", "layers": 2})  # stays WAITING
    first = Path(trial_output_dir(str(runs), NAME, 0))
    (first / "sub").mkdir(parents=True)
    (first / "model.txt").write_text("weights\n")
    (first / "sub" / "curve.csv").write_text("step,loss\n0,1.0\n")
    hs.create_study({"x": hs.uniform(0, 1)}, storage=url, name="empty", strategy="random")
    return url


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The app as ``hypersearch dashboard`` serves it by default: on loopback without a token
    file, so reads are open and the mutating routes need the token it made up."""
    # "testserver": the Host header the in-process transports send
    app = create_app(build_study(tmp_path_factory.mktemp("schema")), allowed_hosts=("testserver",))
    assert isinstance(app.state.token, str) and len(app.state.token) >= 16
    return app


@pytest.fixture(scope="module")
def auth(app: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.state.token}"}


CONFIG = SchemathesisConfig.from_dict({
    # unknown query arguments are ignored, as by any web app (a page may add a cache-buster)
    "generation": {"allow-extra-parameters": False, "deterministic": True},
    "phases": {"stateful": {"enabled": False}},  # no links between operations to follow
    "checks": {"positive_data_acceptance": {
        # 422 too: the document cannot rule out, e.g., a sort key naming no parameter of the
        # study; the answer must still be the documented error
        "expected-statuses": ["2xx", "401", "404", "422"],
    }},
})
# The document as an app serves it (it does not depend on the storage, so an empty one serves
# it at collection time; schemathesis's fixture-based loader does not work with pytest 9).
schema = schemathesis.openapi.from_asgi(
    "/api/openapi.json", create_app(MemoryStorage(), allowed_hosts=("testserver",)),
    config=CONFIG,
)
# schemathesis's items of one test share a node id, which pytest-xdist runs once: this module
# runs in the serial pass of the test command (README, "The two commands").
pytestmark = pytest.mark.serial
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


def _mutating(case: Any) -> bool:
    """A documented POST (not a GET operation's case sent with an undocumented method)."""
    return case.operation.method.upper() != "GET"


def _on_the_study(case: Any) -> None:
    """Point the case at the real study and trials, so the handlers behind the 404s run too
    (not a case whose path is the invalid part: it must stay invalid)."""
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.PATH):
        return
    if "name" in (case.path_parameters or {}):
        case.path_parameters["name"] = NAME
    number = (case.path_parameters or {}).get("number")
    if isinstance(number, int):
        case.path_parameters["number"] = number % N_TRIALS


@schema.parametrize()
@FUZZ
def test_every_operation_as_documented(case: Any, app: Any, auth: dict[str, str]) -> None:
    """Generated inputs anywhere (random names and numbers: mostly 404s and 422s)."""
    case.call_and_validate(headers=auth if _mutating(case) else None, app=app)


@schema.parametrize()
@FUZZ
def test_every_operation_on_the_real_study(case: Any, app: Any, auth: dict[str, str]) -> None:
    """The same on the existing study and trials: the handlers run with fuzzed arguments."""
    _on_the_study(case)
    case.call_and_validate(headers=auth if _mutating(case) else None, app=app)


@schema.parametrize()
@FUZZ
def test_mutating_operations_refused_without_the_token(case: Any, app: Any) -> None:
    if not _mutating(case) or case.method.upper() != case.operation.method.upper():
        return
    _on_the_study(case)
    for headers in (None, {"Authorization": "Bearer wrong"}, {"Cookie": "hs_token=wrong"}):
        response = case.call(headers=headers, app=app)
        assert response.status_code == 401, (case.method, case.formatted_path, response.text)
        assert response.json()["error"]["status"] == 401


def test_every_documented_operation_is_routed(app: Any) -> None:
    """A documented route the app lacks would only ever answer 404, which the document allows:
    check that each (path, method) of the document is a route of the app."""
    document = TestClient(app).get("/api/openapi.json").json()
    routes = {(r.path, m.lower()) for r in app.routes if isinstance(r, Route)
              for m in (r.methods or ())}
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert documented - routes == set(), "documented but not routed"
    api_routes = {(p, m) for p, m in routes if p.startswith("/api/v1") and m != "head"}
    assert api_routes - documented == set(), "routed but not documented"


def _operations() -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _study_path(operation: Any, number: int, file_id: str | None) -> dict[str, Any]:
    values = {"name": NAME, "number": number, "id": file_id}
    return {p.name: values[p.name] for p in operation.path_parameters}


def test_every_read_answers_200_on_the_real_study(app: Any) -> None:
    """Each GET of the document, without arguments, on the real study and trial 0 (the one with
    files): 200 and an answer as documented. Taken from the document, so new reads are in."""
    listed = TestClient(app).get(f"/api/v1/studies/{quote(NAME, safe='')}/trials/0/files").json()
    assert [f["path"] for f in listed["files"]] == ["model.txt", "sub/curve.csv"], listed
    reads = [op for op in _operations() if op.method.upper() == "GET"]
    assert len(reads) >= 15
    for operation in reads:
        case = operation.Case(path_parameters=_study_path(operation, 0, listed["files"][0]["id"]))
        response = case.call_and_validate(app=app)
        assert response.status_code == 200, (operation.label, response.text)


# a valid request for each control: (JSON body or None, form body or None)
RUNNING = N_COMPLETE + 2
CONTROLS: dict[str, tuple[int, list[tuple[dict[str, Any] | None, dict[str, Any] | None]]]] = {
    "/api/v1/studies/{name}/stop": (0, [(None, None)]),
    "/api/v1/studies/{name}/trials/{number}/stop": (RUNNING, [(None, None)]),
    "/api/v1/studies/{name}/enqueue": (0, [
        ({"params": {"lr": 0.01, "act": "<tanh>", "layers": 2}}, None),
        (None, {"params": '{"lr": 0.02, "act": "relu", "layers": 3}'}),
    ]),
    "/api/v1/studies/{name}/budget": (0, [
        ({"max_trials": 200, "max_time": None}, None),
        (None, {"max_trials": "", "max_time": "3600"}),
    ]),
    "/api/v1/studies/{name}/trials/{number}/notes": (1, [
        ({"text": "<script>alert(1)</script>"}, None),
        (None, {"text": "a second note"}),
    ]),
}


def test_every_control_with_the_token_answers_as_documented(
    app: Any, auth: dict[str, str]
) -> None:
    """Each POST of the document with valid input and the token: 200 as documented (the fuzzed
    inputs above rarely fit a study's space); without the token: 401 and nothing changed."""
    posts = {op.path: op for op in _operations() if op.method.upper() == "POST"}
    assert set(posts) == set(CONTROLS), "give each control of the document a valid request"
    client = TestClient(app)
    study = f"/api/v1/studies/{quote(NAME, safe='')}"
    waiting = client.get(f"{study}/trials?state=waiting").json()["total"]
    for path, (number, bodies) in CONTROLS.items():
        operation = posts[path]
        for body, form in bodies:
            kwargs: dict[str, Any] = {}
            if body is not None:
                kwargs = {"body": body, "media_type": "application/json"}
            elif form is not None:
                kwargs = {"body": form, "media_type": "application/x-www-form-urlencoded"}
            case = operation.Case(path_parameters=_study_path(operation, number, None), **kwargs)
            before = client.get(study).json()["version"]
            refused = case.call(app=app)
            assert refused.status_code == 401, (path, refused.text)
            assert client.get(study).json()["version"] == before, f"{path} changed the study"
            response = case.call_and_validate(app=app, headers=auth)
            assert response.status_code == 200, (path, body, form, response.text)
            assert response.json()["ok"] is True
    notes = client.get(f"{study}/trials/1/notes").json()["notes"]  # the fuzzing may add some
    assert [n["text"] for n in notes][-2:] == ["<script>alert(1)</script>", "a second note"]
    assert client.get(f"{study}/trials?state=waiting").json()["total"] == waiting + 2


def test_the_served_document_is_openapi_3_1(app: Any) -> None:
    served = TestClient(app).get("/api/openapi.json").json()
    assert re.match(r"^3\.1\.", served["openapi"])
    for path, ops in served["paths"].items():
        for method, op in ops.items():
            names = {p["name"] for p in op["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"\{(\w+)\}", path)), (method, path)
            expected = {"200", "401", "421", "422", "503"} | ({"403", "405"} if method == "post"
                                                               else set())
            assert expected <= set(op["responses"]), (method, path)
            tokens = [s for s in op["security"] if s]
            assert tokens == [{"bearer": []}, {"cookie": []}], (method, path)
            assert ({} in op["security"]) is (method == "get"), "reads: the token is optional"
