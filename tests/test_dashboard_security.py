"""R21-R23 and the dashboard's security defaults, as tests/../ANCHORS.md describes them.

- R23 bind: a non-loopback address is refused without a token, before anything is opened.
- R23 Host/Origin: a Host header naming another site is refused with 421 (DNS rebinding); a
  POST whose Origin names another site with 403 (CSRF), even with the token.
- R21 token: every mutating route (POST) refuses a request without the token (401), with a
  wrong one, or with one in the query string; nothing changes. Reads need it only with a token
  file or a non-loopback bind. ``--read-only`` answers 405.
- R22 files: downloads only by an id the listing issued; ``../``, encoded ``%2e%2e%2f``,
  absolute paths, symbolic links inside the trial folder pointing outside (file or folder), a
  trial folder that is itself a link, ids not issued, and the id a listing would give an
  outside path: all 404, and the outside file's bytes never appear in an answer.
- Escaping: a note ``<script>alert(1)</script>`` and every other stored string (message, option,
  failure detail, log line) appears escaped in the pages.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from starlette.routing import Route
from starlette.testclient import TestClient
from trial_setup import claim_with

import hypersearch as hs
from hypersearch.cli.main import cli
from hypersearch.dashboard import DashboardError, check_bind, create_app
from hypersearch.execution.folders import trial_output_dir
from hypersearch.trial import Outcome, TrialState

NAME = "sec"
EVIL = "<script>alert(1)</script>"
TOKEN = "a-token-file-token-0123456789"
OWNER = "security-owner"
SECRET = b"TOP-SECRET-OUTSIDE-THE-TRIAL-FOLDER\n"
BASE = "http://127.0.0.1:8080"
S = f"/api/v1/studies/{NAME}"


def _claim(store: Any, study: Any, params: dict[str, Any]) -> Any:
    return claim_with(store, study, params, OWNER)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A study whose strings are all script tags: trial 0 COMPLETE with a folder holding files,
    links out of it and an HTML file; trial 1 FAILED whose folder is a link to outside; trial 2
    RUNNING. Outside the output root: a secret file and folder."""
    root = tmp_path_factory.mktemp("security")
    url = f"sqlite:///{root / 'sec.db'}"
    runs = root / "runs"
    outside = root / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    space = {"lr": hs.loguniform(1e-4, 1.0), "act": hs.choice(["relu", EVIL])}
    study = hs.create_study(space, storage=url, name=NAME, strategy="random", message=EVIL,
                            output_dir=str(runs))
    store = study.storage
    done = _claim(store, study, {"lr": 0.01, "act": EVIL})
    store.report(done.id, OWNER, done.lease_epoch, 0, {"loss": 0.5})
    store.append_logs(done.id, OWNER, done.lease_epoch, "stdout", [(0, f"log {EVIL}")])
    store.finish(done.id, OWNER, done.lease_epoch, Outcome(TrialState.COMPLETE, 0.5))
    failed = _claim(store, study, {"lr": 0.1, "act": "relu"})
    store.finish(failed.id, OWNER, failed.lease_epoch,
                 Outcome(TrialState.FAILED, failure_reason="error", failure_detail=f"E {EVIL}"))
    _claim(store, study, {"lr": 0.2, "act": "relu"})  # stays RUNNING

    folder = Path(trial_output_dir(str(runs), NAME, 0))
    (folder / "sub").mkdir(parents=True)
    (folder / "model.txt").write_bytes(b"weights\n")
    (folder / "sub" / "curve.csv").write_bytes(b"step,loss\n")
    (folder / "page.html").write_bytes(b"<html><script>alert(1)</script></html>")
    (folder / "escape.txt").symlink_to(outside / "secret.txt")
    (folder / "escape-dir").symlink_to(outside, target_is_directory=True)
    linked = Path(trial_output_dir(str(runs), NAME, 1))
    linked.parent.mkdir(parents=True, exist_ok=True)
    linked.symlink_to(outside, target_is_directory=True)
    return {"url": url, "runs": runs, "outside": outside, "folder": folder}


@pytest.fixture(scope="module")
def app(setup: dict[str, Any]) -> Any:
    """Loopback, no token file: reads open, controls need the app's own token."""
    return create_app(setup["url"])


@pytest.fixture(scope="module")
def client(app: Any) -> TestClient:
    return TestClient(app, base_url=BASE)


