// eventproc console: send events, watch published ones live (Server-Sent
// Events), and follow the routes' health. Plain browser JavaScript, no
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
