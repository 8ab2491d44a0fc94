// The dashboard's page: plain JavaScript, no framework, no CDN. It reads the JSON API
// (relative URLs: the app may be mounted under any prefix) and follows /api/events.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const main = $("#main");
const params = new URLSearchParams(location.search);
if (params.get("token")) sessionStorage.setItem("actors-dashboard-token", params.get("token"));
const token = () => sessionStorage.getItem("actors-dashboard-token") || "";

let info = { actions: false, source: "live", schedules: false, statuses: [] };
let metrics = null;
let table = { status: "", name: "", tag: "", sort: "-created", offset: 0, limit: 50 };
let refreshDue = null;

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

async function act(path) {
  return api(path, { method: "POST", headers: { "X-Dashboard-Token": token() } });
}

function statusBadge(status) {
  const name = (status || "unknown").toLowerCase();
  return `<span class="status ${esc(name)}">${esc(name)}</span>`;
}

// A change to the page costs the browser a new frame (a streaming page that repaints
// for nothing takes CPU from the manager on the same machine): write only what differs.
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

const written = new WeakMap();  // element -> the HTML last written into it here

function setHTML(element, html) {
  if (written.get(element) === html) return;
  element.innerHTML = html;
  written.set(element, html);
}

// A page that redraws itself each second (executors, supervision) writes only when what
// it shows changed; ``marker`` is an element only that page has.
const redrawn = new Map();

function redraw(marker, html) {
  if ($(marker) && redrawn.get(marker) === html) return;
  main.innerHTML = html;
  redrawn.set(marker, html);
}

function bar(fraction) {
  const percent = Math.round(Math.max(0, Math.min(1, fraction || 0)) * 100);
  return `<span class="bar" title="${percent}%"><span style="width:${percent}%"></span></span>`;
}

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  return { page: parts[0] || "tasks", arg: parts.slice(1).map(decodeURIComponent).join("/") };
}

let lastShown = 0;

// live: a refresh of the page on screen (from the event stream), not a navigation: a page
// may then change only what differs.
function show(live = false) {
  lastShown = Date.now();
  const { page, arg } = route();
  document.querySelectorAll("header nav a").forEach((a) => {
    a.classList.toggle("current", a.dataset.page === page || (page === "task" && a.dataset.page === "tasks"));
  });
  const pages = { tasks: tasksPage, task: taskPage, graph: graphPage, executors: executorsPage,
    supervision: supervisionPage, schedules: schedulesPage };
  (pages[page] || tasksPage)(arg, live).then(follow, (error) => {
    main.innerHTML = `<p class="message">${esc(error.message)}</p>`;
  });
}

// -- the task table ---------------------------------------------------------------------

async function tasksPage(_arg, live) {
  document.title = "Tasks · actors dashboard";
  const query = new URLSearchParams();
  for (const key of ["status", "name", "tag", "sort", "offset", "limit"]) {
    if (table[key] !== "") query.set(key, table[key]);
  }
  const page = await api(`api/tasks?${query}`);
  if (route().page !== "tasks") return;
  const options = ["", ...info.statuses]
    .map((s) => `<option value="${s}" ${s === table.status ? "selected" : ""}>${s || "any status"}</option>`)
    .join("");
  const arrow = (key) => (table.sort === key ? " ▲" : table.sort === `-${key}` ? " ▼" : "");
  const rows = page.tasks.map((t) => `
    <tr data-task="${esc(t.task_id)}">
      <td class="id"><a href="#/task/${encodeURIComponent(t.task_id)}">${esc(t.task_id.slice(0, 8))}</a></td>
      <td>${esc(t.name)}</td>
      <td class="status-cell">${statusBadge(t.status)}</td>
      <td class="progress-cell">${bar(t.progress)} <span class="muted">${esc(t.progress_message)}</span></td>
      <td>${esc(t.tags.join(", "))}</td>
      <td>${esc(t.attempt)}</td>
      <td class="muted">${esc((t.created || "").replace("T", " ").slice(0, 19))}</td>
      <td class="muted" title="${esc(t.error || "")}">${esc(t.error || "")}</td>
    </tr>`).join("");
  const last = Math.min(page.total, table.offset + page.tasks.length);
  const body = rows || '<tr><td colspan="8" class="muted">no tasks</td></tr>';
  const shown = `${page.total ? table.offset + 1 : 0}–${last} of ${page.total}`;
  if (live && $("#tasks")) {  // the same table, newer rows: the form and the header stay
    setHTML($("#tasks tbody"), body);
    setText($("#shown"), shown);
    $("#previous").disabled = table.offset === 0;
    $("#next").disabled = last >= page.total;
    return;
  }
  main.innerHTML = `
    <form class="filters" id="filters">
      <select name="status">${options}</select>
      <input name="name" placeholder="name contains" value="${esc(table.name)}">
      <input name="tag" placeholder="tag" value="${esc(table.tag)}">
      <button>Filter</button>
    </form>
    <table id="tasks">
      <thead><tr><th>id</th><th class="sortable" data-sort="name">name${arrow("name")}</th>
      <th class="sortable" data-sort="status">status${arrow("status")}</th><th>progress</th>
      <th>tags</th><th>attempt</th><th class="sortable" data-sort="created">created${arrow("created")}</th><th>error</th></tr></thead>
      <tbody>${body}</tbody>
    </table>
    <div class="pager">
      <button id="previous" ${table.offset === 0 ? "disabled" : ""}>‹ previous</button>
      <span id="shown">${shown}</span>
      <button id="next" ${last >= page.total ? "disabled" : ""}>next ›</button>
    </div>`;
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(event.target);
    Object.assign(table, { status: form.get("status"), name: form.get("name"), tag: form.get("tag"), offset: 0 });
    show();
  });
  main.querySelectorAll("th.sortable").forEach((th) => th.addEventListener("click", () => {
    const key = th.dataset.sort;
    table.sort = table.sort === key ? `-${key}` : key;
    table.offset = 0;
    show();
  }));
  $("#previous").addEventListener("click", () => { table.offset = Math.max(0, table.offset - table.limit); show(); });
  $("#next").addEventListener("click", () => { table.offset += table.limit; show(); });
}

