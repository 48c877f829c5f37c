// The catalogue: every served model (GET /models), a model's versions and promotions
// (GET /models/{name}/versions) and its latest drift report (GET /models/{name}/drift).
// All three routes are open: no key is sent.
"use strict";

const { element, table, number, when } = Console;
const $ = (id) => document.getElementById(id);
const catalogue = { models: [], name: null };

function headline(entry) {
  const m = entry.metrics || {};
  if (entry.task === "regression") return m.rmse !== undefined ? `RMSE ${number(m.rmse)}` : "";
  return m.f1_macro !== undefined ? `F1 ${number(m.f1_macro, 3)}` : "";
}

function madeOf(framework, ensemble) {
  if (ensemble && ensemble.members) {
    const families = [...new Set(ensemble.members.map((m) => m.family))];
    return `an ensemble of ${ensemble.members.length} (${families.join(", ")})`;
  }
  return framework && framework.family ? framework.family : "—";
}

function renderList() {
  const list = $("model-list");
  list.replaceChildren();
  for (const entry of catalogue.models) {
    const kind = entry.task === "regression" ? `regression of ${entry.target || "a value"}` : `${entry.task}, ${entry.classes.length} classes`;
    const button = element("button", { type: "button", class: "model-button", "aria-pressed": String(entry.name === catalogue.name) },
      element("span", { class: "model-name", text: entry.name }),
      element("span", { class: "muted", text: `v${entry.version} · ${kind}${headline(entry) ? " · " + headline(entry) : ""}` }));
    button.addEventListener("click", () => { location.hash = encodeURIComponent(entry.name); });
    list.append(element("li", {}, button));
  }
}

function summaryList(pairs) {
  const list = element("dl", { class: "facts" });
  for (const [term, value] of pairs) list.append(element("dt", { text: term }), element("dd", { text: value }));
  return list;
}

function metricsTable(metrics) {
  const names = Object.keys(metrics || {}).filter((k) => k !== "rows");
  if (!names.length) return element("p", { class: "muted", text: "No held-out metrics were recorded." });
  return table("Held-out metrics of the serving version", ["Metric", "Value"],
    names.map((k) => [k, number(metrics[k])]));
}

function versionsTable(history, champion) {
  const rows = history.versions.map((v) => {
    if (v.unreadable) return [`v${v.version}`, "—", "—", "—", "—", `unreadable: ${v.unreadable}`];
    const status = v.version === champion ? "serving" : "";
    return [`v${v.version}`, when(v.created_at), headline(v) || "—",
      v.rows_train ? `${v.rows_train} of ${v.rows}` : String(v.rows ?? "—"),
      v.data_sha256 ? v.data_sha256.slice(0, 12) : "—", status];
  });
  return table(`Versions (newest ${history.versions.length})`, ["Version", "Trained", "Held-out", "Rows (train of all)", "Data", "Status"], rows);
}

function promotionsTable(history) {
  if (!history.promotions.length) return element("p", { class: "muted", text: "No promotion has been recorded." });
  return table("Promotions, newest first", ["When", "Version", "Before", "Why"],
    history.promotions.map((p) => [when(p.promoted_at), `v${p.version}`,
      p.previous_version ? `v${p.previous_version}` : "—", p.reason || "—"]));
}

function svgImage(feature, svg) {
  const bytes = new TextEncoder().encode(svg);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  // an <img>, not the SVG's markup in the page: a picture cannot run script this way
  return element("figure", { class: "picture" },
    element("img", { src: `data:image/svg+xml;base64,${btoa(binary)}`,
      alt: `${feature}: its distribution in training and in the window, per bin` }),
    element("figcaption", { text: feature }));
}

