"""The dashboard in a real browser: Playwright's Python package driving Debian's chromium (never
a downloaded browser) against the app under uvicorn, over SQLite studies that are running while
the tests watch. Covered: the trial table and charts updating live, every chart drawn with its
data (read from the page's plotly divs), the log tail of a running command, sorting, filtering
and paging, comparing trials, the controls with and without the token (and hidden read-only),
and the content security policy holding (no inline script, no eval, no inline style).

Without chromium the tests skip, except under CI=true, where they fail.

    python tests/test_dashboard_browser.py --screenshots   # docs/dashboard-{study,trial}.png
    python tests/test_dashboard_browser.py --plotly-css    # static/vendor/plotly.css anew
"""

from __future__ import annotations

import math
import os
import re
import shutil
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import hypersearch as hs

ROOT = Path(__file__).resolve().parent.parent
VENDOR = ROOT / "hypersearch" / "dashboard" / "static" / "vendor"
STATIC = "sweep <b>&#"  # a name that needs escaping and URL quoting everywhere
LIVE = "live run"
SPACE = {
    "lr": hs.loguniform(1e-4, 1e-1),
    "layers": hs.integer(1, 4),
    "opt": hs.choice(["adam", "sgd"]),
    "dropout": hs.uniform(0.0, 0.5),
}
N_STATIC = 30
PRUNED = (7, 14, 21)
FAILED = (9, 27)
STEPS = 8
WAIT_MS = 15_000


# -- the browser ------------------------------------------------------------------------------


def wait_js(page: Any, expression: str, timeout: float = WAIT_MS) -> None:
    """Wait until `expression` is true in the page (an arrow function: Playwright evaluates a
    bare string with eval, which the dashboard's CSP refuses)."""
    page.wait_for_function(f"() => ({expression})", timeout=timeout)


