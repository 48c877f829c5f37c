// The prediction form. Reads config.json (api_url, api_key), written at deploy
// time, lists the models (GET /models), builds one field per feature of the
// chosen one (GET /models/{name}) and posts to /models/{name}/explain: the prediction and why.
"use strict";

const state = { config: null, model: null, name: null, exampleIndex: 0 };
const $ = (id) => document.getElementById(id);

function fieldId(name) {
  return "f-" + name.replace(/[^A-Za-z0-9_-]/g, "_");
}

function groupFeatures(features) {
  // Many features are grouped by a shared first or last word ("mean radius",
  // "radius error"); a large group (64 pixels) is cut into rows of 16.
  if (features.length <= 12) return [["Features", features]];
  const first = (f) => f.name.split(/[\s_]+/)[0];
  const last = (f) => f.name.split(/[\s_]+/).slice(-1)[0];
  const tally = (key) => {
    const counts = new Map();
    for (const f of features) counts.set(key(f), (counts.get(key(f)) || 0) + 1);
    return counts;
  };
  const firsts = tally(first);
  const lasts = tally(last);
  const groups = new Map();
  for (const f of features) {
    const group = firsts.get(first(f)) >= 3 ? first(f) : lasts.get(last(f)) >= 3 ? last(f) : "Other";
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(f);
  }
  const out = [];
  for (const [name, items] of groups) {
    if (items.length <= 24) { out.push([name, items]); continue; }
    for (let i = 0; i < items.length; i += 16) {
      out.push([`${name} ${i + 1}–${Math.min(i + 16, items.length)}`, items.slice(i, i + 16)]);
    }
  }
  return out;
}

function hintFor(f) {
  if (f.type === "numeric" && f.min !== undefined && f.min !== null) {
    return `range ${f.min} – ${f.max}` + (f.nullable ? " · may be empty" : "");
  }
  return f.nullable ? "may be empty" : "";
}

function buildFields(features) {
  const root = $("fields");
  root.replaceChildren();
  for (const [group, items] of groupFeatures(features)) {
    const fieldset = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.textContent = group;
    fieldset.append(legend);
    const grid = document.createElement("div");
    grid.className = "grid";
    for (const f of items) {
      const id = fieldId(f.name);
      const wrap = document.createElement("div");
      wrap.className = "field";
      wrap.dataset.feature = f.name;
      const label = document.createElement("label");
      label.htmlFor = id;
      label.textContent = f.name;
      let input;
      if (f.type === "categorical" || f.type === "boolean") {
        input = document.createElement("select");
        const options = f.type === "boolean" ? ["true", "false"] : f.categories;
        input.append(new Option(f.nullable ? "(missing)" : "Choose…", ""));
        for (const c of options) input.append(new Option(c, c));
      } else {
        input = document.createElement("input");
        input.type = "number";
        input.step = "any";
        input.inputMode = "decimal";
        if (f.min !== undefined && f.min !== null) input.placeholder = String(f.min);
      }
      input.id = id;
      input.name = f.name;
      const hint = document.createElement("div");
      hint.className = "hint";
      hint.id = id + "-hint";
      hint.textContent = hintFor(f);
      const error = document.createElement("div");
      error.className = "error";
      error.id = id + "-error";
      error.setAttribute("aria-live", "polite");
      input.setAttribute("aria-describedby", `${hint.id} ${error.id}`);
      wrap.append(label, input, hint, error);
      grid.append(wrap);
    }
    fieldset.append(grid);
    root.append(fieldset);
  }
}

function readInstance() {
  const instance = {};
  for (const f of state.model.feature_schema) {
    const raw = document.getElementById(fieldId(f.name)).value.trim();
    if (raw === "") instance[f.name] = null;
    else if (f.type === "numeric") instance[f.name] = Number(raw);
    else if (f.type === "boolean") instance[f.name] = raw === "true";
    else instance[f.name] = raw;
  }
  return instance;
}

