// The web page of `stream-backend serve`: the same /v1 API a script uses, with the
// caller's bearer token. Progress follows each request's Server-Sent Events, read with
// fetch so that the token goes in a header (EventSource cannot send one).
"use strict";

const $ = (id) => document.getElementById(id);
const FINISHED = new Set(["Succeeded", "Failed"]);
const state = {streams: new Map(), requests: new Map(), following: new Set(), locations: []};

// -- the API ------------------------------------------------------------------------
function token() { return sessionStorage.getItem("stream-backend-token") || ""; }

function headers(extra) {
  const h = {...extra};
  if (token()) h.Authorization = "Bearer " + token();
  return h;
}

class Problem extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

function plainWords(status, detail) {
  if (status === 401) return "The access token is missing or not valid here. Paste a token above and connect.";
  if (status === 403) return "Not allowed: " + detail;
  if (status === 503) return "The store or the cluster does not answer right now: " + detail;
  if (status === 413) return "The request is too large.";
  return detail || ("The server answered " + status + ".");
}

async function api(method, path, body) {
  let r;
  try {
    r = await fetch(path, {method, headers: headers(body ? {"Content-Type": "application/json"} : {}),
                           body: body ? JSON.stringify(body) : undefined});
  } catch (e) {
    throw new Problem(0, "The server cannot be reached (" + e.message + ").");
  }
  const text = await r.text();
  let doc = null;
  try { doc = text ? JSON.parse(text) : null; } catch (e) { doc = {detail: text}; }
  if (!r.ok) throw new Problem(r.status, plainWords(r.status, doc && doc.detail));
  return doc;
}

// -- notices --------------------------------------------------------------------------
function notify(message, kind) {
  $("notice-text").textContent = message;
  $("notice").className = kind || "error";
  $("notice").hidden = false;
}

function fail(e) { notify(e instanceof Problem ? e.message : "Something went wrong: " + e.message); }

// -- formatting -----------------------------------------------------------------------
function bytes(n) {
  if (n == null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

function duration(s) {
  if (s == null) return "";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min";
}

function when(epoch) { return epoch ? new Date(epoch * 1000).toLocaleString() : ""; }

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const c of children) node.append(c);
  return node;
}

function button(label, onclick, cls) {
  return el("button", {type: "button", textContent: label, className: cls || "", onclick});
}

function defaultName(prefix) {
  const t = new Date().toISOString().replace(/[-:T]/g, "").slice(0, 14);
  return (prefix.toLowerCase().replace(/[^a-z0-9-]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 40) || "request") +
    "-" + t.slice(0, 8) + "-" + t.slice(8);
}

// -- streams --------------------------------------------------------------------------
async function loadStreams() {
  const scopes = await api("GET", "/v1/streams");
  const infos = await Promise.all(scopes.flatMap((s) => s.streams.map((name) =>
    api("GET", `/v1/streams/${encodeURIComponent(s.scope)}/${encodeURIComponent(name)}`))));
  state.streams = new Map(infos.map((i) => [i.url, i]));
  const body = $("streams").tBodies[0];
  body.replaceChildren();
  if (!infos.length) body.append(el("tr", {className: "empty"}, el("td", {colSpan: 6, textContent: "No streams."})));
  const source = $("export-source");
  const chosen = source.value;
  source.replaceChildren();
  for (const i of infos) {
    body.append(el("tr", {},
      el("td", {textContent: `${i.scope}/${i.stream}`}),
      el("td", {className: "num", textContent: i.segment_count}),
      el("td", {className: "num", textContent: i.events.toLocaleString()}),
      el("td", {className: "num", textContent: bytes(i.length)}),
      el("td", {textContent: when(i.last_append)}),
      el("td", {}, button("Export…", () => chooseExport(i.url)))));
    source.append(el("option", {value: i.url, textContent: `${i.scope}/${i.stream}`}));
  }
  if (chosen && state.streams.has(chosen)) source.value = chosen;
  fillExportDefaults();
}

async function loadLocations() {
  state.locations = await api("GET", "/v1/locations");
  for (const select of document.querySelectorAll("select.location")) {
    const chosen = select.value;
    select.replaceChildren(...state.locations.map((l) =>
      el("option", {value: l.name, textContent: `${l.name} (${l.url})`})));
    if (chosen) select.value = chosen;
  }
}

function chooseExport(url) {
  showTab("export");
  $("export-source").value = url;
  fillExportDefaults(true);
  $("export-location").focus();
}

function fillExportDefaults(force) {
  const info = state.streams.get($("export-source").value);
  if (!info) return;
  if (force || !$("export-path").value) $("export-path").value = `${info.scope}/${info.stream}`;
  if (force || !$("export-name").value) $("export-name").value = defaultName(info.stream);
}

