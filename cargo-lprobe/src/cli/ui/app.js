// lprobe ui: the page's script. It talks only to this server's JSON API (/api/…), with the
// token from the page's URL; every piece of program data is put in the page as text, never
// as markup.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token") || "";
const MAX_RECORDS = 500;
const CHART_POINTS = 60;
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  pid: null,
  files: [],          // [{path, state, warning}]
  sites: new Map(),   // path -> Map(line -> [site])
  openPath: null,
  openState: "same",
  openWarning: null,
  selectedLine: null,
  armedLines: new Set(), // "path:line"
  events: null,
  probesTimer: null,
  charts: new Map(),  // probe id -> {kind, points, el}
};

const $ = (id) => document.getElementById(id);

/** An element with attributes and children (strings become text nodes). */
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(e.dataset, v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(typeof c === "string" || typeof c === "number" ? String(c) : c);
  }
  return e;
}

/** Calls the API; resolves with the JSON answer, rejects with an Error carrying its message. */
async function api(method, path, params, body) {
  const q = new URLSearchParams(params || {});
  const init = { method, headers: { "X-Lprobe-Token": TOKEN } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path + (q.toString() ? "?" + q : ""), init);
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (!res.ok) {
    const err = new Error((data && data.error) || `${method} ${path}: HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

// ------------------------------------------------------------------------------------------
// Processes
// ------------------------------------------------------------------------------------------

async function loadProcesses() {
  const sel = $("process");
  let list = [];
  try {
    list = await api("GET", "/api/processes");
  } catch (e) {
    $("process-info").textContent = e.message;
    return;
  }
  const keep = state.pid;
  sel.replaceChildren(el("option", { value: "" }, list.length ? "(pick one)" : "(none running)"));
  for (const p of list) {
    const name = String(p.program || "?").split("/").pop();
    sel.append(el("option", { value: p.pid }, `${p.pid}  ${name}  (${p.sites} sites, ${p.armed} armed)`));
  }
  const pids = list.map((p) => String(p.pid));
  if (keep && pids.includes(String(keep))) sel.value = String(keep);
  else if (list.length === 1) { sel.value = pids[0]; pickProcess(pids[0]); }
}

async function pickProcess(pid) {
  stopProcess();
  state.pid = pid || null;
  if (!pid) return;
  $("process-info").textContent = "";
  try {
    const [sites, source] = await Promise.all([
      api("GET", "/api/sites", { pid }),
      api("GET", "/api/source", { pid }),
    ]);
    state.sites = new Map();
    for (const s of sites) {
      if (!state.sites.has(s.path)) state.sites.set(s.path, new Map());
      const byLine = state.sites.get(s.path);
      if (!byLine.has(s.line)) byLine.set(s.line, []);
      byLine.get(s.line).push(s);
    }
    state.files = source.files;
    $("process-info").textContent = source.root
      ? `sources from ${source.root}`
      : "no workspace with this process's files around lprobe ui's directory";
    renderTree();
  } catch (e) {
    $("process-info").textContent = e.message;
    return;
  }
  startRecords(pid);
  refreshProbes();
  state.probesTimer = setInterval(refreshProbes, 1000);
}

function stopProcess() {
  if (state.events) state.events.close();
  state.events = null;
  clearInterval(state.probesTimer);
  state.probesTimer = null;
  state.openPath = null;
  state.charts.clear();
  $("charts").replaceChildren();
  $("files").replaceChildren(el("p", { class: "dim" }, "Pick a process."));
  $("source").replaceChildren();
  $("source-head").textContent = "No file open.";
  $("notice").hidden = true;
  $("arm-form").hidden = true;
  $("probes").tBodies[0].replaceChildren();
}

// ------------------------------------------------------------------------------------------
// Files and source
// ------------------------------------------------------------------------------------------

function renderTree() {
  const root = { dirs: new Map(), files: [] };
  for (const f of state.files) {
    const parts = f.path.split("/");
    let node = root;
    for (const d of parts.slice(0, -1)) {
      if (!node.dirs.has(d)) node.dirs.set(d, { dirs: new Map(), files: [] });
      node = node.dirs.get(d);
    }
    node.files.push({ name: parts[parts.length - 1], f });
  }
  const build = (node) => {
    const ul = el("ul");
    for (const [name, sub] of [...node.dirs].sort()) {
      ul.append(el("li", {}, el("div", { class: "dir" }, name + "/"), build(sub)));
    }
    for (const { name, f } of node.files.sort((a, b) => a.name.localeCompare(b.name))) {
      ul.append(el("li", {}, el("div", {
        class: `file ${f.state}`, dataset: { path: f.path }, title: f.warning || f.path,
        onclick: () => openFile(f.path),
      }, name)));
    }
    return ul;
  };
  $("files").replaceChildren(build(root));
}

async function openFile(path, line) {
  let src;
  try {
    src = await api("GET", "/api/source", { pid: state.pid, path });
  } catch (e) {
    $("source-head").textContent = e.message;
    return;
  }
  state.openPath = path;
  state.openState = src.state;
  state.openWarning = src.warning;
  for (const f of document.querySelectorAll("#files .file")) {
    f.classList.toggle("open", f.dataset.path === path);
  }
  $("source-head").textContent = path;
  const notice = $("notice");
  if (src.state === "changed" || src.state === "missing") {
    notice.textContent = `${src.warning}. Arming by line in this file is refused until the program is rebuilt (cargo lprobe build); the marks show the lines it was built with.`;
    notice.hidden = false;
  } else {
    notice.hidden = true;
  }
  const built = src.built_lines || {};
  let lines;
  if (typeof src.text === "string") {
    lines = src.text.split("\n");
    if (lines.length && lines[lines.length - 1] === "") lines.pop();
  } else {
    // No file on disk: the site lines as built, the rest empty.
    const last = Math.max(0, ...Object.keys(built).map(Number));
    lines = Array.from({ length: last }, (_, i) => built[i + 1] || "");
  }
  const byLine = state.sites.get(path) || new Map();
  const rows = lines.map((text, i) => {
    const n = i + 1;
    return el("tr", { id: `L${n}`, dataset: { line: n } },
      el("td", { class: "gutter" }, markFor(path, n, byLine.get(n), built[n])),
      el("td", { class: "num" }, n),
      el("td", { class: "code" }, text));
  });
  $("source").replaceChildren(el("table", {}, el("tbody", {}, rows)));
  paintArmed();
  if (line) showLine(line);
}

/** The gutter mark of a line with sites: entry sites purple, line sites orange. */
function markFor(path, n, sites, builtText) {
  if (!sites || !sites.length) return null;
  const live = sites.filter((s) => s.kind !== "none");
  if (!live.length) return null;
  const title = live.map((s) => `${s.kind} ${s.fn}: ${s.names.length ? s.names.join(", ") : "(captures nothing)"}`);
  const skewed = state.openState === "changed" || state.openState === "missing";
  if (skewed && builtText !== undefined) title.push(`built as: ${builtText}`);
  const kind = live.some((s) => s.kind === "entry") ? "entry" : "line";
  return el("button", {
    type: "button", class: `mark ${kind}${skewed ? " refused" : ""}`,
    title: title.join("\n"), dataset: { line: n }, "aria-label": `sites at line ${n}`,
    onclick: () => (skewed ? refuseSkewed(n) : showArmForm(path, n, live)),
  });
}

function refuseSkewed(n) {
  showArmForm(state.openPath, n, []);
  showError(`${state.openWarning}; rebuild the program ('cargo lprobe build') to arm by line in it`);
  $("arm-submit").disabled = true;
}

function showLine(n) {
  for (const r of document.querySelectorAll("#source tr.here")) r.classList.remove("here");
  const row = document.getElementById(`L${n}`);
  if (row) {
    row.classList.add("here");
    row.scrollIntoView({ block: "center" });
  }
}

function paintArmed() {
  for (const m of document.querySelectorAll("#source .mark")) {
    m.classList.toggle("armed", state.armedLines.has(`${state.openPath}:${m.dataset.line}`));
  }
}

// ------------------------------------------------------------------------------------------
// Arming
// ------------------------------------------------------------------------------------------

function showArmForm(path, line, sites) {
  const form = $("arm-form");
  form.hidden = false;
  form.dataset.location = `${path}:${line}`;
  $("arm-location").textContent = `${path}:${line}`;
  $("arm-site").replaceChildren(...sites.map((s) =>
    el("div", {}, `${s.kind} `, el("code", {}, s.fn), s.names.length ? ` captures ${s.names.join(", ")}` : " captures nothing")));
  $("arm-submit").disabled = false;
  $("arm-error").hidden = true;
  $("arm-ok").hidden = true;
  for (const r of document.querySelectorAll("#source tr.selected")) r.classList.remove("selected");
  const row = document.getElementById(`L${line}`);
  if (row) row.classList.add("selected");
  syncActionFields();
}

function syncActionFields() {
  const action = document.querySelector("input[name=action]:checked").value;
  for (const l of document.querySelectorAll("#arm-form [data-for]")) {
    l.hidden = l.dataset.for !== action;
  }
}

function showError(msg) {
  const e = $("arm-error");
  e.textContent = msg;
  e.hidden = false;
  $("arm-ok").hidden = true;
}

async function submitArm(ev) {
  ev.preventDefault();
  const form = $("arm-form");
  const action = document.querySelector("input[name=action]:checked").value;
  const body = { location: form.dataset.location, action };
  const text = (id) => $(id).value.trim();
  const num = (id) => (text(id) === "" ? undefined : Number(text(id)));
  if (action === "log") body.template = $("template").value;
  if (action === "tictoc") body.to = text("to");
  for (const k of ["if", "ttl", "every", "rate"]) if (text(k) !== "") body[k] = text(k);
  for (const k of ["max_hits", "max_string", "max_items", "max_depth"]) {
    if (num(k) !== undefined) body[k] = num(k);
  }
  try {
    const r = await api("POST", "/api/probes", { pid: state.pid }, body);
    $("arm-error").hidden = true;
    const ok = $("arm-ok");
    ok.textContent = `armed ${r.probe} at ${(r.sites || []).join(", ")}`;
    ok.hidden = false;
    refreshProbes();
  } catch (e) {
    showError(e.message);
  }
}

// ------------------------------------------------------------------------------------------
// Armed probes
// ------------------------------------------------------------------------------------------

async function refreshProbes() {
  if (!state.pid) return;
  const pid = state.pid;
  let status;
  try {
    status = await api("GET", "/api/probes", { pid });
    $("probes-error").hidden = true;
  } catch (e) {
    $("probes-error").textContent = e.message;
    $("probes-error").hidden = false;
    if (e.status === 404) {
      clearInterval(state.probesTimer);
      state.probesTimer = null;
    }
    return;
  }
  if (pid !== state.pid) return;
  const body = $("probes").tBodies[0];
  const probes = status.probes || [];
  state.armedLines = new Set();
  body.replaceChildren(...probes.map((p) => {
    if (p.state === "armed") for (const s of p.sites || []) state.armedLines.add(s);
    const ttl = p.ttl_left_s === null || p.ttl_left_s === undefined ? "-" : `${p.ttl_left_s}s`;
    return el("tr", { dataset: { probe: p.id } },
      el("td", {}, p.id),
      el("td", { class: "loc", title: p.args || p.location }, p.location),
      el("td", {}, (p.actions || []).join(",")),
      el("td", { class: `state-${p.state}` }, p.state),
      el("td", {}, p.hits), el("td", {}, p.emitted), el("td", {}, p.dropped),
      el("td", {}, p.limit || "-"), el("td", {}, ttl),
      el("td", {}, p.state === "armed"
        ? el("button", { type: "button", class: "disarm", onclick: () => disarm(p.id) }, "disarm")
        : null));
  }));
  const sel = $("filter-probe");
  const chosen = sel.value;
  sel.replaceChildren(el("option", { value: "" }, "all"), ...probes.map((p) => el("option", { value: p.id }, p.id)));
  sel.value = probes.some((p) => p.id === chosen) ? chosen : "";
  paintArmed();
}

async function disarm(what) {
  try {
    await api("DELETE", "/api/probes", what === "--all" ? { pid: state.pid, all: 1 } : { pid: state.pid, probe: what });
  } catch (e) {
    $("probes-error").textContent = e.message;
    $("probes-error").hidden = false;
  }
  refreshProbes();
}

// ------------------------------------------------------------------------------------------
// Records
// ------------------------------------------------------------------------------------------

function startRecords(pid) {
  const q = new URLSearchParams({ pid, token: TOKEN });
  const es = new EventSource(`/api/records?${q}`);
  state.events = es;
  $("records-state").textContent = "connecting…";
  es.onopen = () => { $("records-state").textContent = `streaming pid ${pid}`; };
  es.onmessage = (m) => {
    let rec;
    try { rec = JSON.parse(m.data); } catch (_) { return; }
    addRecord(rec);
  };
  es.addEventListener("end", (m) => {
    let reason = "the stream ended";
    try { reason = JSON.parse(m.data).reason; } catch (_) { /* keep the default */ }
    es.close();
    $("records-state").textContent = reason;
    prepend(el("li", { class: "end" }, reason));
    refreshProbes();
  });
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) $("records-state").textContent = "disconnected";
  };
}

function prepend(li) {
  const list = $("records");
  list.prepend(li);
  while (list.children.length > MAX_RECORDS) list.lastChild.remove();
}

function addRecord(rec) {
  const time = String(rec.ts || "").replace(/^.*T/, "").replace(/Z$/, "").slice(0, 12);
  const li = el("li", { class: `record kind-${rec.kind}`, dataset: { probe: rec.probe || "", kind: rec.kind || "" } },
    el("span", { class: "t" }, time), " ",
    el("span", { class: "p" }, rec.probe || ""), " ",
    el("a", { class: "site", onclick: () => jumpTo(rec.site) }, rec.site || ""), " ",
    el("span", { class: "f" }, rec.fn || ""), "  ",
    el("span", { class: "k" }, rec.kind || "?"), "  ",
    summary(rec));
  if (rec.kind === "snapshot") {
    li.append(el("div", { class: "tree" }, Object.entries(rec.vars || {}).map(([k, v]) => tree(k, v, true))));
    li.append(stack(rec.stack || []));
  }
  applyFilter(li);
  prepend(li);
  chart(rec);
}

function summary(rec) {
  switch (rec.kind) {
    case "log": return rec.msg || "";
    case "count": return `count=${rec.count} (+${rec.delta ?? "?"})`;
    case "duration": {
      const d = rec.duration;
      return d ? `n=${d.count} p50=${ns(d.p50_ns)} p90=${ns(d.p90_ns)} p99=${ns(d.p99_ns)} max=${ns(d.max_ns)}` : `${ns(rec.ns)}`;
    }
    case "error": return rec.error || "";
    case "snapshot": return rec.thread ? `thread ${rec.thread}` : "";
    default: return JSON.stringify(rec);
  }
}

function ns(n) {
  if (typeof n !== "number") return "?";
  if (n < 1e3) return `${n}ns`;
  if (n < 1e6) return `${(n / 1e3).toFixed(1)}µs`;
  if (n < 1e9) return `${(n / 1e6).toFixed(2)}ms`;
  return `${(n / 1e9).toFixed(2)}s`;
}

/** A captured value as a collapsible tree: objects and arrays open as details. */
function tree(name, v, open) {
  const label = el("span", { class: "name" }, name);
  if (v !== null && typeof v === "object") {
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v);
    const kind = Array.isArray(v) ? `[${v.length}]` : `{${entries.length}}`;
    return el("details", { open },
      el("summary", {}, label, " ", el("span", { class: "dim" }, kind)),
      entries.map(([k, x]) => tree(k, x, false)));
  }
  const cls = typeof v === "string" ? "str" : typeof v === "number" ? "num" : "";
  return el("div", { class: "leaf", dataset: { name } }, label, " = ",
    el("span", { class: cls }, typeof v === "string" ? JSON.stringify(v) : String(v)));
}

/** Stack frames; a frame `fn (file:line)` in one of the process's files links to its line. */
function stack(frames) {
  return el("ol", { class: "stack", start: 0 }, frames.map((f) => {
    const text = typeof f === "string" ? f : JSON.stringify(f);
    const m = /^(.*) \((.+):(\d+)\)$/.exec(text);
    const file = m && findFile(m[2]);
    if (!file) return el("li", {}, text);
    return el("li", {}, m[1], " (",
      el("a", { class: "frame", onclick: () => openFile(file, Number(m[3])) }, `${m[2]}:${m[3]}`), ")");
  }));
}

function findFile(p) {
  const f = state.files.find((x) => x.path === p) || state.files.find((x) => x.path.endsWith("/" + p) || p.endsWith("/" + x.path));
  return f ? f.path : null;
}

function jumpTo(site) {
  const m = /^(.+):(\d+)$/.exec(site || "");
  const file = m && findFile(m[1]);
  if (file) openFile(file, Number(m[2]));
}

function applyFilter(li) {
  const p = $("filter-probe").value;
  const k = $("filter-kind").value;
  li.hidden = (p && li.dataset.probe !== p) || (k && li.dataset.kind !== k);
}

// ------------------------------------------------------------------------------------------
// Charts: duration percentiles and count rates, per probe
// ------------------------------------------------------------------------------------------

function chart(rec) {
  if (!rec.probe || (rec.kind !== "duration" && rec.kind !== "count")) return;
  let c = state.charts.get(rec.probe);
  if (!c) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 300 70");
    svg.setAttribute("preserveAspectRatio", "none");
    const title = el("h3", {}, `${rec.probe} ${rec.kind === "count" ? "calls per second" : "duration"} · ${rec.fn || rec.site}`);
    const legend = el("div", { class: "legend" });
    const box = el("div", { class: "chart", dataset: { probe: rec.probe, kind: rec.kind } }, title, svg, legend);
    $("charts").append(box);
    c = { kind: rec.kind, points: [], svg, legend, last: null };
    state.charts.set(rec.probe, c);
  }
  const t = Date.parse(rec.ts) || Date.now();
  if (c.kind === "duration" && rec.duration) {
    const d = rec.duration;
    c.points.push({ t, a: d.p50_ns, b: d.p90_ns, c: d.p99_ns });
    c.legend.textContent = `p50 ${ns(d.p50_ns)} · p90 ${ns(d.p90_ns)} · p99 ${ns(d.p99_ns)} · n=${d.count}`;
  } else if (c.kind === "count") {
    // Records of one report (one per site) share a timestamp to the millisecond: summed.
    const prev = c.points[c.points.length - 1];
    if (prev && Math.abs(prev.t - t) < 50) {
      prev.delta += rec.delta || 0;
    } else {
      c.points.push({ t, delta: rec.delta || 0 });
    }
    const pts = c.points;
    for (let i = 1; i < pts.length; i++) {
      pts[i].a = pts[i].delta / Math.max(0.001, (pts[i].t - pts[i - 1].t) / 1000);
    }
    if (pts.length > 1) c.legend.textContent = `${pts[pts.length - 1].a.toFixed(1)}/s now`;
    else c.legend.textContent = "waiting for a second report";
  }
  if (c.points.length > CHART_POINTS) c.points.shift();
  draw(c);
}

function draw(c) {
  const series = c.kind === "duration" ? ["a", "b", "c"] : ["a"];
  const colours = ["#2b6cb0", "#d97706", "#b42318"];
  const pts = c.points.filter((p) => typeof p.a === "number");
  const max = Math.max(1, ...pts.flatMap((p) => series.map((k) => p[k] || 0)));
  c.svg.replaceChildren();
  series.forEach((k, i) => {
    const line = document.createElementNS(SVG_NS, "polyline");
    const coords = pts.map((p, j) => `${(j / Math.max(1, CHART_POINTS - 1)) * 300},${68 - ((p[k] || 0) / max) * 64}`);
    line.setAttribute("points", coords.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colours[i]);
    line.setAttribute("stroke-width", "1.5");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    c.svg.append(line);
  });
}

// ------------------------------------------------------------------------------------------
// Wiring
// ------------------------------------------------------------------------------------------

$("process").addEventListener("change", (e) => pickProcess(e.target.value));
$("refresh").addEventListener("click", loadProcesses);
$("arm-form").addEventListener("submit", submitArm);
$("arm-cancel").addEventListener("click", () => { $("arm-form").hidden = true; });
$("disarm-all").addEventListener("click", () => disarm("--all"));
$("clear").addEventListener("click", () => $("records").replaceChildren());
for (const r of document.querySelectorAll("input[name=action]")) r.addEventListener("change", syncActionFields);
for (const id of ["filter-probe", "filter-kind"]) {
  $(id).addEventListener("change", () => { for (const li of $("records").children) applyFilter(li); });
}
if (!TOKEN) {
  $("process-info").textContent = "no token in this page's URL: open the URL lprobe ui printed";
} else {
  loadProcesses();
}
