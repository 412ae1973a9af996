// The iys-gate web console. Plain script, no framework, nothing from the net:
// it talks only to the admin API it was served by, with the bearer token the
// user signed in with (kept in sessionStorage: this tab only, gone when the
// tab closes). Everything the server sends is put on the page as text, never
// as HTML.
"use strict";

const TOKEN_KEY = "iys-gate-token";
const POLL_MS = 5000;
const REPORT_POLL_MS = 60000;

const $ = (id) => document.getElementById(id);
let timer = null;
let lastReport = 0;
let brandsPrefilled = false;

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

// GET `path` with the token; { status, body } where body is the parsed JSON
// (or null). Throws only when the gate cannot be reached.
async function api(path, withToken) {
  const headers = { Accept: "application/json" };
  const t = withToken === undefined ? token() : withToken;
  if (t) headers.Authorization = "Bearer " + t;
  const r = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
  let body = null;
  try {
    body = await r.json();
  } catch (_) {
    body = null;
  }
  return { status: r.status, body };
}

function refusal(status, body) {
  const why = body && body.error ? body.error : "HTTP " + status;
  if (status === 401) return "Refused (401): " + why + ".";
  if (status === 403) return "Refused (403): " + why + ".";
  if (status === 429) return "Rate limited (429): " + why + ".";
  return "Error (" + status + "): " + why + ".";
}

function show(el, on) {
  el.hidden = !on;
}

function text(el, s) {
  el.textContent = s;
}

function cell(tr, value, cls) {
  const td = document.createElement("td");
  if (value instanceof Node) td.appendChild(value);
  else td.textContent = value === null || value === undefined ? "—" : String(value);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function badge(label, cls) {
  const b = document.createElement("span");
  b.className = "badge " + cls;
  b.textContent = label;
  return b;
}

function emptyRow(tbody, cols, message) {
  const tr = document.createElement("tr");
  const td = cell(tr, message, "empty");
  td.colSpan = cols;
  tbody.replaceChildren(tr);
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "never synced";
  const s = Math.max(0, Math.round(seconds));
  if (s < 120) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 120) return m + " min";
  const h = Math.floor(m / 60);
  if (h < 48) return h + " h " + (m % 60) + " min";
  return Math.floor(h / 24) + " d " + (h % 24) + " h";
}

function number(n) {
  if (n === null || n === undefined) return "—";
  return Number(n).toLocaleString("en-US", { maximumFractionDigits: 2 });
}

// The registry's dates (`YYYY-MM-DD HH:mm:ss`, Turkey time), as given.
function registryTime(t) {
  if (t === null || t === undefined) return "never";
  return String(t) + " TRT";
}

// ---- sign in / out -------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const t = $("token").value.trim();
  const err = $("signin-error");
  show(err, false);
  if (!t) return;
  let r;
  try {
    r = await api("/v1/status", t);
  } catch (e) {
    text(err, "Cannot reach the gate: " + e.message);
    show(err, true);
    return;
  }
  if (r.status !== 200) {
    text(err, refusal(r.status, r.body));
    show(err, true);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, t);
  $("token").value = "";
  start();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  if (timer) clearInterval(timer);
  timer = null;
  show($("app"), false);
  show($("signout"), false);
  text($("snapshot"), "");
  text($("updated"), "");
  show($("ready"), false);
  show($("signin-panel"), true);
  const err = $("signin-error");
  if (message) {
    text(err, message);
    show(err, true);
  } else {
    show(err, false);
  }
}

function start() {
  show($("signin-panel"), false);
  show($("app"), true);
  show($("signout"), true);
  lastReport = 0;
  refresh();
  if (timer) clearInterval(timer);
  timer = setInterval(refresh, POLL_MS);
}

// ---- polling -------------------------------------------------------------

async function refresh() {
  if (!token()) return;
  const err = $("app-error");
  let answers;
  try {
    answers = await Promise.all([
      api("/v1/status"),
      api("/v1/rates"),
      api("/v1/sessions"),
      api("/v1/refusals?limit=50"),
      api("/readyz"),
    ]);
  } catch (e) {
    text(err, "Cannot reach the gate: " + e.message);
    show(err, true);
    return;
  }
  const ready = answers.pop();
  const [status, rates, sessions, refusals] = answers;
  renderReady(ready);
  for (const r of answers) {
    if (r.status === 401) {
      signOut(refusal(r.status, r.body));
      return;
    }
  }
  const failed = answers.find((r) => r.status !== 200);
  if (failed) {
    text(err, refusal(failed.status, failed.body));
    show(err, true);
  } else {
    show(err, false);
  }
  if (status.status === 200) renderStatus(status.body);
  if (rates.status === 200) renderRates(rates.body);
  if (sessions.status === 200) renderSessions(sessions.body);
  if (refusals.status === 200) renderRefusals(refusals.body);
  text($("updated"), "updated " + new Date().toISOString().slice(11, 19) + " UTC");
  if (Date.now() - lastReport >= REPORT_POLL_MS) {
    lastReport = Date.now();
    refreshReport();
  }
}