// -- one task ---------------------------------------------------------------------------

function links(list) {
  if (!list || !list.length) return '<span class="muted">none</span>';
  return list.map((t) => `<a href="#/task/${encodeURIComponent(t.task_id)}">${esc(t.name || t.task_id)}</a> ${statusBadge(t.status)}`).join("<br>");
}

async function taskPage(taskId) {
  const t = await api(`api/tasks/${encodeURIComponent(taskId)}`);
  if (route().arg !== taskId) return;
  document.title = `${t.name} · actors dashboard`;
  const finished = ["COMPLETED", "FAILED", "CANCELLED"].includes(t.status);
  const buttons = [];
  if (info.actions && !finished) buttons.push('<button id="cancel" class="danger">Cancel</button>');
  if (info.actions && (t.status === "FAILED" || t.status === "CANCELLED")) buttons.push('<button id="retry">Retry (a new task)</button>');
  const args = t.args === null ? '<span class="muted">kept pickled in the journal</span>'
    : esc([...t.args, ...Object.entries(t.kwargs).map(([k, v]) => `${k}=${v}`)].join(", "));
  main.innerHTML = `
    <h2>${esc(t.name)} ${statusBadge(t.status)}</h2>
    <p>${buttons.join(" ")} <a href="#/graph/${encodeURIComponent(t.task_id)}">its graph</a></p>
    <dl id="detail">
      <dt>id</dt><dd class="id">${esc(t.task_id)}</dd>
      <dt>function</dt><dd>${esc(t.func)}</dd>
      <dt>arguments</dt><dd><code>${args}</code></dd>
      <dt>progress</dt><dd class="progress-cell">${bar(t.progress)} ${esc(Math.round(t.progress * 100))}% <span class="muted">${esc(t.progress_message)}</span></dd>
      <dt>attempt</dt><dd>${esc(t.attempt)} (retries ${esc(t.retry_count)} of ${esc(t.max_retries)})</dd>
      <dt>priority</dt><dd>${esc(t.priority)}</dd>
      <dt>executor</dt><dd>${esc(t.executor)}</dd>
      <dt>tags</dt><dd>${esc(t.tags.join(", "))}</dd>
      <dt>created</dt><dd>${esc(t.created)}</dd>
      <dt>started</dt><dd>${esc(t.started || "–")}</dd>
      <dt>ended</dt><dd>${esc(t.ended || "–")}</dd>
      <dt>depends on</dt><dd>${links(t.dependencies)}</dd>
      <dt>dependents</dt><dd>${links(t.dependents)}</dd>
      ${t.result !== null ? `<dt>result</dt><dd><code>${esc(t.result)}</code></dd>` : ""}
      ${t.error ? `<dt>error</dt><dd>${esc(t.error)}</dd>` : ""}
    </dl>
    ${t.traceback ? `<h3>Traceback</h3><pre>${esc(t.traceback)}</pre>` : ""}`;
  const cancel = $("#cancel");
  if (cancel) cancel.addEventListener("click", async () => { await act(`api/tasks/${encodeURIComponent(taskId)}/cancel`); show(); });
  const retry = $("#retry");
  if (retry) retry.addEventListener("click", async () => {
    const made = await act(`api/tasks/${encodeURIComponent(taskId)}/retry`);
    location.hash = `#/task/${encodeURIComponent(made.task_id)}`;
  });
}

