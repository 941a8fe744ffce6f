// carbonlake: the web page. Plain JavaScript over the service's own API; no build step.
// Every value from the API is put in the page as text (never as HTML).
"use strict";

const KEY_STORE = "carbonlake.apiKey";
const main = document.getElementById("main");
const banner = document.getElementById("banner");
let timers = [];

// -- small helpers ---------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) el.setAttribute(name, value);
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const tonnesFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 3, minimumFractionDigits: 3 });
const smallFormat = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 4 });
const countFormat = new Intl.NumberFormat();

function tonnes(value) {
  if (value === null || value === undefined) return "–";
  if (value !== 0 && Math.abs(value) < 0.001) return smallFormat.format(value);
  return tonnesFormat.format(value);
}
function count(value) { return value === null || value === undefined ? "–" : countFormat.format(value); }
function number(value) { return value === null || value === undefined ? "–" : smallFormat.format(value); }
function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}
function duration(start, stop) {
  if (!start) return "";
  const ms = (stop ? new Date(stop) : new Date()) - new Date(start);
  if (!(ms >= 0)) return "";
  return ms < 1000 ? `${ms} ms` : ms < 60000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 60000)} min`;
}
function short(id) { return id ? String(id).slice(0, 8) : "–"; }
function badge(status) { return h("span", { class: `badge ${status}` }, status); }
function stat(label, value, unit) {
  return h("div", { class: "stat" }, h("div", { class: "label" }, label),
    h("div", { class: "value" }, value, unit ? h("span", { class: "unit" }, unit) : null));
}
function card(...children) { return h("section", { class: "card" }, ...children); }
function every(ms, fn) { const id = setInterval(fn, ms); timers.push(id); return id; }

// -- the API -------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

function apiKey() { return localStorage.getItem(KEY_STORE) || ""; }

async function api(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (apiKey()) headers["X-API-Key"] = apiKey();
  const init = { method: options.method || "GET", headers };
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.json);
  } else if (options.form) {
    init.body = options.form;
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
    if (response.status === 401 || response.status === 403) renderKeybox(true);
    throw new ApiError(response.status, detail);
  }
  if (options.raw) return response;
  return response.json();
}

function showError(error) {
  banner.textContent = error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`;
  banner.hidden = false;
}
function clearError() { banner.hidden = true; banner.textContent = ""; }

// -- the API key ----------------------------------------------------------------------------

function renderKeybox(asking) {
  const box = document.getElementById("keybox");
  box.replaceChildren();
  if (apiKey() && !asking) {
    box.append(h("span", {}, "API key set"),
      h("button", { type: "button", class: "small", onclick: () => renderKeybox(true) }, "Change"));
    return;
  }
  const input = h("input", { type: "password", placeholder: "API key", "aria-label": "API key",
    id: "api-key", value: apiKey(), autocomplete: "off" });
  const save = () => {
    localStorage.setItem(KEY_STORE, input.value.trim());
    clearError();
    renderKeybox(false);
    route();
  };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") save(); });
  box.append(input, h("button", { type: "button", onclick: save }, "Save"));
}

// -- routing ----------------------------------------------------------------------------------

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || "upload", arg: parts.slice(1).join("/"), query: new URLSearchParams(query || "") };
}

const views = {};

async function route() {
  for (const id of timers) clearInterval(id);
  timers = [];
  clearError();
  const { page, arg, query } = parseHash();
  for (const link of document.querySelectorAll(".topbar nav a")) {
    const target = page === "records" ? "emissions" : page;
    link.classList.toggle("active", link.dataset.page === target);
  }
  const view = views[page] || views.upload;
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    await view(arg, query);
  } catch (error) {
    main.replaceChildren();
    showError(error);
  }
}

// -- data quality and stages (shared by upload and execution pages) ---------------------------

function stageList(stages) {
  const icons = { succeeded: "✓", failed: "✕", skipped: "–", stopped: "!" };
  return h("ol", { class: "stages", "aria-label": "Stages" }, stages.map((stage) => {
    let meta = stage.status === "running" ? "running" : stage.status;
    if (stage.started_at && stage.finished_at) meta = `${stage.status} in ${duration(stage.started_at, stage.finished_at)}`;
    const extra = [];
    if (stage.batches !== undefined) {
      meta = `${stage.batches_done} of ${stage.batches} batches`;
      const share = stage.batches ? (100 * stage.batches_done) / stage.batches : 0;
      extra.push(h("div", { class: "bar" }, barSpan(share)));
    }
    return h("li", { class: stage.status, dataset: { stage: stage.stage, status: stage.status } },
      h("span", { class: "icon", "aria-hidden": "true" }, icons[stage.status] || ""),
      h("div", {}, h("div", { class: "title" }, stage.title), ...extra),
      h("span", { class: "meta" }, meta));
  }));
}

function barSpan(percent) {
  const span = h("span", {});
  span.style.width = `${Math.max(0, Math.min(100, percent))}%`;
  return span;
}

function samplesText(samples) {
  return samples.slice(0, 8).map((s) => {
    const id = s.activity_event_id ? ` (${s.activity_event_id})` : "";
    return `row ${s.row_number}${id}`;
  });
}