def _bearer(app: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {app.state.token}"}


def _mutating_routes(app: Any) -> list[str]:
    """Every route of the app that takes a method other than GET/HEAD (from the app itself,
    so a control added later is covered)."""
    paths = [r.path for r in app.routes if isinstance(r, Route)
             and set(r.methods or ()) - {"GET", "HEAD"}]
    assert len(paths) >= 5, paths
    return paths


def _state(client: TestClient) -> tuple[Any, ...]:
    """What a control would change: the study's version, trial 2's notes, the waiting trials."""
    client.cookies.clear()
    return (client.get(S).json()["version"],
            len(client.get(f"{S}/trials/2/notes").json()["notes"]),
            client.get(f"{S}/trials?state=waiting").json()["total"])


def _concrete(path: str) -> str:
    return path.replace("{name}", NAME).replace("{number}", "2").replace("{id}", "x")


# -- R23: the bind -------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "myhost.lan",
                                  "example.com", "[::]"])
def test_a_non_loopback_bind_without_a_token_is_refused(setup: dict[str, Any],
                                                         host: str) -> None:
    with pytest.raises(DashboardError, match="without a token"):
        create_app(setup["url"], host=host)
    with pytest.raises(DashboardError, match="without a token"):
        create_app(setup["url"], host=host, read_only=True)
    create_app(setup["url"], host=host, token=TOKEN)  # with one it serves


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_a_loopback_bind_needs_no_token(host: str) -> None:
    check_bind(host, None)


