// wan-gateway console: one hand-written ES module, no dependencies, no build step (docs/CONSOLE.md).
// The server renders each page's structure; this module signs in (the key stays in sessionStorage),
// then fills the page from the public API with `Authorization: Bearer <key>`, as any client would.

const KEY = "wan-gateway.key";
const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
const $ = (id) => document.getElementById(id);
const body = document.body;
const blobUrls = new Map(); // url → object URL of an authenticated download (thumbnails, images)

class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

function storedKey() {
  return sessionStorage.getItem(KEY); // null: signed out; "": a gateway without keys
}

function authHeaders(key = storedKey()) {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// Every request of the page ends with the page: Chrome otherwise keeps a leaving page's long polls and
// streams open until the server answers them, and with 6 connections per host the next page's first
// request waits for them (20 s seen, list → job).
const pageLife = new AbortController();
window.addEventListener("pagehide", () => pageLife.abort());

async function api(path, { method = "GET", json, form, headers = {}, signal, key, raw = false } = {}) {
  const ends = signal ? AbortSignal.any([signal, pageLife.signal]) : pageLife.signal;
  const init = { method, signal: ends, headers: { ...authHeaders(key ?? storedKey()), ...headers } };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (form !== undefined) {
    init.body = form; // multipart: the browser sets the boundary
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let problem = null;
    try { problem = await response.json(); } catch { /* not JSON */ }
    if (response.status === 401 && key === undefined) signOut("Your key was refused: sign in again.");
    throw new ApiError(response.status, problem);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

async function blobUrl(path) {
  if (!blobUrls.has(path)) {
    const pending = api(path, { raw: true }).then(async (r) => URL.createObjectURL(await r.blob()));
    blobUrls.set(path, pending);
    pending.catch(() => blobUrls.delete(path));
  }
  return blobUrls.get(path);
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "className") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function notice(message, kind = "error") {
  const box = $("notice");
  box.textContent = message || "";
  box.className = kind === "error" ? "notice" : "notice info";
  box.hidden = !message;
}

function fail(error) {
  notice(error instanceof ApiError ? `${error.message}${error.problem?.field ? ` (field: ${error.problem.field})` : ""}` : String(error));
}

const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

function statusBadge(job, attrs = {}) {
  return el("span", { className: `badge ${job.status}`, text: job.status, ...attrs });
}

function progressText(job) {
  const eta = job.eta && !TERMINAL.has(job.status) ? ` · by ${new Date(job.eta).toLocaleTimeString()}` : "";
  if (job.status === "queued" && job.queue_position) return `#${job.queue_position} in queue${eta}`;
  if (job.progress !== null && job.progress !== undefined) return `${job.progress}%${eta}`;
  return eta.slice(3);
}

function flat(value) {
  // An object as `key: value` pairs on one line (an image description, usage, metadata).
  if (Array.isArray(value)) return value.map(flat).join(", ");
  if (value === null || typeof value !== "object") return String(value);
  return Object.entries(value)
    .map(([k, v]) => `${k}: ${k === "sha256" && typeof v === "string" ? `${v.slice(0, 12)}…` : flat(v)}`)
    .join(" · ");
}

function kv(dl, entries) {
  dl.replaceChildren();
  for (const [name, value] of entries) {
    if (value === undefined || value === null || value === "") continue;
    const shown = typeof value === "object" && !(value instanceof Node) ? flat(value) : value;
    dl.append(el("dt", { text: name }), el("dd", {}, shown instanceof Node ? shown : String(shown)));
  }
}

// ---- sign in -------------------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(KEY);
  showSignIn(message);
}

function showSignIn(message) {
  $("content").hidden = true;
  document.querySelector(".who").hidden = true;
  $("signin").hidden = false;
  notice(message || "");
  $("api-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  const button = event.submitter || document.querySelector("[data-testid=sign-in]");
  button.disabled = true;
  try {
    await api("/console/api/whoami", { key });
    sessionStorage.setItem(KEY, key);
    $("api-key").value = "";
    await start();
  } catch (error) {
    notice(error instanceof ApiError && error.status === 401 ? "That key was refused." : String(error));
  } finally {
    button.disabled = false;
  }
}

async function start() {
  let me;
  try {
    me = await api("/console/api/whoami");
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) fail(error);
    return;
  }
  notice("");
  $("signin").hidden = true;
  document.querySelector(".who").hidden = false;
  $("who").textContent = me.tenant ? `${me.key_name || me.tenant}${me.admin ? " (admin)" : ""}` : "no key (sandbox)";
  for (const node of document.querySelectorAll(".admin-only")) node.hidden = !me.admin;
  $("content").hidden = false;
  $("main").focus();
  const pages = { jobs: jobsPage, job: jobPage, new: newJobPage, spend: spendPage, health: healthPage };
  await pages[body.dataset.page]?.(me);
}

// ---- Jobs ----------------------------------------------------------------------------------------

async function modelNames() {
  const listing = await api("/v1/models");
  return listing.data;
}

async function jobsPage() {
  const params = new URLSearchParams(location.search);
  const status = $("filter-status");
  const model = $("filter-model");
  for (const m of await modelNames()) model.append(el("option", { value: m.id, text: m.id }));
  status.value = params.get("status") || "";
  model.value = params.get("model") || "";
  const cursors = [null];
  let timer = null;
  const watchers = new Map(); // job id → AbortController of its long poll
  const rows = $("job-rows");
  const shownAs = new WeakMap(); // row → the job's JSON it shows

  const stopWatching = () => {
    for (const controller of watchers.values()) controller.abort();
    watchers.clear();
  };

  async function thumb(job, cell) {
    if (job.status !== "succeeded" || job.result?.expired_at) return;
    try {
      const src = await blobUrl(`/v1/jobs/${job.id}/thumbnail`);
      cell.replaceChildren(el("img", { src, alt: `First frames of ${job.id}` }));
    } catch { /* no poster: the placeholder stays */ }
  }

  function row(job) {
    const cell = el("td", { className: "thumb" }, el("span", { className: "ph", "aria-hidden": "true" }));
    const bar = job.progress !== null && job.progress !== undefined && !TERMINAL.has(job.status)
      ? el("progress", { max: "100", value: String(job.progress), "aria-label": `Progress of ${job.id}` }) : null;
    const tr = el("tr", { "data-testid": "job-row", "data-job-id": job.id, "data-status": job.status },
      cell,
      el("td", {}, el("a", { href: `/console/jobs/${job.id}`, text: job.id })),
      el("td", { text: job.model }),
      el("td", {}, statusBadge(job, { "data-testid": "job-status" })),
      el("td", {}, bar, el("span", { text: ` ${progressText(job)}` })),
      el("td", {}, el("time", { datetime: job.created_at, text: when(job.created_at) })));
    thumb(job, cell);
    return tr;
  }

  function update(job) {
    const old = rows.querySelector(`tr[data-job-id="${CSS.escape(job.id)}"]`);
    if (old) {
      const fresh = row(job);
      shownAs.set(fresh, JSON.stringify(job));
      old.replaceWith(fresh);
    }
  }

  function watch(job) {
    // A long poll per unfinished job shown (at most 3: browsers open 6 connections per host).
    if (TERMINAL.has(job.status) || watchers.has(job.id) || watchers.size >= 3) return;
    const controller = new AbortController();
    watchers.set(job.id, controller);
    (async () => {
      let current = job;
      while (!TERMINAL.has(current.status) && !controller.signal.aborted) {
        try {
          current = await api(`/v1/jobs/${job.id}`, { headers: { Prefer: "wait=25" }, signal: controller.signal });
          update(current);
        } catch (error) {
          if (controller.signal.aborted) return;
          await new Promise((resolve) => setTimeout(resolve, 2000));
        }
      }
      watchers.delete(job.id);
      schedule(200); // the next unfinished jobs get a watcher, the figures of the others refresh
    })();
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(load, ms);
  }

  async function load() {
    const query = new URLSearchParams({ limit: "20" });
    if (status.value) query.set("status", status.value);
    if (model.value) query.set("model", model.value);
    const cursor = cursors[cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    let page;
    try {
      page = await api(`/v1/jobs?${query}`);
      $("live-state").textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      $("live-state").textContent = "Reconnecting…";
      schedule(3000);
      return;
    }
    const ids = new Set(page.data.map((j) => j.id));
    for (const [id, controller] of watchers) if (!ids.has(id)) { controller.abort(); watchers.delete(id); }
    // Rows whose job did not change are kept as they are (focus, a loaded thumbnail stay put).
    const kept = new Map([...rows.children].map((tr) => [tr.dataset.jobId, tr]));
    rows.replaceChildren(...page.data.map((j) => {
      const old = kept.get(j.id);
      const text = JSON.stringify(j);
      if (old && shownAs.get(old) === text) return old;
      const fresh = row(j);
      shownAs.set(fresh, text);
      return fresh;
    }));
    $("jobs-empty").hidden = page.data.length > 0;
    $("page-next").hidden = !page.next_cursor;
    $("page-next").dataset.cursor = page.next_cursor || "";
    $("page-first").hidden = cursors.length === 1;
    page.data.forEach(watch);
    // New jobs and the progress of the unwatched ones: refresh, quickly while something runs.
    const busy = page.data.some((j) => !TERMINAL.has(j.status));
    schedule(busy ? 3000 : 10000);
  }

  function refilter() {
    const query = new URLSearchParams();
    if (status.value) query.set("status", status.value);
    if (model.value) query.set("model", model.value);
    history.replaceState(null, "", query.size ? `?${query}` : location.pathname);
    cursors.splice(1);
    stopWatching();
    load();
  }
  status.addEventListener("change", refilter);
  model.addEventListener("change", refilter);
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); refilter(); });
  $("page-next").addEventListener("click", () => { cursors.push($("page-next").dataset.cursor); stopWatching(); load(); });
  $("page-first").addEventListener("click", () => { cursors.splice(1); stopWatching(); load(); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) schedule(0); });
  await load();
}

