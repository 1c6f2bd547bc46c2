/* hypersearch dashboard: charts from the JSON API, and the live view.
 *
 * One poller reads the study's /version every 2 s. When `version` moves (a trial was created,
 * claimed or finished) it re-fetches the page's live fragments (htmx) and the charts marked
 * data-live="version"; when only `reports` moves (a running trial reported) just the charts
 * marked "reports". Charts scrolled out of view wait until they are seen again. Nothing here
 * evaluates strings or writes HTML from data: text goes in with textContent, so stored strings
 * (trial output, notes, parameter names) stay text.
 */
(() => {
  'use strict';

  const body = document.body;
  const API = body.dataset.api || '';
  const POLL_MS = 2000;
  const LOG_POLL_MS = 1000;
  const MAX_LOG_NODES = 5000; // lines kept in the page's log view
  const COLORS = {
    COMPLETE: '#1f9d55', PRUNED: '#d08c00', FAILED: '#d64545', RUNNING: '#2f7de1', WAITING: '#9aa5b8',
  };
  const PALETTE = ['#3b5bdb', '#e8590c', '#2b8a3e', '#c2255c', '#7048e8', '#0c8599'];
  // best trials dark indigo, worse ones fading to a pale teal-grey
  const SCALE = [[0, '#27308a'], [0.35, '#4f6bd8'], [0.7, '#8fc1c9'], [1, '#dfe9e4']];
  const FONT = { family: 'Inter, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif', size: 12, color: '#4a5568' };
  const AXIS = { gridcolor: '#eef1f5', linecolor: '#d5dbe4', zeroline: false, automargin: true, ticks: 'outside', tickcolor: '#d5dbe4' };
  const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ['lasso2d', 'select2d'] };

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
  const minimize = body.dataset.direction !== 'maximize';

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === 'class') node.className = v;
      else if (k === 'text') node.textContent = v;
      else node.setAttribute(k, v);
    }
    node.append(...children);
    return node;
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    let data = null;
    try { data = await response.json(); } catch (e) { /* not JSON: answered below */ }
    if (!response.ok) {
      const message = data && data.error ? data.error.message : `${response.status} ${response.statusText}`;
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  // a stored string as plotly text: plotly reads a little HTML (<b>, <a href>) and %{...}
  // placeholders in labels, so names and options are entity-escaped first
  const txt = (v) => String(v).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/%\{/g, '%\u200b{');

  function fmt(v) {
    if (v === null || v === undefined) return '';
    if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
    return typeof v === 'string' ? v : JSON.stringify(v);
  }

  function merge(base, extra) {
    const out = { ...base };
    for (const [k, v] of Object.entries(extra || {})) {
      out[k] = v && typeof v === 'object' && !Array.isArray(v) && base[k] && typeof base[k] === 'object'
        ? merge(base[k], v) : v;
    }
    return out;
  }

  function layout(extra) {
    return merge({
      margin: { l: 56, r: 18, t: 12, b: 44 }, font: FONT, hovermode: 'closest', showlegend: false,
      paper_bgcolor: 'rgba(0,0,0,0)', plot_bgcolor: 'rgba(0,0,0,0)',
      xaxis: AXIS, yaxis: AXIS, hoverlabel: { font: { family: FONT.family, size: 12 } },
    }, extra);
  }

  const trialUrl = (n) => `${body.dataset.base}/trials/${n}`;

  // -- charts -----------------------------------------------------------------------------

  function message(div, text) {
    if (window.Plotly) Plotly.purge(div);
    div.style.height = '';
    div.replaceChildren(el('div', { class: 'chart-empty', text }));
  }

  async function plot(div, data, lay, done = 'ready') {
    const stale = $('.chart-empty', div);
    if (stale) stale.remove();
    await Plotly.react(div, data, lay, CONFIG);
    if (!div.dataset.clicks && div.on) {
      div.dataset.clicks = '1';
      div.on('plotly_click', (event) => {
        const point = event.points && event.points[0];
        if (point && typeof point.customdata === 'number') location.href = trialUrl(point.customdata);
      });
    }
    return done;
  }

  async function history(div) {
    const data = await getJSON(`${API}/history?max_points=1000`);
    const pts = data.points || [];
    if (!pts.length) { message(div, 'no completed trial yet'); return 'empty'; }
    const x = pts.map((p) => p.number);
    return plot(div, [
      {
        type: 'scatter', mode: 'markers', name: 'trial', x, y: pts.map((p) => p.value), customdata: x,
        marker: { color: COLORS.COMPLETE, opacity: 0.55, size: 7, line: { width: 0 } },
        hovertemplate: 'trial %{x}<br>%{y:.5g}<extra></extra>',
      },
      {
        type: 'scatter', mode: 'lines', name: 'best so far', x, y: pts.map((p) => p.best), customdata: x,
        line: { color: '#3b5bdb', width: 2.5, shape: 'hv' }, hovertemplate: 'best so far %{y:.5g}<extra></extra>',
      },
    ], layout({ xaxis: { title: { text: 'trial' } }, yaxis: { title: { text: txt(body.dataset.metric || 'value') } }, showlegend: true, legend: { orientation: 'h', y: 1.08, x: 1, xanchor: 'right' } }));
  }

  function selected(id, fallback) {
    const select = id && document.getElementById(id);
    return select && select.value ? select.value : fallback;
  }

  const STYLE = {
    COMPLETE: { color: COLORS.COMPLETE, width: 1.4, dash: 'solid', opacity: 0.5 },
    PRUNED: { color: COLORS.PRUNED, width: 1.2, dash: 'dash', opacity: 0.55 },
    FAILED: { color: COLORS.FAILED, width: 1.2, dash: 'dot', opacity: 0.6 },
    RUNNING: { color: COLORS.RUNNING, width: 2.6, dash: 'solid', opacity: 0.95 },
    WAITING: { color: COLORS.WAITING, width: 1, dash: 'solid', opacity: 0.5 },
  };

  function curveTraces(series, metric, opts = {}) {
    const best = opts.best === undefined ? null : opts.best;
    const rank = (s) => (s.number === best ? 9 : { PRUNED: 0, FAILED: 1, WAITING: 2, COMPLETE: 3, RUNNING: 4 }[s.state] || 0);
    const sorted = [...series].sort((a, b) => rank(a) - rank(b) || a.number - b.number);
    return sorted.map((s, i) => {
      const style = STYLE[s.state] || STYLE.COMPLETE;
      const solo = opts.palette || opts.single;
      const isBest = s.number === best;
      const color = opts.palette ? PALETTE[i % PALETTE.length] : isBest ? '#1b2230' : style.color;
      return {
        // SVG, not WebGL: 1,000 curves of 200 points drew in 0.7 s as SVG and 3 s as WebGL in
        // Chromium without a GPU (bench/dashboard.py); at most 1,000 come from the server
        type: 'scatter',
        mode: s.steps.length === 1 || opts.markers ? 'lines+markers' : 'lines',
        name: opts.palette ? `trial ${s.number}` : `${s.number}`,
        x: s.steps.map((step, k) => (step === null ? k : step)), y: s.values,
        customdata: s.steps.map(() => s.number),
        opacity: solo || isBest ? 1 : style.opacity,
        line: { color, width: solo ? 2.2 : isBest ? 2.8 : style.width, dash: style.dash },
        marker: { size: 4, color },
        hovertemplate: `trial ${s.number} (${(s.state || '').toLowerCase()}${isBest ? ', best' : ''})<br>step %{x}<br>${txt(metric)} %{y:.5g}<extra></extra>`,
      };
    });
  }

  async function curves(div) {
    const metric = selected(div.dataset.metricSelect, body.dataset.metric || 'value');
    const data = await getJSON(`${API}/series?metric=${encodeURIComponent(metric)}&max_points=200`);
    const series = data.series || [];
    if (!series.length) { message(div, `no trial reported ${metric} yet`); return 'empty'; }
    const log = div.dataset.log && document.getElementById(div.dataset.log);
    const facts = $('#study-facts');
    const best = facts && facts.dataset.best !== '' ? Number(facts.dataset.best) : undefined;
    return plot(div, curveTraces(series, metric, { best }), layout({
      xaxis: { title: { text: 'step' } },
      yaxis: { title: { text: txt(metric) }, type: log && log.checked ? 'log' : 'linear' },
    }));
  }

  async function compare(div) {
    const metric = selected(div.dataset.metricSelect, 'value');
    const data = await getJSON(`${API}/series?metric=${encodeURIComponent(metric)}&trials=${div.dataset.trials}&max_points=1000`);
    const series = data.series || [];
    if (!series.length) { message(div, `none of these trials reported ${metric}`); return 'empty'; }
    return plot(div, curveTraces(series, metric, { palette: true }), layout({
      xaxis: { title: { text: 'step' } }, yaxis: { title: { text: txt(metric) } }, showlegend: true,
      legend: { orientation: 'h', y: 1.1, x: 1, xanchor: 'right' },
    }));
  }

  async function trialCurves(container) {
    const metrics = JSON.parse(container.dataset.metrics || '[]');
    const number = body.dataset.trial;
    const facts = $('#trial-facts');
    const state = facts ? facts.dataset.state : 'COMPLETE';
    const answers = await Promise.all(metrics.map((m) => getJSON(
      `${API}/series?metric=${encodeURIComponent(m)}&trials=${number}&max_points=1000`)));
    let drawn = 0;
    for (let i = 0; i < metrics.length; i += 1) {
      const id = `curve-${i}`;
      let div = document.getElementById(id);
      const series = answers[i].series || [];
      if (!series.length) { if (div) { Plotly.purge(div); div.remove(); } continue; }
      if (!div) {
        div = el('div', { class: 'curve', id, 'data-metric': metrics[i] });
        const later = $$('.curve', container).find((c) => Number(c.id.slice(6)) > i);
        container.insertBefore(div, later || null);
      }
      const s = { ...series[0], state };
      await plot(div, curveTraces([s], metrics[i], { single: true, markers: s.steps.length <= 60 }), layout({
        margin: { t: 30 }, title: { text: txt(metrics[i]), font: { size: 13, color: '#1b2230' }, x: 0.01, xanchor: 'left', y: 0.97 },
        xaxis: { title: { text: 'step' } },
      }));
      drawn += 1;
    }
    const none = $('.muted', container);
    if (!drawn && !none) container.append(el('p', { class: 'muted', text: 'none reported yet' }));
    if (drawn && none) none.remove();
    return drawn ? 'ready' : 'empty';
  }

  // the search charts share one read of /points per change of the study or of the filter
  let generation = 0;
  let pointsCache = null;
  function filterQuery() {
    const block = $('#trials-block');
    return block ? block.dataset.filter || '' : '';
  }
  function points() {
    const key = `${generation}|${filterQuery()}`;
    if (!pointsCache || pointsCache.key !== key) {
      const q = filterQuery();
      pointsCache = { key, promise: getJSON(`${API}/points${q ? `?${q}` : ''}`) };
      pointsCache.promise.catch(() => { pointsCache = null; });
    }
    return pointsCache.promise;
  }

  const same = (a, b) => a === b || JSON.stringify(a) === JSON.stringify(b);

  // one axis of a search chart: numeric positions (log10 for log parameters) and tick labels
  function axisOf(param, trials) {
    const raw = trials.map((t) => t.params[param.name]);
    if (param.kind === 'choice' || param.kind === 'other') {
      const options = param.options && param.options.length ? param.options
        : Array.from(new Set(raw.filter((v) => v !== undefined).map((v) => JSON.stringify(v)))).map((s) => JSON.parse(s));
      const numericOther = param.kind === 'other' && raw.every((v) => v === undefined || typeof v === 'number');
      if (numericOther) return { name: param.name, values: raw.map((v) => (v === undefined ? NaN : v)), log: false };
      const index = (v) => options.findIndex((o) => same(o, v));
      return {
        name: param.name, categorical: true, values: raw.map((v) => (v === undefined ? NaN : index(v))),
        tickvals: options.map((_, i) => i), ticktext: options.map((o) => txt(fmt(o))), range: [-0.25, options.length - 0.75],
      };
    }
    const log = !!param.log;
    const tf = (v) => (log ? Math.log10(v) : v);
    const axis = { name: param.name, log, values: raw.map((v) => (typeof v === 'number' ? tf(v) : NaN)) };
    if (param.low !== null && param.low !== undefined && param.high !== null && param.high !== undefined) {
      axis.range = [tf(param.low), tf(param.high)];
    }
    if (log && axis.range) {
      const ticks = [];
      for (let d = Math.ceil(axis.range[0]); d <= Math.floor(axis.range[1]); d += 1) ticks.push(d);
      if (ticks.length >= 2) { axis.tickvals = ticks; axis.ticktext = ticks.map((d) => `1e${d}`); }
    }
    return axis;
  }

  // plotly axis settings for one search-chart axis
  function axisLayout(a, title) {
    const out = { ...AXIS, title: { text: txt(title), standoff: 4 }, type: a.log ? 'log' : 'linear' };
    if (a.categorical) return Object.assign(out, { tickvals: a.tickvals, ticktext: a.ticktext, range: a.range });
    if (a.log) Object.assign(out, { dtick: 1, exponentformat: 'power' });
    if (a.range) {
      const pad = (a.range[1] - a.range[0]) * 0.04 || 0.5;
      out.range = [a.range[0] - pad, a.range[1] + pad]; // log axes take log10 ranges
    }
    return out;
  }

  function usable(data) {
    return (data.params || []).filter((p) => data.trials.some((t) => t.params[p.name] !== undefined));
  }

  async function parallel(div) {
    const data = await points();
    const trials = (data.trials || []).filter((t) => typeof t.value === 'number');
    if (trials.length < 2) { message(div, 'needs two completed trials'); return 'empty'; }
    const metric = body.dataset.metric || 'value';
    const dims = usable(data).map((p) => {
      const a = axisOf(p, trials);
      const dim = { label: txt(a.name), values: a.values };
      if (a.range) dim.range = a.range;
      if (a.tickvals) { dim.tickvals = a.tickvals; dim.ticktext = a.ticktext; }
      return dim;
    });
    const values = trials.map((t) => t.value);
    dims.push({ label: txt(metric), values });
    return plot(div, [{
      type: 'parcoords', dimensions: dims,
      line: {
        color: values, colorscale: SCALE, reversescale: !minimize, showscale: true,
        colorbar: { title: { text: txt(metric), side: 'right' }, thickness: 12, outlinewidth: 0 },
      },
      labelfont: { size: 12, color: '#1b2230' }, tickfont: { size: 10.5 }, rangefont: { size: 9, color: '#9aa5b8' },
      labelangle: dims.length > 10 ? -25 : 0,
    }], layout({ margin: { l: 60, r: 60, t: dims.length > 10 ? 70 : 44, b: 24 } }));
  }

  async function slice(div) {
    const data = await points();
    const trials = (data.trials || []).filter((t) => typeof t.value === 'number');
    const params = usable(data);
    if (!trials.length || !params.length) { message(div, 'no completed trial yet'); return 'empty'; }
    const width = div.clientWidth || 900;
    const columns = Math.min(params.length, width > 1100 ? 4 : width > 700 ? 3 : 2);
    const rows = Math.ceil(params.length / columns);
    div.style.height = `${Math.max(260, rows * 210 + 40)}px`; // CSSOM: allowed by the policy
    const traces = [];
    const lay = layout({
      grid: { rows, columns, pattern: 'independent', xgap: 0.12, ygap: 0.38 }, margin: { l: 56, r: 16, t: 16, b: 40 },
    });
    params.forEach((p, i) => {
      const a = axisOf(p, trials);
      const suffix = i === 0 ? '' : String(i + 1);
      const xs = a.values.map((v) => (a.log && Number.isFinite(v) ? 10 ** v : v));
      traces.push({
        type: 'scatter', mode: 'markers', xaxis: `x${suffix}`, yaxis: `y${suffix}`,
        x: xs, y: trials.map((t) => t.value), customdata: trials.map((t) => t.number),
        marker: {
          size: 6, color: trials.map((t) => t.number), colorscale: [[0, '#c5d3f6'], [1, '#27308a']],
          opacity: 0.8, line: { width: 0 },
        },
        hovertemplate: `trial %{customdata}<br>${txt(p.name)} %{x}<br>%{y:.5g}<extra></extra>`,
      });
      lay[`xaxis${suffix}`] = axisLayout(a, p.name);
      lay[`yaxis${suffix}`] = { ...AXIS, title: i % columns === 0 ? { text: txt(body.dataset.metric || 'value') } : undefined };
    });
    await plot(div, traces, lay);
    Plotly.Plots.resize(div);
    return 'ready';
  }

  function fillSelect(select, params, preferred) {
    const have = $$('option', select).map((o) => o.value);
    const names = params.map((p) => p.name);
    if (same(have, names)) return;
    const keep = select.value;
    select.replaceChildren(...names.map((n) => el('option', { value: n, text: n })));
    select.value = names.includes(keep) ? keep : preferred;
  }

  let importanceCache = null;
  function importanceData() {
    if (!importanceCache || importanceCache.generation !== generation) {
      importanceCache = { generation, promise: getJSON(`${API}/importance`) };
      importanceCache.promise.catch(() => { importanceCache = null; });
    }
    return importanceCache.promise;
  }
  async function contour(div) {
    const data = await points();
    const trials = (data.trials || []).filter((t) => typeof t.value === 'number');
    const params = usable(data).filter((p) => p.kind !== 'other' || trials.every((t) => typeof t.params[p.name] !== 'string'));
    if (params.length < 2) { message(div, 'needs two parameters'); return 'empty'; }
    let order = [];
    try { order = (await importanceData()).importance.map((r) => r.name); } catch (e) { /* unranked */ }
    const score = (p) => (p.kind === 'choice' ? 1e6 : 0) + (order.includes(p.name) ? order.indexOf(p.name) : 1e3);
    const ranked = [...params].sort((a, b) => score(a) - score(b));
    const sx = $('#contour-x'); const sy = $('#contour-y');
    fillSelect(sx, params, ranked[0].name);
    fillSelect(sy, params, ranked[1].name);
    if (sx.value === sy.value) sy.value = ranked.find((p) => p.name !== sx.value).name;
    const px = params.find((p) => p.name === sx.value); const py = params.find((p) => p.name === sy.value);
    const ax = axisOf(px, trials); const ay = axisOf(py, trials);
    const pts = trials.map((t, i) => [ax.values[i], ay.values[i], t.value, t.number]).filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
    if (pts.length < 3) { message(div, `needs three completed trials with ${px.name} and ${py.name}`); return 'empty'; }
    const span = (a, i) => a.range || [Math.min(...pts.map((p) => p[i])), Math.max(...pts.map((p) => p[i]))];
    const [x0, x1] = span(ax, 0); const [y0, y1] = span(ay, 1);
    const N = 40;
    const gx = Array.from({ length: N }, (_, i) => x0 + ((x1 - x0) * i) / (N - 1));
    const gy = Array.from({ length: N }, (_, i) => y0 + ((y1 - y0) * i) / (N - 1));
    const wx = (x1 - x0) || 1; const wy = (y1 - y0) || 1;
    // inverse-distance weighting on the unit square: a smooth surface through the trials
    const z = gy.map((yv) => gx.map((xv) => {
      let num = 0; let den = 0;
      for (const p of pts) {
        const dx = (p[0] - xv) / wx; const dy = (p[1] - yv) / wy;
        const d2 = dx * dx + dy * dy;
        if (d2 < 1e-12) return p[2];
        const w = 1 / (d2 * d2);
        num += w * p[2]; den += w;
      }
      return num / den;
    }));
    const unlog = (a, v) => (a.log ? 10 ** v : v);
    const axisFor = (a, p) => ({ ...axisLayout(a, p.name), range: undefined });
    const metric = body.dataset.metric || 'value';
    return plot(div, [
      {
        type: 'contour', x: gx.map((v) => unlog(ax, v)), y: gy.map((v) => unlog(ay, v)), z,
        colorscale: SCALE, reversescale: !minimize, ncontours: 14, line: { width: 0.5, color: 'rgba(255,255,255,.5)' },
        colorbar: { title: { text: txt(metric), side: 'right' }, thickness: 12, outlinewidth: 0 }, hoverinfo: 'skip',
      },
      {
        type: 'scatter', mode: 'markers', x: pts.map((p) => unlog(ax, p[0])), y: pts.map((p) => unlog(ay, p[1])),
        customdata: pts.map((p) => p[3]), text: pts.map((p) => fmt(p[2])),
        marker: { size: 6, color: '#ffffff', line: { width: 1.2, color: '#1b2230' } },
        hovertemplate: `trial %{customdata}<br>${txt(px.name)} %{x}<br>${txt(py.name)} %{y}<br>${txt(metric)} %{text}<extra></extra>`,
      },
    ], layout({ xaxis: axisFor(ax, px), yaxis: axisFor(ay, py) }));
  }

  async function importance(div) {
    const data = await importanceData();
    const rows = data.importance || [];
    const caption = $('#importance-method');
    if (caption) caption.textContent = rows.length ? `${data.method}, ${data.n_trials} completed trials` : '';
    if (!rows.length) { message(div, 'needs at least 4 completed trials'); return 'empty'; }
    const shown = [...rows].reverse();
    div.style.height = `${Math.max(220, 60 + shown.length * 26)}px`;
    return plot(div, [{
      type: 'bar', orientation: 'h', x: shown.map((r) => r.importance), y: shown.map((r) => txt(r.name)),
      text: shown.map((r) => `${(100 * r.importance).toFixed(1)}%`), textposition: 'outside', cliponaxis: false,
      marker: { color: '#4f6bd8' }, hovertemplate: '%{y}: %{x:.3f}<extra></extra>',
    }], layout({ margin: { l: 20, r: 50 }, xaxis: { title: { text: 'importance' }, rangemode: 'tozero', tickformat: '.0%' }, yaxis: { gridcolor: 'rgba(0,0,0,0)', ticks: '' } }));
  }

  async function timeline(div) {
    const data = await getJSON(`${API}/timeline`);
    const trials = (data.trials || []).filter((t) => t.started_at !== null && t.started_at !== undefined);
    if (!trials.length) { message(div, 'no trial started yet'); return 'empty'; }
    const now = Date.now() / 1000;
    const shift = new Date().getTimezoneOffset() * 60000; // plotly draws epoch ms as UTC
    // one lane per host and worker; trials that overlap in a lane (a worker running several
    // at once) get a lane of their own below it
    const where = (t) => [t.host, t.worker].filter(Boolean).join(' · ') || '(unknown)';
    const ends = {};
    const laneOf = new Map();
    for (const t of [...trials].sort((a, b) => a.started_at - b.started_at || a.number - b.number)) {
      const base = where(t);
      const rows = ends[base] || (ends[base] = []);
      let row = rows.findIndex((end) => end <= t.started_at);
      if (row < 0) { row = rows.length; rows.push(0); }
      rows[row] = t.finished_at || now;
      laneOf.set(t.number, row ? `${base} (${row + 1})` : base);
    }
    const lane = (t) => txt(laneOf.get(t.number));
    const lanes = Array.from(new Set(trials.map(lane))).sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    const traces = Object.keys(COLORS).map((state) => {
      const mine = trials.filter((t) => t.state === state);
      return {
        type: 'bar', orientation: 'h', name: state.toLowerCase(),
        base: mine.map((t) => t.started_at * 1000 - shift),
        x: mine.map((t) => Math.max(200, ((t.finished_at || now) - t.started_at) * 1000)),
        y: mine.map(lane), customdata: mine.map((t) => t.number),
        text: mine.map((t) => `trial ${t.number}: ${Math.round((t.finished_at || now) - t.started_at)} s`),
        marker: { color: COLORS[state], line: { color: '#ffffff', width: 1 } },
        hovertemplate: `%{text} (${state.toLowerCase()})<extra>%{y}</extra>`, textposition: 'none',
      };
    }).filter((t) => t.x.length);
    div.style.height = `${Math.max(200, 110 + lanes.length * 30)}px`;
    await plot(div, traces, layout({
      barmode: 'overlay', bargap: 0.25, showlegend: true,
      legend: { orientation: 'h', yanchor: 'bottom', y: 1.02, x: 1, xanchor: 'right' },
      xaxis: { type: 'date', title: { text: '' } },
      yaxis: { type: 'category', categoryarray: lanes, categoryorder: 'array', autorange: 'reversed' },
      margin: { l: 20, t: 36 },
    }));
    Plotly.Plots.resize(div);
    return 'ready';
  }

  const RENDER = {
    history, curves, compare, parallel, slice, contour, importance, timeline, 'trial-curves': trialCurves,
  };

  // -- drawing, visibility, live refresh ----------------------------------------------------

  const charts = $$('[data-chart]');
  const visible = new Set();
  const dirty = new Set();

  async function draw(div) {
    if (!window.Plotly) return;
    if (div.hsBusy) { div.hsAgain = true; return; }
    div.hsBusy = true;
    dirty.delete(div);
    try {
      div.dataset.state = await RENDER[div.dataset.chart](div);
    } catch (error) {
      message(div, `could not draw this chart: ${error.message}`);
      div.dataset.state = 'error';
    } finally {
      div.dataset.renders = String(Number(div.dataset.renders || 0) + 1);
      div.hsBusy = false;
      if (div.hsAgain) { div.hsAgain = false; draw(div); }
    }
  }

  function refresh(div) {
    if (visible.has(div) || !('IntersectionObserver' in window)) draw(div);
    else dirty.add(div);
  }

  if ('IntersectionObserver' in window) {
    const seen = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        if (entry.isIntersecting) {
          visible.add(entry.target);
          if (dirty.has(entry.target)) draw(entry.target);
        } else visible.delete(entry.target);
      }
    }, { rootMargin: '200px' });
    charts.forEach((div) => seen.observe(div));
  }
  charts.forEach((div) => { div.dataset.state = 'loading'; draw(div); });

  // a select or checkbox naming a chart redraws it
  document.addEventListener('change', (event) => {
    const target = event.target;
    const id = target.dataset && target.dataset.for;
    if (id && document.getElementById(id)) draw(document.getElementById(id));
  });

  function changed(kind) {
    if (kind === 'version') {
      generation += 1;
      const typing = document.activeElement && document.activeElement.matches(
        'input:not([type=checkbox]), textarea, select');
      $$('[hx-trigger="hs:refresh"]').forEach((part) => {
        // a part being typed into waits for the next change
        if (window.htmx && !(typing && part.contains(document.activeElement))) htmx.trigger(part, 'hs:refresh');
      });
      refreshFiles();
    }
    charts.forEach((div) => { if ((div.dataset.live || '').split(' ').includes(kind)) refresh(div); });
  }

  const live = $('#live');
  function showLive(ok, status) {
    if (!live) return;
    live.hidden = false;
    live.classList.toggle('on', ok);
    live.classList.toggle('off', !ok);
    const text = $('.live-text', live);
    if (!ok) text.textContent = 'offline: retrying';
    else text.textContent = status && status.running ? `live · ${status.running} running` : 'live';
  }

  let last = null;
  let timer = null;
  async function tick() {
    clearTimeout(timer);
    if (!document.hidden) {
      try {
        const now = await getJSON(body.dataset.poll);
        showLive(true, now);
        if (last && now.version !== last.version) changed('version');
        else if (last && now.reports !== last.reports) changed('reports');
        last = now;
      } catch (error) {
        showLive(false);
      }
    }
    timer = setTimeout(tick, POLL_MS);
  }
  if (body.dataset.poll) tick();
  document.addEventListener('visibilitychange', () => { if (!document.hidden && body.dataset.poll) tick(); });

  if (body.dataset.page === 'studies') { // the list of studies: re-read every few seconds
    showLive(true);
    setInterval(() => {
      const block = $('#studies-block');
      if (!document.hidden && block && window.htmx) htmx.trigger(block, 'hs:refresh');
    }, 3 * POLL_MS);
  }

  // -- htmx: drop empty filter fields, keep the selection and scroll across swaps -----------

  body.addEventListener('htmx:configRequest', (event) => {
    const detail = event.detail;
    const form = detail.formData;
    if (form && typeof form.delete === 'function') {
      for (const key of Array.from(new Set(form.keys()))) {
        if (form.getAll(key).every((v) => v === '')) form.delete(key);
      }
    } else if (detail.parameters) {
      for (const key of Object.keys(detail.parameters)) if (detail.parameters[key] === '') delete detail.parameters[key];
    }
  });

  let scrollLeft = 0;
  let lastFilter = filterQuery();
  body.addEventListener('htmx:beforeSwap', () => {
    const wrap = $('#trials-table .table-wrap');
    scrollLeft = wrap ? wrap.scrollLeft : 0;
  });
  body.addEventListener('htmx:afterSettle', () => {
    const facts = $('#study-facts');
    if (facts && facts.dataset.counts) { // the filter's state chips keep their counts current
      const counts = JSON.parse(facts.dataset.counts);
      for (const [state, n] of Object.entries(counts)) {
        const count = $(`#filter .chip-${state.toLowerCase()} .count`);
        if (count) count.textContent = String(n);
      }
    }
    const wrap = $('#trials-table .table-wrap');
    if (wrap) wrap.scrollLeft = scrollLeft;
    applyPicks();
    if (filterQuery() !== lastFilter) { // the table's filter changed: so do the search charts
      lastFilter = filterQuery();
      charts.forEach((div) => { if ('filtered' in div.dataset) refresh(div); });
    }
  });

  // the state chips apply at once
  document.addEventListener('change', (event) => {
    const chip = event.target.closest && event.target.closest('#filter .chip');
    if (chip) event.target.form.requestSubmit();
  });

  // -- compare: up to 5 picked trials, remembered across refreshes --------------------------

  const PICKS = `hs-picks:${API}`;
  const getPicks = () => { try { return JSON.parse(sessionStorage.getItem(PICKS) || '[]'); } catch (e) { return []; } };
  const setPicks = (picks) => sessionStorage.setItem(PICKS, JSON.stringify(picks));

  function applyPicks() {
    const bar = $('#compare-bar');
    if (!bar) return;
    const picks = getPicks();
    $$('input.pick').forEach((box) => { box.checked = picks.includes(Number(box.value)); });
    const link = $('#compare-link'); const clear = $('#compare-clear');
    const count = $('.compare-count', bar);
    count.textContent = picks.length ? `${picks.length} selected (${picks.join(', ')})${picks.length < 2 ? ': pick one more' : ''}` : 'select 2–5 trials to compare';
    link.hidden = picks.length < 2;
    link.href = `${bar.dataset.base}?trials=${picks.join(',')}`;
    clear.hidden = !picks.length;
    bar.classList.toggle('active', picks.length > 0);
  }
  document.addEventListener('change', (event) => {
    if (!event.target.matches || !event.target.matches('input.pick')) return;
    const n = Number(event.target.value);
    let picks = getPicks().filter((p) => p !== n);
    if (event.target.checked) {
      if (picks.length >= 5) { event.target.checked = false; } else picks.push(n);
    }
    picks.sort((a, b) => a - b);
    setPicks(picks);
    applyPicks();
  });
  document.addEventListener('click', (event) => {
    if (event.target.id === 'compare-clear') { setPicks([]); applyPicks(); }
  });
  applyPicks();

  // -- controls: POST through fetch, the answer shown in the form ---------------------------

  function say(form, text, ok) {
    const out = $('.form-msg', form);
    if (!out) return;
    out.textContent = text;
    out.classList.toggle('ok', ok);
    out.classList.toggle('error', !ok);
  }

  function success(form, data) {
    switch (form.id) {
      case 'enqueue': return `queued as trial ${data.number}`;
      case 'budget': {
        const changes = Object.entries(data.changes || {});
        return changes.length ? `changed: ${changes.map(([k, v]) => `${k} ${fmt(v[0]) || 'none'} → ${fmt(v[1]) || 'none'}`).join(', ')}` : 'nothing to change';
      }
      case 'stop-study': return 'stop requested: the workers stop soon';
      case 'stop-trial': return 'stop requested: the trial ends at its next report';
      case 'note-form': return 'note added';
      default: return 'done';
    }
  }

  document.addEventListener('submit', async (event) => {
    const form = event.target;
    if (!form.matches('form.control')) return;
    event.preventDefault();
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
    const fields = new FormData(form);
    if (form.id === 'enqueue') {
      try { JSON.parse(String(fields.get('params'))); } catch (error) {
        say(form, `the parameters are not JSON: ${error.message}`, false);
        return;
      }
    }
    const button = $('button[type="submit"]', form);
    if (button) button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: 'POST', body: new URLSearchParams(fields), credentials: 'same-origin',
        headers: { Accept: 'application/json' },
      });
      let data = {};
      try { data = await response.json(); } catch (e) { /* shown as the status below */ }
      if (response.ok) {
        say(form, success(form, data), true);
        if (form.dataset.after === 'notes') { form.reset(); await reloadNotes(); }
        tick();
      } else if (response.status === 401) {
        say(form, 'refused: this browser has no token. Log in with the link printed at start (/login?token=…), then try again.', false);
      } else {
        say(form, (data.error && data.error.message) || `${response.status} ${response.statusText}`, false);
      }
    } catch (error) {
      say(form, `could not reach the dashboard: ${error.message}`, false);
    } finally {
      if (button) button.disabled = false;
    }
  });

  // -- trial page: notes, files, the log tail ----------------------------------------------

  function when(seconds) {
    const d = new Date(seconds * 1000);
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  async function reloadNotes() {
    const list = $('#note-list');
    if (!list) return;
    const data = await getJSON(list.dataset.url);
    const notes = data.notes || [];
    list.replaceChildren(...(notes.length ? notes.map((n) => el('li', {},
      el('span', { class: 'muted small', text: when(n.created_at) }), el('p', { text: n.text })))
      : [el('li', { class: 'muted none', text: 'no notes yet' })]));
  }

  function size(n) {
    if (n < 1024) return `${n} B`;
    const units = ['KiB', 'MiB', 'GiB'];
    let v = n; let u = -1;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
    return `${v.toFixed(1)} ${units[u]}`;
  }

  async function refreshFiles() {
    const box = $('#file-list');
    if (!box) return;
    if (box.dataset.done === 'true') return; // the trial has ended: its files are listed
    try {
      const data = await getJSON(box.dataset.url);
      const files = data.files || [];
      const root = $('#files-root');
      if (root) root.textContent = data.root || '';
      if (!files.length) {
        box.replaceChildren(el('p', { class: 'muted', text: data.root ? 'the output folder is empty' : 'no output folder for this trial' }));
      } else {
        const rows = files.map((f) => el('tr', {},
          el('td', {}, el('a', { href: `${box.dataset.url}/${encodeURIComponent(f.id)}`, download: f.path.split('/').pop(), text: f.path })),
          el('td', { class: 'n size', text: size(f.size) })));
        box.replaceChildren(el('table', { class: 'data files' },
          el('thead', {}, el('tr', {}, el('th', { text: 'file' }), el('th', { class: 'n', text: 'size' }))),
          el('tbody', {}, ...rows)));
      }
      const facts = $('#trial-facts');
      if (facts && !['RUNNING', 'WAITING'].includes(facts.dataset.state)) box.dataset.done = 'true';
    } catch (error) {
      box.replaceChildren(el('p', { class: 'error', text: `could not list the files: ${error.message}` }));
    }
  }
  refreshFiles();

  const log = $('#log');
  if (log) {
    const after = { stdout: Number(log.dataset.afterStdout), stderr: Number(log.dataset.afterStderr) };
    const status = $('#log-status');
    const follow = $('#log-follow');
    const stderrOnly = $('#log-stderr-only');
    if (stderrOnly) stderrOnly.addEventListener('change', () => log.classList.toggle('stderr-only', stderrOnly.checked));
    const atBottom = () => log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const bottom = () => { log.scrollTop = log.scrollHeight; };
    bottom();

    async function readStream(stream) {
      let finished = false;
      for (let round = 0; round < 10; round += 1) { // catch up at most 10 pages per poll
        const data = await getJSON(`${log.dataset.url}?stream=${stream}&after=${after[stream]}&limit=2000`);
        const stick = follow && follow.checked && atBottom();
        const lines = data.lines || [];
        if (lines.length) {
          const empty = $('#log-empty');
          if (empty) empty.remove();
          log.hidden = false;
          log.append(...lines.map((line) => el('span', { class: line.stream, text: `${line.text}\n` })));
          while (log.childNodes.length > MAX_LOG_NODES) log.firstChild.remove();
          if (stick) bottom(); // unless the reader scrolled up
        }
        if (data.next_after && data.next_after[stream] !== undefined) after[stream] = data.next_after[stream];
        finished = data.finished;
        if (!data.more) break;
      }
      return finished;
    }

    async function followLog() {
      if (document.hidden) { setTimeout(followLog, LOG_POLL_MS); return; }
      try {
        const outDone = await readStream('stdout');
        const errDone = await readStream('stderr');
        const done = outDone && errDone;
        log.dataset.lines = String(log.childNodes.length);
        if (done) {
          log.dataset.finished = 'true';
          if (status) status.textContent = 'finished';
          return;
        }
        if (status) status.textContent = 'following…';
      } catch (error) {
        if (status) status.textContent = `retrying: ${error.message}`;
      }
      setTimeout(followLog, LOG_POLL_MS);
    }
    if (log.dataset.finished !== 'true') setTimeout(followLog, LOG_POLL_MS);
  }
})();