function qualityBlock(quality) {
  const report = quality.report;
  const results = report.rulesetResults.flatMap((r) => r.ruleResults);
  const failed = results.filter((r) => r.status === "FAILED");
  const rows = report.rowsCount;
  const block = h("div", { class: "quality", id: "quality" },
    h("h2", {}, "Data quality ", badge(quality.passed ? "PASSED" : "FAILED")),
    h("p", { class: "muted" },
      `${count(rows)} rows, ${report.columnsCount} columns; ${report.summary.succeeded} of ${report.summary.rules} rules passed` +
      (report.summary.warnings ? `, ${report.summary.warnings} warning(s)` : "") + "."));
  for (const rule of failed) {
    const warn = rule.severity === "warn";
    const samples = rule.failingSamples || [];
    const failedRows = rule.failedCount !== null && rule.failedCount !== undefined ? `${count(rule.failedCount)} failing row(s). ` : "";
    block.append(h("div", { class: `rule${warn ? " warn" : ""}`, dataset: { rule: rule.name } },
      h("div", { class: "name" }, warn ? "Warning: " : "", rule.name),
      h("div", {}, rule.reason || "failed"),
      samples.length ? h("div", { class: "samples" }, failedRows, "For example: ",
        samplesText(samples).map((text, i) => [i ? ", " : "", h("code", {}, text)]),
        samples.length > 8 ? ` and ${samples.length - 8} more in the report` : "") : null));
  }
  const ruleBadge = (r) => {
    const [kind, text] = r.status === "SUCCEEDED" ? ["ok", "passed"] : r.severity === "warn" ? ["warn", "warning"] : ["bad", "failed"];
    return h("span", { class: `badge ${kind}` }, text);
  };
  const table = h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Rule"), h("th", {}, "Status"), h("th", {}, "Observed"), h("th", { class: "num" }, "Failed rows"))),
    h("tbody", {}, quality.rules.map((r) => h("tr", {},
      h("td", {}, r.rule), h("td", {}, ruleBadge(r)),
      h("td", { class: "break" }, r.observed), h("td", { class: "num" }, r.failed)))));
  block.append(h("details", { class: "rules", open: failed.length ? false : null },
    h("summary", {}, `All ${results.length} rules`), h("div", { class: "table-wrap" }, table)));
  return block;
}

// Totals come per scope 2 method (GHG Protocol: location-based and market-based side by
// side, never added): {location_based: {ar4, ar5, ar6}, market_based: {...}}.
function co2eOf(totals, method = "location_based", gwp = "ar5") {
  return totals && totals[method] ? totals[method][gwp] : undefined;
}

function summaryStats(summary) {
  const co2e = summary.co2e_tonnes || {};
  return h("div", { class: "stats", id: "result-stats" },
    stat("Records in", count(summary.records_in)),
    stat("Calculated", count(summary.records_calculated)),
    stat("Failed", count(summary.records_failed)),
    stat("CO2e AR5 location-based", tonnes(co2eOf(co2e, "location_based")), "t"),
    stat("CO2e AR5 market-based", tonnes(co2eOf(co2e, "market_based")), "t"));
}

function failedRecords(summary) {
  const failed = summary.failed_records;
  if (!failed || !failed.samples || !failed.samples.length) return null;
  return h("div", {}, h("h3", {}, "Records that could not be calculated"),
    h("ul", {}, failed.samples.slice(0, 10).map((s) => h("li", {}, h("code", {}, s.node_id), ": ", s.reason))));
}

async function executionResult(execution, into) {
  into.replaceChildren();
  const summary = execution.summary;
  if (execution.status === "SKIPPED" || execution.status === "REJECTED") {
    into.append(h("p", {}, execution.error || ""));
    if (execution.duplicate_of) {
      into.append(h("p", {}, h("a", { href: `#/executions/${encodeURIComponent(execution.duplicate_of)}` }, "See the earlier execution")));
    }
    return;
  }
  if (!summary) return;
  const dqFailed = summary.data_quality && summary.data_quality.status === "FAILED";
  if (dqFailed) {
    into.append(h("p", { id: "dq-verdict" }, `The file did not pass the data-quality gate, so nothing was calculated. `,
      `It was moved to the error bucket (`, h("code", {}, summary.storage_location), `). Fix the rows below and upload it again.`));
  } else {
    if (summary.error && execution.status !== "SUCCEEDED") into.append(h("p", { class: "muted" }, summary.error));
    into.append(summaryStats(summary));
  }
  const failed = failedRecords(summary);
  if (failed) into.append(failed);
  if (summary.data_quality) {
    try {
      const quality = await api(`/quality/${encodeURIComponent(summary.root_id)}`);
      into.append(qualityBlock(quality));
    } catch (error) {
      into.append(h("p", { class: "muted" }, `Data-quality report: ${error.message}`));
    }
  }
  if (summary.records_calculated) {
    into.append(h("p", {},
      h("a", { class: "button primary", href: `#/emissions?root_id=${encodeURIComponent(summary.root_id)}` }, "See this file's emissions"), " ",
      h("a", { class: "button", href: `#/executions/${encodeURIComponent(execution.execution_id)}` }, "Execution details")));
  }
}

// -- upload --------------------------------------------------------------------------------------

views.upload = async () => {
  let chosen = null;
  const fileInput = h("input", { type: "file", accept: ".csv,text/csv", hidden: true, id: "file-input" });
  const chosenLabel = h("div", { class: "chosen" });
  const drop = h("div", { class: "drop", id: "drop", role: "button", tabindex: "0" },
    h("div", { class: "big" }, "Drop an activity CSV here, or click to choose one"),
    h("div", { class: "muted" }, "Columns: activity_event_id, asset_id, geo, origin_measurement_timestamp, scope, category, activity, source, raw_data, units"),
    chosenLabel);
  const keyInput = h("input", { type: "text", id: "object-key", placeholder: "default: the file's name, e.g. 2026/march/fleet.csv" });
  const force = h("input", { type: "checkbox", id: "force" });
  const button = h("button", { class: "primary", type: "button", id: "upload-button", disabled: true }, "Upload and run");
  const run = h("div", { id: "run" });

  const choose = (file) => {
    chosen = file;
    chosenLabel.textContent = file ? `${file.name} (${count(file.size)} bytes)` : "";
    button.disabled = !file;
  };
  fileInput.addEventListener("change", () => choose(fileInput.files[0] || null));
  drop.addEventListener("click", () => fileInput.click());
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") fileInput.click(); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) choose(e.dataTransfer.files[0]);
  });
  button.addEventListener("click", async () => {
    if (!chosen) return;
    clearError();
    button.disabled = true;
    const form = new FormData();
    form.append("file", chosen, chosen.name);
    if (keyInput.value.trim()) form.append("key", keyInput.value.trim());
    if (force.checked) form.append("force", "true");
    try {
      const accepted = await api("/uploads", { method: "POST", form });
      follow(accepted.execution_id, run);
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = !chosen;
    }
  });

  main.replaceChildren(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Upload activity data"),
      h("p", { class: "muted" }, "The file lands in the landing bucket, passes the data-quality gate, is split into batches and every record's emissions are calculated."))),
    card(drop, fileInput,
      h("div", { class: "upload-options" },
        h("label", { class: "field" }, "Object key in landing (optional)", keyInput),
        h("label", { class: "check" }, force, "Process again if already processed"),
        button)),
    run);
};

