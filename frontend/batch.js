// Batch scoring from the browser: sign in (the console's user pool), ask the API for an upload
// form (POST /models/{name}/batches), upload the file straight to S3, then follow the batch
// (GET /models/{name}/batches/{id}) until its downloads are ready.
"use strict";

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

function say(id, text) { $(id).textContent = text; }

function showSignedIn() {
  const session = Console.session();
  $("sign-in").hidden = Boolean(session);
  $("score").hidden = !session;
  const who = $("who");
  who.replaceChildren();
  if (!session) {
    who.textContent = "Not signed in.";
    return;
  }
  const out = Console.element("button", { type: "button", id: "sign-out", class: "link", text: "Sign out" });
  out.addEventListener("click", () => { Console.signOut(); showSignedIn(); $("username").focus(); });
  who.append(`Signed in as ${session.user}. `, out);
}

async function signIn(event) {
  event.preventDefault();
  say("sign-in-line", "Signing in…");
  try {
    await Console.signIn($("username").value, $("password").value);
    $("password").value = "";
    say("sign-in-line", "");
    showSignedIn();
    $("batch-model").focus();
  } catch (error) {
    say("sign-in-line", `Not signed in: ${error.message}`);
  }
}

async function loadModels() {
  const listing = await Console.getJson("/models");
  const select = $("batch-model");
  select.replaceChildren(...listing.models.map((m) => Console.element("option", { value: m.name, text: m.name })));
  select.value = listing.default_model;
}

// the upload to S3 with the form the API signed; XMLHttpRequest, for its upload progress
function upload(form, file) {
  return new Promise((resolve, reject) => {
    const body = new FormData();
    for (const [name, value] of Object.entries(form.fields)) body.append(name, value);
    body.append("file", file);
    const request = new XMLHttpRequest();
    request.open("POST", form.url);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) $("batch-progress").value = Math.round((100 * event.loaded) / event.total);
    });
    request.addEventListener("load", () => (request.status < 300 ? resolve()
      : reject(new Error(`S3 refused the upload (${request.status}): ${request.responseText.slice(0, 300)}`))));
    request.addEventListener("error", () => reject(new Error("the upload did not reach S3")));
    request.send(body);
  });
}

function link(url, text) {
  return Console.element("a", { href: url, download: "", text });
}

function showResult(status) {
  const box = $("batch-result");
  box.replaceChildren();
  if (status.state === "succeeded") {
    box.append(Console.table("The batch", ["What", "Value"], [
      ["Rows", String(status.rows)], ["Predicted", String(status.predicted)],
      ["Invalid (in the errors file)", String(status.invalid)],
      ["Model version", String(status.model_version)], ["Seconds", Console.number(status.seconds)]]));
    const links = Console.element("ul", { class: "downloads" });
    for (const [kind, text] of [["predictions", "Predictions (CSV)"], ["errors", "Errors (CSV)"],
      ["manifest", "Manifest (JSON)"]]) {
      if (status.downloads[kind]) links.append(Console.element("li", {}, link(status.downloads[kind], text)));
    }
    box.append(Console.element("h3", { text: "Downloads" }), links);
  } else if (status.state === "refused" && status.downloads.errors) {
    box.append(Console.element("p", {}, link(status.downloads.errors, "Why (errors file, CSV)")));
  }
}

function describe(status) {
  switch (status.state) {
    case "waiting_for_upload": return "Waiting for the file to arrive…";
    case "queued": return "Uploaded; the batch is about to start…";
    case "running": {
      const parts = status.parts ? `${status.parts.stage}: ${status.parts.done} of ${status.parts.total} parts, ` : "";
      return `Running: ${parts}${status.rows_scored} rows scored so far.`;
    }
    case "succeeded": return `Done: ${status.predicted} of ${status.rows} rows predicted, ${status.invalid} invalid.`;
    case "refused": return `Not scored: ${status.reason}`;
    default: return `Failed: ${status.error}. ${status.cause || ""}`;
  }
}

async function follow(path) {
  for (;;) {
    const status = await Console.getJson(path, { signedIn: true });
    say("batch-line", describe(status));
    if (status.state === "running" && status.parts && status.parts.total) {
      $("progress-label").textContent = "Scoring";
      $("batch-progress").value = Math.round((100 * status.parts.done) / status.parts.total);
    }
    if (["succeeded", "refused", "failed"].includes(status.state)) {
      $("progress-label").textContent = status.state === "succeeded" ? "Done" : "Stopped";
      $("batch-progress").value = 100;
      showResult(status);
      return status;
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function score(event) {
  event.preventDefault();
  const file = $("batch-file").files[0];
  const button = $("score-form").querySelector("button");
  if (!file) return;
  button.disabled = true;
  $("batch-result").replaceChildren();
  try {
    say("batch-line", "Asking for an upload form…");
    const batch = await Console.postJson(`/models/${encodeURIComponent($("batch-model").value)}/batches`,
      { filename: file.name, bytes: file.size }, { signedIn: true });
    $("progress-box").hidden = false;
    $("progress-label").textContent = "Uploading";
    $("batch-progress").value = 0;
    say("batch-line", `Uploading ${file.name} (batch ${batch.id})…`);
    await upload(batch.upload, file);
    await follow(batch.status);
  } catch (error) {
    if (error.status === 401) { Console.signOut(); showSignedIn(); }
    say("batch-line", error.message);
  } finally {
    button.disabled = false;
  }
}

async function main() {
  $("sign-in-form").addEventListener("submit", signIn);
  $("score-form").addEventListener("submit", score);
  try {
    const config = await Console.loadConfig();
    if (!config.auth) throw new Error("this console has no sign-in configured (config.json has no auth)");
    showSignedIn();
    await loadModels();
  } catch (error) {
    say("who", error.message);
  }
}

main();
