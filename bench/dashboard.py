"""The dashboard at scale (issue 10, Scale): response times over real HTTP and in Chromium.

    .venv/bin/python bench/dashboard_study.py --trials 2000 --out /tmp/hs-dash/study-2000.db \
        --optuna /tmp/hs-dash/optuna-2000.db
    .venv/bin/python bench/dashboard.py --trials 2000 --sqlite /tmp/hs-dash/study-2000.db \
        --optuna /tmp/hs-dash/optuna-2000.db [--profile] [--json out.json]

Not a test (bench/ is outside pytest's testpaths): run by hand, one backend at a time, the
dashboard server in its own process (uvicorn on a free loopback port, serving
``hypersearch.dashboard.create_app(URL)``) and this process as the client (httpx2, the
client the project depends on, one keep-alive connection) and as the browser's driver
(Playwright with the system chromium, headless).

Measured on the study bench/dashboard_study.py builds (``dashboard-N``), on SQLite and on
PostgreSQL (database ``bench_dashboard_N``):

- study list: ``GET /`` (HTML) and ``GET /api/v1/studies``, the first request after start
  ("cold") and the median of 5 more;
- study page: ``GET /studies/NAME`` (the whole HTML response), and in Chromium its first
  contentful paint (navigation start to FCP, median of 3, a fresh browser context each time: no
  cache; the server idle before each, since a closed page leaves its chart requests running
  there), the time at which each chart of the page has drawn (its ``data-state`` leaves
  "loading"; polled every 50 ms), and when each of its API requests started and ended;
- trial table: 30 requests of ``/api/v1/studies/NAME/trials`` (limit 50) drawn with a fixed
  seed: sort by number, value, duration, state or a parameter, either order, filtered by state
  (none, complete, pruned, complete+pruned, failed, running) and some by a value or parameter
  range, at the first page or a random deep offset; p50 and p95. Also 10 HTML study pages with
  the same kind of arguments;
- learning curves of 1,000 trials: ``/series?metric=loss&trials=<1000 numbers>&max_points=100``
  (1,000 random trial numbers; where the server still refuses more than 200 per request, 5
  requests of 200 one after the other, labelled so); in Chromium the same data fetched and drawn
  with the Plotly bundle the dashboard serves (1,000 line traces; SVG ``scatter`` and WebGL
  ``scattergl``), fetch and render timed apart;
- trial page: ``GET /studies/NAME/trials/N`` (HTML) and its JSON for 10 trials (every 10th
  trial has logs; one FAILED one is included); p50 and p95;
- ``/version``, ``/history``, ``/points``, ``/importance``, ``/timeline`` (median of 5; a 404
  says the route is not there yet);
- the server's peak resident memory (psutil, sampled every 0.2 s).

optuna-dashboard (``optuna_dashboard.run_server``, its wsgiref server, in its own process) on the
same study converted to Optuna's RDB storage (SQLite, ``--optuna``): ``/api/studies`` (its study
list), ``/api/studies/ID`` (the study page's data: every trial with its intermediate values; the
page draws history, curves and the table from it; first and second request, it caches finished
trials), ``/api/studies/ID/param_importances``, and in Chromium (on a fresh server: its trial
cache empty, as when a user opens it) the first contentful paint of ``/dashboard/studies/ID``
and when its ``/api/studies/ID`` request is answered. A server past 12 GiB resident is killed
(the machine is shared) and the rows say so; each request may take 600 s.

``--profile`` then runs each slow request again in this process under cProfile (the app on an
in-process ASGI transport, Starlette's thread pool replaced by a direct call so one profiler
sees everything) and prints the functions with the most cumulative time and the SQL statements
with the most total time (SQLAlchemy cursor events: execution only, fetching the rows is
counted in the profile). ``--profile-from FILE`` profiles the slow requests of a saved
``--json`` without measuring again. ``--source DIR`` serves another copy of hypersearch (e.g.
``git archive df32a60 hypersearch | tar -x -C DIR``: the code before the read path) on the
same databases; ``--no-hypersearch`` measures only optuna-dashboard; ``--no-postgres`` and
``--no-browser`` leave those parts out.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2 as httpx
import psutil
from benchinfo import git_revision, source_fingerprint  # bench/ is the script folder
from dashboard_study import PG_SERVER, space, study_name  # bench/ is the script folder

CHROMIUM = "/usr/bin/chromium"
MAX_RSS = 12 * 2**30  # a server past this is killed (and the row says so)
OPTUNA_TIMEOUT = 600.0  # seconds for one optuna-dashboard request
PYTHON = sys.executable
# (key, label, bar in seconds or None, how the bar reads)
BARS = {
    "studies_html": 1.0,
    "study_paint": 1.0,
    "table_p95": 0.3,
    "curves_api": 2.0,
    "curves_chart": 2.0,
    "trial_html_p95": 0.3,
}
PARAMS = list(space())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A server process on a free port, its peak RSS sampled while it runs."""

    def __init__(
        self, code: str, *args: str, ready: str, cwd: Path | None = None, timeout: float = 300.0
    ) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        started = time.perf_counter()
        # its output (optuna-dashboard logs every request) to a file, shown if it fails
        self.log = open(f"/tmp/bench-dashboard-server-{self.port}.log", "w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            [PYTHON, "-c", code, *args, str(self.port)],
            cwd=cwd or Path(__file__).resolve().parent.parent,  # python -c imports from cwd
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.peak = 0
        self._began = started
        self.killed: str | None = None
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        while True:
            if self.process.poll() is not None:
                self.log.seek(0)
                output = self.log.read()[-3000:]
                self.log.close()
                os.unlink(self.log.name)
                raise SystemExit(f"the server exited with {self.process.returncode}:\n{output}")
            try:
                if httpx.get(self.base + ready, timeout=5).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() - started > timeout:
                self.stop()
                raise SystemExit(f"the server did not answer {ready} within {timeout:.0f} s")
            time.sleep(0.1)
        self.start_s = time.perf_counter() - started

    def _sample(self) -> None:
        try:
            process = psutil.Process(self.process.pid)
            while not self._stop.is_set():
                self.peak = max(self.peak, process.memory_info().rss)
                if self.peak > MAX_RSS:  # a shared 24 GiB machine: stop it before it swaps
                    self.killed = (f"killed at {self.peak / 2**30:.1f} GiB resident, "
                                   f"{time.perf_counter() - self._began:.0f} s after start")
                    process.kill()
                    return
                time.sleep(0.2)
        except psutil.Error:
            pass

    def stop(self) -> None:
        self._stop.set()
        if self.process.poll() is not None:  # it died on its own: show why
            self.log.seek(0)
            print(f"the server had exited with {self.process.returncode}:\n"
                  + self.log.read()[-3000:], file=sys.stderr)  # fmt: skip
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        os.unlink(self.log.name)


HS_SERVER = """
import sys, uvicorn
from hypersearch.dashboard import create_app
uvicorn.run(create_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]),
            log_level="warning", access_log=False)
"""

OPTUNA_SERVER = """
import sys, optuna_dashboard
optuna_dashboard.run_server(sys.argv[1], host="127.0.0.1", port=int(sys.argv[2]))
"""


class Timer:
    """GET requests on one keep-alive connection; each timed to the last byte of the body."""

    def __init__(self, base: str, timeout: float = 900.0) -> None:
        self.client = httpx.Client(base_url=base, timeout=timeout)
        self.errors: list[str] = []

    def get(self, path: str, **params: Any) -> tuple[float, httpx.Response]:
        started = time.perf_counter()
        response = self.client.get(path, params=params or None)
        _ = response.content
        return time.perf_counter() - started, response

    def ok(self, path: str, **params: Any) -> float | None:
        """Seconds, or None (and an error noted) for a non-2xx answer or a dropped connection
        (a second try must then succeed, else the run stops)."""
        try:
            seconds, response = self.get(path, **params)
        except httpx.TransportError as error:
            self.errors.append(f"{path} {params or ''}: {type(error).__name__} {error}")
            self.get("/api/openapi.json")  # the server still answers, or this raises
            return None
        if response.status_code >= 300:
            self.errors.append(f"{path} {params or ''}: {response.status_code} "
                               f"{response.text[:200]}")  # fmt: skip
            return None
        return seconds

    def repeat(self, path: str, times: int = 5, **params: Any) -> dict[str, Any]:
        """The first request ("cold") and the median and max of `times` more."""
        cold = self.ok(path, **params)
        if cold is None:
            return {"error": self.errors[-1]}
        warm = [self.ok(path, **params) for _ in range(times)]
        good = [w for w in warm if w is not None]
        return {"cold": cold, "median": statistics.median(good), "max": max(good)}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def table_requests(totals: dict[str, int], seed: int = 0) -> list[dict[str, Any]]:
    """30 trial-table requests: sorts, orders, state filters, ranges, first and deep pages."""
    rng = random.Random(seed)
    sorts = ["number", "value", "duration", "state"]
    out = []
    for i in range(30):
        state = rng.choice(list(totals))
        sort = sorts[i % 4] if i % 3 else f"params.{rng.choice(PARAMS)}"
        args: dict[str, Any] = {"sort": sort, "order": rng.choice(["asc", "desc"]), "limit": 50}
        if state:
            args["state"] = state
        if i % 5 == 4:
            args.update({"min.value": 0.1, "max.value": 0.4} if i % 2 else {"max.lr": 1e-3})
            args["offset"] = 0
        else:
            deepest = max(0, totals[state] - 50)
            args["offset"] = 0 if rng.random() < 0.3 or not deepest else rng.randrange(deepest)
        out.append(args)
    return out


def measure_http(timer: Timer, name: str, n: int, seed: int = 0) -> dict[str, Any]:
    """Every HTTP measurement of one hypersearch server."""
    rng = random.Random(seed)
    study = f"/studies/{name}"
    api = f"/api/v1/studies/{name}"
    out: dict[str, Any] = {}
    out["studies_html"] = timer.repeat("/")
    out["studies_json"] = timer.repeat("/api/v1/studies")
    out["study_html"] = timer.repeat(study)
    out["study_json"] = timer.repeat(api)

    totals = {}
    for state in ("", "complete", "pruned", "complete,pruned", "failed", "running"):
        _, response = timer.get(api + "/trials", limit=1, **({"state": state} if state else {}))
        totals[state] = response.json().get("total", 0) if response.status_code == 200 else 0
    times, slowest = [], (0.0, {})
    for args in table_requests(totals, seed):
        seconds = timer.ok(api + "/trials", **args)
        if seconds is not None:
            times.append(seconds)
            slowest = max(slowest, (seconds, args), key=lambda pair: pair[0])
    out["table"] = {"n": len(times), "p50": pct(times, 0.5), "p95": pct(times, 0.95),
                    "max": max(times), "slowest": slowest[1]} if times else {}  # fmt: skip
    html_times = []
    for args in table_requests(totals, seed + 1)[:10]:
        seconds = timer.ok(study, **args)
        if seconds is not None:
            html_times.append(seconds)
    out["table_html"] = {"n": len(html_times), "p50": pct(html_times, 0.5),
                         "p95": pct(html_times, 0.95)} if html_times else {}  # fmt: skip

    numbers = sorted(rng.sample(range(n), min(1000, n)))
    out["curves_numbers"] = numbers
    out["curves"] = curves_api(timer, api, numbers)
    out["series_default"] = timer.repeat(api + "/series", 2, metric="loss", max_points=100)

    picks = rng.sample(range(0, n, 10), 5) + rng.sample(range(n), 4)
    _, failed = timer.get(api + "/trials", state="failed", limit=1)
    if failed.status_code == 200 and failed.json().get("trials"):
        picks.append(failed.json()["trials"][0]["number"])
    out["trial_numbers"] = picks
    for key, prefix in (("trial_html", study), ("trial_json", api)):
        found = [timer.ok(f"{prefix}/trials/{number}") for number in picks]
        good = [f for f in found if f is not None]
        out[key] = {"n": len(good), "p50": pct(good, 0.5), "p95": pct(good, 0.95),
                    "max": max(good)} if good else {}  # fmt: skip
    logs = [timer.ok(f"{api}/trials/{number}/logs") for number in picks[:5]]
    out["trial_logs"] = {"p50": pct([x for x in logs if x is not None], 0.5)} if any(logs) else {}
    for route in ("version", "history", "points", "importance", "timeline"):
        out[route] = timer.repeat(f"{api}/{route}")
    return out


def curves_api(timer: Timer, api: str, numbers: list[int]) -> dict[str, Any]:
    """1,000 curves in one request, or in requests of 200 where the server allows no more."""
    runs = []
    how = "1 request"
    for _ in range(3):
        seconds, response = timer.get(api + "/series", metric="loss", max_points=100,
                                      trials=",".join(map(str, numbers)))  # fmt: skip
        if response.status_code == 422 and "at most" in response.text:
            how, seconds, got, size = "5 requests of 200 (the server refused 1000)", 0.0, 0, 0
            for start in range(0, len(numbers), 200):
                part, response = timer.get(
                    api + "/series", metric="loss", max_points=100,
                    trials=",".join(map(str, numbers[start : start + 200])),
                )  # fmt: skip
                seconds += part
                got += len(response.json().get("series", []))
                size += len(response.content)
        elif response.status_code != 200:
            return {"error": f"{response.status_code} {response.text[:200]}"}
        else:
            got, size = len(response.json()["series"]), len(response.content)
        runs.append(seconds)
    return {"median": statistics.median(runs), "max": max(runs), "how": how, "curves": got,
            "bytes": size}  # fmt: skip


# -- the browser -------------------------------------------------------------------------------

PAINT_JS = """async () => {
  // the paint entry may come after the load event: wait for it (at most 30 s)
  const fcp = await new Promise(resolve => {
    const found = performance.getEntriesByName('first-contentful-paint')[0];
    if (found) return resolve(found);
    new PerformanceObserver(list => {
      const entry = list.getEntries().find(e => e.name === 'first-contentful-paint');
      if (entry) resolve(entry);
    }).observe({type: 'paint', buffered: true});
    setTimeout(() => resolve(null), 30000);
  });
  const n = performance.getEntriesByType('navigation')[0];
  return {ttfb: n.responseStart, response_end: n.responseEnd, dcl: n.domContentLoadedEventEnd,
          load: n.loadEventEnd, fcp: fcp ? fcp.startTime : null};
}"""

# the page's charts: its [data-chart] boxes (data-state leaves "loading" once drawn), else any
# Plotly div; with the traces and points each holds
CHARTS_JS = """() => {
  const boxes = [...document.querySelectorAll('[data-chart]')];
  const divs = boxes.length ? boxes : [...document.querySelectorAll('.js-plotly-plot')];
  return divs.map((e, i) => {
    const data = e.data || [];
    let points = 0;
    for (const t of data) {
      points += (t.x || t.y || (t.dimensions && t.dimensions[0].values) || []).length;
    }
    const state = e.dataset.state || (data.length ? 'ready' : 'loading');
    return {id: e.id || ('chart' + i), state, traces: data.length,
            kinds: [...new Set(data.map(t => t.type))].join(','), points, at: performance.now()};
  });
}"""

RESOURCES_JS = """() => performance.getEntriesByType('resource')
  .filter(r => r.name.includes('/api/') || r.name.includes('/static/'))
  .map(r => ({url: r.name.replace(location.origin, ''), start: r.startTime, end: r.responseEnd,
              kib: r.encodedBodySize / 1024}))"""

DRAW_JS = """async ({urls, type}) => {
  document.body.innerHTML = '<div id="bench" style="width:1000px;height:500px"></div>';
  const t0 = performance.now();
  const parts = await Promise.all(urls.map(u => fetch(u).then(r => r.json())));
  const t1 = performance.now();
  const series = parts.flatMap(p => p.series);
  const traces = series.map(s => ({type, mode: 'lines', x: s.steps, y: s.values,
                                   line: {width: 1}, name: '#' + s.number}));
  await Plotly.newPlot('bench', traces, {showlegend: false, margin: {t: 10}});
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  const t2 = performance.now();
  const points = series.reduce((a, s) => a + s.values.length, 0);
  return {fetch_ms: t1 - t0, render_ms: t2 - t1, total_ms: t2 - t0, traces: traces.length, points};
}"""


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
    )