function follow(executionId, into) {
  const stages = h("div", {});
  const head = h("h2", {});
  const result = h("div", {});
  into.replaceChildren(card(head, stages), card(result));
  result.parentElement.hidden = true;
  let done = false;
  const tick = async () => {
    if (done) return;
    let execution;
    try {
      execution = await api(`/executions/${encodeURIComponent(executionId)}`);
    } catch (error) {
      showError(error);
      return;
    }
    head.replaceChildren(execution.object_key || "Execution", " ", badge(execution.status), " ",
      h("a", { class: "quiet", href: `#/executions/${encodeURIComponent(executionId)}` }, `execution ${short(executionId)}`));
    head.id = "run-status";
    head.dataset.status = execution.status;
    stages.replaceChildren(stageList(execution.stages));
    if (!["QUEUED", "RUNNING"].includes(execution.status)) {
      done = true;
      result.parentElement.hidden = false;
      await executionResult(execution, result);
    }
  };
  tick();
  every(700, tick);
}

// -- executions ----------------------------------------------------------------------------------

views.executions = async (arg) => {
  if (arg) return executionPage(arg);
  const body = h("tbody", {});
  const table = h("table", { id: "executions" },
    h("thead", {}, h("tr", {}, ["Status", "File", "Started", "Took", "Records", "Failed", "CO2e (AR5) t", "Execution"].map((t, i) =>
      h("th", { class: i >= 4 && i <= 6 ? "num" : "" }, t)))), body);
  main.replaceChildren(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Executions"),
      h("p", { class: "muted" }, "One per input file, newest first; this list updates while executions run."))),
    card(h("div", { class: "table-wrap" }, table)));
  const load = async () => {
    const { executions } = await api("/executions?limit=200");
    body.replaceChildren(...executions.map((e) => {
      const s = e.summary || {};
      const row = h("tr", { class: "link", dataset: { id: e.execution_id, status: e.status } },
        h("td", {}, badge(e.status)),
        h("td", { class: "break" }, e.object_key || "–"),
        h("td", { class: "nowrap" }, when(e.started_at)),
        h("td", { class: "nowrap" }, duration(e.started_at, e.stopped_at)),
        h("td", { class: "num" }, count(s.records_calculated)),
        h("td", { class: "num" }, count(s.records_failed)),
        h("td", { class: "num" }, s.co2e_tonnes ? tonnes(co2eOf(s.co2e_tonnes)) : "–"),
        h("td", { class: "mono" }, short(e.execution_id)));
      row.addEventListener("click", () => { location.hash = `#/executions/${encodeURIComponent(e.execution_id)}`; });
      return row;
    }));
    if (!executions.length) body.append(h("tr", {}, h("td", { colspan: 8, class: "empty" }, "No executions yet. Upload a file to start one.")));
  };
  await load();
  every(2000, () => load().catch(showError));
};