// -- the graph --------------------------------------------------------------------------

async function graphPage(taskId) {
  document.title = "Graph · actors dashboard";
  const query = taskId ? `?task=${encodeURIComponent(taskId)}&depth=2` : "";
  const graph = await api(`api/graph${query}`);
  if (route().page !== "graph") return;
  const what = graph.task
    ? `The tasks within two steps of <a href="#/task/${encodeURIComponent(graph.task)}">this task</a> (${graph.shown}).`
    : graph.shown < graph.total
      ? `The newest ${graph.shown} of ${graph.total} tasks: open a task's graph for its neighbourhood.`
      : `All ${graph.total} tasks.`;
  main.innerHTML = `<p class="muted">${what}</p><div class="graph-box" id="graph">${graph.svg}</div>`;
}

// -- executors and limits ---------------------------------------------------------------

function executorsPage() {
  document.title = "Executors · actors dashboard";
  if (!metrics) return api("api/metrics").then((m) => { metrics = m; executorsPage(); });
  const rows = Object.entries(metrics.executors || {}).map(([name, e]) => `
    <tr><td>${esc(name)}</td><td>${esc(e.type)}</td><td>${esc(e.busy)} / ${esc(e.capacity)}</td>
    <td>${bar(e.capacity ? e.busy / e.capacity : 0)}</td><td>${esc(e.abandoned)}</td></tr>`).join("");
  // Limits and resources: shown where the manager has them (get_metrics' "limits" and
  // "resources"; an older manager has neither).
  let limits = "";
  const limitRows = Object.entries(metrics.limits || {}).map(([key, entry]) => {
    const limit = entry.limit || {};
    const most = limit.concurrency;
    return `<tr><td>${esc(key)}</td><td>${esc(entry.running)}${most ? ` / ${esc(most)}` : ""}</td>
      <td>${most ? bar(entry.running / most) : ""}</td><td>${esc(entry.waiting)}</td>
      <td>${limit.rate ? `${esc(limit.rate)}/s (burst ${esc(limit.burst)})` : "–"}</td>
      <td>${entry.tokens === null || entry.tokens === undefined ? "–" : esc(Math.floor(entry.tokens))}</td></tr>`;
  }).join("");
  if (limitRows) {
    limits += `<h3>Limits</h3><table id="limits"><thead><tr><th>key</th><th>running</th><th>load</th>
      <th>waiting</th><th>rate</th><th>tokens</th></tr></thead><tbody>${limitRows}</tbody></table>`;
  }
  const resourceRows = Object.entries(metrics.resources || {}).map(([name, r]) => `
    <tr><td>${esc(name)}</td><td>${esc(r.capacity - r.free)} / ${esc(r.capacity)}</td>
    <td>${bar(r.capacity ? (r.capacity - r.free) / r.capacity : 0)}</td></tr>`).join("");
  if (resourceRows) {
    limits += `<h3>Resources</h3><table id="resources"><thead><tr><th>resource</th><th>in use</th>
      <th>load</th></tr></thead><tbody>${resourceRows}</tbody></table>`;
  }
  redraw("#executors", `
    <p>${esc(metrics.running_tasks)} running of at most ${esc(metrics.max_concurrent_tasks ?? "–")};
       ${esc(metrics.pending_tasks)} pending, ${esc(metrics.waiting_tasks)} waiting.</p>
    <table id="executors"><thead><tr><th>executor</th><th>type</th><th>busy</th><th>load</th><th>abandoned</th></tr></thead>
    <tbody>${rows || '<tr><td colspan="5" class="muted">none (a journal has no executors)</td></tr>'}</tbody></table>
    ${limits}`);
  return Promise.resolve();
}

// -- the supervision tree ---------------------------------------------------------------

function tree(children) {
  if (!children.length) return "";
  return `<ul class="tree">${children.map((c) => `
    <li><span class="${c.alive ? "" : "dead"}">${c.kind === "supervisor" ? "▾" : "•"} ${esc(c.id)}</span>
    <span class="muted">${c.alive ? "running" : "not running"}, restarts: ${esc(c.restarts)}</span>
    ${tree(c.children)}</li>`).join("")}</ul>`;
}

async function supervisionPage() {
  document.title = "Supervision · actors dashboard";
  const children = await api("api/supervision");
  if (route().page !== "supervision") return;
  redraw("#supervision", children.length
    ? `<div id="supervision">${tree(children)}</div>`
    : '<p class="muted">No supervision tree (the system is not running, or this is a journal).</p>');
}

// -- schedules --------------------------------------------------------------------------

function when(iso) {
  return iso ? esc(iso.replace("T", " ").slice(0, 19)) : "–";
}