function clearErrors() {
  for (const el of document.querySelectorAll(".field.invalid")) el.classList.remove("invalid");
  for (const el of document.querySelectorAll(".field .error")) el.textContent = "";
  for (const el of document.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  $("message").hidden = true;
}

function showMessage(text) {
  $("message").textContent = text;
  $("message").hidden = false;
  $("answer").hidden = true;
  $("placeholder").hidden = true;
}

function showFieldErrors(errors) {
  let first = null;
  const general = [];
  for (const e of errors) {
    const wrap = e.field && document.querySelector(`.field[data-feature="${CSS.escape(e.field)}"]`);
    if (!wrap) { general.push(e.field ? `${e.field}: ${e.message}` : e.message); continue; }
    wrap.classList.add("invalid");
    wrap.querySelector(".error").textContent = e.message;
    const input = wrap.querySelector("input, select");
    input.setAttribute("aria-invalid", "true");
    first = first || input;
  }
  showMessage(`Fix the highlighted field${errors.length > 1 ? "s" : ""}: the model cannot use ${errors.length > 1 ? "these values" : "this value"}.` +
    (general.length ? " " + general.join("; ") : ""));
  if (first) first.focus();
}

function showAnswer(body) {
  const prediction = body.predictions[0];
  const bars = $("bars");
  bars.replaceChildren();
  if ("prediction" in prediction) {  // a regression model answers a value
    $("answer-kind").textContent = `Predicted ${state.model.target || "value"}`;
    $("predicted-label").textContent = formatValue(prediction.prediction);
    $("predicted-label").dataset.value = String(prediction.prediction);
    showWhy(body, prediction);
    finishAnswer(body);
    return;
  }
  $("answer-kind").textContent = "Predicted class";
  $("predicted-label").textContent = String(prediction.label);
  const entries = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]);
  for (const [label, p] of entries) {
    const row = document.createElement("div");
    row.className = "bar" + (label === String(prediction.label) ? " top" : "");
    row.setAttribute("role", "listitem");
    row.dataset.label = label;
    row.dataset.probability = String(p);
    const name = document.createElement("span");
    name.textContent = label;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = `${(p * 100).toFixed(2)}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = `${(p * 100).toFixed(1)}%`;
    row.append(name, track, value);
    bars.append(row);
  }
  showWhy(body, prediction);
  finishAnswer(body);
}

const TOP_CONTRIBUTIONS = 8;

// The answered row's SHAP contributions (POST /explain) as a diverging bar chart: the largest
// by size, positive to the right, negative to the left; the rest summed in one line.
function showWhy(body, prediction) {
  const chart = $("why-bars");
  chart.replaceChildren();
  const explanation = prediction.explanation;
  if (!explanation) { $("why").hidden = true; return; }
  let contributions = explanation.contributions;
  let base = explanation.expected_value;
  let toward;
  if (state.model.task === "multiclass") {
    contributions = contributions[String(prediction.label)];
    base = base[String(prediction.label)];
    toward = `the score of ${prediction.label}`;
  } else if (state.model.task === "binary") {
    toward = `${state.model.classes[1]} (log-odds; negative: toward ${state.model.classes[0]})`;
  } else {
    toward = `the predicted ${state.model.target || "value"}`;
  }
  const entries = Object.entries(contributions).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  const shown = entries.slice(0, TOP_CONTRIBUTIONS);
  const rest = entries.slice(TOP_CONTRIBUTIONS);
  const largest = Math.max(...shown.map(([, v]) => Math.abs(v)), 1e-12);
  $("why-caption").textContent = `What moved ${toward}, from the model's average ${shortValue(base)}:`;
  for (const [name, v] of shown) {
    const row = document.createElement("div");
    row.className = "contribution " + (v >= 0 ? "up" : "down");
    row.setAttribute("role", "listitem");
    row.dataset.feature = name;
    row.dataset.value = String(v);
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    const share = (Math.abs(v) / largest) * 50;
    fill.style.width = `${share.toFixed(2)}%`;
    fill.style.left = v >= 0 ? "50%" : `${(50 - share).toFixed(2)}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = signed(v);
    row.append(label, track, value);
    chart.append(row);
  }
  const others = rest.reduce((sum, [, v]) => sum + v, 0);
  $("why-rest").textContent = rest.length
    ? `${rest.length} other features together: ${signed(others)}` : "";
  $("why").hidden = false;
}

function shortValue(x) {  // contributions: three significant digits are what a reader compares
  return Math.abs(x) >= 1000 ? x.toLocaleString("en", { maximumFractionDigits: 0 }) : Number(x.toPrecision(3)).toString();
}

function signed(x) {
  return (x >= 0 ? "+" : "") + shortValue(x);
}

function formatValue(x) {
  return Math.abs(x) >= 1000 ? x.toLocaleString("en", { maximumFractionDigits: 2 }) : x.toPrecision(6);
}

function finishAnswer(body) {
  $("answer-model").textContent = `Model ${body.model.name}, version ${body.model.version}`;
  $("answer").hidden = false;
  $("placeholder").hidden = true;
  $("message").hidden = true;
}

const STATUS_TEXT = {
  400: "The request was malformed.",
  403: "The API refused the request: the API key is missing or not valid.",
  413: "Too much data in one request.",
  415: "The request was not sent as JSON.",
  429: "Too many requests: the API is throttling this key. Wait a moment and try again.",
  503: "No model is being served right now.",
};

async function submit(event) {
  event.preventDefault();
  clearErrors();
  if (!state.config.api_key) {
    return showMessage("This form has no API key configured (config.json): the API needs one.");
  }
  const button = $("submit");
  button.disabled = true;
  button.textContent = "Predicting…";
  try {
    const headers = { "Content-Type": "application/json", "X-Api-Key": state.config.api_key };
    // /explain answers the prediction and why (SHAP values): one request for both
    const response = await fetch(`${state.config.api_url}/models/${encodeURIComponent(state.name)}/explain`, {
      method: "POST", headers, body: JSON.stringify({ instances: [readInstance()] }),
    });
    let body = null;
    try { body = await response.json(); } catch { body = null; }
    if (response.ok) return showAnswer(body);
    if (response.status === 422 && body && body.errors) return showFieldErrors(body.errors);
    const detail = body && (body.error || body.message);
    showMessage(`${STATUS_TEXT[response.status] || `The API answered ${response.status}.`}${detail ? ` (${detail})` : ""}`);
  } catch (error) {
    showMessage(`The API at ${state.config.api_url} could not be reached, or it refused the ` +
      `call before answering (a wrong API key or throttling): ${error.message}`);
  } finally {
    button.disabled = false;
    button.textContent = "Predict";
  }
}

function fillExample() {
  const examples = state.model.examples || [];
  if (!examples.length) return;
  const example = examples[state.exampleIndex % examples.length];
  state.exampleIndex += 1;
  clearErrors();
  for (const f of state.model.feature_schema) {
    const value = example.instance[f.name];
    document.getElementById(fieldId(f.name)).value = value === null || value === undefined ? "" : String(value);
  }
  const truth = state.model.task === "regression" ? `its true value is ${example.label}` : `its true class is ${example.label}`;
  $("example-note").textContent = `Held-out row ${state.exampleIndex} of ${examples.length}; ${truth}.`;
}

function splitRow(line, delimiter) {  // one CSV line: quoted fields may hold the delimiter
  const cells = [];
  let cell = "", quoted = false;
  for (let i = 0; i < line.length; i += 1) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { cell += '"'; i += 1; }
      else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === delimiter) { cells.push(cell); cell = ""; }
    else cell += c;
  }
  cells.push(cell);
  return cells.map((value) => value.trim());
}

function parsePasted(text) {  // → {name: value}, from a JSON object or a CSV header and row
  const trimmed = text.trim();
  if (trimmed.startsWith("{")) {
    const row = JSON.parse(trimmed);
    if (row === null || typeof row !== "object" || Array.isArray(row)) throw new Error("not a JSON object");
    return row;
  }
  const lines = trimmed.split(/\r?\n/).filter((line) => line.trim() !== "");
  if (lines.length !== 2) throw new Error("give a header line and one row");
  // the delimiter that splits the header and the row into the same number of fields, the most
  let best = null;
  for (const delimiter of [",", ";", "\t", "|"]) {
    const names = splitRow(lines[0], delimiter), values = splitRow(lines[1], delimiter);
    if (names.length === values.length && names.length > 1 && (!best || names.length > best[0].length)) {
      best = [names, values, delimiter];
    }
  }
  if (!best) throw new Error("the header and the row do not have the same number of fields");
  const [names, values, delimiter] = best;
  const row = {};
  names.forEach((name, i) => {
    // a semicolon-separated row written with decimal commas: 3,5 is 3.5
    row[name] = delimiter === ";" && /^-?\d+,\d+([eE][-+]?\d+)?$/.test(values[i]) ? values[i].replace(",", ".") : values[i];
  });
  return row;
}

function fillPasted() {
  clearErrors();
  let row;
  try {
    row = parsePasted($("paste-text").value);
  } catch (error) {
    $("paste-note").textContent = `The row could not be read: ${error.message}.`;
    return;
  }
  const features = new Set(state.model.feature_schema.map((f) => f.name));
  const ignored = new Set(state.model.ignored_columns || []);
  let filled = 0;
  for (const f of state.model.feature_schema) {
    if (!(f.name in row)) continue;
    const value = row[f.name];
    document.getElementById(fieldId(f.name)).value = value === null || value === undefined ? "" : String(value);
    filled += 1;
  }
  const names = Object.keys(row);
  const skipped = names.filter((name) => ignored.has(name));
  const unknown = names.filter((name) => !features.has(name) && !ignored.has(name));
  const missing = [...features].filter((name) => !(name in row));
  const parts = [`${filled} of ${features.size} features filled`];
  if (skipped.length) parts.push(`ignored (the model does not read them): ${skipped.join(", ")}`);
  if (unknown.length) parts.push(`unknown to this model: ${unknown.join(", ")}`);
  if (missing.length) parts.push(`not in the row: ${missing.join(", ")}`);
  $("paste-note").textContent = `${parts.join("; ")}.`;
}

function reset() {
  $("predict-form").reset();
  clearErrors();
  $("example-note").textContent = "";
  $("paste-note").textContent = "";
  $("answer").hidden = true;
  $("placeholder").hidden = false;
}

async function getJson(path) {
  const response = await fetch(`${state.config.api_url}${path}`);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || body.message || `the API answered ${response.status}`);
  return body;
}

async function chooseModel(name) {
  state.name = name;
  state.exampleIndex = 0;
  $("submit").disabled = true;
  reset();
  try {
    state.model = await getJson(`/models/${encodeURIComponent(name)}`);
  } catch (error) {
    $("model-line").textContent = `The model ${name} could not be loaded: ${error.message}`;
    $("fields").replaceChildren();
    return;
  }
  const m = state.model;
  const test = (m.metrics && m.metrics.test) || {};
  const score = test.f1_macro !== undefined ? ` · held-out F1 ${test.f1_macro.toFixed(3)}`
    : test.rmse !== undefined ? ` · held-out RMSE ${test.rmse.toPrecision(4)}` : "";
  const what = m.task === "regression" ? `predicts ${m.target || "a value"}` : `classes: ${m.classes.join(", ")}`;
  // an ensemble says what it is made of: "ensemble of 3: catboost, lightgbm"
  const members = m.ensemble ? m.ensemble.members : null;
  const family = members
    ? `ensemble of ${members.length}: ${[...new Set(members.map((x) => x.family))].join(", ")}`
    : m.framework.family;
  $("model-line").textContent = `${m.name} v${m.version} (${family}) · ${m.feature_schema.length} features · ${what}${score}`;
  buildFields(m.feature_schema);
  $("submit").disabled = false;
}

async function start() {
  $("predict-form").addEventListener("submit", submit);
  $("fill-example").addEventListener("click", fillExample);
  $("paste-fill").addEventListener("click", fillPasted);
  $("clear-form").addEventListener("click", reset);
  $("model-picker").addEventListener("change", (event) => chooseModel(event.target.value));
  try {
    state.config = await (await fetch("config.json", { cache: "no-store" })).json();
  } catch (error) {
    $("model-line").textContent = "config.json is missing: deploy the stack (make demo) to write it.";
    return;
  }
  let listing;
  try {
    listing = await getJson("/models");
  } catch (error) {
    $("model-line").textContent = `The models could not be listed: ${error.message}`;
    return;
  }
  if (!listing.models.length) {
    $("model-line").textContent = "No model has a champion yet: train one (make train).";
    return;
  }
  const picker = $("model-picker");
  for (const entry of listing.models) {
    const kind = entry.task === "regression" ? "regression" : `${entry.classes.length} classes`;
    picker.append(new Option(`${entry.name} (v${entry.version}, ${kind})`, entry.name));
  }
  const names = listing.models.map((entry) => entry.name);
  picker.value = names.includes(listing.default_model) ? listing.default_model : names[0];
  picker.disabled = false;
  await chooseModel(picker.value);
}

start();
