// The admin console's page: reads /api/overview every few seconds and renders it; the token
// lives in sessionStorage (gone when the tab closes) and goes out only as a bearer header to
// this origin. Everything from the services is inserted as text, never as HTML.
"use strict";

const KEY = "sextant-admin-token";
const POLL_MS = 5000;
let timer = null;
let lastScores = null;

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function token() {
  return sessionStorage.getItem(KEY);
}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers, { Authorization: "Bearer " + token() });
  const resp = await fetch(path, Object.assign({}, options, { headers }));
  if (resp.status === 401) {
    signOut("The admin token was not accepted.");
    throw new Error("unauthorized");
  }
  return resp;
}

function signOut(reason) {
  sessionStorage.removeItem(KEY);
  if (timer) clearInterval(timer);
  timer = null;
  $("console").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = reason || "";
}

function show(message, ok) {
  const m = $("message");
  m.textContent = message;
  m.className = ok ? "ok" : "error";
}

const fmtTime = (t) => (t ? new Date(t).toISOString().replace("T", " ").slice(0, 19) : "");
const fmtNum = (x, digits) => (typeof x === "number" ? x.toFixed(digits) : "");

function renderSyncs(panel) {
  const body = $("syncs").tBodies[0];
  body.replaceChildren();
  $("syncs-error").textContent = panel.ok ? "" : panel.error;
  $("budget").textContent = "";
  if (!panel.ok) return;
  const jobs = Array.isArray(panel.data) ? panel.data : [];
  if (jobs.length === 0) {
    const tr = el("tr");
    const td = el("td", "No sync has run yet.", "muted");
    td.colSpan = 10;
    tr.append(td);
    body.append(tr);
  }
  for (const j of jobs) {
    const p = j.progress || {};
    const tr = el("tr");
    tr.append(
      el("td", j.id), el("td", j.state), el("td", fmtTime(j.started_at)), el("td", fmtTime(j.finished_at)),
      el("td", p.current_object || ""), el("td", p.objects_done), el("td", p.rows), el("td", p.pages),
      el("td", p.api_calls), el("td", j.error || "", "error"));
    body.append(tr);
  }
  const latest = jobs[0];
  const usage = latest && (latest.api_usage || (latest.progress && latest.progress.api_usage));
  if (usage && typeof usage.used === "number" && typeof usage.max === "number" && usage.max > 0) {
    $("budget").textContent = `Org API budget: ${usage.used} of ${usage.max} daily requests used (${(100 * usage.used / usage.max).toFixed(1)} %).`;
  } else if (latest) {
    $("budget").textContent = `Org API budget: not reported by the connector; the latest sync made ${(latest.progress || {}).api_calls ?? "?"} API calls.`;
  }
}

function modelState(m) {
  if (m.status) return m.status;
  return "";
}

async function showPlots(version) {
  const box = $("plots");
  box.replaceChildren();
  for (const name of ["roc.svg", "learning_curve.svg", "calibration.svg"]) {
    const resp = await api(`/api/models/${encodeURIComponent(version)}/plots/${name}`);
    if (!resp.ok) continue;
    const url = URL.createObjectURL(await resp.blob());
    const fig = el("figure");
    const img = el("img");
    img.alt = `${version} ${name}`;
    img.src = url;
    fig.append(img, el("figcaption", `${version}: ${name.replace(".svg", "").replace("_", " ")}`));
    box.append(fig);
  }
  if (!box.children.length) box.append(el("p", `No plots for ${version}.`, "muted"));
}

async function promote(version) {
  show(`Promoting ${version}…`, true);
  const resp = await api(`/api/models/${encodeURIComponent(version)}/promote`, { method: "POST" });
  let body = {};
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  if (resp.ok) {
    show(`${version} is now current.`, true);
  } else if (resp.status === 404) {
    show(`Not promoted: ${body.message || "not found"} (unknown version, or this trainer has no promotion endpoint).`, false);
  } else {
    show(`Not promoted: ${body.message || resp.statusText} (${body.code || resp.status}).`, false);
  }
  await refresh();
}