// ---- Job -----------------------------------------------------------------------------------------

async function* sse(path, { signal, after }) {
  // EventSource cannot send an Authorization header, and the key never goes into a URL: read the
  // stream with fetch and parse `text/event-stream` here (id, event, data; comments skipped).
  const headers = { Accept: "text/event-stream" };
  if (after) headers["Last-Event-ID"] = String(after);
  const response = await api(path, { raw: true, headers, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { id: null, event: "message", data: "" };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") event.data += (event.data ? "\n" : "") + text;
        else if (field === "id") event.id = text;
        else if (field === "event") event.event = text;
      }
      if (event.data) yield event;
    }
  }
}

async function jobPage() {
  const id = body.dataset.jobId;
  let job;
  try {
    job = await api(`/v1/jobs/${id}`);
  } catch (error) {
    fail(error);
    return;
  }
  let videoShown = null;
  const player = $("player");

  async function showImages() {
    for (const [which, figure, img] of [["reference", "ref-figure", "ref-image"], ["last", "last-figure", "last-image"]]) {
      const described = job.request?.[which === "reference" ? "reference_image" : "last_frame_image"];
      if (!described) continue;
      try {
        $(img).src = await blobUrl(`/console/api/jobs/${id}/images/${which}`);
        $(figure).hidden = false;
      } catch { /* sent as a URL: the description below says which */ }
    }
  }

  async function showVideo() {
    if (job.status !== "succeeded" || !job.result || job.result.expired_at) return;
    const src = job.result.signed_url || (await blobUrl(`/v1/jobs/${id}/content`));
    if (videoShown === src) return;
    videoShown = src;
    player.src = src;
    player.hidden = false;
    $("video-none").hidden = true;
    blobUrl(`/v1/jobs/${id}/thumbnail`).then((poster) => { player.poster = poster; }).catch(() => {});
    if (job.result.signed_url) {
      $("act-download").href = job.result.signed_url;
      $("act-download").hidden = false;
    }
  }

  function render() {
    const badge = $("job-status");
    badge.textContent = job.status;
    badge.className = `badge ${job.status}`;
    const bar = $("job-progress");
    if (job.status === "succeeded") bar.value = 100;
    else if (job.progress !== null && job.progress !== undefined) bar.value = job.progress;
    else bar.removeAttribute("value");
    bar.hidden = job.status === "failed" || job.status === "canceled";
    $("job-queue").textContent = job.status === "queued" && job.queue_position ? `#${job.queue_position} in its model's queue` : "";
    $("job-eta").textContent = job.eta && !TERMINAL.has(job.status) ? `expected by ${when(job.eta)}` : "";
    $("act-cancel").hidden = TERMINAL.has(job.status);
    $("act-delete").hidden = !TERMINAL.has(job.status);
    $("act-rerun").hidden = false;
    const r = job.result;
    kv($("result"), r ? [
      ["Duration", `${r.duration} s`], ["Frame", `${r.width}×${r.height} @ ${r.fps} fps`],
      ["Codec", r.video_codec], ["Sound", r.has_audio === null ? null : r.has_audio ? "yes" : "no"],
      ["Size", `${(r.bytes / 1e6).toFixed(2)} MB`], ["sha256", r.sha256], ["Expired", r.expired_at && when(r.expired_at)],
    ] : []);
    const request = { model: job.model, ...job.request };
    kv($("request"), Object.entries(request));
    const cost = job.cost ? `${job.cost.amount} ${job.cost.currency}${job.cost.estimated ? " (estimate)" : ""} · ${job.cost.billed_seconds} s × ${job.cost.unit_price}` : null;
    const up = job.upstream || {};
    kv($("upstream"), [
      ["Task id", up.task_id], ["Request id", up.request_id], ["Upstream status", up.status],
      ["Submitted", up.submit_time], ["Ended", up.end_time], ["Actual prompt", up.actual_prompt],
      ["Cost", cost], ["Usage", job.usage], ["Cached", job.cached ? `yes (from ${job.source_job_id})` : null],
      ["Follows", !job.cached ? job.source_job_id : null], ["Created", when(job.created_at)],
      ["Finished", job.finished_at && when(job.finished_at)], ["Retry", job.retry && `${job.retry.reason}: ${job.retry.message}`],
      ["Warnings", job.warnings?.length ? job.warnings.join("; ") : null], ["Metadata", job.metadata],
    ]);
    const error = $("error");
    error.hidden = !job.error;
    if (job.error) {
      error.replaceChildren(
        el("strong", { text: job.error.code }),
        job.error.upstream_code ? el("span", { text: ` (DashScope: ${job.error.upstream_code})` }) : null,
        el("p", { text: job.error.message }));
    }
    showVideo().catch(fail);
  }

  async function deliveries() {
    let list;
    try { list = await api(`/v1/jobs/${id}/deliveries`); } catch { return; }
    const rows = list.data.map((d) => el("tr", {},
      el("td", { text: d.type }),
      el("td", {}, el("code", { text: d.url })),
      el("td", { text: d.status }),
      el("td", { text: `${d.attempt_count}${d.last_status_code ? ` · last ${d.last_status_code}` : d.last_error ? ` · ${d.last_error}` : ""}` }),
      el("td", {}, el("button", { type: "button", text: "Redeliver", onclick: async (event) => {
        event.target.disabled = true;
        try { await api(`/v1/jobs/${id}/deliveries/${d.id}/redeliver`, { method: "POST" }); notice("Redelivery queued.", "info"); await deliveries(); }
        catch (e) { fail(e); } finally { event.target.disabled = false; }
      } }))));
    $("delivery-rows").replaceChildren(...rows);
    $("deliveries-empty").hidden = rows.length > 0;
  }

  async function follow() {
    // The event timeline, live: status events are kept; `job.progress` events (no id) move the bar.
    let after = 0;
    const events = $("events");
    for (let tries = 0; tries < 100; tries++) {
      try {
        for await (const event of sse(`/v1/jobs/${id}/events`, { after })) {
          const payload = JSON.parse(event.data);
          if (payload.data) { job = payload.data; render(); }
          if (event.id) {
            after = event.id;
            events.append(el("li", {}, el("time", { datetime: payload.timestamp, text: when(payload.timestamp) }),
              el("span", { text: event.event })));
          }
        }
        if (TERMINAL.has(job.status)) break;
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    deliveries();
  }

  $("act-cancel").addEventListener("click", async () => {
    try { job = await api(`/v1/jobs/${id}/cancel`, { method: "POST" }); render(); } catch (e) { fail(e); }
  });
  $("act-rerun").addEventListener("click", async () => {
    try { const created = await api(`/console/api/jobs/${id}/rerun`, { method: "POST" }); location.assign(`/console/jobs/${created.id}`); }
    catch (e) { fail(e); }
  });
  $("act-delete").addEventListener("click", async () => {
    if (!window.confirm(`Delete ${id} and its stored video?`)) return;
    try { await api(`/v1/jobs/${id}`, { method: "DELETE" }); location.assign("/console"); } catch (e) { fail(e); }
  });
  render();
  showImages();
  deliveries();
  follow();
}

// ---- New job -------------------------------------------------------------------------------------

function shellQuote(value) {
  return /^[\w@%+=:,./*-]+$/.test(value) ? value : `'${value.replace(/'/g, "'\\''")}'`;
}

async function newJobPage() {
  const models = await modelNames();
  const byId = new Map(models.map((m) => [m.id, m]));
  const form = $("job-form");
  const select = $("model");
  for (const m of models) select.append(el("option", { value: m.id, text: `${m.id} (${m.kind}, ${m.audio ? "sound" : "silent"})` }));
  select.value = byId.has("wan2.6-i2v-flash") ? "wan2.6-i2v-flash" : models[0].id;
  const fileInput = $("image-file");
  const drop = $("drop");

  function options(selectEl, values, chosen, label = (v) => String(v)) {
    selectEl.replaceChildren(...values.map((v) => el("option", { value: String(v), text: label(v), selected: v === chosen })));
  }

  function chooseModel() {
    const m = byId.get(select.value);
    options($("duration"), m.durations, m.default_duration, (d) => `${d} s`);
    options($("resolution"), m.resolutions, m.default_resolution);
    $("shot-field").hidden = m.options.shot_type.length === 0;
    $("shot_type").replaceChildren(el("option", { value: "", text: "Default" }), ...m.options.shot_type.map((s) => el("option", { value: s, text: s })));
    $("audio-field").hidden = !m.options.audio;
    $("last-field").hidden = m.kind !== "kf2v";
    $("prompt").maxLength = m.options.prompt_max;
    $("seed").max = String(m.options.seed_max);
    $("model-help").textContent = `${m.family} · ${m.durations.length > 1 ? `${m.durations[0]}–${m.durations.at(-1)} s` : `${m.durations[0]} s`} · ${m.resolutions.join(", ")}${m.kind === "kf2v" ? " · first and last frame" : ""}`;
    curl();
  }

  function fields() {
    // What the form sends: only what differs from the model's defaults, so the request stays short.
    const m = byId.get(select.value);
    const out = [["model", m.id], ["prompt", $("prompt").value]];
    out.push(["duration", $("duration").value], ["resolution", $("resolution").value]);
    if ($("negative_prompt").value.trim()) out.push(["negative_prompt", $("negative_prompt").value]);
    if ($("seed").value !== "") out.push(["seed", $("seed").value]);
    if (!$("shot-field").hidden && $("shot_type").value) out.push(["shot_type", $("shot_type").value]);
    if (m.options.audio && !$("audio").checked) out.push(["audio", "false"]);
    if (!$("prompt_extend").checked) out.push(["prompt_extend", "false"]);
    if ($("watermark").checked) out.push(["watermark", "true"]);
    return out;
  }

  function curl() {
    const lines = [`curl -X POST ${location.origin}/v1/jobs`];
    if (storedKey()) lines.push(`-H "Authorization: Bearer $WAN_GATEWAY_KEY"`);
    for (const [name, value] of fields()) lines.push(`-F ${shellQuote(`${name}=${value}`)}`);
    const file = fileInput.files[0];
    lines.push(`-F ${shellQuote(`reference_image=@${file ? file.name : "image.png"}`)}`);
    const last = $("last-file").files[0];
    if (!$("last-field").hidden) lines.push(`-F ${shellQuote(`last_frame_image=@${last ? last.name : "last.png"}`)}`);
    $("curl").firstElementChild.textContent = lines.join(" \\\n  ");
  }

  function picked() {
    const file = fileInput.files[0];
    $("drop-name").textContent = file ? `${file.name} · ${(file.size / 1024).toFixed(0)} KB` : "";
    const preview = $("drop-preview");
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.hidden = !file;
    if (file) { preview.src = URL.createObjectURL(file); preview.alt = `Preview of ${file.name}`; }
    curl();
  }

  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) { fileInput.files = e.dataTransfer.files; picked(); }
  });
  fileInput.addEventListener("change", picked);
  select.addEventListener("change", chooseModel);
  form.addEventListener("input", curl);
  form.addEventListener("change", curl);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!$("prompt").value.trim()) { notice("Write a prompt (field: prompt)."); $("prompt").focus(); return; }
    if (!fileInput.files[0]) { notice("Choose a reference image (field: reference_image)."); fileInput.focus(); return; }
    const data = new FormData();
    for (const [name, value] of fields()) data.append(name, value);
    data.append("reference_image", fileInput.files[0]);
    if (!$("last-field").hidden && $("last-file").files[0]) data.append("last_frame_image", $("last-file").files[0]);
    const button = $("submit-job");
    button.disabled = true;
    try {
      const job = await api("/v1/jobs", { method: "POST", form: data });
      location.assign(`/console/jobs/${job.id}`);
    } catch (error) {
      fail(error);
      button.disabled = false;
    }
  });
  chooseModel();
}

// ---- Spend and health ----------------------------------------------------------------------------

async function spendPage() {
  const form = $("spend-form");
  async function load() {
    const query = new URLSearchParams({ group_by: $("spend-group").value });
    if ($("spend-from").value) query.set("from", $("spend-from").value);
    if ($("spend-to").value) query.set("to", $("spend-to").value);
    try {
      const usage = await api(`/v1/usage?${query}`);
      $("spend-window").textContent = `From ${when(usage.from)} to ${when(usage.to)}, by ${usage.group_by}.`;
      $("spend-rows").replaceChildren(...usage.data.map((r) => el("tr", {},
        el("td", { text: r.group ?? "—" }), el("td", { text: String(r.jobs) }),
        el("td", { text: String(r.billed_seconds) }), el("td", { text: `${r.amount} ${r.currency}` }))));
      $("spend-empty").hidden = usage.data.length > 0;
    } catch (error) { fail(error); }
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); load(); });
  await load();
}

function tree(value) {
  if (value === null || typeof value !== "object") return document.createTextNode(value === null ? "—" : String(value));
  if (Object.keys(value).length === 0) return document.createTextNode("none");
  const dl = el("dl", { className: "kv" });
  for (const [name, inner] of Object.entries(value)) dl.append(el("dt", { text: name }), el("dd", {}, tree(inner)));
  return dl;
}

async function healthPage(me) {
  if (!me.admin) { notice("Upstream health is for admin keys."); return; }
  async function load() {
    try {
      $("stats").replaceChildren(tree(await api("/v1/admin/stats")));
      const ready = await fetch("/readyz").then((r) => r.json()); // 503 still carries the checks
      $("ready").replaceChildren(tree(ready));
    } catch (error) { fail(error); }
    setTimeout(load, 5000);
  }
  await load();
}

// ---- boot ----------------------------------------------------------------------------------------

$("signin-form").addEventListener("submit", signIn);
$("sign-out").addEventListener("click", () => signOut("Signed out."));
if (storedKey() === null && body.dataset.auth === "off") sessionStorage.setItem(KEY, ""); // a gateway without keys
if (storedKey() === null) showSignIn();
else start();