function renderStatus(s) {
  text($("snapshot"), s.snapshot_version === null ? "no snapshot loaded" :
    "snapshot v" + s.snapshot_version + (s.monitor ? " · MONITOR MODE (refusals not enforced)" : ""));
  const max = s.max_data_age_seconds;
  text($("max-age"), max === null || max === undefined ? "(no max_data_age)" : "max data age " + age(max));
  const tbody = $("brands");
  if (!s.brands || s.brands.length === 0) {
    emptyRow(tbody, 8, "No brands in the snapshot.");
    return;
  }
  const rows = s.brands.map((b) => {
    const name = b.iys_code + "/" + b.brand_code;
    const stale = max !== null && max !== undefined &&
      (b.data_age_seconds === null || b.data_age_seconds > max);
    const tr = document.createElement("tr");
    tr.dataset.brand = name;
    if (stale) tr.className = "stale";
    cell(tr, name + (b.followed ? "" : " (not followed)"), "mono");
    cell(tr, stale ? badge("stale", "stale") : badge("fresh", "fresh"));
    cell(tr, age(b.data_age_seconds), "age");
    cell(tr, registryTime(b.synced_at));
    let onay = 0;
    let ret = 0;
    for (const v of Object.values(b.tuples || {})) {
      onay += v.onay;
      ret += v.ret;
    }
    cell(tr, number(onay) + " / " + number(ret), "num");
    cell(tr, number(b.changes_applied), "num");
    const hs = cell(tr, b.cursor_hs, "mono cursor");
    hs.title = b.cursor_hs || "";
    const iys = cell(tr, b.cursor_iys, "mono cursor");
    iys.title = b.cursor_iys || "";
    return tr;
  });
  tbody.replaceChildren(...rows);
  if (!brandsPrefilled) {
    const first = s.brands.find((b) => b.followed) || s.brands[0];
    const form = $("check");
    if (!form.iys_code.value) form.iys_code.value = first.iys_code;
    if (!form.brand_code.value) form.brand_code.value = first.brand_code;
    brandsPrefilled = true;
  }
}

// /readyz: 200 ready, 503 with the reason (no snapshot, stale brands).
function renderReady(r) {
  const b = $("ready");
  const ok = r.status === 200;
  b.className = "badge " + (ok ? "fresh" : "stale");
  text(b, ok ? "ready" : "not ready");
  b.title = ok ? "" : (r.body && r.body.reason) || "HTTP " + r.status;
  show(b, true);
}

function renderRates(r) {
  text($("rates-window"), r.window_seconds === null ? "(rates from the next poll on)" :
    "per second over the last " + Math.round(r.window_seconds) + " s");
  const tbody = $("rates");
  if (!r.series || r.series.length === 0) {
    emptyRow(tbody, 6, "No decisions yet.");
    return;
  }
  const rows = r.series.map((x) => {
    const tr = document.createElement("tr");
    tr.dataset.series = [x.channel, x.decision, x.reason, x.source].join("/");
    cell(tr, x.channel);
    cell(tr, badge(x.decision, x.decision));
    cell(tr, x.reason);
    cell(tr, x.source === "check_api" ? "check API" : x.source);
    cell(tr, x.per_second === null ? "—" : x.per_second.toFixed(2), "num rate");
    cell(tr, number(x.total), "num total");
    return tr;
  });
  tbody.replaceChildren(...rows);
}

function renderSessions(s) {
  const rows = [];
  const row = (gate, now, notes) => {
    const tr = document.createElement("tr");
    tr.dataset.gate = gate;
    cell(tr, gate);
    cell(tr, now, "num now");
    cell(tr, notes, "muted");
    rows.push(tr);
  };
  const off = "not running here";
  if (s.smpp) row("SMPP", number(s.smpp.sessions), "sender connections; " + number(s.smpp.in_flight || 0) + " submits in flight");
  else row("SMPP", "—", off);
  if (s.smtp_policy) row("SMTP policy", number(s.smtp_policy.connections), "Postfix policy connections");
  else row("SMTP policy", "—", off);
  if (s.smtp_hop) row("SMTP hop", number(s.smtp_hop.sessions), "SMTP sessions open");
  else row("SMTP hop", "—", off);
  if (s.sip) row("SIP", "stateless", number(s.sip.invites_received) + " INVITEs received, " +
    number(s.sip.refusal_answers) + " refused (4xx/6xx)");
  else row("SIP", "—", off);
  $("sessions").replaceChildren(...rows);
}