async function executionPage(executionId) {
  const head = h("div", { class: "page-head" });
  const stages = h("div", {});
  const result = h("div", {});
  const history = h("tbody", {});
  const facts = h("dl", { class: "kv" });
  main.replaceChildren(head,
    h("div", { class: "grid two" }, card(h("h2", {}, "Stages"), stages), card(h("h2", {}, "Execution"), facts)),
    card(h("h2", {}, "Result"), result),
    card(h("h2", {}, "History"), h("div", { class: "table-wrap" }, h("table", { id: "history" },
      h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Event"), h("th", {}, "State"), h("th", {}, "Details"))), history))));
  let finished = false;
  const load = async () => {
    if (finished) return;
    const execution = await api(`/executions/${encodeURIComponent(executionId)}`);
    head.replaceChildren(h("div", {}, h("h1", {}, execution.object_key || "Execution", " ", badge(execution.status)),
      h("p", { class: "muted mono" }, execution.execution_id)));
    stages.replaceChildren(stageList(execution.stages));
    facts.replaceChildren(...[
      ["Name", execution.name], ["root_id", execution.root_id], ["Object key", execution.object_key],
      ["SHA-256", execution.object_sha256], ["Started", when(execution.started_at)],
      ["Stopped", when(execution.stopped_at)], ["Took", duration(execution.started_at, execution.stopped_at)],
    ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: k === "SHA-256" || k === "root_id" ? "mono" : "" }, v || "–")]));
    const { events } = await api(`/executions/${encodeURIComponent(executionId)}/history`);
    history.replaceChildren(...events.map((event) => h("tr", {},
      h("td", { class: "nowrap small" }, when(event.at)), h("td", {}, event.event_type),
      h("td", { class: "mono small nowrap" }, event.state || ""), h("td", { class: "small break" }, eventDetails(event.details)))));
    if (!["QUEUED", "RUNNING"].includes(execution.status)) {
      finished = true;
      await executionResult(execution, result);
    } else {
      result.replaceChildren(h("p", { class: "muted" }, "Running…"));
    }
  };
  await load();
  every(1000, () => load().catch(showError));
}

function eventDetails(details) {
  if (!details) return "";
  if (details.error) return details.cause ? `${details.error}: ${details.cause}` : details.error;
  if (details.delay_s !== undefined) return `retry ${details.attempt} in ${details.delay_s} s`;
  if (details.output) {
    const out = details.output;
    const parts = [];
    for (const key of ["records_calculated", "records_failed", "records", "status"]) if (out[key] !== undefined) parts.push(`${key} ${out[key]}`);
    return parts.join(", ");
  }
  return "";
}

// -- emissions -------------------------------------------------------------------------------------

// [field, title, numeric, sortable]
const COLUMNS = [
  ["activity_event_id", "Record", false, true],
  ["asset_id", "Asset", false, true],
  ["geo", "Geo", false, false],
  ["scope", "Scope", true, true],
  ["category", "Category", false, true],
  ["activity", "Activity", false, true],
  ["origin_measurement_timestamp", "Measured", false, true],
  ["source", "Source", false, true],
  ["raw_data", "Amount", true, true],
  ["co2e_ar5_tonnes", "CO2e AR5 t", true, true],
  ["co2e_ar6_tonnes", "CO2e AR6 t", true, true],
];
function geoText(geo) {
  if (!geo || (geo.lat === null && geo.long === null)) return "–";
  return `${geo.lat ?? "–"}, ${geo.long ?? "–"}`;
}
// In the table: four decimals (about 10 m), the full value on hover.
function geoCell(geo) {
  const short = (v) => (v === null || v === undefined ? "–" : Number(v.toFixed(4)));
  const text = !geo || (geo.lat === null && geo.long === null) ? "–" : `${short(geo.lat)}, ${short(geo.long)}`;
  return h("td", { class: "nowrap small", title: geoText(geo), dataset: { geo: geoText(geo) } }, text);
}
const FILTERS = ["search", "scope", "category", "activity", "asset_id", "from", "to", "root_id", "execution_id"];

views.emissions = async (arg, query) => {
  const state = { sort: query.get("sort") || "co2e_ar5_tonnes", order: query.get("order") || "desc",
    offset: Number(query.get("offset") || 0), limit: 25 };
  const filters = {};
  for (const name of FILTERS) if (query.get(name)) filters[name] = query.get(name);
  const values = await api("/emissions/values");

  const select = (name, label, options) => {
    const el = h("select", { id: `filter-${name}`, name },
      h("option", { value: "" }, "All"), options.map((v) => h("option", { value: String(v) }, String(v))));
    el.value = filters[name] || "";
    return h("label", { class: "field" }, label, el);
  };
  const search = h("input", { type: "search", id: "filter-search", placeholder: "Record id, asset, activity…", value: filters.search || "" });
  const from = h("input", { type: "month", id: "filter-from", value: filters.from || "" });
  const to = h("input", { type: "month", id: "filter-to", value: filters.to || "" });
  const reset = h("button", { type: "button", id: "filter-reset" }, "Reset");
  const bar = h("div", { class: "filters", id: "filters" },
    h("label", { class: "field" }, "Search", search),
    select("scope", "Scope", values.scope), select("category", "Category", values.category),
    select("activity", "Activity", values.activity), select("asset_id", "Asset", values.asset_id),
    h("label", { class: "field" }, "From", from), h("label", { class: "field" }, "To", to), reset);
  const scopeNote = h("p", { class: "muted small", id: "scope-note" });
  const stats = h("div", { class: "stats", id: "totals" });
  const charts = h("div", { class: "charts", id: "charts" });
  const thead = h("thead", {});
  const tbody = h("tbody", {});
  const pager = h("div", { class: "pager" });
  const download = h("button", { type: "button", id: "download-csv" }, "Download CSV");

  main.replaceChildren(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Emissions"),
      h("p", { class: "muted" }, "Current results, each record once. Tonnes; CO2e with AR5 and AR6 global warming potentials.")), download),
    card(bar, scopeNote), stats, charts,
    card(h("div", { class: "table-wrap" }, h("table", { id: "emissions-table" }, thead, tbody)), pager));

  const params = (extra) => {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(filters)) if (v) p.set(k, v);
    for (const [k, v] of Object.entries(extra || {})) p.set(k, v);
    return p;
  };
  const remember = () => {
    const p = params({ sort: state.sort, order: state.order });
    if (state.offset) p.set("offset", state.offset);
    history.replaceState(null, "", `#/emissions?${p}`);
  };

  const renderHead = () => {
    thead.replaceChildren(h("tr", {}, COLUMNS.map(([column, title, numeric, sortable]) => {
      if (!sortable) return h("th", { dataset: { column } }, title);
      const sorted = state.sort === column;
      const th = h("th", { class: `sortable${numeric ? " num" : ""}${sorted ? " sorted" : ""}`, dataset: { column },
        "aria-sort": sorted ? (state.order === "asc" ? "ascending" : "descending") : null },
        title, sorted ? h("span", { class: "arrow" }, state.order === "asc" ? "▲" : "▼") : null);
      th.addEventListener("click", () => {
        state.order = sorted && state.order === "desc" ? "asc" : sorted ? "desc" : numeric ? "desc" : "asc";
        state.sort = column;
        state.offset = 0;
        load();
      });
      return th;
    })));
  };

  let loading = 0;
  const load = async () => {
    const mine = ++loading;
    remember();
    renderHead();
    const listing = api(`/emissions?${params({ sort: state.sort, order: state.order, limit: state.limit, offset: state.offset })}`);
    const groups = Promise.all(["scope", "category", "month"].map((by) => api(`/emissions/summary?${params({ by })}`)));
    const [page, summaries] = await Promise.all([listing, groups]);
    if (mine !== loading) return;
    const totals = page.totals;
    stats.replaceChildren(stat("Records", count(totals.records)),
      stat("CO2e AR5 location-based", tonnes(co2eOf(totals.co2e_tonnes, "location_based")), "t"),
      stat("CO2e AR5 market-based", tonnes(co2eOf(totals.co2e_tonnes, "market_based")), "t"),
      stat("Biogenic CO2 (outside scopes)", tonnes(totals.biogenic_co2_tonnes), "t"),
      stat("Not calculated", count(totals.records_failed)));
    const labels = { scope: "By scope", category: "By category (location-based)", month: "By month (location-based)" };
    charts.replaceChildren(...summaries.map((s) => card(h("div", { class: `chart by-${s.by}`, dataset: { by: s.by } },
      h("h3", {}, labels[s.by], h("span", { class: "muted small" }, " · CO2e AR5 t")),
      s.by === "month" ? columnChart(bars(s.groups)) : barChart(s.by === "scope" ? scopeBars(s.groups) : bars(s.groups), s.by === "scope" ? (k) => `Scope ${k}` : String)))));
    scopeNote.textContent = filters.root_id ? `Showing one input file (root_id ${filters.root_id}).` :
      filters.execution_id ? `Showing one execution (${filters.execution_id}).` : "";
    tbody.replaceChildren(...page.records.map((r) => {
      const row = h("tr", { class: "link", dataset: { id: r.activity_event_id } },
        h("td", { class: "mono small" }, r.activity_event_id), h("td", {}, r.asset_id || "–"),
        geoCell(r.geo),
        h("td", { class: "num" }, r.scope ?? "–"), h("td", { class: "nowrap" }, r.category || "–"), h("td", {}, r.activity || "–"),
        h("td", { class: "nowrap" }, r.origin_measurement_timestamp || "–"), h("td", { class: "small break" }, r.source || "–"),
        h("td", { class: "num nowrap" }, `${number(r.raw_data)} ${r.units || ""}`),
        h("td", { class: "num" }, tonnes(r.co2e_ar5_tonnes)), h("td", { class: "num" }, tonnes(r.co2e_ar6_tonnes)));
      row.addEventListener("click", () => { location.hash = `#/records/${encodeURIComponent(r.activity_event_id)}`; });
      return row;
    }));
    if (!page.records.length) tbody.append(h("tr", {}, h("td", { colspan: COLUMNS.length, class: "empty" }, "No records match these filters.")));
    const last = Math.min(page.offset + page.records.length, page.total);
    const prev = h("button", { type: "button", disabled: state.offset === 0, id: "page-prev" }, "← Previous");
    const next = h("button", { type: "button", disabled: last >= page.total, id: "page-next" }, "Next →");
    prev.addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); load(); });
    next.addEventListener("click", () => { state.offset += state.limit; load(); });
    pager.replaceChildren(h("span", { class: "muted", id: "page-info" },
      page.total ? `${count(page.offset + 1)}–${count(last)} of ${count(page.total)} records` : "0 records"), h("span", {}, prev, " ", next));
  };
  const changed = () => { state.offset = 0; load().catch(showError); };
  for (const el of bar.querySelectorAll("select")) {
    el.addEventListener("change", () => { filters[el.name] = el.value; changed(); });
  }
  let typing;
  search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => { filters.search = search.value.trim(); changed(); }, 250); });
  from.addEventListener("change", () => { filters.from = from.value; changed(); });
  to.addEventListener("change", () => { filters.to = to.value; changed(); });
  reset.addEventListener("click", () => { location.hash = "#/emissions"; });
  download.addEventListener("click", async () => {
    try {
      const response = await api(`/emissions?${params({ format: "csv", sort: state.sort, order: state.order })}`, { raw: true });
      const blob = await response.blob();
      const link = h("a", { href: URL.createObjectURL(blob), download: "emissions.csv" });
      document.body.append(link);
      link.click();
      link.remove();
    } catch (error) { showError(error); }
  });
  await load();
};