function renderDrift(answer) {
  const body = $("drift-body");
  body.replaceChildren();
  const report = answer.report;
  if (!report) {
    $("drift-line").textContent = answer.reason || "No drift report yet.";
    return;
  }
  const drifted = report.drifted_features || [];
  $("drift-line").textContent = `Window ${when(report.since)} to ${when(report.until)} · ${report.rows} rows ` +
    `(reference ${report.reference_rows}) · ` +
    (!report.enough_rows ? `too few rows to judge (at least ${report.thresholds.min_rows})`
      : drifted.length ? `drifted: ${drifted.join(", ")}` : "no feature drifted") +
    (report.prediction_drifted ? " · the answers drifted" : "");
  const features = Object.entries(report.features || {});
  const rows = features.map(([name, d]) => [name, number(d.psi, 3), d.test || "—",
    d.p_value === undefined || d.p_value === null ? "—" : number(d.p_value, 3), d.drifted && report.enough_rows ? "yes" : "no"]);
  if (report.prediction) {
    rows.push(["(the answers)", number(report.prediction.psi, 3), report.prediction.test || "—",
      report.prediction.p_value === undefined ? "—" : number(report.prediction.p_value, 3),
      report.prediction_drifted ? "yes" : "no"]);
  }
  body.append(table(`PSI per feature (drifted at PSI ≥ ${report.thresholds.psi} or p < ${report.thresholds.p_value})`,
    ["Feature", "PSI", "Test", "p-value", "Drifted"], rows));
  const pictures = Object.entries(report.pictures || {});
  if (pictures.length) body.append(element("div", { class: "pictures" }, ...pictures.map(([f, svg]) => svgImage(f, svg))));
}

async function show(name) {
  const entry = catalogue.models.find((m) => m.name === name);
  if (!entry) return;
  catalogue.name = name;
  renderList();
  $("detail-title").textContent = name;
  $("detail-line").textContent = "Loading its versions…";
  $("detail-body").replaceChildren();
  $("drift-line").textContent = "Loading its latest drift report…";
  $("drift-body").replaceChildren();
  let history;
  let described;
  try {
    [history, described] = await Promise.all([
      Console.getJson(`/models/${encodeURIComponent(name)}/versions`),
      Console.getJson(`/models/${encodeURIComponent(name)}`)]);
  } catch (error) {
    $("detail-line").textContent = `The model ${name} could not be read: ${error.message}`;
    return;
  }
  if (catalogue.name !== name) return;  // another model was chosen meanwhile
  const serving = history.versions.find((v) => v.version === entry.version) || {};
  $("detail-line").textContent = `v${entry.version} serves since ${when(entry.promoted_at)}.`;
  $("detail-body").append(
    summaryList([
      ["Task", entry.task === "regression" ? `regression of ${entry.target || "a value"}` : `${entry.task}: ${entry.classes.join(", ")}`],
      ["Made of", madeOf(described.framework, described.ensemble)],
      ["Trained", when(serving.created_at)],
      ["Rows", serving.rows_train ? `${serving.rows_train} trained on, of ${serving.rows}` : String(serving.rows ?? "—")],
      ["Data", serving.data_sha256 ? `${serving.dataset || "table"} · sha256 ${serving.data_sha256.slice(0, 16)}…` : "—"],
      ["Features", String(described.feature_schema.length)],
      ["Ignores", (serving.ignored_columns || []).join(", ") || "no column"],
    ]),
    metricsTable(entry.metrics),
    element("h3", { text: "Versions" }),
    versionsTable(history, entry.version),
    element("h3", { text: "Promotions" }),
    promotionsTable(history));
  try {
    const drift = await Console.getJson(`/models/${encodeURIComponent(name)}/drift`);
    if (catalogue.name === name) renderDrift(drift);
  } catch (error) {
    $("drift-line").textContent = `The drift report could not be read: ${error.message}`;
  }
}

function chosen() {
  const name = decodeURIComponent(location.hash.slice(1));
  return catalogue.models.some((m) => m.name === name) ? name : null;
}

async function start() {
  let listing;
  try {
    listing = await Console.getJson("/models");
  } catch (error) {
    $("catalogue-line").textContent = `The models could not be listed: ${error.message}`;
    return;
  }
  catalogue.models = listing.models;
  if (!listing.models.length) {
    $("catalogue-line").textContent = "No model has a champion yet: train one (make train).";
    return;
  }
  $("catalogue-line").textContent = `${listing.models.length} model${listing.models.length > 1 ? "s" : ""} served; ` +
    `the default is ${listing.default_model}.`;
  window.addEventListener("hashchange", () => { const name = chosen(); if (name) show(name); });
  await show(chosen() || listing.default_model || listing.models[0].name);
}

start();