async function schedulesPage() {
  document.title = "Schedules · actors dashboard";
  const listed = await api("api/schedules");
  if (route().page !== "schedules") return;
  const rows = listed.map((s) => {
    const button = info.actions
      ? `<button data-schedule="${esc(s.schedule_id)}" data-action="${s.paused ? "resume" : "pause"}">${s.paused ? "Resume" : "Pause"}</button>` : "";
    const timing = s.cron ? `cron ${esc(s.cron)}${s.timezone ? ` (${esc(s.timezone)})` : ""}` : `every ${esc(s.every)} s`;
    return `<tr><td>${esc(s.name)}</td><td>${timing}</td><td>${s.paused ? "paused" : "active"}</td>
      <td>${when(s.next_run)}</td><td>${when(s.last_run)}</td><td>${esc(s.fired)}</td>
      <td>${esc(s.skipped)}</td><td>${esc(s.running)}</td><td>${button}</td></tr>`;
  }).join("");
  main.innerHTML = `<table id="schedules"><thead><tr><th>name</th><th>when</th><th>state</th>
    <th>next run</th><th>last run</th><th>fired</th><th>skipped</th><th>running</th><th></th></tr></thead>
    <tbody>${rows || '<tr><td colspan="9" class="muted">no schedules</td></tr>'}</tbody></table>`;
  main.querySelectorAll("button[data-schedule]").forEach((b) => b.addEventListener("click", async () => {
    await act(`api/schedules/${encodeURIComponent(b.dataset.schedule)}/${b.dataset.action}`);
    show();
  }));
}

// -- live updates -----------------------------------------------------------------------

const STATUS_AFTER = { started: "RUNNING", retrying: "PENDING", succeeded: "COMPLETED" };

function applyEvent(event) {
  const status = event.kind === "failed"
    ? (event.failure === "cancelled" ? "CANCELLED" : "FAILED") : STATUS_AFTER[event.kind];
  const selector = `[data-task="${CSS.escape(event.task_id)}"]`;
  for (const row of document.querySelectorAll(`tr${selector}`)) {
    if (status) row.querySelector(".status-cell").innerHTML = statusBadge(status);
    if (event.kind === "progress") {
      row.querySelector(".progress-cell").innerHTML = `${bar(event.fraction)} <span class="muted">${esc(event.message)}</span>`;
    } else if (event.kind === "succeeded") {
      row.querySelector(".progress-cell").innerHTML = bar(1);
    }
  }
  for (const node of document.querySelectorAll(`svg.graph a${selector}`)) {
    if (status) node.setAttribute("class", `node ${status.toLowerCase()}${node.classList.contains("focus") ? " focus" : ""}`);
  }
  const here = route();
  if (here.page === "task" && here.arg === event.task_id) later(200);
}

function later(delay) {
  if (refreshDue === null) refreshDue = setTimeout(() => { refreshDue = null; show(true); }, delay);
}

// The stream names the tasks on screen (watch=): the manager tells the dashboard about
// those only. A page showing other tasks opens a new stream.
let source = null;
let watching = null;

function follow() {
  const ids = new Set([...main.querySelectorAll("[data-task]")].map((e) => e.dataset.task));
  const { page, arg } = route();
  if (page === "task" && arg) ids.add(arg);
  const watch = [...ids].sort().join(",");
  if (source !== null && watch === watching) return;
  if (source !== null) source.close();
  watching = watch;
  connect(watch);
}

function connect(watch) {
  const live = $("#live");
  source = new EventSource(`api/events?watch=${encodeURIComponent(watch)}`);
  source.addEventListener("open", () => { live.textContent = "● live"; live.classList.add("on"); });
  source.addEventListener("error", () => { live.textContent = "○ reconnecting"; live.classList.remove("on"); });
  source.addEventListener("tasks", (message) => JSON.parse(message.data).forEach(applyEvent));
  source.addEventListener("metrics", (message) => {
    const before = metrics;
    metrics = JSON.parse(message.data);
    setText($("#counts"), `${metrics.total_tasks} tasks · ${metrics.running_tasks} running · ${metrics.failed_tasks} failed`);
    const page = route().page;
    if (page === "executors") executorsPage();
    const changed = before && ["total_tasks", "completed_tasks", "failed_tasks", "cancelled_tasks"]
      .some((key) => before[key] !== metrics[key]);
    // A busy manager changes its counts every second: the table follows at most every
    // two seconds (each refresh reads the whole table on the server).
    if (changed && (page === "tasks" || page === "graph")) later(Math.max(0, lastShown + 2000 - Date.now()));
    if (page === "supervision" && document.visibilityState === "visible") later(1000);
  });
}

async function start() {
  info = await api("api/info");
  if (info.schedules) $("#nav-schedules").hidden = false;
  window.addEventListener("hashchange", () => show());
  show();
}

start();