// -- requests -------------------------------------------------------------------------
const PLURAL = {StreamExport: "exports", StreamImport: "imports"};

async function loadRequests() {
  const [exports, imports] = await Promise.all([api("GET", "/v1/exports"), api("GET", "/v1/imports")]);
  state.requests = new Map([...exports, ...imports].map((d) => [key(d), d]));
  render();
  for (const d of state.requests.values()) if (!FINISHED.has(d.status.phase)) follow(d);
}

function key(doc) { return doc.kind + "/" + doc.metadata.name; }

function what(doc) {
  const s = doc.spec, archive = `${s.archiveLocation}:${s.archivePath || ""}`;
  return doc.kind === "StreamExport" ? `${s.source} → ${archive}` : `${archive} → ${s.destination}`;
}

function render() {
  const body = $("requests").tBodies[0];
  body.replaceChildren();
  const docs = [...state.requests.values()].sort((a, b) =>
    (b.metadata.creationTimestamp || "").localeCompare(a.metadata.creationTimestamp || ""));
  if (!docs.length) body.append(el("tr", {className: "empty"}, el("td", {colSpan: 6, textContent: "No requests yet."})));
  for (const d of docs) body.append(row(d));
}

function row(doc) {
  const st = doc.status || {}, p = st.progress || {}, phase = st.phase || "Pending";
  const percent = phase === "Succeeded" ? 100 : (p.percent || 0);
  const bar = el("progress", {max: 100, value: percent});
  bar.setAttribute("aria-label", `${doc.metadata.name} progress`);
  const counts = p.bytesTotal ? `${bytes(p.bytesDone)} of ${bytes(p.bytesTotal)}` :
    (st.events != null ? `${st.events.toLocaleString()} events` : "");
  const progress = el("td", {className: "bar-col"}, bar,
    el("span", {className: "percent", textContent: `${percent.toFixed(percent % 1 ? 1 : 0)}%`}),
    el("div", {className: "detail", textContent: counts}));
  const left = phase === "Running" ? [duration(p.etaSeconds), p.rateBytesPerSecond ? bytes(p.rateBytesPerSecond) + "/s" : ""]
    .filter(Boolean).join(" · ") : "";
  const phaseCell = el("td", {}, el("span", {className: "phase " + phase.toLowerCase(), textContent: phase}));
  const message = st.lastError && phase === "Failed" ? st.lastError :
    (phase === "Succeeded" && st.run ? `run ${st.run}: ${(st.events || 0).toLocaleString()} events` +
      (st.complete === false ? " (not complete)" : "") : (phase === "Pending" || phase === "Paused" ? st.message || "" : ""));
  if (message) phaseCell.append(el("div", {className: "detail", textContent: message}));
  const actions = el("td", {className: "actions"});
  const plural = PLURAL[doc.kind], name = doc.metadata.name;
  if (phase === "Running" || phase === "Pending") actions.append(button("Pause", () => act("POST", plural, name, "pause")));
  if (phase === "Paused" || phase === "Failed") actions.append(button("Resume", () => act("POST", plural, name, "resume")));
  if (!FINISHED.has(phase)) actions.append(button("Cancel", () => cancel(plural, name), "quiet"));
  if (doc.kind === "StreamExport" && phase === "Succeeded" && doc.spec.fileView) {
    const info = state.streams.get(doc.spec.source);
    const segments = info && info.segment_count > 1 ? info.segments.map((s) => s.segment) : [null];
    for (const seg of segments)
      actions.append(button(seg == null ? "Download" : `Download segment ${seg}`, () => download(name, seg)));
  }
  return el("tr", {id: `request-${plural}-${name}`},
    el("td", {textContent: name}), el("td", {className: "what", textContent: what(doc)}), phaseCell, progress,
    el("td", {textContent: left}), actions);
}

async function act(method, plural, name, verb) {
  try {
    update(await api(method, `/v1/${plural}/${encodeURIComponent(name)}/${verb}`));
  } catch (e) { fail(e); }
}

async function cancel(plural, name) {
  if (!confirm(`Cancel ${name}? It stops at a checkpoint; a new request for the same archive continues from there.`))
    return;
  try {
    await api("DELETE", `/v1/${plural}/${encodeURIComponent(name)}`);
    await loadRequests();
  } catch (e) { fail(e); }
}

function update(doc) {
  state.requests.set(key(doc), doc);
  render();
  if (!FINISHED.has(doc.status.phase)) follow(doc);
}