function renderRefusals(r) {
  text($("refusals-count"), "(" + number(r.total_seen) + " since start; the last " + r.capacity + " kept)");
  const tbody = $("refusals");
  if (!r.refusals || r.refusals.length === 0) {
    emptyRow(tbody, 9, "No refusals since the gate started.");
    return;
  }
  const rows = r.refusals.map((x) => {
    const tr = document.createElement("tr");
    cell(tr, x.ts.replace("T", " "), "mono");
    cell(tr, x.protocol.toUpperCase());
    cell(tr, x.channel);
    cell(tr, x.brand, "mono");
    cell(tr, x.recipient, "mono recipient");
    cell(tr, badge(x.monitor ? x.decision + " (monitor)" : x.decision, x.decision));
    cell(tr, x.reason, "reason");
    cell(tr, x.account);
    cell(tr, x.snapshot_version, "num");
    return tr;
  });
  tbody.replaceChildren(...rows);
}

// Today's date in Turkey (UTC+3, no daylight saving): the reports' day.
function turkeyToday() {
  return new Date(Date.now() + 3 * 3600 * 1000).toISOString().slice(0, 10);
}

// The daily report for today (Turkey time): a row per brand, channel,
// decision, reason and dealer; hidden while the gate has none (404).
async function refreshReport() {
  const date = turkeyToday();
  let r;
  try {
    r = await api("/v1/report?date=" + encodeURIComponent(date));
  } catch (_) {
    return;
  }
  const panel = $("report-panel");
  if (r.status !== 200 || !r.body || !Array.isArray(r.body.rows)) {
    show(panel, false);
    return;
  }
  text($("report-date"), `${r.body.date} (UTC${r.body.utc_offset}), ${r.body.total} in all`);
  const table = document.createElement("table");
  const head = document.createElement("tr");
  for (const h of ["brand", "channel", "decision", "reason", "dealer", "count"]) {
    const th = document.createElement("th");
    th.textContent = h;
    head.appendChild(th);
  }
  table.appendChild(head);
  for (const row of r.body.rows) {
    const tr = document.createElement("tr");
    tr.dataset.row = `${row.brand}/${row.channel}/${row.reason}`;
    cell(tr, row.brand);
    cell(tr, row.channel);
    const badge = document.createElement("span");
    badge.className = "badge " + row.decision;
    badge.textContent = row.decision;
    cell(tr, badge);
    cell(tr, row.reason);
    cell(tr, row.dealer);
    cell(tr, row.count, "total");
    table.appendChild(tr);
  }
  $("report").replaceChildren(table);
  show(panel, true);
}

// ---- consent check -------------------------------------------------------

async function check(event) {
  event.preventDefault();
  const form = event.target;
  const q = new URLSearchParams();
  for (const name of ["iys_code", "brand_code", "recipient", "channel", "recipient_type", "message_type"]) {
    const v = form[name].value.trim();
    if (v !== "") q.set(name, v);
  }
  const err = $("check-error");
  show(err, false);
  let r;
  try {
    r = await api("/v1/check?" + q.toString());
  } catch (e) {
    text(err, "Cannot reach the gate: " + e.message);
    show(err, true);
    return;
  }
  if (r.status === 401) {
    signOut(refusal(r.status, r.body));
    return;
  }
  if (r.status !== 200) {
    show($("check-result"), false);
    text(err, refusal(r.status, r.body));
    show(err, true);
    return;
  }
  const d = r.body;
  const decision = $("check-decision");
  decision.className = "badge " + d.decision;
  text(decision, d.decision);
  text($("check-reason"), d.reason);
  text($("check-recipient"), d.recipient + " · " + d.channel + " · message type " + d.message_type);
  text($("check-brand"), d.brand);
  text($("check-age"), age(d.data_age_seconds));
  text($("check-version"), d.snapshot_version);
  text($("check-enforced"), d.monitor ? "no: monitor mode (would be " + d.decision + ", lets it through)" :
    "yes (" + d.enforced_decision + ")");
  show($("check-result"), true);
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin").addEventListener("submit", signIn);
  $("signout").addEventListener("click", () => signOut(null));
  $("check").addEventListener("submit", check);
  if (token()) start();
  else show($("signin-panel"), true);
});