def wait_idle(server: Server, limit: float = 120.0) -> None:
    """Until the server's CPU is idle: a closed page leaves its chart requests running there,
    which would slow the next visit's first response."""
    process = psutil.Process(server.process.pid)
    process.cpu_percent()
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        time.sleep(0.5)
        if process.cpu_percent() < 5:
            return


def paint(browser: Any, url: str, server: Server, reps: int = 3,
          charts_for: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """First contentful paint of `url` in fresh contexts (the server idle before each); with
    `charts_for`, also when each Plotly chart first holds data (polled for that many seconds
    after load, first visit)."""
    paints, charts, resources = [], {}, []
    for rep in range(reps):
        wait_idle(server)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(url, wait_until="load", timeout=900_000)
        paints.append(page.evaluate(PAINT_JS))
        if rep == 0 and charts_for > 0:
            deadline = time.perf_counter() + charts_for
            while time.perf_counter() < deadline:
                found = page.evaluate(CHARTS_JS)
                for chart in found:
                    if chart["state"] != "loading" and chart["id"] not in charts:
                        charts[chart["id"]] = chart
                if found and all(c["id"] in charts for c in found):
                    break
                page.wait_for_timeout(50)
            resources = page.evaluate(RESOURCES_JS)
        context.close()
    fcps = [p["fcp"] for p in paints if p["fcp"] is not None]
    return {
        "fcp_each_ms": fcps,
        "ttfb_each_ms": [p["ttfb"] for p in paints],
        "fcp_ms": statistics.median(fcps) if fcps else None,
        "fcp_max_ms": max(fcps) if fcps else None,
        "ttfb_ms": statistics.median(p["ttfb"] for p in paints),
        "load_ms": statistics.median(p["load"] for p in paints),
        "charts": list(charts.values()),
        "resources": resources,
    }


def draw_curves(browser: Any, base: str, api: str, numbers: list[int], plotly: str,
                one_request: bool) -> dict[str, Any]:  # fmt: skip
    """1,000 curves fetched and drawn with the dashboard's Plotly, SVG and WebGL."""
    query = "metric=loss&max_points=100&trials="
    if one_request:
        urls = [f"{api}/series?{query}{','.join(map(str, numbers))}"]
    else:
        urls = [f"{api}/series?{query}{','.join(map(str, numbers[i:i + 200]))}"
                for i in range(0, len(numbers), 200)]  # fmt: skip
    out = {}
    for kind in ("scatter", "scattergl"):
        runs = []
        for _ in range(2):
            context = browser.new_context(bypass_csp=True, viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.goto(base + "/openapi-bench-blank", wait_until="load")  # a 404 page: same origin
            page.add_script_tag(url=plotly)
            try:
                runs.append(page.evaluate(DRAW_JS, {"urls": urls, "type": kind}))
            except Exception as error:  # e.g. no WebGL in this browser
                runs.append({"error": str(error).splitlines()[0]})
            context.close()
        good = [r for r in runs if "error" not in r]
        out[kind] = (min(good, key=lambda r: r["total_ms"]) | {"runs": len(good)}) if good \
            else runs[0]  # fmt: skip
    return out


# -- one backend -------------------------------------------------------------------------------


def run_hypersearch(
    url: str, label: str, n: int, browser: bool, source: Path | None = None
) -> dict[str, Any]:
    name = study_name(n)
    print(f"{label}: starting the dashboard on {url}", flush=True)
    server = Server(HS_SERVER, url, ready="/api/openapi.json", cwd=source)
    try:
        timer = Timer(server.base)
        result = measure_http(timer, name, n)
        result["start_s"] = server.start_s
        if browser:
            from playwright.sync_api import sync_playwright

            with sync_playwright() as playwright:
                chromium = launch(playwright)
                result["study_paint"] = paint(chromium, f"{server.base}/studies/{name}", server,
                                              charts_for=180.0)  # fmt: skip
                wait_idle(server)
                plotly = next(
                    (p for p in ("/static/vendor/plotly-strict.min.js",
                                 "/static/vendor/plotly.min.js")
                     if timer.get(p)[1].status_code == 200), None,
                )  # fmt: skip
                one = result["curves"].get("how") == "1 request"
                result["curves_chart"] = (
                    {"error": "no plotly bundle served"} if plotly is None else
                    draw_curves(chromium, server.base, f"/api/v1/studies/{name}",
                                result["curves_numbers"], plotly, one) | {"bundle": plotly}
                )  # fmt: skip
                chromium.close()
        result["errors"] = timer.errors
        result["peak_rss_mib"] = server.peak / 2**20
    finally:
        server.stop()
    return result


def run_optuna(path: Path, n: int, browser: bool) -> dict[str, Any]:
    """optuna-dashboard: in Chromium on a fresh server (its trial cache empty, as when a user
    opens it), then its API on another fresh server."""
    url = f"sqlite:///{path}"
    result: dict[str, Any] = {}
    if browser:
        from playwright.sync_api import sync_playwright

        print(f"optuna-dashboard: starting on {url} (browser)", flush=True)
        server = Server(OPTUNA_SERVER, url, ready="/api/meta")
        try:
            study_id = _optuna_study_id(Timer(server.base), n)
            with sync_playwright() as playwright:
                chromium = launch(playwright)
                result["study_paint"] = optuna_page(chromium, server, study_id)
                chromium.close()
            result["browser_peak_rss_mib"] = server.peak / 2**20
            result["browser_killed"] = server.killed
        finally:
            server.stop()
    print(f"optuna-dashboard: starting on {url} (API)", flush=True)
    server = Server(OPTUNA_SERVER, url, ready="/api/meta")
    result["start_s"] = server.start_s
    try:
        timer = Timer(server.base, timeout=OPTUNA_TIMEOUT)
        result["studies_json"] = timer.repeat("/api/studies")
        study_id = result["study_id"] = _optuna_study_id(timer, n)
        detail = result["detail"] = {}
        for key in ("first", "second"):
            detail[key], response = _timed(timer, server, f"/api/studies/{study_id}")
            if response is None:
                break
            detail["status"], detail["mib"] = response.status_code, len(response.content) / 2**20
            del response
        seconds, response = _timed(timer, server, f"/api/studies/{study_id}/param_importances")
        result["importance"] = {"cold": seconds} if response is not None else \
            {"error": seconds}  # fmt: skip
        result["errors"] = timer.errors
        result["peak_rss_mib"] = server.peak / 2**20
    finally:
        server.stop()
    return result


def _timed(timer: Timer, server: Server, path: str) -> tuple[Any, httpx.Response | None]:
    """(seconds, response), or (why there is none, None): a timeout or a server killed."""
    started = time.perf_counter()
    try:
        return timer.get(path)
    except httpx.TimeoutException:
        return f"no answer within {OPTUNA_TIMEOUT:.0f} s", None
    except httpx.HTTPError as error:
        why = server.killed or f"{type(error).__name__} after {time.perf_counter() - started:.0f} s"
        return why, None


def optuna_page(browser: Any, server: Server, study_id: int) -> dict[str, Any]:
    """optuna-dashboard's study page: first paint, and when its one data request
    (``/api/studies/ID``, every trial) is answered, then the network idle (drawn)."""
    import re

    detail = re.compile(rf"/api/studies/{study_id}(\?|$)")
    seen: dict[str, Any] = {}
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.on("response", lambda r: seen.setdefault("response", (time.perf_counter(), r.status))
            if detail.search(r.url) else None)  # fmt: skip
    page.on("requestfailed", lambda r: seen.setdefault("failed", r.failure)
            if detail.search(r.url) else None)  # fmt: skip
    started = time.perf_counter()
    page.goto(f"{server.base}/dashboard/studies/{study_id}", wait_until="load")
    out: dict[str, Any] = page.evaluate(PAINT_JS)
    out["fcp_ms"] = out.pop("fcp")
    while "response" not in seen and "failed" not in seen and not server.killed:
        if time.perf_counter() - started > OPTUNA_TIMEOUT:
            seen["failed"] = f"no answer within {OPTUNA_TIMEOUT:.0f} s"
            break
        page.wait_for_timeout(200)
    if "response" in seen:
        at, status = seen["response"]
        out["data_s"], out["data_status"] = at - started, status
        try:  # its charts and table drawn from that answer
            page.wait_for_load_state("networkidle", timeout=OPTUNA_TIMEOUT * 1000)
            out["network_idle_s"] = time.perf_counter() - started
        except Exception as error:  # report it, carry on
            out["network_idle_s"] = f"not idle: {type(error).__name__}"
    else:
        out["data_s"] = server.killed or seen.get("failed")
    context.close()
    return out


def _optuna_study_id(timer: Timer, n: int) -> int:
    _, response = timer.get("/api/studies")
    return int(next(s["study_id"] for s in response.json()["study_summaries"]
                    if s["study_name"] == study_name(n)))  # fmt: skip


# -- profiling ---------------------------------------------------------------------------------


def profile(url: str, paths: list[str], top: int = 14) -> None:
    """Each path requested in this process under cProfile, with per-statement SQL times."""
    import asyncio
    import cProfile
    import io
    import pstats

    import sqlalchemy as sa
    import starlette.routing

    async def inline(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    starlette.routing.run_in_threadpool = inline  # the sync routes run on this thread
    from hypersearch.dashboard import create_app

    app = create_app(url)
    sql: dict[str, list[float]] = {}
    started: list[float] = []

    def before(*_: Any) -> None:
        started.append(time.perf_counter())

    def after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        key = " ".join(statement.split())[:160]
        sql.setdefault(key, []).append(time.perf_counter() - started.pop())

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", before)
    sa.event.listen(sa.engine.Engine, "after_cursor_execute", after)

    async def get(path: str) -> tuple[int, float]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            t = time.perf_counter()
            response = await client.get(path)
            return response.status_code, time.perf_counter() - t

    asyncio.run(get(paths[0]))  # warm: imports, the pool, caches
    for path in paths:
        sql.clear()
        profiler = cProfile.Profile()
        profiler.enable()
        status, seconds = asyncio.run(get(path))
        profiler.disable()
        shown = path if len(path) < 120 else path[:117] + "..."
        print(f"\n### profile {shown}: {status}, {seconds * 1000:.0f} ms in-process")
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text).sort_stats("cumulative")
        stats.print_stats(r"hypersearch|sqlalchemy/engine/base|sqlite3|psycopg/cursor|json|"
                          r"jinja2/environment", top)  # fmt: skip
        lines = text.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        print("\n".join(line for line in lines[start:] if line.strip()))
        ranked = sorted(sql.items(), key=lambda item: -sum(item[1]))[:6]
        print("SQL (total ms, calls, statement):")
        for statement, found in ranked:
            print(f"  {sum(found) * 1000:8.1f} {len(found):5d}  {statement}")
    sa.event.remove(sa.engine.Engine, "before_cursor_execute", before)
    sa.event.remove(sa.engine.Engine, "after_cursor_execute", after)


# -- the report --------------------------------------------------------------------------------


def _ms(value: Any) -> str:
    return "—" if value is None else f"{value * 1000:,.0f} ms"


def _cell(result: dict[str, Any] | None, key: str) -> str:
    """One table cell from one backend's results."""
    if result is None:
        return "—"
    get = result.get

    def rep(name: str) -> str:
        found = get(name) or {}
        if "error" in found:
            status = found["error"].split(":", 1)[-1].split()[0]
            return "404: no such route" if status == "404" else f"error {status}"
        if "median" not in found:
            return "—"
        return f"{_ms(found['median'])} (cold {_ms(found['cold'])})"

    if key in ("studies_html", "studies_json", "study_html", "study_json", "version", "history",
               "points", "importance", "timeline", "series_default"):  # fmt: skip
        return rep(key)
    if key == "table":
        found = get("table") or {}
        return f"p50 {_ms(found.get('p50'))}, p95 {_ms(found.get('p95'))}" if found else "—"
    if key == "table_html":
        found = get("table_html") or {}
        return f"p50 {_ms(found.get('p50'))}, p95 {_ms(found.get('p95'))}" if found else "—"
    if key in ("trial_html", "trial_json"):
        found = get(key) or {}
        return f"p50 {_ms(found.get('p50'))}, p95 {_ms(found.get('p95'))}" if found else "—"
    if key == "curves":
        found = get("curves") or {}
        if "error" in found:
            return "error: " + found["error"][:60]
        if not found:
            return "—"
        how = "" if found["how"] == "1 request" else " (5 × 200)"
        return f"{_ms(found['median'])}{how}, {found['curves']} curves, " \
            f"{found['bytes'] / 2**20:.1f} MiB"  # fmt: skip
    if key == "study_paint":
        found = get("study_paint") or {}
        if not found:
            return "—"
        return f"FCP {found['fcp_ms']:,.0f} ms (its HTML's first byte {found['ttfb_ms']:,.0f} " \
            f"ms; load {found['load_ms']:,.0f} ms)" if found.get("fcp_ms") is not None \
            else "no FCP entry"  # fmt: skip
    if key == "page_charts":
        charts = (get("study_paint") or {}).get("charts") or []
        return ", ".join(
            f"{c['id'].removeprefix('chart-')} {c['at'] / 1000:,.1f} s"
            + (f" ({c['traces']} {c['kinds']})" if c["id"].endswith("curves") else "")
            + ("" if c["state"] == "ready" else f" [{c['state']}]")
            for c in sorted(charts, key=lambda c: c["at"])
        ) or "none on the page"
    if key == "curves_chart":
        found = get("curves_chart") or {}
        if "error" in found:
            return found["error"]
        parts = []
        for kind in ("scatter", "scattergl"):
            one = found.get(kind) or {}
            if "total_ms" in one:
                parts.append(f"{kind} {one['total_ms']:,.0f} ms (fetch {one['fetch_ms']:,.0f} + "
                             f"draw {one['render_ms']:,.0f}; {one['traces']} traces)")
            elif one:
                parts.append(f"{kind}: {one.get('error', '?')[:60]}")
        return "; ".join(parts) or "—"
    if key == "trial_logs":
        return _ms((get("trial_logs") or {}).get("p50"))
    if key == "peak_rss":
        return f"{get('peak_rss_mib', 0):,.0f} MiB"
    if key == "start":
        return f"{get('start_s', 0):.1f} s"
    return "—"


def _optuna_cell(result: dict[str, Any] | None, key: str) -> str:
    if result is None:
        return "not run"
    detail = result.get("detail") or {}
    paint_ = result.get("study_paint") or {}
    if key == "studies_json":
        found = result.get("studies_json") or {}
        return f"{_ms(found.get('median'))} (/api/studies)" if "median" in found else "—"
    if key == "study_html":
        if not detail:
            return "—"
        if not isinstance(detail.get("first"), float):
            return f"/api/studies/ID: {detail.get('first')}"
        again = detail.get("second")
        again = _ms(again) if isinstance(again, float) else again
        return f"{_ms(detail['first'])} (/api/studies/ID, {detail.get('mib', 0):.0f} MiB; " \
            f"again {again})"  # fmt: skip
    if key == "study_paint":
        if not paint_:
            return "—"
        data, idle = paint_.get("data_s"), paint_.get("network_idle_s")
        text = f"FCP {paint_.get('fcp_ms') or 0:,.0f} ms (a spinner); "
        if not isinstance(data, float):
            return text + f"its data: {data}"
        idle_text = f"{idle:,.1f} s" if isinstance(idle, float) else str(idle)
        return text + f"data answered at {data:,.1f} s, drawn (network idle) {idle_text}"
    if key in ("table", "curves", "history", "trial_html"):
        return "in /api/studies/ID (client side)"
    if key == "importance":
        found = result.get("importance") or {}
        return f"{_ms(found.get('cold'))} (param_importances)" if "cold" in found else \
            str(found.get("error", "—"))  # fmt: skip
    if key == "peak_rss":
        text = f"{result.get('peak_rss_mib', 0):,.0f} MiB (API run)"
        if "browser_peak_rss_mib" in result:
            text += f", {result['browser_peak_rss_mib']:,.0f} MiB (browser run)"
        return text
    if key == "start":
        return f"{result.get('start_s', 0):.1f} s"
    return "—"


ROWS = [
    ("studies_html", "study list, HTML `/`", "< 1 s"),
    ("studies_json", "study list, JSON", ""),
    ("study_html", "study page, HTML response", ""),
    ("study_paint", "study page, first paint (Chromium)", "< 1 s"),
    ("page_charts", "study page, its charts holding data", ""),
    ("table", "trial table, JSON, 30 pages/sorts/filters", "p95 < 300 ms"),
    ("table_html", "trial table, HTML study page, 10 variants", ""),
    ("curves", "learning curves, 1,000 trials, API", "< 2 s"),
    ("curves_chart", "learning curves, 1,000 trials, Chromium fetch + Plotly draw", "< 2 s"),
    ("series_default", "/series default (latest trials)", ""),
    ("trial_html", "trial page, HTML, 10 trials", "< 300 ms"),
    ("trial_json", "trial, JSON", ""),
    ("trial_logs", "trial logs, JSON p50", ""),
    ("version", "/version", ""),
    ("history", "/history", ""),
    ("points", "/points", ""),
    ("importance", "/importance", ""),
    ("timeline", "/timeline", ""),
    ("peak_rss", "server peak RSS", ""),
    ("start", "server start (to first answer)", ""),
]


def verdict(result: dict[str, Any] | None, key: str) -> bool | None:
    """Whether `result` meets the bar of row `key` (None: no bar or nothing measured)."""
    if result is None:
        return None
    try:
        if key == "studies_html":
            return result["studies_html"]["median"] < BARS[key]
        if key == "study_paint":
            return result["study_paint"]["fcp_ms"] / 1000 < BARS[key]
        if key == "table":
            return result["table"]["p95"] < BARS["table_p95"]
        if key == "curves":
            return result["curves"]["median"] < BARS["curves_api"]
        if key == "curves_chart":
            best = min(v["total_ms"] for v in result["curves_chart"].values()
                       if isinstance(v, dict) and "total_ms" in v)  # fmt: skip
            return best / 1000 < BARS["curves_chart"]
        if key == "trial_html":
            return result["trial_html"]["p95"] < BARS["trial_html_p95"]
    except (KeyError, TypeError, ValueError):
        return None
    return None


def report(results: dict[str, dict[str, Any] | None], n: int) -> str:
    sqlite, pg, optuna = results.get("sqlite"), results.get("postgres"), results.get("optuna")
    mark = {True: " ✓", False: " ✗ MISSED", None: ""}
    lines = [
        f"Study dashboard-{n:,} ({n:,} trials × 20 params × 100 steps of 2 metrics).",
        "",
        "| measurement | bar | SQLite | PostgreSQL | optuna-dashboard (SQLite) |",
        "|---|---|---|---|---|",
    ]
    for key, label, bar in ROWS:
        lines.append(f"| {label} | {bar} | {_cell(sqlite, key)}{mark[verdict(sqlite, key)]} | "
                     f"{_cell(pg, key)}{mark[verdict(pg, key)]} | {_optuna_cell(optuna, key)} |")
    for label, result in (("SQLite", sqlite), ("PostgreSQL", pg), ("optuna", optuna)):
        for error in (result or {}).get("errors", []):
            if " 404 " not in error:  # a missing route is in the table already
                lines.append(f"\n{label} error: {error}")
        for found in ((result or {}).get("study_paint") or {}).get("resources") or []:
            if "/api/" in found["url"]:
                lines.append(f"\n{label} study page fetched {found['url'][:90]} from "
                             f"{found['start'] / 1000:.2f} s to {found['end'] / 1000:.2f} s "
                             f"({found['kib']:,.0f} KiB)")  # fmt: skip
        if result and result.get("table", {}).get("slowest"):
            lines.append(f"\n{label}: slowest table request {result['table']['slowest']}")
    for label, result in (("SQLite", sqlite), ("PostgreSQL", pg)):
        if result and result.get("revision"):
            lines.append(f"\n{label} server: hypersearch {result['revision']}")
    return "\n".join(lines)


def slow_paths(result: dict[str, Any], name: str) -> list[str]:
    """The requests of `result` over their bars (or over 300 ms), to profile."""
    api = f"/api/v1/studies/{name}"
    out = []
    if (result.get("studies_html") or {}).get("median", 0) > 0.3:
        out.append("/")
    if (result.get("study_html") or {}).get("median", 0) > 0.3:
        out.append(f"/studies/{name}")
    table = result.get("table") or {}
    if table.get("p95", 0) > 0.2 and table.get("slowest"):
        from urllib.parse import urlencode

        out.append(f"{api}/trials?{urlencode(table['slowest'])}")
    curves = result.get("curves") or {}
    if curves.get("median", 0) > 1.0:
        numbers = ",".join(map(str, result["curves_numbers"][:1000 if curves.get(
            "how") == "1 request" else 200]))  # fmt: skip
        out.append(f"{api}/series?metric=loss&max_points=100&trials={numbers}")
    if (result.get("trial_html") or {}).get("p95", 0) > 0.2:
        out.append(f"/studies/{name}/trials/{result['trial_numbers'][0]}")
    for route in ("version", "history", "points", "importance", "timeline"):
        if (result.get(route) or {}).get("median", 0) > 0.3:
            out.append(f"{api}/{route}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--sqlite", type=Path, help="the file dashboard_study.py built")
    parser.add_argument("--postgres", help=f"URL (default {PG_SERVER}/bench_dashboard_N)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-hypersearch", action="store_true",
                        help="only optuna-dashboard (with --optuna)")
    parser.add_argument("--profile-from", type=Path,
                        help="no measurement: profile the slow requests of this --json file")
    parser.add_argument("--optuna", type=Path, help="the Optuna file dashboard_study.py built")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--profile", action="store_true", help="profile the slow requests")
    parser.add_argument("--json", type=Path, help="write every number here")
    parser.add_argument("--source", type=Path,
                        help="serve the hypersearch in this folder (e.g. an older revision "
                        "unpacked with git archive) instead of this checkout's")
    args = parser.parse_args()
    n = args.trials
    sqlite_path = args.sqlite or Path(f"/tmp/hs-dash/study-{n}.db")
    pg_url = args.postgres or f"{PG_SERVER}/bench_dashboard_{n}"
    began = time.perf_counter()
    load = os.getloadavg()[0]
    if args.source:  # benchinfo describes this checkout; say what is served instead
        print(f"serving the hypersearch in {args.source} (not this checkout's)")
    print(f"hypersearch {git_revision()} (sources {source_fingerprint()}); load {load:.1f}")
    targets = [("sqlite", f"sqlite:///{sqlite_path}")]
    if not args.no_postgres:
        targets.append(("postgres", pg_url))
    if args.profile_from:
        saved = json.loads(args.profile_from.read_text())
        for label, url in targets:
            if saved.get(label):
                print(f"\n## {label}: profiles of the requests over 300 ms")
                profile(url, slow_paths(saved[label], study_name(n)))
        return
    if args.no_hypersearch:
        targets = []
    results: dict[str, Any] = {}
    for label, url in targets:
        # the tree may change between servers (other sessions edit it): say what each served
        served = f"{git_revision()} (sources {source_fingerprint()})" if args.source is None \
            else f"the copy in {args.source}"  # fmt: skip
        results[label] = run_hypersearch(url, label, n, not args.no_browser, args.source)
        after = f"{git_revision()} (sources {source_fingerprint()})" if args.source is None \
            else served  # fmt: skip
        results[label]["revision"] = served + ("" if after == served else
                                               f"; the tree changed during its run to {after}")
    if args.optuna:
        results["optuna"] = run_optuna(args.optuna, n, not args.no_browser)
    text = report(results, n)
    print()
    print(text)
    print(f"\nrevision {git_revision()}, sources {source_fingerprint()}, load before {load:.1f}, "
          f"after {os.getloadavg()[0]:.1f}; {time.perf_counter() - began:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if args.profile:
        for label, url in targets:
            paths = slow_paths(results[label], study_name(n))
            if paths:
                print(f"\n## {label}: profiles of the requests over 300 ms")
                profile(url, paths)


if __name__ == "__main__":
    main()