// Chart bars {key, value}: location-based CO2e; scope 2 as two bars, one per method.
function bars(groups) { return groups.map((g) => ({ key: g.key, value: co2eOf(g.co2e_tonnes) || 0 })); }
function scopeBars(groups) {
  return groups.flatMap((g) => String(g.key) === "2" ? [
    { key: "2 location-based", value: co2eOf(g.co2e_tonnes, "location_based") || 0 },
    { key: "2 market-based", value: co2eOf(g.co2e_tonnes, "market_based") || 0 }]
    : [{ key: g.key, value: co2eOf(g.co2e_tonnes) || 0 }]);
}

function barChart(groups, label) {
  if (!groups.length) return h("div", { class: "empty" }, "No data");
  const shown = groups.slice(0, 8);
  const max = Math.max(...shown.map((g) => g.value || 0), 1e-12);
  const row = 34, labelWidth = 230, width = 600, barWidth = width - labelWidth - 90;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${shown.length * row + 4}`, role: "img",
    "aria-label": shown.map((g) => `${label(g.key)}: ${tonnes(g.value)} t`).join("; ") });
  shown.forEach((g, i) => {
    const y = i * row;
    const value = g.value || 0;
    const name = label(g.key ?? "none");
    const text = name.length > 30 ? `${name.slice(0, 29)}…` : name;
    chart.append(svg("text", { x: 0, y: y + 21 }, svg("title", {}, name), text),
      svg("rect", { class: "bar-fill", x: labelWidth, y: y + 7, height: 20, rx: 3, width: Math.max(2, (barWidth * value) / max) }),
      svg("text", { class: "value", x: labelWidth + Math.max(2, (barWidth * value) / max) + 8, y: y + 21 }, tonnes(value)));
  });
  const box = h("div", {}, chart);
  if (groups.length > shown.length) box.append(h("p", { class: "muted small" }, `and ${groups.length - shown.length} more`));
  return box;
}

function columnChart(groups) {
  if (!groups.length) return h("div", { class: "empty" }, "No data");
  const width = 1180, height = 220, bottom = 26, left = 4;
  const max = Math.max(...groups.map((g) => g.value || 0), 1e-12);
  const step = (width - left) / groups.length;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `CO2e by month, ${groups[0].key} to ${groups[groups.length - 1].key}` });
  chart.append(svg("line", { class: "axis", x1: 0, x2: width, y1: height - bottom, y2: height - bottom }));
  const labelEvery = Math.ceil(groups.length / 14);
  groups.forEach((g, i) => {
    const value = g.value || 0;
    const barHeight = Math.max(1, ((height - bottom - 14) * value) / max);
    const x = left + i * step;
    chart.append(svg("rect", { class: i % 2 ? "bar-fill alt" : "bar-fill", x: x + step * 0.12, width: step * 0.76,
      y: height - bottom - barHeight, height: barHeight, rx: 2 }, svg("title", {}, `${g.key ?? "no date"}: ${tonnes(value)} t`)));
    if (i % labelEvery === 0) chart.append(svg("text", { x: x + step / 2, y: height - 7, "text-anchor": "middle" }, g.key ?? "–"));
  });
  chart.append(svg("text", { x: 0, y: 12 }, `highest month: ${tonnes(max)} t`));
  return chart;
}

// -- the GHG Protocol inventory --------------------------------------------------------------------

const INVENTORY = [
  ["scope_1", "Scope 1"],
  ["scope_2_location_based", "Scope 2 (location-based)"],
  ["scope_2_market_based", "Scope 2 (market-based)"],
  ["scope_3", "Scope 3"],
  ["total_location_based", "Total, location-based (1 + 2 LB + 3)"],
  ["total_market_based", "Total, market-based (1 + 2 MB + 3)"],
];

views.report = async (arg, query) => {
  const state = { gwp: query.get("gwp") || "ar5", by: query.get("by") || "month", from: query.get("from") || "", to: query.get("to") || "" };
  const gwp = h("select", { id: "report-gwp" }, ["ar4", "ar5", "ar6"].map((g) => h("option", { value: g }, g.toUpperCase())));
  gwp.value = state.gwp;
  const by = h("select", { id: "report-by" }, ["month", "quarter", "year", "asset", "category"].map((b) => h("option", { value: b }, b)));
  by.value = state.by;
  const from = h("input", { type: "month", id: "report-from", value: state.from });
  const to = h("input", { type: "month", id: "report-to", value: state.to });
  const totals = h("tbody", {});
  const stats = h("div", { class: "stats", id: "report-stats" });
  const scopes = h("div", { class: "chart", id: "report-scopes" });
  const periods = h("div", { class: "chart", id: "report-breakdown" });
  const coverage = h("div", { id: "report-coverage" });
  const method = h("div", { class: "muted small", id: "report-methodology" });
  main.replaceChildren(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "GHG inventory"),
      h("p", { class: "muted" }, "GHG Protocol: scope 2 location-based and market-based side by side, never added; biogenic CO2 outside the scopes. Tonnes."))),
    card(h("div", { class: "filters" }, h("label", { class: "field" }, "GWP", gwp), h("label", { class: "field" }, "Break down by", by),
      h("label", { class: "field" }, "From", from), h("label", { class: "field" }, "To", to))),
    stats,
    h("div", { class: "charts" }, card(h("h3", {}, "By scope", h("span", { class: "muted small" }, " · CO2e t")), scopes),
      card(h("h3", { id: "report-breakdown-title" }, "By month"), periods)),
    card(h("div", { class: "table-wrap" }, h("table", { id: "inventory" },
      h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", { class: "num" }, "CO2e t"), h("th", { class: "num" }, "CO2 t"),
        h("th", { class: "num" }, "CH4 t"), h("th", { class: "num" }, "N2O t"))), totals))),
    card(h("h3", {}, "Coverage"), coverage), card(h("h3", {}, "Methodology"), method));

  const load = async () => {
    const p = new URLSearchParams({ gwp: state.gwp, by: state.by });
    if (state.from) p.set("from", state.from);
    if (state.to) p.set("to", state.to);
    history.replaceState(null, "", `#/report?${p}`);
    const report = await api(`/report?${p}`);
    const row = (name, label, t, cls) => h("tr", { class: cls || "", dataset: { total: name } }, h("td", {}, label),
      h("td", { class: "num" }, tonnes(t.co2e_tonnes)), h("td", { class: "num" }, tonnes(t.co2_tonnes)),
      h("td", { class: "num" }, tonnes(t.ch4_tonnes)), h("td", { class: "num" }, tonnes(t.n2o_tonnes)));
    const rows = [];
    for (const [name, label] of INVENTORY) {
      rows.push(row(name, label, report[name], name.startsWith("total") ? "total" : ""));
      if (name === "scope_3") {
        for (const [key, entry] of Object.entries(report.scope_3.by_category)) {
          rows.push(row(`scope_3_category_${key}`, `  Category ${key}: ${entry.name}`, entry, "muted"));
        }
      }
    }
    rows.push(h("tr", { dataset: { total: "biogenic_co2_tonnes" } }, h("td", {}, "Biogenic CO2 (outside the scopes)"),
      h("td", { class: "num" }, "–"), h("td", { class: "num" }, tonnes(report.biogenic_co2_tonnes)), h("td", {}, ""), h("td", {}, "")));
    totals.replaceChildren(...rows);
    const gwpLabel = report.gwp.toUpperCase();
    stats.replaceChildren(
      stat(`Total location-based (${gwpLabel})`, tonnes(report.total_location_based.co2e_tonnes), "t"),
      stat(`Total market-based (${gwpLabel})`, tonnes(report.total_market_based.co2e_tonnes), "t"),
      stat("Biogenic CO2", tonnes(report.biogenic_co2_tonnes), "t"),
      stat("Not calculated", count(report.coverage.records_failed)));
    scopes.replaceChildren(barChart(INVENTORY.slice(0, 4).map(([name, label]) => ({ key: label, value: report[name].co2e_tonnes })), String));
    document.getElementById("report-breakdown-title").textContent = `By ${state.by} · total location-based / market-based CO2e t`;
    const breakdown = (report.breakdown || { rows: [] }).rows;
    periods.replaceChildren(breakdown.length ? pairedChart(breakdown) : h("div", { class: "empty" }, "No data"));
    const c = report.coverage;
    coverage.replaceChildren(h("p", {}, `${count(c.records_calculated)} record(s) calculated, ${count(c.records_failed)} could not be calculated ` +
      `(${(100 * c.share_of_records_not_covered).toFixed(2)}% of records not covered). Those are in no total.`),
      h("ul", {}, Object.entries(c.failed_by_reason).map(([reason, n]) => h("li", { dataset: { reason } }, h("code", {}, reason), `: ${count(n)}`))));
    const m = report.methodology;
    method.replaceChildren(
      h("p", {}, `GWP ${m.gwp.set.toUpperCase()}: CH4 ${typeof m.gwp.ch4 === "object" ? JSON.stringify(m.gwp.ch4) : m.gwp.ch4}, N2O ${m.gwp.n2o}. ${m.gwp.source}.`),
      h("p", {}, m.factor_sets.map((f) => `${f.name}@${f.version} (${count(f.records)} records)`).join("; ") || "No results yet."),
      h("p", {}, m.scope2), h("p", {}, m.biogenic_co2),
      h("p", {}, Object.values(m.unit_conventions).join(" · ")));
  };
  for (const [el, key] of [[gwp, "gwp"], [by, "by"], [from, "from"], [to, "to"]]) {
    el.addEventListener("change", () => { state[key] = el.value; load().catch(showError); });
  }
  await load();
};