def chromium_path() -> str | None:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    return found if Path(found).exists() else None


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if path is None:
        _missing("no chromium on this machine (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=path, args=["--disable-gpu-sandbox"])
        yield launched
        launched.close()


class Page:
    """A browser page that records CSP violations and script errors; in a context of its own,
    or in a shared one (its HTTP cache keeps plotly.js, 5 MB, from loading on every test)."""

    def __init__(self, browser: Any, base: str, context: Any = None) -> None:
        self.own = context is None
        self.context = context or browser.new_context(viewport={"width": 1400, "height": 1000})
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("dialog", lambda dialog: dialog.accept())  # the controls' confirm()
        self.page.add_init_script(
            "window.__csp = []; document.addEventListener('securitypolicyviolation', e =>"
            " window.__csp.push({directive: e.violatedDirective, source: e.sourceFile || '',"
            " blocked: e.blockedURI || ''}));"
        )
        self.page.set_default_timeout(WAIT_MS)

    def open(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == 200, (path, response and response.status)
        return self.page

    def charts_drawn(self) -> None:
        wait_js(self.page, "[...document.querySelectorAll('[data-chart]')]"
                           ".every(d => d.dataset.state && d.dataset.state !== 'loading')")

    def js(self, code: str) -> Any:
        return self.page.evaluate(code)

    def violations(self) -> list[dict[str, str]]:
        return self.page.evaluate("window.__csp")

    def close(self) -> None:
        assert not self.errors, f"script errors on the page: {self.errors}"
        self.page.close()
        if self.own:
            self.context.close()


# -- the server -------------------------------------------------------------------------------


class Server:
    """The app under a real uvicorn, in a thread, on a free port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, host="127.0.0.1", log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            assert time.time() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
        self.sock.close()


# -- the studies ------------------------------------------------------------------------------


def _curve(value: float, steps: int) -> list[tuple[float, float]]:
    return [(value + (2.0 - value) * math.exp(-s / 2), 1 - value / 3 - 0.5 * math.exp(-s / 2))
            for s in range(steps)]


def static_params(i: int) -> dict[str, Any]:
    return {"lr": 10 ** (-4 + 3 * i / (N_STATIC - 1)), "layers": 1 + i % 4,
            "opt": ["adam", "sgd"][i % 2], "dropout": (i * 0.37) % 0.5}


def static_value(i: int) -> float:
    return round(((i * 7) % N_STATIC) / 10 + 0.05, 4)


def build_static(url: str) -> None:
    """30 trials that never change: 25 complete with curves, 3 pruned, 2 failed."""
    study = hs.create_study(SPACE, storage=url, name=STATIC, strategy="random", seed=1,
                            metric="loss", message="a fixed sweep <i>for sorting</i>")
    for i in range(N_STATIC):
        study.enqueue(static_params(i))
        trial = study.ask()
        steps = 3 if i in PRUNED else 0 if i in FAILED else STEPS
        for step, (loss, acc) in enumerate(_curve(static_value(i), steps)):
            trial.report(step, loss=loss, acc=acc)
        if i in PRUNED:
            study.tell(trial, state="pruned")
        elif i in FAILED:
            study.tell(trial, state="fail")
        else:
            study.tell(trial, {"loss": static_value(i), "acc": 1 - static_value(i) / 3})
    study.close()


class Writer:
    """A study that runs while the tests watch: ask, report every `pause` seconds, tell; a
    trial stopped from outside (Decision STOP) ends PRUNED."""

    def __init__(self, url: str, name: str, *, steps: int, pause: float, seed_trials: int = 0,
                 **settings: Any) -> None:
        self.url, self.name, self.steps, self.pause = url, name, steps, pause
        self.stop_event = threading.Event()
        study = hs.create_study(SPACE, storage=url, name=name, strategy="random", seed=3,
                                metric="loss", **settings)
        for i in range(seed_trials):  # history before the watch starts
            trial = study.ask()
            value = 0.2 + (i * 0.37) % 1.0
            for step, (loss, acc) in enumerate(_curve(value, 2 if i % 5 == 4 else 6)):
                trial.report(step, loss=loss, acc=acc)
            study.tell(trial, state="pruned") if i % 5 == 4 else study.tell(trial, value)
        study.close()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        study = hs.load_study(self.name, self.url)
        try:
            number = 0
            while not self.stop_event.is_set() and not study.stop_requested():
                trial = study.ask()
                value = 0.3 + (number * 0.29) % 1.0
                number += 1
                stopped = False
                for step, (loss, acc) in enumerate(_curve(value, self.steps)):
                    if self.stop_event.wait(self.pause) or study.stop_requested():
                        break  # as a worker does when the study is stopped
                    if trial.report(step, loss=loss, acc=acc) is not hs.Decision.CONTINUE:
                        stopped = True
                        break
                if stopped:
                    study.tell(trial, state="pruned")
                else:
                    study.tell(trial, value)
        finally:
            study.close()

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(10)


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The studies every test reads, on SQLite and on PostgreSQL (each test runs on both)."""
    folder = tmp_path_factory.mktemp("browser")
    url = (f"sqlite:///{folder / 'dash.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_module_url"))
    build_static(url)
    live = Writer(url, LIVE, steps=6, pause=0.12, seed_trials=12)
    yield {"url": url, "folder": folder, "live": live}
    live.close()


@pytest.fixture(scope="module")
def server(db: dict[str, Any]) -> Iterator[Server]:
    from hypersearch.dashboard import create_app

    served = Server(create_app(db["url"]))
    yield served
    served.stop()


@pytest.fixture(scope="module")
def shared(browser: Any) -> Iterator[Any]:
    """One browser context (no token: it never logs in) for the tests that only read."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    yield context
    context.close()


@pytest.fixture()
def tab(browser: Any, server: Server, shared: Any) -> Iterator[Page]:
    page = Page(browser, server.base, shared)
    yield page
    page.close()


def P(name: str) -> str:
    return f"/studies/{quote(name, safe='')}"


def api(server: Server, path: str) -> Any:
    import json
    import urllib.request

    with urllib.request.urlopen(server.base + path, timeout=10) as response:
        return json.load(response)


def wait_until(check: Callable[[], Any], timeout: float = WAIT_MS / 1000) -> Any:
    deadline = time.time() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.1)


# -- live updates -----------------------------------------------------------------------------


def test_trial_table_and_charts_update_while_the_study_runs(tab: Page, server: Server) -> None:
    page = tab.open(P(LIVE))
    tab.charts_drawn()
    before = page.text_content("#trial-count")
    points = tab.js("document.getElementById('chart-history').data[0].x.length")
    page.evaluate("window.__same_page = true")
    # new trials finish: the table's fragment and the history are fetched again, no reload
    wait_js(page, f"window.__same_page && document.querySelector('#trial-count').textContent"
                  f" !== {before!r} && document.getElementById('chart-history').data[0].x.length"
                  f" > {points}")
    assert page.is_visible("#live.on"), "the live marker shows the poll works"
    wait_js(page, "document.getElementById('live').textContent.includes('running')")
    rows = page.locator("#trials tbody tr")
    assert rows.count() >= 13
    # a running trial's curve is in the learning curves, drawn apart from the others
    wait_js(page, "document.getElementById('chart-curves').data"
                  ".some(t => t.hovertemplate.includes('(running)'))")


# -- every chart with its data ----------------------------------------------------------------


def test_each_chart_is_drawn_with_the_study_data(tab: Page, server: Server) -> None:
    page = tab.open(P(STATIC))
    tab.charts_drawn()
    states = tab.js("Object.fromEntries([...document.querySelectorAll('[data-chart]')]"
                    ".map(d => [d.dataset.chart, d.dataset.state]))")
    assert set(states.values()) == {"ready"}, states
    A = f"/api/v1{P(STATIC)}"
    complete = [i for i in range(N_STATIC) if i not in PRUNED + FAILED]

    history = tab.js("document.getElementById('chart-history').data.map(t => [t.x, t.y])")
    assert history[0][0] == complete and history[0][1] == [static_value(i) for i in complete]
    best = [min(static_value(j) for j in complete if j <= i) for i in complete]
    assert history[1][1] == best, "the best-so-far line"

    curves = tab.js("document.getElementById('chart-curves').data.map(t => "
                    "({name: t.name, n: t.y.length, dash: t.line.dash}))")
    by_name = {c["name"]: c for c in curves}
    assert len(curves) == N_STATIC - len(FAILED), "one curve per trial that reported"
    assert all(by_name[str(i)]["dash"] == "dash" and by_name[str(i)]["n"] == 3 for i in PRUNED)
    assert by_name["0"] == {"name": "0", "n": STEPS, "dash": "solid"}
    page.select_option("#curves-metric", "acc")  # another reported metric
    wait_js(page, "document.getElementById('chart-curves').data[0].hovertemplate"
                           ".includes('acc')")

    dims = tab.js("document.getElementById('chart-parallel').data[0].dimensions"
                  ".map(d => [d.label, d.values.length])")
    assert dims == [[name, len(complete)] for name in ("lr", "layers", "opt", "dropout", "loss")]
    opt_ticks = tab.js("document.getElementById('chart-parallel').data[0].dimensions[2].ticktext")
    assert opt_ticks == ["adam", "sgd"], "a choice axis is labelled with its options"

    slices = tab.js("document.getElementById('chart-slice').data.map(t => t.x.length)")
    assert slices == [len(complete)] * 4

    importance = api(server, f"{A}/importance")["importance"]
    bars = tab.js("document.getElementById('chart-importance').data[0].y")
    assert list(reversed(bars)) == [row["name"] for row in importance] and len(bars) == 4

    contour = tab.js("(() => { const d = document.getElementById('chart-contour').data;"
                     " return [d[0].type, d[0].z.length, d[0].z.flat().every(Number.isFinite),"
                     " d[1].x.length]; })()")
    assert contour == ["contour", 40, True, len(complete)]
    page.select_option("#contour-x", "dropout")
    wait_js(page, "document.getElementById('chart-contour').layout.xaxis.title.text"
                           " === 'dropout'")

    bars = tab.js("document.getElementById('chart-timeline').data"
                  ".map(t => [t.name, t.x.length])")
    assert dict(bars) == {"complete": len(complete), "pruned": 3, "failed": 2}


def test_trial_page_curves_files_notes_and_failure(tab: Page, server: Server) -> None:
    page = tab.open(f"{P(STATIC)}/trials/3")
    tab.charts_drawn()
    curves = tab.js("[...document.querySelectorAll('#trial-curves .curve')]"
                    ".map(d => [d.dataset.metric, d.data[0].y.length])")
    assert sorted(curves) == [["acc", STEPS], ["loss", STEPS]]
    page.wait_for_selector("#file-list p")  # a trial without an output folder says so
    assert "no output folder" in page.text_content("#file-list")
    failed = tab.open(f"{P(STATIC)}/trials/{FAILED[0]}")
    assert failed.is_visible("#failure") and "failed" in failed.text_content("#trial-state")


# -- the log tail -----------------------------------------------------------------------------

SCRIPT = """
import os, sys, time
open(os.path.join(os.environ["HYPERSEARCH_OUTPUT_DIR"], "model.txt"), "w").write("weights")
for i in range(14):
    print(f"epoch {i} <b>done</b>", flush=True)
    if i == 3:
        print("a warning", file=sys.stderr, flush=True)
    time.sleep(0.25)
print("loss=0.5", flush=True)
"""


def test_log_tail_follows_a_running_command(tab: Page, db: dict[str, Any]) -> None:
    folder: Path = db["folder"]
    script = folder / "train.py"
    script.write_text(SCRIPT)
    study = hs.create_study({"x": hs.uniform(0, 1)}, storage=db["url"], name="command",
                            strategy="random", seed=1)
    command = hs.Command([sys.executable, "-u", str(script), ":x:"], metric="loss",
                         output_dir=str(folder / "runs"))
    runner = threading.Thread(
        target=lambda: study.optimize(command, max_trials=1, verbose=False), daemon=True)
    runner.start()
    try:
        wait_until(lambda: study.storage.get_trial(study.id, 0) is not None)
        page = tab.open(f"{P('command')}/trials/0")
        first = tab.js("document.querySelectorAll('#log span').length")
        assert first < 15, "the page opened while the command was still printing"
        wait_js(page, "document.getElementById('log').textContent"
                      ".includes('epoch 13 <b>done</b>')")
        wait_js(page, "document.getElementById('log-status').textContent === 'finished'")
        spans = tab.js("[...document.querySelectorAll('#log span')].map(s => [s.className,"
                       " s.textContent])")
        assert len(spans) > first, "lines were appended while the command ran"
        texts = [t for _, t in spans]
        assert texts.count("epoch 13 <b>done</b>\n") == 1, "no line twice"
        assert ["stderr", "a warning\n"] in spans
        assert tab.js("document.querySelectorAll('#log b').length") == 0, "output stays text"
        # the trial's end refreshes its facts and its files
        wait_js(page, "document.getElementById('trial-state').textContent === 'complete'")
        page.wait_for_selector("#file-list a")
        names = page.eval_on_selector_all("#file-list a", "links => links.map(a => a.textContent)")
        assert "model.txt" in names, names
        link = page.locator("#file-list a", has_text="model.txt")
        with page.expect_download() as download:
            link.click()
        assert Path(download.value.path()).read_text() == "weights"
    finally:
        runner.join(30)
        study.close()


# -- sorting, filtering, paging ---------------------------------------------------------------


def _rows(page: Any) -> list[int]:
    return [int(n) for n in page.eval_on_selector_all(
        "#trials tbody tr[data-number]", "rows => rows.map(r => r.dataset.number)")]


def _after_swap(page: Any, action: Callable[[], Any]) -> None:
    """Do `action` (a click that swaps the table in with htmx) and wait for the new table."""
    page.evaluate("document.getElementById('trials').dataset.old = '1'")
    action()
    wait_js(page, "document.getElementById('trials') &&"
                           " !document.getElementById('trials').dataset.old")


def test_sort_filter_and_paginate(tab: Page, server: Server) -> None:
    stored = api(server, f"/api/v1{P(STATIC)}/trials?limit=500")["trials"]
    values = {t["number"]: t["value"] for t in stored}  # a pruned trial has its last report
    page = tab.open(P(STATIC) + "?limit=10")
    page.evaluate("window.__same_page = true")
    assert _rows(page) == list(range(10))
    assert page.text_content("#trial-count").strip() == f"trials 1–10 of {N_STATIC}"

    valued = [n for n in values if values[n] is not None]
    _after_swap(page, lambda: page.click("#trials thead a[href*='sort=value']"))
    assert _rows(page) == sorted(valued, key=lambda n: (values[n], n))[:10]
    assert "sort=value" in page.url
    _after_swap(page, lambda: page.click("#trials thead a[href*='sort=value']"))
    assert "order=desc" in page.url
    assert _rows(page) == sorted(valued, key=lambda n: (-values[n], n))[:10]
    _after_swap(page, lambda: page.click("#trials thead a[href*='sort=params.lr']"))
    assert _rows(page) == list(range(10)), "lr grows with the trial number"

    _after_swap(page, lambda: page.click(".chip-pruned"))
    assert _rows(page) == list(PRUNED) and "state=pruned" in page.url
    _after_swap(page, lambda: page.click("a.reset"))
    assert len(_rows(page)) == 10

    page.click("details.ranges > summary")
    page.fill("input[name='min.value']", "0.5")
    page.fill("input[name='max.value']", "1.5")
    _after_swap(page, lambda: page.click("#filter button[type=submit]"))
    inside = [n for n in valued if 0.5 <= values[n] <= 1.5]
    assert _rows(page) == inside[:10] and "min.value=0.5" in page.url
    assert page.text_content("#trial-count").strip().endswith(f"of {len(inside)}")
    csv = page.get_attribute("#export-csv", "href")
    assert "min.value=0.5" in csv and "max.value=1.5" in csv, "export follows the filter"
    _after_swap(page, lambda: page.click("a.reset"))

    _after_swap(page, lambda: page.click("nav.pager a[rel=next]"))
    assert _rows(page) == list(range(10, 20)) and "offset=10" in page.url
    _after_swap(page, lambda: page.click("nav.pager a[rel=last]"))
    assert _rows(page) == list(range(20, 30))
    _after_swap(page, lambda: page.click("nav.pager a[rel=prev]"))
    assert _rows(page) == list(range(10, 20))
    assert page.evaluate("window.__same_page"), "all of it without reloading the page"
    page.go_back()  # each step has its URL: back shows the page before
    wait_js(page, "!window.__same_page && document.querySelectorAll('#trials tbody tr').length")
    assert _rows(page) == list(range(20, 30)) and "offset=20" in page.url


def test_compare_two_trials(tab: Page) -> None:
    page = tab.open(P(STATIC))
    assert page.is_hidden("#compare-link")
    page.check("input.pick[value='0']")
    page.check("input.pick[value='2']")
    assert "2 selected" in page.text_content("#compare-bar")
    page.click("#compare-link")
    page.wait_for_url(re.compile(r"/compare\?trials=0,2$"))
    tab.charts_drawn()
    differs = page.eval_on_selector_all("#compare-table tr.differs", "rows => rows.map(r => "
                                        "r.dataset.param).filter(Boolean)")
    # 0 and 2 share the optimizer (adam) only
    assert differs == ["lr", "layers", "dropout"]
    curves = tab.js("document.getElementById('chart-compare').data.map(t => [t.name, t.y.length])")
    assert curves == [["trial 0", STEPS], ["trial 2", STEPS]]


# -- the controls -----------------------------------------------------------------------------


def _submit(page: Any, form: str) -> str:
    """Submit `form` and return the message it shows."""
    page.evaluate(f"document.querySelector('{form} .form-msg').textContent = ''")
    page.click(f"{form} button[type=submit]")
    wait_js(page, f"document.querySelector('{form} .form-msg').textContent !== ''")
    return page.text_content(f"{form} .form-msg")


def test_controls_need_the_token_and_change_the_study(
    browser: Any, server: Server, db: dict[str, Any]
) -> None:
    writer = Writer(db["url"], "controls", steps=400, pause=0.1, seed_trials=4)
    tab = Page(browser, server.base)
    try:
        page = tab.open(P("controls"))
        assert page.is_visible("header .badge.warn")
        page.click("#controls > summary")
        assert "log in with the link printed at start" in page.text_content("#login-hint")
        page.fill("#enqueue-params", '{"lr": 0.01, "layers": 2, "opt": "adam", "dropout": 0.1}')
        refused = _submit(page, "#enqueue")
        assert "no token" in refused and "/login?token=" in refused
        assert _submit(page, "#stop-study").startswith("refused")
        assert "stop_trials" not in str(api(server, f"/api/v1{P('controls')}/definition"))

        page.goto(f"{server.base}/login?token={server.app.state.token}")
        page = tab.open(P("controls"))
        assert page.is_visible("header .badge.ok") and page.locator("#login-hint").count() == 0
        page.click("#controls > summary")
        page.fill("#enqueue-params", "{not json")
        assert "not JSON" in _submit(page, "#enqueue")
        page.fill("#enqueue-params", '{"lr": 5.0, "layers": 2, "opt": "adam", "dropout": 0.1}')
        bad = _submit(page, "#enqueue")
        assert "lr" in bad and page.is_visible("#enqueue .form-msg.error")
        page.fill("#enqueue-params", '{"lr": 0.01, "layers": 2, "opt": "sgd", "dropout": 0.1}')
        queued = _submit(page, "#enqueue")
        found = re.fullmatch(r"queued as trial (\d+)", queued)
        assert found is not None, queued
        number = int(found.group(1))
        assert api(server, f"/api/v1{P('controls')}/trials/{number}")["params"]["opt"] == "sgd"

        page.fill("#budget input[name=max_trials]", "500")
        assert "max_trials" in _submit(page, "#budget") and "500" in page.text_content(
            "#budget .form-msg")

        running = wait_until(lambda: [t["number"] for t in api(
            server, f"/api/v1{P('controls')}/trials?state=running")["trials"]])
        page = tab.open(f"{P('controls')}/trials/{running[0]}")
        assert "stop requested" in _submit(page, "#stop-trial")
        wait_js(page, "document.getElementById('trial-state').textContent === 'pruned'")
        assert page.locator("#stop-trial").count() == 0, "no stop button once it ended"

        page.fill("#note-text", "looks <script>alert(1)</script> promising")
        assert _submit(page, "#note-form") == "note added"
        wait_js(page, "document.getElementById('note-list').textContent"
                               ".includes('looks <script>alert(1)</script> promising')")
        assert tab.js("document.querySelectorAll('#note-list script').length") == 0

        page = tab.open(P("controls"))
        page.click("#controls > summary")
        assert "stop requested" in _submit(page, "#stop-study")
        writer.thread.join(10)
        assert not writer.thread.is_alive(), "the worker stopped when the study was stopped"
    finally:
        writer.close()
        tab.close()


def test_read_only_dashboard_has_no_controls(browser: Any, db: dict[str, Any]) -> None:
    from hypersearch.dashboard import create_app

    served = Server(create_app(db["url"], read_only=True))
    tab = Page(browser, served.base)
    try:
        page = tab.open(P(STATIC))
        assert page.is_visible("header .badge.muted")
        assert page.locator("#controls, form.control").count() == 0
        page = tab.open(f"{P(LIVE)}/trials/0")
        assert page.locator("#note-form, #stop-trial").count() == 0
        assert page.is_visible("#note-list"), "notes are still shown"
    finally:
        tab.close()
        served.stop()


# -- the content security policy --------------------------------------------------------------


def test_pages_keep_the_content_security_policy(tab: Page) -> None:
    for path in ("/", P(STATIC), f"{P(STATIC)}/trials/0", f"{P(STATIC)}/compare?trials=1,2"):
        page = tab.open(path)
        if path != "/":
            tab.charts_drawn()
        page.wait_for_timeout(300)
        refused = tab.violations()
        # what is refused at all is plotly.js setting empty style attributes and maplibre (not
        # used) injecting its stylesheet: no script, no eval, nothing of the dashboard's own
        assert all(v["directive"].startswith("style-src") and v["source"].endswith(
            "/static/vendor/plotly-strict.min.js") for v in refused), (path, refused)
        assert tab.js("document.querySelectorAll('style').length") <= 1, "plotly.js injected styles"
        csp = page.evaluate("fetch(location.href)"
                            ".then(r => r.headers.get('content-security-policy'))")
        assert "script-src 'self';" in csp and "unsafe" not in csp


def test_plotly_css_matches_the_bundle() -> None:
    """static/vendor/plotly.css holds the rules plotly.js would inject (regenerate with
    ``python tests/test_dashboard_browser.py --plotly-css`` after upgrading the bundle)."""
    shipped = (VENDOR / "plotly.css").read_text()
    assert shipped == plotly_css((VENDOR / "plotly-strict.min.js").read_text())


# -- tools: the vendored stylesheet and the screenshots ---------------------------------------

_JS_STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''
CSS_HEADER = """/* The style rules plotly.js (plotly-strict.min.js beside this file) injects at run time into a
   <style> element, which the dashboard's CSP refuses; linked as a file instead. Generated from
   the bundle: python tests/test_dashboard_browser.py --plotly-css (a test checks they match). */
"""


def plotly_css(bundle: str) -> str:
    """The stylesheet of the rules that `bundle` (plotly.js) adds with addStyleRule."""
    anchor = bundle.index('"Y .notifier-close:hover"')
    start = bundle.rfind("={", 0, anchor) + 2
    end = bundle.index("};", anchor)
    pairs = re.findall(rf"({_JS_STRING}|[A-Za-z_$][\w$]*):({_JS_STRING}),?", bundle[start:end])
    loop = re.search(r'\.replace\(/X/g,"([^"]+)"\)\.replace\(/Y/g,"([^"]+)"\)',
                     bundle[end:end + 400])
    assert loop is not None, "plotly.js changed how it adds its styles: update plotly_css"
    graph, notifier = loop.groups()
    rules = []
    for key, value in pairs:
        selector = key[1:-1] if key[0] in "\"'" else key
        body = value[1:-1].replace("\\'", "'").replace('\\"', '"')
        selector = re.sub(r"^,", " ,", selector).replace("X", graph).replace("Y", notifier)
        rules.append(f"{selector}{{{body}}}\n")
    return CSS_HEADER + "".join(rules)


DEMO_SCRIPT = """
import math, os, random, sys, time
from hypersearch import client

args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
lr, dropout, layers = float(args["--lr"]), float(args["--dropout"]), int(args["--layers"])
rng = random.Random(os.environ["HYPERSEARCH_TRIAL"])
final = (0.18 + 0.05 * (math.log10(lr) + 3) ** 2 + 0.25 * (dropout - 0.2) ** 2
         + 0.015 * abs(layers - 4) + {"adam": 0.0, "sgd": 0.04, "rmsprop": 0.02}[args["--optimizer"]]
         + rng.gauss(0, 0.01))
tau = 2.0 + 3.0 * min(1.0, 1e-3 / lr) ** 0.3
out = os.environ["HYPERSEARCH_OUTPUT_DIR"]
print(f"resnet18: {layers} stages, batch {args['--batch']}, {args['--optimizer']} lr={lr:.3g}", flush=True)
client.listen()
for epoch in range(20):
    time.sleep(0.12 * (0.5 + layers / 3))
    loss = final + (2.3 - final) * math.exp(-epoch / tau) + rng.gauss(0, 0.004)
    train = loss * 0.92 + rng.gauss(0, 0.004)
    acc = max(0.0, min(1.0, 1.0 - loss / 2.5 + rng.gauss(0, 0.003)))
    print(f"epoch {epoch + 1:2d}/20  loss {train:.4f}  val_loss {loss:.4f}  accuracy {acc:.4f}", flush=True)
    if epoch == 4 and lr > 0.03:
        print("warning: gradient norm 41.2 clipped to 5.0", file=sys.stderr, flush=True)
    client.report(step=epoch, val_loss=loss, loss=train, accuracy=acc)
    with open(os.path.join(out, "metrics.csv"), "a") as f:
        f.write(f"{epoch},{train},{loss},{acc}\\n")
    if client.should_stop():
        print(f"stopped at epoch {epoch + 1}: pruned by the scheduler", flush=True)
        break
    if epoch % 5 == 4:
        with open(os.path.join(out, "checkpoint.pt"), "wb") as f:
            f.write(os.urandom(2048 * (epoch + 1)))
"""


DEMO_SPACE = {
    "lr": hs.loguniform(1e-5, 1e-1),
    "batch_size": hs.choice([32, 64, 128, 256]),
    "dropout": hs.uniform(0.0, 0.5),
    "layers": hs.integer(1, 6),
    "optimizer": hs.choice(["adam", "sgd", "rmsprop"]),
    "weight_decay": hs.loguniform(1e-6, 1e-2),
}


def screenshots(out: Path) -> None:
    """docs/dashboard-study.png and docs/dashboard-trial.png: a search of 64 trials of a
    training command (a percentile rule prunes the worst) on 4 workers, taken while it runs."""
    import tempfile

    from playwright.sync_api import sync_playwright

    from hypersearch.dashboard import create_app
    from hypersearch.storage import get_storage
    from hypersearch.study import read

    folder = Path(tempfile.mkdtemp())
    script = folder / "train.py"
    script.write_text(DEMO_SCRIPT)
    url = f"sqlite:///{folder / 'demo.db'}"
    name = "resnet18-cifar10"
    command = hs.Command(
        [sys.executable, str(script), "--lr", ":lr:", "--batch", ":batch_size:", "--dropout",
         ":dropout:", "--layers", ":layers:", "--optimizer", ":optimizer:", "--wd",
         ":weight_decay:"], metric="val_loss", output_dir=str(folder / "runs"))
    settings = dict(storage=url, name=name, max_trials=64, strategy="tpe", metric="val_loss",
                    scheduler="percentile", seed=7, n_jobs=4, verbose=False,
                    scheduler_options={"percentile": 75, "n_startup_trials": 8,
                                       "n_warmup_steps": 6},
                    message="ResNet-18 on CIFAR-10: learning rate, regularisation and depth")
    search = threading.Thread(target=lambda: hs.minimize(command, DEMO_SPACE, **settings),
                              daemon=True)
    search.start()
    def opened() -> Any:
        try:
            store = get_storage(url, create=False)
        except hs.StorageError:  # not created yet
            return None
        return store if store.get_study(name) is not None else None

    store = wait_until(opened, timeout=60)
    wait_until(lambda: read.study_row(store, name).n_trials >= 62, timeout=600)
    served = Server(create_app(url))
    try:
        with sync_playwright() as pw:
            launched = pw.chromium.launch(executable_path=chromium_path())
            context = launched.new_context(viewport={"width": 1440, "height": 1000})
            page = context.new_page()
            page.set_viewport_size({"width": 1440, "height": 3600})  # every chart in view:
            page.goto(f"{served.base}{P(name)}")  # live refreshes then reach all of them
            wait_js(page, "[...document.querySelectorAll('[data-chart]')]"
                    ".every(d => d.dataset.state === 'ready')", timeout=30_000)
            page.wait_for_timeout(800)
            page.screenshot(path=str(out / "dashboard-study.png"), full_page=True)
            page.set_viewport_size({"width": 1440, "height": 1000})
            shown = read.study_row(store, name).best_number
            page.goto(f"{served.base}{P(name)}/trials/{shown}")
            wait_js(page, "document.querySelectorAll('#trial-curves .curve').length === 3"
                    " && document.querySelectorAll('#file-list a').length > 0", timeout=30_000)
            page.wait_for_timeout(800)
            page.screenshot(path=str(out / "dashboard-trial.png"), full_page=True)
            launched.close()
    finally:
        served.stop()
        search.join(300)


if __name__ == "__main__":
    if "--plotly-css" in sys.argv:
        bundle = (VENDOR / "plotly-strict.min.js").read_text()
        (VENDOR / "plotly.css").write_text(plotly_css(bundle))
    if "--screenshots" in sys.argv:
        screenshots(Path(os.environ.get("HS_SHOTS", ROOT / "docs")))