async function follow(doc) {
  const k = key(doc), plural = PLURAL[doc.kind], name = doc.metadata.name;
  if (state.following.has(k)) return;
  state.following.add(k);
  let last = doc;
  try {
    const r = await fetch(`/v1/${plural}/${encodeURIComponent(name)}/events`, {headers: headers()});
    if (!r.ok) throw new Problem(r.status, plainWords(r.status, (await r.json().catch(() => ({}))).detail));
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = (/^event: (.*)$/m.exec(block) || [])[1], data = (/^data: (.*)$/m.exec(block) || [])[1];
        if (event === "status") {
          last = JSON.parse(data);
          state.requests.set(k, last);
          render();
        } else if (event === "deleted") {
          state.requests.delete(k);
          render();
          return;
        }
      }
    }
  } catch (e) {
    fail(e);
  } finally {
    state.following.delete(k);
  }
  if (!FINISHED.has(last.status.phase) && state.requests.has(k)) setTimeout(() => follow(last), 2000);
}

// -- downloads: straight from S3 through the plan's presigned URLs --------------------------
async function sha256(buffer) {
  const digest = await crypto.subtle.digest("SHA-256", buffer);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function save(href, filename) {
  const a = el("a", {href, download: filename});
  document.body.append(a);
  a.click();
  a.remove();
}

async function download(name, segment) {
  let plan;
  try {
    plan = await api("GET", `/v1/exports/${encodeURIComponent(name)}/download` + (segment == null ? "" : `?segment=${segment}`));
  } catch (e) { return fail(e); }
  const filename = `${name}${segment == null ? "" : "-segment-" + segment}.bin`;
  notify(`Downloading ${bytes(plan.size)} in ${plan.parts.length} part(s) straight from the archive…`, "info");
  try {
    const parts = await Promise.all(plan.parts.map(async (part) => {
      const r = await fetch(part.url);
      if (!r.ok) throw new Problem(r.status, r.status === 403 ?
        "The download links have expired: press Download again for new ones." : `The archive answered ${r.status}.`);
      const buffer = await r.arrayBuffer();
      if (buffer.byteLength !== part.size) throw new Problem(0, `A part came back with ${buffer.byteLength} of ${part.size} bytes.`);
      if (window.crypto && crypto.subtle && await sha256(buffer) !== part.sha256)
        throw new Problem(0, "A downloaded part does not match its checksum: nothing was saved. Try again.");
      return buffer;
    }));
    save(URL.createObjectURL(new Blob(parts, {type: "application/octet-stream"})), filename);
    notify(`Saved ${filename}: ${bytes(plan.size)}, every part checked against its SHA-256.`, "info");
  } catch (e) {
    if (e instanceof Problem) return fail(e);
    // the archive's S3 endpoint does not let this page read it (CORS): let the browser fetch each part itself
    if (plan.parts.length === 1) {
      save(plan.parts[0].url, filename);
      notify(`Downloading ${filename} from the archive (${bytes(plan.size)}).`, "info");
    } else {
      notify(`This archive's S3 endpoint does not let the page join the ${plan.parts.length} parts (no CORS): ` +
        "use `stream-backend download` with the plan, or allow this page's origin on the bucket.");
    }
  }
}

// -- forms ------------------------------------------------------------------------------
function showTab(which) {
  for (const kind of ["export", "import"]) {
    $(`${kind}-form`).hidden = kind !== which;
    $(`tab-${kind}`).setAttribute("aria-selected", String(kind === which));
  }
  if (which === "import" && !$("import-name").value) $("import-name").value = defaultName("restore");
}

async function submit(plural, name, spec) {
  try {
    const doc = await api("POST", `/v1/${plural}`, {name, spec});
    $("notice").hidden = true;
    update(doc);
    return true;
  } catch (e) { fail(e); return false; }
}

$("export-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const spec = {source: $("export-source").value, archiveLocation: $("export-location").value,
                archivePath: $("export-path").value.trim(), fileView: $("export-view").checked};
  if (await submit("exports", $("export-name").value.trim(), spec)) $("export-name").value = defaultName(
    state.streams.get(spec.source).stream);
});

$("import-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const spec = {archiveLocation: $("import-location").value, archivePath: $("import-path").value.trim(),
                destination: $("import-destination").value.trim()};
  if (await submit("imports", $("import-name").value.trim(), spec)) $("import-name").value = defaultName("restore");
});

$("export-source").addEventListener("change", () => fillExportDefaults(true));
$("tab-export").addEventListener("click", () => showTab("export"));
$("tab-import").addEventListener("click", () => showTab("import"));
$("notice-close").addEventListener("click", () => { $("notice").hidden = true; });

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const t = $("token").value.trim();
  if (t) sessionStorage.setItem("stream-backend-token", t);
  $("token").value = "";
  connect();
});

$("logout").addEventListener("click", () => {
  sessionStorage.removeItem("stream-backend-token");
  location.reload();
});

async function connect() {
  $("logout").hidden = !token();
  try {
    await Promise.all([loadStreams(), loadLocations(), loadRequests()]);
    $("notice").hidden = true;
    document.body.classList.add("connected");
  } catch (e) {
    fail(e);
  }
}

connect();