// Two bars per period: total location-based and total market-based, side by side.
function pairedChart(rows) {
  const width = 1180, height = 240, bottom = 40, left = 4;
  const values = rows.flatMap((r) => [r.total_location_based.co2e_tonnes, r.total_market_based.co2e_tonnes]);
  const max = Math.max(...values, 1e-12);
  const step = (width - left) / rows.length;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", id: "paired-chart",
    "aria-label": rows.map((r) => `${r.key ?? "none"}: location-based ${tonnes(r.total_location_based.co2e_tonnes)} t, market-based ${tonnes(r.total_market_based.co2e_tonnes)} t`).join("; ") });
  chart.append(svg("line", { class: "axis", x1: 0, x2: width, y1: height - bottom, y2: height - bottom }));
  const labelEvery = Math.ceil(rows.length / 14);
  rows.forEach((r, i) => {
    const x = left + i * step;
    [["location", r.total_location_based.co2e_tonnes, ""], ["market", r.total_market_based.co2e_tonnes, " alt"]].forEach(([kind, value, cls], j) => {
      const barHeight = Math.max(1, ((height - bottom - 14) * value) / max);
      chart.append(svg("rect", { class: `bar-fill${cls}`, "data-method": kind, x: x + step * (0.1 + 0.4 * j), width: step * 0.38,
        y: height - bottom - barHeight, height: barHeight, rx: 2 }, svg("title", {}, `${r.key ?? "none"} ${kind}-based: ${tonnes(value)} t`)));
    });
    if (i % labelEvery === 0) chart.append(svg("text", { x: x + step / 2, y: height - 22, "text-anchor": "middle" }, String(r.key ?? "–").slice(0, 16)));
  });
  chart.append(svg("text", { x: 0, y: height - 4 }, "left bar: location-based · right bar: market-based"));
  return chart;
}