function renderModels(panel) {
  const body = $("models").tBodies[0];
  body.replaceChildren();
  $("models-error").textContent = panel.ok ? "" : panel.error;
  if (!panel.ok) return;
  const models = (Array.isArray(panel.data) ? panel.data : []).slice().reverse();
  if (models.length === 0) {
    const tr = el("tr");
    const td = el("td", "No model has been trained yet.", "muted");
    td.colSpan = 10;
    tr.append(td);
    body.append(tr);
  }
  for (const m of models) {
    const x = m.metrics || {};
    const state = modelState(m);
    const tr = el("tr");
    tr.dataset.version = m.version;
    const decision = m.promotion ? `${m.promotion.promoted ? "promoted" : "kept back"} (${m.promotion.by}): ${m.promotion.reason}` : "";
    const actions = el("td");
    const plots = el("button", "Plots");
    plots.type = "button";
    plots.addEventListener("click", () => showPlots(m.version));
    actions.append(plots);
    if (state !== "current") {
      const b = el("button", "Promote");
      b.type = "button";
      b.className = "promote";
      b.addEventListener("click", () => promote(m.version));
      actions.append(" ", b);
    }
    tr.append(
      el("td", m.version), el("td", state, "state-" + state), el("td", fmtTime(m.created_at)),
      el("td", fmtNum(x.auc, 4)), el("td", fmtNum(x.accuracy, 4)), el("td", fmtNum(x.log_loss, 4)),
      el("td", fmtNum(x.base_rate, 3)), el("td", `${x.n_train ?? ""} / ${x.n_test ?? ""}`),
      el("td", decision), actions);
    body.append(tr);
  }
}

function renderGateway(panel) {
  const dl = $("gateway");
  dl.replaceChildren();
  const add = (k, v, cls) => dl.append(el("dt", k), el("dd", v, cls));
  if (!panel.ok) {
    add("state", panel.error, "error");
    return;
  }
  const g = panel.data;
  add("alive", g.alive ? "yes" : "no", g.alive ? "ok" : "error");
  add("ready", g.ready ? "yes (a model is loaded)" : `no: ${g.ready_reason || ""}`, g.ready ? "ok" : "error");
  if (g.scores_requests) {
    const total = Object.values(g.scores_requests).reduce((a, b) => a + b, 0);
    const parts = Object.entries(g.scores_requests).map(([k, v]) => `${k} ${v}`).join(", ");
    add("scoring requests", `${total}${parts ? " (" + parts + ")" : ""}`);
    const now = Date.now();
    if (lastScores && now > lastScores.at) {
      const rate = (total - lastScores.total) / ((now - lastScores.at) / 1000);
      add("request rate", `${Math.max(rate, 0).toFixed(2)} /s`);
    }
    lastScores = { at: now, total };
  }
  for (const [name, v] of Object.entries(g.counters || {})) add(name, v);
}

async function refresh() {
  let resp;
  try {
    resp = await api("/api/overview");
  } catch (e) {
    if (e.message !== "unauthorized") show("The console's server did not answer.", false);
    return;
  }
  if (!resp.ok) {
    show(`The overview failed (${resp.status}).`, false);
    return;
  }
  const o = await resp.json();
  $("login").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = false;
  renderGateway(o.gateway);
  renderSyncs(o.syncs);
  renderModels(o.models);
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  document.body.dataset.loaded = "true";
}

async function startSync() {
  const resp = await api("/api/syncs", { method: "POST" });
  let body = {};
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  if (resp.ok) show(`Sync ${body.id} started.`, true);
  else show(`The sync did not start: ${body.message || resp.statusText} (${body.code || resp.status}).`, false);
  await refresh();
}

function start() {
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $("token").value);
    $("token").value = "";
    $("login-error").textContent = "";
    refresh();
    if (!timer) timer = setInterval(refresh, POLL_MS);
  });
  $("logout").addEventListener("click", () => signOut(""));
  $("start-sync").addEventListener("click", startSync);
  if (token()) {
    refresh();
    timer = setInterval(refresh, POLL_MS);
  }
}

document.addEventListener("DOMContentLoaded", start);