def test_the_command_refuses_before_opening_anything(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    result = CliRunner().invoke(cli, ["dashboard", "--storage", f"sqlite:///{missing}",
                                      "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "without a token" in result.output, result.output
    assert not missing.exists()


def test_a_non_loopback_bind_with_a_token_guards_every_route(setup: dict[str, Any]) -> None:
    app = create_app(setup["url"], host="0.0.0.0", token=TOKEN)
    anyone = TestClient(app, base_url="http://203.0.113.9:8080")  # any name: the token guards
    for path in ("/", f"/studies/{NAME}", f"/studies/{NAME}/trials/0", "/api/v1/studies",
                 f"{S}/trials", f"{S}/trials/0/files", "/api/openapi.json"):
        refused = anyone.get(path)
        assert refused.status_code == 401, path
        assert SECRET.decode() not in refused.text
        assert anyone.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


# -- R23: Host and Origin -----------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "127.0.0.1.evil.example",
                                  "localhost.evil.example:8080", "127.0.0.1@evil.example", ""])
def test_a_foreign_host_header_is_refused_421(app: Any, host: str) -> None:
    client = TestClient(app)
    for method, path in (("GET", "/"), ("GET", "/api/v1/studies"), ("GET", f"{S}/trials/0/files"),
                         ("POST", f"{S}/stop")):
        response = client.request(method, path, headers={"host": host, **_bearer(app)})
        assert response.status_code == 421, (host, method, path, response.status_code)
        assert "DNS rebinding" in response.json()["error"]["message"]


def test_the_loopback_names_and_allowed_hosts_are_accepted(setup: dict[str, Any]) -> None:
    app = create_app(setup["url"], allowed_hosts=("dash.internal",))
    client = TestClient(app)
    for host in ("127.0.0.1:8080", "localhost", "[::1]:8080", "dash.internal:8080"):
        assert client.get("/api/v1/studies", headers={"host": host}).status_code == 200, host


@pytest.mark.parametrize("origin", ["http://evil.example", "https://evil.example:8080",
                                    "http://127.0.0.1.evil.example", "null"])
def test_a_cross_site_post_is_refused_403_even_with_the_token(app: Any, client: TestClient,
                                                               origin: str) -> None:
    before = _state(client)
    cookie = {"hs_token": app.state.token}
    for path in _mutating_routes(app):
        for credentials in ({"headers": _bearer(app)}, {"cookies": cookie}):
            headers = {"origin": origin, **credentials.get("headers", {})}
            client.cookies.clear()
            client.cookies.update(credentials.get("cookies", {}))
            response = client.post(_concrete(path), headers=headers,
                                   json={"text": "csrf", "params": {"lr": 0.1, "act": "relu"},
                                         "max_trials": 5})
            assert response.status_code == 403, (path, origin, response.text)
            assert "cross-site" in response.json()["error"]["message"]
    assert _state(client) == before, "nothing changed"


def test_a_same_site_post_with_the_token_is_served(app: Any, client: TestClient) -> None:
    response = client.post(f"{S}/trials/0/notes", headers={"origin": BASE, **_bearer(app)},
                           json={"text": "same site"})
    assert response.status_code == 200, response.text


# -- R21: the token on every mutating route -------------------------------------------------------


def test_every_mutating_route_needs_the_token(app: Any, client: TestClient) -> None:
    before = _state(client)
    bodies = {"json": {"text": "no token", "params": {"lr": 0.1, "act": "relu"}, "max_trials": 5}}
    for path in _mutating_routes(app):
        url = _concrete(path)
        attempts = [
            {},
            {"headers": {"Authorization": "Bearer wrong-token-wrong-token"}},
            {"headers": {"Authorization": f"Basic {app.state.token}"}},
            {"headers": {"Authorization": f"Bearer {app.state.token[:-1]}"}},
            {"cookies": {"hs_token": "wrong"}},
            {"params": {"token": app.state.token}},  # only /login takes it from the URL
        ]
        for attempt in attempts:
            client.cookies.clear()
            client.cookies.update(attempt.pop("cookies", {}))
            for method in ("POST", "PUT", "DELETE", "PATCH"):
                response = client.request(method, url, **attempt, **bodies)
                assert response.status_code == 401, (method, url, attempt, response.text)
    assert _state(client) == before, "nothing changed"


def test_the_login_cookie_carries_the_token(app: Any) -> None:
    client = TestClient(app, base_url=BASE)
    wrong = client.get("/login?token=nope", follow_redirects=False)
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert client.post(f"{S}/trials/2/notes", json={"text": "x"}).status_code == 401
    login = client.get(f"/login?token={quote(app.state.token)}", follow_redirects=False)
    assert login.status_code == 303
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.post(f"{S}/trials/2/notes", json={"text": "by cookie"}).status_code == 200


def test_reads_need_the_token_only_with_a_token_file(setup: dict[str, Any]) -> None:
    given = create_app(setup["url"], token=TOKEN)  # --token-file: every route needs it
    client = TestClient(given, base_url=BASE)
    assert client.get("/api/v1/studies").status_code == 401
    assert client.get("/api/v1/studies", headers={"Authorization": f"Bearer {TOKEN}"}
                      ).status_code == 200
    opened = create_app(setup["url"])
    assert TestClient(opened, base_url=BASE).get("/api/v1/studies").status_code == 200


def test_a_read_only_dashboard_refuses_controls_405(setup: dict[str, Any]) -> None:
    app = create_app(setup["url"], read_only=True)
    client = TestClient(app, base_url=BASE)
    for path in _mutating_routes(app):
        response = client.post(_concrete(path), json={"text": "x"})
        assert response.status_code == 405, (path, response.text)
    assert 'id="note-form"' not in client.get(f"/studies/{NAME}/trials/0").text


def test_no_route_evaluates_what_it_is_sent(app: Any, client: TestClient,
                                            setup: dict[str, Any]) -> None:
    marker = setup["outside"] / "pwned"
    for value in (f"__import__('os').system('touch {marker}')", f"$(touch {marker})",
                  f"`touch {marker}`"):
        response = client.post(f"{S}/enqueue", headers=_bearer(app),
                               json={"params": {"lr": value, "act": "relu"}})
        assert response.status_code == 422, response.text
        note = client.post(f"{S}/trials/2/notes", headers=_bearer(app), json={"text": value})
        assert note.status_code == 200
    assert not marker.exists()


# -- R22: files by server-issued id only ----------------------------------------------------------


def _listing(client: TestClient, number: int = 0) -> dict[str, Any]:
    response = client.get(f"{S}/trials/{number}/files")
    assert response.status_code == 200, response.text
    return response.json()


def test_the_listing_shows_only_files_inside_the_folder(client: TestClient,
                                                        setup: dict[str, Any]) -> None:
    listed = _listing(client)
    assert [f["path"] for f in listed["files"]] == ["model.txt", "page.html", "sub/curve.csv"]
    assert listed["root"] == str(setup["folder"])
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{8,}", f["id"]) for f in listed["files"])
    assert _listing(client, 1) == {"root": None, "files": [], "more": False}, \
        "a trial folder that is a link to elsewhere is not listed"


def test_a_listed_file_downloads_as_an_attachment(client: TestClient) -> None:
    ids = {f["path"]: f["id"] for f in _listing(client)["files"]}
    model = client.get(f"{S}/trials/0/files/{ids['model.txt']}")
    assert model.status_code == 200 and model.content == b"weights\n"
    page = client.get(f"{S}/trials/0/files/{ids['page.html']}")
    assert page.status_code == 200
    assert page.headers["content-type"] == "application/octet-stream", "never rendered as HTML"
    assert page.headers["content-disposition"].startswith("attachment")
    assert page.headers["x-content-type-options"] == "nosniff"


def _server_style_id(relative: str) -> str:
    """What an id for `relative` would look like were it derived from the path (a guess an
    attacker can make): it must still not be served, since the listing never issued it."""
    return hashlib.sha256(relative.encode()).hexdigest()[:20]


@pytest.mark.parametrize("attempt", [
    "../../../outside/secret.txt",
    "..%2f..%2f..%2foutside%2fsecret.txt",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2foutside%2fsecret.txt",
    "%252e%252e%252f%252e%252e%252foutside%252fsecret.txt",
    "..\\..\\..\\outside\\secret.txt",
    "....//....//outside/secret.txt",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "model.txt",
    "sub/curve.csv",
    "escape.txt",
    "escape-dir/secret.txt",
    "0",
    "deadbeefdeadbeefdead",
    _server_style_id("escape.txt"),
    _server_style_id("escape-dir/secret.txt"),
    _server_style_id("../../../outside/secret.txt"),
    "%00",
    "model.txt%00.png",
])
def test_anything_but_an_issued_id_is_refused_404(client: TestClient, setup: dict[str, Any],
                                                  attempt: str) -> None:
    for number in (0, 1):
        response = client.get(f"{S}/trials/{number}/files/{attempt}")
        assert response.status_code == 404, (number, attempt, response.status_code)
        assert SECRET not in response.content and b"root:" not in response.content
    raw = client.get(f"{S}/trials/0/files/{attempt}/../../../../../outside/secret.txt")
    assert raw.status_code == 404 and SECRET not in raw.content


def test_an_issued_id_of_a_file_replaced_by_a_link_is_refused(client: TestClient,
                                                              setup: dict[str, Any]) -> None:
    """The listing is read again for each download: a file swapped for a link since it was
    listed is not served."""
    swapped = setup["folder"] / "swap.txt"
    swapped.write_bytes(b"harmless\n")
    file_id = {f["path"]: f["id"] for f in _listing(client)["files"]}["swap.txt"]
    assert client.get(f"{S}/trials/0/files/{file_id}").content == b"harmless\n"
    swapped.unlink()
    swapped.symlink_to(setup["outside"] / "secret.txt")
    try:
        response = client.get(f"{S}/trials/0/files/{file_id}")
        assert response.status_code == 404 and SECRET not in response.content
    finally:
        swapped.unlink()


def test_a_study_name_cannot_lead_the_folder_outside(tmp_path: Path) -> None:
    """A name with dots and backslash-free tricks ('..outside') gets a safe folder inside the
    output root; the look-alike folder beside the root is never listed."""
    url = f"sqlite:///{tmp_path / 'names.db'}"
    runs = tmp_path / "runs"
    look_alike = runs / "..outside" / "0"
    look_alike.mkdir(parents=True)
    (look_alike / "secret.txt").write_bytes(SECRET)
    study = hs.create_study({"x": hs.uniform(0, 1)}, storage=url, name="..outside",
                            output_dir=str(runs), strategy="random", max_trials=1)
    study.optimize(lambda p: p["x"], verbose=False)
    client = TestClient(create_app(url), base_url=BASE)
    listed = client.get(f"/api/v1/studies/{quote('..outside', safe='')}/trials/0/files")
    assert listed.status_code == 200, listed.text
    assert listed.json()["files"] == [] and listed.json()["root"] is None


# -- escaping of stored strings in the pages -------------------------------------------------------


def _no_raw_payload(text: str) -> None:
    assert EVIL not in text, "a stored string reached the page unescaped"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_a_note_with_a_script_appears_escaped(app: Any, client: TestClient) -> None:
    posted = client.post(f"{S}/trials/0/notes", headers=_bearer(app), json={"text": EVIL})
    assert posted.status_code == 200, posted.text
    assert client.get(f"{S}/trials/0/notes").json()["notes"][-1]["text"] == EVIL, "JSON: raw"
    trial = client.get(f"/studies/{NAME}/trials/0")
    assert trial.status_code == 200
    _no_raw_payload(trial.text)
    assert 'id="notes"' in trial.text
    form = client.post(f"{S}/trials/0/notes", headers=_bearer(app),
                       data={"text": EVIL + " (form)"})
    assert form.status_code == 200, form.text
    study = client.get(f"/studies/{NAME}")
    _no_raw_payload(study.text)  # the table's note column


def test_every_stored_string_appears_escaped(client: TestClient) -> None:
    for path in ("/", f"/studies/{NAME}", f"/studies/{NAME}/trials/0",
                 f"/studies/{NAME}/trials/1", f"/studies/{NAME}/trials/2"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert EVIL not in response.text, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy, "scripts only from where the policy says"
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    assert "E &lt;script&gt;" in client.get(f"/studies/{NAME}/trials/1").text
    assert "log &lt;script&gt;" in client.get(f"/studies/{NAME}/trials/0").text


@pytest.mark.parametrize("path", [f"/studies/{quote(EVIL, safe='')}",
                                  f"/nope{quote(EVIL, safe='')}",
                                  f"/studies/{NAME}/trials/{quote(EVIL, safe='')}"])
def test_error_pages_escape_what_was_asked(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert 400 <= response.status_code < 500
    assert EVIL not in response.text