// -- one record ---------------------------------------------------------------------------------------

const ACTIONS = {
  RAW_DATA_INPUT: "the file as it landed",
  PROFILE_COMPLETE: "profiled; data-quality report written",
  DQ_CHECK_PASS: "passed data quality; moved to raw",
  DQ_CHECK_FAIL: "failed data quality; moved to error",
  GLUE_BATCH_SPLIT: "typed and split into this batch",
  CALCULATION_COMPLETE: "emissions calculated",
  CALCULATION_FAILED: "could not be calculated",
  RECALCULATION: "recalculated with another factor set",
  RECORD_DELETED: "deleted by an admin (a tombstone)",
};

views.records = async (recordId) => {
  const head = h("div", { class: "page-head" }, h("div", {}, h("h1", { class: "break" }, recordId),
    h("p", { class: "muted" }, "Its emissions, the factor that produced them, and its lineage from the raw file to the result.")));
  const resultCard = card(h("h2", {}, "Emissions"));
  const factorCard = card(h("h2", {}, "Factor provenance"));
  const lineageCard = card(h("h2", {}, "Lineage"));
  main.replaceChildren(head, h("div", { class: "grid two" }, h("div", {}, resultCard, factorCard), lineageCard));

  const [results, trail] = await Promise.allSettled([
    api(`/emissions/records/${encodeURIComponent(recordId)}`),
    api(`/lineage/trace/${encodeURIComponent(recordId)}`),
  ]);
  if (results.status === "fulfilled") {
    const { current, previous, factor, deleted } = results.value;
    if (current) {
      resultCard.append(
        h("div", { class: "stats" }, stat("CO2e AR5", tonnes(current.co2e_ar5_tonnes), "t"),
          stat("CO2e AR6", tonnes(current.co2e_ar6_tonnes), "t"), stat("CO2e AR4", tonnes(current.co2e_ar4_tonnes), "t")),
        h("dl", { class: "kv", id: "record-facts" }, [
          ["Asset", current.asset_id], ["Geo", geoText(current.geo)], ["Scope", current.scope], ["Category", current.category],
          ["Activity", current.activity], ["Measured", current.origin_measurement_timestamp], ["Source", current.source],
          ["Amount", `${number(current.raw_data)} ${current.units || ""}`],
          ["Amount used", `${number(current.quantity_used)} ${current.quantity_unit || ""}`],
          ["CO2", `${tonnes(current.co2_tonnes)} t`], ["CH4", `${tonnes(current.ch4_tonnes)} t`], ["N2O", `${tonnes(current.n2o_tonnes)} t`],
          ["Calculated", when(current.calculated_at)],
          ["Execution", h("a", { href: `#/executions/${encodeURIComponent(current.execution_id)}`, class: "mono" }, short(current.execution_id))],
        ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")])));
    } else if (deleted) {
      resultCard.append(h("p", { id: "record-deleted" }, `Deleted ${when(deleted.deleted_at)} by ${deleted.deleted_by}: ${deleted.reason}. `,
        h("span", { class: "muted" }, "Its result is kept below and in the lineage (", h("code", {}, deleted.lineage_node_id), ").")));
    } else {
      resultCard.append(h("p", { class: "muted" }, "No current result."));
    }
    if (previous.length) {
      resultCard.append(h("h3", {}, "Earlier results (replaced)"), h("table", {},
        h("thead", {}, h("tr", {}, h("th", {}, "Replaced"), h("th", {}, "Factor set"), h("th", { class: "num" }, "CO2e AR5 t"))),
        h("tbody", {}, previous.map((p) => h("tr", {}, h("td", {}, when(p.superseded_at), p.deletion_node_id ? " (deleted)" : ""),
          h("td", { class: "mono small" }, `${p.factor_set}@${p.factor_version}`), h("td", { class: "num" }, tonnes(p.co2e_ar5_tonnes)))))));
    }
    if (factor) {
      factorCard.append(h("dl", { class: "kv", id: "factor-facts" }, [
        ["Factor", h("code", {}, factor.factor_id)], ["Set", `${factor.factor_set}@${factor.factor_version}`],
        ["Unit", factor.unit], ["CO2", `${number(factor.co2_kg_per_unit)} kg/unit`],
        ["CH4", `${number(factor.ch4_kg_per_unit)} kg/unit`], ["N2O", `${number(factor.n2o_kg_per_unit)} kg/unit`],
        ["CO2e AR4", `${number(factor.ar4_kgco2e_per_unit)} kg/unit`], ["CO2e AR5", `${number(factor.ar5_kgco2e_per_unit)} kg/unit`],
        ["CO2e AR6", `${number(factor.ar6_kgco2e_per_unit)} kg/unit`],
        ["Not given", factor.gases_not_given.length ? factor.gases_not_given.join(", ") : "none"],
        ["Source", factor.source || "–"],
      ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")])));
    } else {
      factorCard.append(h("p", { class: "muted" }, "The factor set that produced this result is not available."));
    }
  } else {
    resultCard.append(h("p", { class: "muted" }, results.reason.message));
    factorCard.hidden = true;
  }

  if (trail.status !== "fulfilled") {
    lineageCard.append(h("p", { class: "muted" }, trail.reason.message));
    return;
  }
  const found = trail.value;
  const verify = h("div", { class: "verify", id: "verify" }, h("span", { class: "spinner" }), "Verifying this file's trail…");
  lineageCard.append(verify, h("p", { class: "muted small" },
    `Row ${found.row_number ?? "?"} of the input file; root_id `, h("code", {}, found.root_id), "."));
  const steps = h("ol", { class: "trail", id: "trail" });
  found.lineage.forEach((node, i) => {
    steps.append(h("li", { class: i === found.lineage.length - 1 ? "last" : "", dataset: { action: node.action_taken } },
      h("div", { class: "action" }, node.action_taken, h("span", { class: "what" }, ACTIONS[node.action_taken] || "")),
      node.storage_location ? h("div", { class: "where" }, node.storage_location) : null,
      h("div", { class: "muted small" }, when(node.recorded_at),
        node.row_number !== null && node.row_number !== undefined ? ` · row ${node.row_number}` : "",
        node.object_sha256 ? ` · sha256 ${node.object_sha256.slice(0, 12)}…` : "",
        node.node_hash ? ` · node hash ${node.node_hash.slice(0, 12)}…` : "")));
  });
  if (!found.complete) steps.prepend(h("li", {}, h("div", { class: "action" }, "missing"),
    h("div", { class: "muted small" }, `The trail breaks: node ${found.missing_node_id} is not in the ledger.`)));
  lineageCard.append(steps);
  try {
    const report = await api("/lineage/verify", { method: "POST", json: { root_id: found.root_id } });
    verify.className = `verify ${report.ok ? "ok" : "bad"}`;
    verify.dataset.ok = String(report.ok);
    verify.replaceChildren(h("strong", {}, report.ok ? "✓ Verified" : "✕ Verification failed"), " ",
      report.ok ? `${count(report.nodes)} nodes, ${count(report.objects)} files and ${count(report.records)} records of this file check out.`
        : report.problems.map((p) => p.message).join(" "));
  } catch (error) {
    verify.className = "verify bad";
    verify.replaceChildren(`Could not verify: ${error.message}`);
  }
};

// -- factors --------------------------------------------------------------------------------------------

views.factors = async (arg, query) => {
  const { sets } = await api("/factors/sets");
  const chooser = h("select", { id: "factor-set" }, sets.map((s) =>
    h("option", { value: `${s.name}@${s.version}` }, `${s.name}@${s.version}${s.active ? " (active)" : ""} · ${s.factor_count} factors`)));
  const active = sets.find((s) => s.active);
  chooser.value = query.get("set") || (active ? `${active.name}@${active.version}` : chooser.value);
  const search = h("input", { type: "search", id: "factor-search", placeholder: "Activity, category or id…", value: query.get("search") || "" });
  const info = h("p", { class: "muted", id: "factor-count" });
  const body = h("tbody", {});
  main.replaceChildren(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Emission factors"),
      h("p", { class: "muted" }, "Kilograms per unit of activity. The active set calculates new results; results keep the version that produced them."))),
    card(h("div", { class: "filters", id: "factors-filters" }, h("label", { class: "field" }, "Search", search), h("label", { class: "field" }, "Factor set", chooser)), info),
    card(h("div", { class: "table-wrap" }, h("table", { id: "factors" }, h("thead", {}, h("tr", {},
      ["Activity", "Category", "Scope", "Unit", "CO2", "CH4", "N2O", "CO2e AR5", "CO2e AR6", "Source"].map((t, i) =>
        h("th", { class: i >= 4 && i <= 8 ? "num" : "" }, t)))), body))));
  let loading = 0;
  const load = async () => {
    const mine = ++loading;
    const p = new URLSearchParams({ search: search.value.trim(), factor_set: chooser.value });
    history.replaceState(null, "", `#/factors?${new URLSearchParams({ search: search.value.trim(), set: chooser.value })}`);
    const found = await api(`/factors?${p}`);
    if (mine !== loading) return;
    info.textContent = `${found.count} factor(s) in ${found.label}${found.active ? " (the active set)" : ""}.`;
    body.replaceChildren(...found.factors.map((f) => h("tr", { dataset: { id: f.factor_id } },
      h("td", { class: "activity" }, h("div", {}, f.activity), h("div", { class: "mono small muted" }, f.factor_id)), h("td", { class: "nowrap" }, f.category),
      h("td", {}, f.scope ?? "–"), h("td", { class: "nowrap" }, f.unit), h("td", { class: "num" }, number(f.co2_kg_per_unit)),
      h("td", { class: "num" }, number(f.ch4_kg_per_unit)), h("td", { class: "num" }, number(f.n2o_kg_per_unit)),
      h("td", { class: "num" }, number(f.ar5_kgco2e_per_unit)), h("td", { class: "num" }, number(f.ar6_kgco2e_per_unit)),
      h("td", { class: "small source", title: f.source || "" }, h("div", { class: "clamp" }, f.source || "–")))));
    if (!found.factors.length) body.append(h("tr", {}, h("td", { colspan: 10, class: "empty" }, "No factor matches.")));
  };
  let typing;
  search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(() => load().catch(showError), 200); });
  chooser.addEventListener("change", () => load().catch(showError));
  await load();
};

// -- start ----------------------------------------------------------------------------------------------------

(function start() {
  const match = location.hash.match(/^#key=(.+)$/);
  if (match) {
    localStorage.setItem(KEY_STORE, decodeURIComponent(match[1]));
    history.replaceState(null, "", "#/upload");
  }
  renderKeybox(false);
  window.addEventListener("hashchange", route);
  route();
})();
