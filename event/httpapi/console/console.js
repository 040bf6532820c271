// eventproc console: send events, watch published ones live (Server-Sent
// Events), chart the sink's metrics, and follow the routes' health. Plain browser JavaScript, no
// build step; the page's Content-Security-Policy allows only same-origin
// scripts, styles and requests.
"use strict";

const MAX_EVENTS = 200; // live list bound
const STATUS_EVERY_MS = 3000; // /readyz refresh

const $ = (id) => document.getElementById(id);

// el builds an element with a class and text; never parses HTML.
function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function setBadge(node, kind, text) {
  node.className = "badge " + kind;
  node.textContent = text;
  node.hidden = false;
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function timeOf(event) {
  const t = event.time ? new Date(event.time) : new Date();
  return isNaN(t) ? "" : t.toLocaleTimeString();
}

// ---- credential -------------------------------------------------------------

// The credential (a token or an API key) the user entered, kept in memory
// only: sent as a header, never put in a URL. Subscriptions use a
// single-use ticket minted with it, as EventSource cannot send headers.
let credential = "";

function withCredential(headers) {
  if (credential !== "") headers.Authorization = "Bearer " + credential;
  return headers;
}

// needCredential shows the credential form after a 401.
function needCredential() {
  $("auth-form").hidden = false;
  $("credential").focus();
  return new Error("this sink needs a credential: enter a token or an API key above");
}

async function useCredential(ev) {
  ev.preventDefault();
  credential = $("credential").value.trim();
  try {
    await loadTypes();
    $("auth-form").hidden = true;
    resumeStats();
    setState("muted", "not subscribed");
    document.body.dataset.ready = "true";
  } catch (e) {
    setState("bad", String(e.message || e));
  }
}

// ticket mints a single-use ticket for a subscription.
async function ticket() {
  const resp = await fetch("v1/tickets", { method: "POST", headers: withCredential({ Accept: "application/json" }) });
  if (resp.status === 401) throw needCredential();
  if (!resp.ok) throw new Error("POST /v1/tickets: HTTP " + resp.status);
  return (await resp.json()).ticket;
}

// ---- types ------------------------------------------------------------------

async function loadTypes() {
  const resp = await fetch("v1/types", { headers: withCredential({ Accept: "application/json" }) });
  if (resp.status === 401) throw needCredential();
  if (!resp.ok) throw new Error("GET /v1/types: HTTP " + resp.status);
  const body = await resp.json();
  const select = $("send-type");
  const chips = $("sub-types");
  select.replaceChildren();
  chips.replaceChildren();
  for (const t of body.types) {
    const label = t.routed ? t.name : t.name + " (no route)";
    const opt = el("option", "", label);
    opt.value = t.name;
    select.append(opt);

    const chip = el("label", "chip");
    const box = el("input");
    box.type = "checkbox";
    box.value = t.name;
    box.id = "sub-" + t.name;
    box.checked = true;
    chip.append(box, document.createTextNode(t.name));
    chips.append(chip);
  }
  const firstRouted = body.types.find((t) => t.routed);
  if (firstRouted) select.value = firstRouted.name;
}

// ---- send -----------------------------------------------------------------

function checkPayload() {
  const area = $("payload");
  const note = $("payload-check");
  const text = area.value.trim();
  let error = "";
  if (text !== "") {
    try {
      JSON.parse(text);
    } catch (e) {
      error = e.message;
    }
  }
  area.setAttribute("aria-invalid", error ? "true" : "false");
  note.className = "check " + (error ? "bad" : "ok");
  note.textContent = error ? "invalid JSON: " + error : text === "" ? "no payload" : "valid JSON";
  $("send").disabled = error !== "";
  return error === "";
}

function addMetadataRow(key = "", value = "") {
  const row = $("metadata-row").content.firstElementChild.cloneNode(true);
  row.querySelector(".kv-key").value = key;
  row.querySelector(".kv-value").value = value;
  row.querySelector(".kv-remove").addEventListener("click", () => row.remove());
  $("metadata").append(row);
  return row;
}

function buildEvent() {
  const event = { type: $("send-type").value };
  const text = $("payload").value.trim();
  if (text !== "") event.payload = JSON.parse(text);
  const metadata = {};
  for (const row of $("metadata").querySelectorAll(".kv")) {
    const key = row.querySelector(".kv-key").value.trim();
    if (key !== "") metadata[key] = row.querySelector(".kv-value").value;
  }
  if (Object.keys(metadata).length > 0) event.metadata = metadata;
  return event;
}

async function send(ev) {
  ev.preventDefault();
  if (!checkPayload()) return;
  const button = $("send");
  const reply = $("reply");
  button.disabled = true;
  const started = performance.now();
  try {
    const resp = await fetch("v1/events", {
      method: "POST",
      headers: withCredential({ "Content-Type": "application/json", Accept: "application/json" }),
      body: JSON.stringify(buildEvent()),
    });
    const text = await resp.text();
    const ms = performance.now() - started;
    const kind = resp.status < 300 ? "ok" : resp.status < 500 ? "warn" : "bad";
    setBadge($("send-status"), kind, resp.status + " " + (resp.statusText || statusText(resp.status)));
    const latency = $("send-latency");
    latency.textContent = ms < 10 ? ms.toFixed(1) + " ms" : Math.round(ms) + " ms";
    latency.hidden = false;
    reply.textContent = text ? pretty(text) : resp.status === 204 ? "consumed: the processor sent no reply"
      : resp.status === 202 ? "accepted: the broadcast route handed the event to every live processor" : "(empty body)";
    reply.dataset.status = String(resp.status);
    reply.hidden = false;
  } catch (e) {
    setBadge($("send-status"), "bad", "network error");
    reply.textContent = String(e);
    reply.hidden = false;
  } finally {
    button.disabled = false;
    checkPayload();
  }
}

function statusText(code) {
  return { 200: "OK", 202: "Accepted", 204: "No Content", 400: "Bad Request", 404: "Not Found", 413: "Too Large",
    429: "Too Many Requests", 501: "Not Implemented", 503: "Unavailable", 504: "Timeout" }[code] || "";
}

// ---- subscribe ------------------------------------------------------------

const live = { source: null, received: 0, missed: 0 };

function setState(kind, text) {
  setBadge($("sub-state"), kind, text);
}

function chosenTypes() {
  return [...$("sub-types").querySelectorAll("input:checked")].map((b) => b.value);
}

function pushItem(li) {
  const list = $("events");
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  $("events-empty").hidden = true;
}

function onEvent(msg) {
  let event;
  try {
    event = JSON.parse(msg.data);
  } catch {
    event = { raw: msg.data };
  }
  live.received++;
  $("count-received").textContent = String(live.received);
  $("last-seen").textContent = msg.lastEventId || "–";

  const li = el("li", "event");
  li.dataset.seq = msg.lastEventId;
  const meta = el("div", "meta");
  meta.append(el("span", "type", msg.type), el("span", "seq", "#" + msg.lastEventId), el("span", "", timeOf(event)));
  if (event.id) meta.append(el("span", "", "id " + event.id));
  li.append(meta);
  let body = "(no payload)";
  if (event.payload !== undefined) body = JSON.stringify(event.payload);
  else if (event.data !== undefined) body = "data (base64): " + event.data;
  else if (event.raw !== undefined) body = event.raw;
  li.append(el("pre", "payload", body));
  const md = Object.entries(event.metadata || {});
  if (md.length > 0) {
    const tags = el("div", "tags");
    for (const [k, v] of md) tags.append(el("span", "tag", k + "=" + v));
    li.append(tags);
  }
  pushItem(li);
}

function onMissed(msg) {
  const n = JSON.parse(msg.data).missed || 0;
  live.missed += n;
  $("count-missed").textContent = String(live.missed);
  pushItem(el("li", "missed", n + (n === 1 ? " event" : " events") + " missed (too slow, or beyond the retained history)"));
}

async function subscribe() {
  const types = chosenTypes();
  if (types.length === 0) {
    setState("warn", "choose at least one type");
    return;
  }
  const params = new URLSearchParams();
  for (const t of types) params.append("types", t);
  const last = $("last-id").value.trim();
  if (last !== "") params.set("last_event_id", last);
  if (credential !== "") {
    try {
      params.set("ticket", await ticket());
    } catch (e) {
      setState("bad", String(e.message || e));
      return;
    }
  }

  const source = new EventSource("v1/events:subscribe?" + params.toString());
  live.source = source;
  setState("muted", "connecting…");
  source.addEventListener("open", () => setState("ok", "live · " + types.join(", ")));
  for (const t of types) source.addEventListener(t, onEvent);
  source.addEventListener("missed", onMissed);
  source.addEventListener("error", (e) => {
    if (e.data) {
      // The sink ended the stream (event: error); EventSource reconnects
      // with Last-Event-ID and resumes from the sink's history.
      let message = e.data;
      try {
        message = JSON.parse(e.data).message;
      } catch {}
      pushItem(el("li", "error", "stream ended by the sink: " + message));
      return;
    }
    if (source.readyState === EventSource.CLOSED && credential !== "" && live.source === source) {
      // A ticket works once: reconnect with a fresh one, resuming after the
      // last event seen.
      const seen = $("last-seen").textContent;
      if (/^[0-9]+$/.test(seen)) $("last-id").value = seen;
      stopSubscription(false);
      subscribe();
    } else if (source.readyState === EventSource.CLOSED) {
      setState("bad", "closed");
      stopSubscription(false);
    } else {
      setState("warn", "reconnecting…");
    }
  });
  const button = $("subscribe");
  button.textContent = "Unsubscribe";
  button.setAttribute("aria-pressed", "true");
}

function stopSubscription(updateState = true) {
  if (live.source) {
    live.source.close();
    live.source = null;
  }
  const button = $("subscribe");
  button.textContent = "Subscribe";
  button.setAttribute("aria-pressed", "false");
  if (updateState) setState("muted", "not subscribed");
}

function toggleSubscription(ev) {
  ev.preventDefault();
  if (live.source) stopSubscription();
  else subscribe();
}

function clearEvents() {
  $("events").replaceChildren();
  $("events-empty").hidden = false;
  live.received = live.missed = 0;
  $("count-received").textContent = "0";
  $("count-missed").textContent = "0";
}

// ---- status ---------------------------------------------------------------

async function refreshStatus() {
  const badge = $("ready-badge");
  try {
    const resp = await fetch("readyz", { headers: { Accept: "application/json" }, cache: "no-store" });
    const body = await resp.json();
    setBadge(badge, body.ready ? "ok" : "bad", body.ready ? "ready" : "not ready");
    renderRoutes(body.routes || []);
    $("status-updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    setBadge(badge, "bad", "sink unreachable");
  }
}

function renderRoutes(routes) {
  const tbody = $("routes").tBodies[0];
  const rows = [];
  for (const r of routes) {
    const targets = r.targets && r.targets.length ? r.targets : [null];
    targets.forEach((t, i) => {
      const tr = el("tr");
      if (i === 0) {
        const type = el("td", "mono", r.type);
        const mode = el("td", "", r.broadcast ? "broadcast" : "one of");
        const ready = el("td");
        const b = el("span");
        setBadge(b, r.ready ? "ok" : "bad", r.ready ? "ready" : "down");
        ready.append(b);
        for (const c of [type, mode, ready]) c.rowSpan = targets.length;
        tr.append(type, mode, ready);
      }
      if (t) {
        const addrs = t.addresses && t.addresses.length ? " → " + t.addresses.join(", ") : "";
        tr.append(el("td", "mono", t.target + addrs), el("td", "", t.live_streams + " / " + t.streams),
          el("td", "", String(t.pending)));
      } else {
        tr.append(el("td", "", "–"), el("td", "", "–"), el("td", "", "–"));
      }
      rows.push(tr);
    });
  }
  tbody.replaceChildren(...rows);
}

// ---- live metrics -----------------------------------------------------------

// The charts poll GET /v1/stats, a snapshot of the sink's cumulative
// metrics, and turn each new snapshot into a point: rates from the
// counters' growth since the previous one, latency quantiles from the
// histogram buckets that filled in the last LATENCY_WINDOW_MS (one
// interval holds too few events for a p99), gauges as they are.

const STATS_EVERY_MS = 2000;
const CHART_WINDOW_MS = 120000; // two minutes of points
const LATENCY_WINDOW_MS = 10000;
const PALETTE = 6; // series colours .s0 … .s5 in console.css
const SVG_NS = "http://www.w3.org/2000/svg";
const PLOT_W = 300; // the charts' viewBox
const PLOT_H = 100;

// snaps are the recent snapshots, oldest first, reaching back at least
// LATENCY_WINDOW_MS; points the charts' points of the last CHART_WINDOW_MS.
const stats = { snaps: [], points: [], timer: 0, paused: false, colors: new Map(), charts: {} };

// The charts: each picks its series out of a point and formats values;
// series of a group share colours across charts.
const CHART_SPECS = [
  { id: "events", title: "Events/s", empty: "No events in the last 2 minutes", group: "type",
    series: (p) => named(p.rates), total: true, format: formatRate, unit: "/s" },
  { id: "latency", title: "Latency", prefix: "p99 ", empty: "No events to time in the last 2 minutes", group: "type",
    series: (p) => latencySeries(p), format: formatMs, unit: "" },
  { id: "errors", title: "Errors/s by code", empty: "No errors in the last 2 minutes", group: "code",
    series: (p) => named(p.errors), total: true, format: formatRate, unit: "/s" },
  { id: "subscribers", title: "Subscribers", empty: "", gauge: true, noLegend: true, group: "subscribers",
    series: (p) => [{ key: "subscribers", label: "subscribers", value: p.subscribers }], format: formatCount, unit: "" },
  { id: "streams", title: "Processor streams", empty: "No processor targets", gauge: true, emptyWhenNone: true, group: "target",
    series: (p) => named(p.streams), total: true, format: formatCount, unit: "" },
];

function named(values) {
  return Object.entries(values).map(([name, value]) => ({ key: name, label: name, value }));
}

// latencySeries is p99 (solid) and p50 (dashed) of every type, in ms.
function latencySeries(p) {
  const out = [];
  for (const [type, q] of Object.entries(p.latency)) {
    out.push({ key: type, label: type + " p99", value: q.p99, legend: true });
    out.push({ key: type, label: type + " p50", value: q.p50, dashed: true });
  }
  return out;
}

function formatRate(v) {
  return v === 0 ? "0" : v < 10 ? v.toFixed(1) : String(Math.round(v));
}

function formatMs(v) {
  return v < 1 ? v.toFixed(2) + " ms" : v < 10 ? v.toFixed(1) + " ms" : Math.round(v) + " ms";
}

function formatCount(v) {
  return String(Math.round(v));
}

// colorOf gives each series of a group a stable colour class.
function colorOf(group, key) {
  if (!stats.colors.has(group)) stats.colors.set(group, new Map());
  const colors = stats.colors.get(group);
  if (!colors.has(key)) colors.set(key, colors.size % PALETTE);
  return "s" + colors.get(key);
}

// quantile estimates the q-quantile of the events in a histogram's bucket
// deltas (bounds in seconds, cumulative counts, total), interpolating
// linearly within the bucket as Prometheus' histogram_quantile does; ms.
function quantile(q, bounds, counts, total) {
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    if (counts[i] >= rank) {
      const lower = i === 0 ? 0 : bounds[i - 1];
      const below = i === 0 ? 0 : counts[i - 1];
      const inBucket = counts[i] - below;
      const frac = inBucket > 0 ? (rank - below) / inBucket : 1;
      return (lower + (bounds[i] - lower) * frac) * 1000;
    }
  }
  return bounds.length ? bounds[bounds.length - 1] * 1000 : null; // beyond the last bound
}

function sumEvents(events) {
  let n = 0;
  for (const v of Object.values(events || {})) n += v;
  return n;
}

// pointBetween turns snapshots into one chart point: rates between prev
// and cur, latency between older and cur. It returns null when a counter
// went down (the sink restarted).
function pointBetween(older, prev, cur) {
  const dt = (cur.t - prev.t) / 1000;
  if (dt <= 0) return null;
  const before = new Map(prev.body.types.map((t) => [t.type, t]));
  const earlier = new Map(older.body.types.map((t) => [t.type, t]));
  const point = { t: cur.t, rates: {}, latency: {}, errors: {}, streams: {}, subscribers: cur.body.subscribers };
  for (const t of cur.body.types) {
    const old = before.get(t.type) || { events: {} };
    const n = sumEvents(t.events) - sumEvents(old.events);
    if (n < 0) return null;
    point.rates[t.type] = n / dt;
    for (const [code, count] of Object.entries(t.events)) {
      if (code === "OK") continue;
      const d = count - ((old.events || {})[code] || 0);
      point.errors[code] = (point.errors[code] || 0) + d / dt;
    }
    if (t.latency) {
      const was = (earlier.get(t.type) || {}).latency;
      const total = t.latency.count - (was ? was.count : 0);
      const counts = t.latency.counts.map((c, i) => c - (was ? was.counts[i] || 0 : 0));
      if (total < 0) return null;
      point.latency[t.type] = {
        p50: quantile(0.5, t.latency.bounds, counts, total),
        p99: quantile(0.99, t.latency.bounds, counts, total),
      };
    }
  }
  for (const target of cur.body.targets) point.streams[target.target] = target.streams_live;
  return point;
}

function buildCharts() {
  const box = $("charts");
  const tpl = $("chart").content.firstElementChild;
  for (const spec of CHART_SPECS) {
    const fig = tpl.cloneNode(true);
    fig.dataset.chart = spec.id;
    fig.id = "chart-" + spec.id;
    fig.querySelector(".chart-title").textContent = spec.title;
    fig.querySelector("svg").setAttribute("aria-label", spec.title + ", last 2 minutes");
    const grid = fig.querySelector(".gridlines");
    for (const y of [0, PLOT_H / 2, PLOT_H]) {
      const line = document.createElementNS(SVG_NS, "line");
      line.setAttribute("x1", "0");
      line.setAttribute("x2", String(PLOT_W));
      line.setAttribute("y1", String(y));
      line.setAttribute("y2", String(y));
      line.setAttribute("vector-effect", "non-scaling-stroke");
      grid.append(line);
    }
    fig.querySelector(".chart-empty").textContent = "Collecting…";
    box.append(fig);
    stats.charts[spec.id] = fig;
  }
}

// niceMax rounds a chart's top up to 1, 2 or 5 times a power of ten.
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

// pathOf draws one series: a line through its points, broken where a
// value is missing (no events to time).
function pathOf(values, x, y) {
  let d = "";
  let pen = false;
  for (const [t, v] of values) {
    if (v === null || v === undefined) {
      pen = false;
      continue;
    }
    d += (pen ? "L" : "M") + x(t).toFixed(1) + " " + y(v).toFixed(1);
    pen = true;
  }
  return d;
}

function renderChart(spec, points) {
  const fig = stats.charts[spec.id];
  const now = points.length ? points[points.length - 1].t : Date.now();
  const from = now - CHART_WINDOW_MS;
  // Every series seen in the window, with its values in time order.
  const series = new Map();
  for (const p of points) {
    for (const s of spec.series(p)) {
      if (!series.has(s.label)) series.set(s.label, { ...s, values: [] });
      series.get(s.label).values.push([p.t, s.value]);
    }
  }
  let max = 0;
  let latest = null;
  for (const s of series.values()) {
    for (const [, v] of s.values) if (v > max) max = v;
    const [t, v] = s.values[s.values.length - 1];
    s.latest = t === now ? v : spec.gauge ? null : 0; // a series gone from the last point
    if (s.latest !== null && !s.dashed) latest = spec.total ? (latest || 0) + s.latest : Math.max(latest || 0, s.latest);
  }
  const top = niceMax(max);
  const x = (t) => ((t - from) / CHART_WINDOW_MS) * PLOT_W;
  const y = (v) => PLOT_H - (v / top) * PLOT_H;

  const lines = fig.querySelector(".lines");
  const paths = [];
  for (const s of series.values()) {
    const d = pathOf(s.values, x, y);
    if (d === "") continue;
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", d);
    path.setAttribute("class", colorOf(spec.group, s.key) + (s.dashed ? " dashed" : ""));
    path.setAttribute("vector-effect", "non-scaling-stroke");
    path.dataset.series = s.label;
    paths.push(path);
  }
  lines.replaceChildren(...paths);

  // Empty: nothing but zeros (or no points yet) in the window.
  // For streams, zero is news (every target down); no targets is empty.
  const none = spec.emptyWhenNone ? series.size === 0 : max === 0;
  const empty = points.length === 0 ? "Collecting…" : none && spec.empty ? spec.empty : "";
  const note = fig.querySelector(".chart-empty");
  note.textContent = empty;
  note.hidden = empty === "";
  fig.dataset.empty = String(empty !== "");
  fig.dataset.points = String(points.length);
  fig.dataset.latest = latest === null ? "" : String(latest);
  fig.querySelector(".y-max").textContent = points.length ? spec.format(top) + spec.unit : "";
  fig.querySelector(".chart-value").textContent = latest === null ? "–" : (spec.prefix || "") + spec.format(latest) + spec.unit;

  const legend = [];
  for (const s of series.values()) {
    if (s.dashed || (s.latest === null && !s.legend) || spec.noLegend) continue;
    const value = (v) => (v === null ? "–" : spec.format(v) + spec.unit);
    let text = value(s.latest);
    const p50 = [...series.values()].find((o) => o.dashed && o.key === s.key);
    if (p50) text = "p99 " + text + " · p50 " + value(p50.latest);
    const li = el("li", colorOf(spec.group, s.key));
    li.append(el("i", "swatch"), document.createTextNode(s.key + " "), el("b", "", text));
    legend.push(li);
  }
  fig.querySelector(".legend").replaceChildren(...legend);
}

function renderCharts() {
  for (const spec of CHART_SPECS) renderChart(spec, stats.points);
}

// pollStats fetches one snapshot and schedules the next, unless the sink
// has no stats (404), the credential may not read them (403), or it
// needs a credential first (401: useCredential resumes).
async function pollStats() {
  stats.timer = 0;
  let next = true;
  try {
    if (!document.hidden) next = await fetchStats();
  } catch (e) {
    $("charts-note").textContent = "sink unreachable; retrying";
  }
  if (next) stats.timer = setTimeout(pollStats, STATS_EVERY_MS);
}

async function fetchStats() {
  const resp = await fetch("v1/stats", { headers: withCredential({ Accept: "application/json" }), cache: "no-store" });
  if (resp.status === 401) {
    stats.paused = true;
    needCredential();
    $("charts-note").textContent = "waiting for a credential";
    return false;
  }
  if (resp.status === 404) {
    $("charts-card").hidden = true; // this sink serves no stats
    return false;
  }
  if (resp.status === 403) {
    $("charts-note").textContent = "this credential may not read metrics (scope read:metrics)";
    for (const fig of Object.values(stats.charts)) fig.querySelector(".chart-empty").textContent = "No access";
    return false;
  }
  if (!resp.ok) throw new Error("GET /v1/stats: HTTP " + resp.status);
  const body = await resp.json();
  const cur = { t: Date.parse(body.time), body };
  const snaps = stats.snaps;
  if (snaps.length > 0) {
    const point = pointBetween(snaps[0], snaps[snaps.length - 1], cur);
    if (point) stats.points.push(point);
    else snaps.length = 0; // the sink restarted: start afresh
  }
  snaps.push(cur);
  while (snaps.length > 1 && cur.t - snaps[1].t >= LATENCY_WINDOW_MS) snaps.shift();
  const from = cur.t - CHART_WINDOW_MS;
  while (stats.points.length && stats.points[0].t < from) stats.points.shift();
  renderCharts();
  $("charts-note").textContent = "last 2 minutes, from the sink's own metrics · updated " + new Date(cur.t).toLocaleTimeString();
  return true;
}

// resumeStats restarts polling after a credential was entered.
function resumeStats() {
  if (stats.paused && stats.timer === 0) {
    stats.paused = false;
    pollStats();
  }
}

// ---- start ----------------------------------------------------------------

async function start() {
  $("payload").addEventListener("input", checkPayload);
  $("add-metadata").addEventListener("click", () => addMetadataRow().querySelector(".kv-key").focus());
  $("send-form").addEventListener("submit", send);
  $("subscribe-form").addEventListener("submit", toggleSubscription);
  $("clear-events").addEventListener("click", clearEvents);
  $("auth-form").addEventListener("submit", useCredential);
  addMetadataRow("source", "console");
  checkPayload();
  buildCharts();
  renderCharts();
  pollStats();
  refreshStatus();
  setInterval(refreshStatus, STATUS_EVERY_MS);
  try {
    await loadTypes();
    document.body.dataset.ready = "true";
  } catch (e) {
    setState("bad", String(e.message || e));
  }
}

start();
