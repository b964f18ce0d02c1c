// ToonFace web page: plain JavaScript, no library, nothing loaded from the internet.
// Images go to POST /api/cartoonize (the answer is the PNG); videos to POST /api/videos (a job,
// polled at /api/jobs/{id} for its progress). Every server error is shown with its own message.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: null, kind: null, urls: [], job: null, poll: null, busy: false };

// The server's rule (serving/uploads.py): MB with one decimal from 1 MB, whole KB below.
function formatMB(bytes) {
  return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.round(bytes / 1024) + " KB";
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setStatus(text) { $("status").textContent = text || ""; }

function keepURL(url) { state.urls.push(url); return url; }

function releaseURLs() {
  state.urls.forEach((u) => URL.revokeObjectURL(u));
  state.urls = [];
}

function setFrame(frameId, kind, src, label) {
  const frame = $(frameId);
  frame.replaceChildren();
  if (!src) {
    const span = document.createElement("span");
    span.className = "placeholder";
    span.textContent = label;
    frame.appendChild(span);
    return null;
  }
  const el = document.createElement(kind === "video" ? "video" : "img");
  el.id = frameId === "before-frame" ? "before" : "after";
  if (kind === "video") { el.controls = true; el.loop = true; el.muted = true; } else { el.alt = label; }
  // A file the browser cannot show (refused by the server, or a format it cannot decode):
  // a line of text instead of a broken-image icon.
  el.addEventListener("error", () => {
    if (el.parentNode === frame) setFrame(frameId, null, null, "no preview: the browser cannot show this file");
  });
  el.src = src;
  frame.appendChild(el);
  return el;
}

// An error body is {"error": {"code", "message"}}; anything else (a proxy's page) is shown by status.
async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (e) { /* not JSON */ }
  return "the server answered " + response.status + " " + (response.statusText || "");
}

function networkMessage(err) {
  return "the upload failed before the server answered (" + (err && err.message ? err.message : err) +
    "); the server may have refused a file over its limit or be unreachable";
}

function kindOf(file) {
  if (file.type.startsWith("video/") || /\.(mp4|mov|m4v|webm|mkv|avi)$/i.test(file.name)) return "video";
  return "image";
}

function chooseFile(file) {
  if (!file) return;
  stopPolling();
  releaseURLs();
  showError("");
  setStatus("");
  $("progress").hidden = true;
  $("download").hidden = true;
  state.file = file;
  state.kind = kindOf(file);
  $("drop-text").textContent = file.name + " (" + formatMB(file.size) + ")";
  setFrame("before-frame", state.kind, keepURL(URL.createObjectURL(file)), "your file");
  setFrame("after-frame", null, null, "the cartoon");
  $("go").disabled = false;
}

function formData(field) {
  const fd = new FormData();
  fd.append(field, state.file, state.file.name);
  fd.append("style", $("style").value);
  fd.append("strength", $("strength").value);
  fd.append("portrait", $("portrait").checked ? "true" : "false");
  return fd;
}

function setBusy(busy) {
  state.busy = busy;
  $("go").disabled = busy || !state.file;
  $("file").disabled = busy;
}

async function cartoonizeImage() {
  setStatus("Cartoonizing…");
  const started = performance.now();
  let response;
  try {
    response = await fetch("/api/cartoonize", { method: "POST", body: formData("image"),
      headers: { "Accept": "image/png" } });
  } catch (err) {
    showError(networkMessage(err));
    setStatus("");
    return;
  }
  if (!response.ok) {
    showError(await errorMessage(response));
    setStatus("");
    return;
  }
  const blob = await response.blob();
  const url = keepURL(URL.createObjectURL(blob));
  const img = setFrame("after-frame", "image", url, "cartoon");
  img.addEventListener("load", () => {
    img.dataset.ready = "1";
    setStatus("Done in " + ((performance.now() - started) / 1000).toFixed(1) + " s: " +
      img.naturalWidth + "×" + img.naturalHeight + ", style " + (response.headers.get("X-Style") || $("style").value));
  });
  const link = $("download");
  link.href = url;
  link.download = state.file.name.replace(/\.[^.]*$/, "") + "-cartoon.png";
  link.hidden = false;
}

function stopPolling() {
  if (state.poll) clearTimeout(state.poll);
  state.poll = null;
  state.job = null;
  $("cancel").hidden = true;
}

async function pollJob() {
  const id = state.job;
  if (!id) return;
  let response;
  try {
    response = await fetch("/api/jobs/" + encodeURIComponent(id), { headers: { "Accept": "application/json" } });
  } catch (err) {
    state.poll = setTimeout(pollJob, 1500);  // a transient network error: keep polling
    return;
  }
  if (!response.ok) {
    showError(await errorMessage(response));
    stopPolling();
    setBusy(false);
    return;
  }
  const job = await response.json();
  const bar = $("progress");
  bar.hidden = false;
  bar.value = job.progress;
  const frames = job.frames_total ? job.frames_done + " / " + job.frames_total + " frames" : job.frames_done + " frames";
  if (job.status === "done") {
    setStatus("Done: " + frames + (job.notices.length ? " (" + job.notices.join("; ") + ")" : ""));
    setFrame("after-frame", "video", job.result_url, "cartoon");
    const link = $("download");
    link.href = job.result_url;
    link.download = state.file.name.replace(/\.[^.]*$/, "") + "-cartoon.mp4";
    link.hidden = false;
    stopPolling();
    setBusy(false);
  } else if (job.status === "failed" || job.status === "cancelled") {
    showError(job.message || ("the job was " + job.status));
    setStatus("");
    bar.hidden = true;
    stopPolling();
    setBusy(false);
  } else {
    setStatus((job.status === "queued" ? "Waiting for the video worker… " : "Cartoonizing… ") +
      Math.round(job.progress * 100) + "% (" + frames + ")");
    state.poll = setTimeout(pollJob, 700);
  }
}

async function cartoonizeVideo() {
  setStatus("Uploading…");
  let response;
  try {
    response = await fetch("/api/videos", { method: "POST", body: formData("video"),
      headers: { "Accept": "application/json" } });
  } catch (err) {
    showError(networkMessage(err));
    setStatus("");
    return false;
  }
  if (response.status !== 202) {
    showError(await errorMessage(response));
    setStatus("");
    return false;
  }
  const job = await response.json();
  state.job = job.id;
  $("cancel").hidden = false;
  $("progress").value = 0;
  $("progress").hidden = false;
  pollJob();
  return true;
}

async function go() {
  if (!state.file || state.busy) return;
  showError("");
  $("download").hidden = true;
  setFrame("after-frame", null, null, "the cartoon");
  setBusy(true);
  if (state.kind === "video") {
    if (!(await cartoonizeVideo())) setBusy(false);  // else the poll ends it
    return;
  }
  try { await cartoonizeImage(); } finally { setBusy(false); }
}

async function cancelJob() {
  const id = state.job;
  if (!id) return;
  stopPolling();
  try { await fetch("/api/jobs/" + encodeURIComponent(id), { method: "DELETE" }); } catch (e) { /* gone anyway */ }
  $("progress").hidden = true;
  setStatus("Cancelled");
  setBusy(false);
}

async function loadStyles() {
  const select = $("style");
  let response;
  try {
    response = await fetch("/api/styles", { headers: { "Accept": "application/json" } });
  } catch (err) {
    showError("cannot load the styles: " + err.message);
    return;
  }
  if (!response.ok) { showError(await errorMessage(response)); return; }
  const body = await response.json();
  select.replaceChildren();
  for (const s of body.styles) {
    const opt = document.createElement("option");
    opt.value = s.name;
    opt.textContent = s.name + (s.image_size ? " (" + s.image_size + " px)" : "");
    opt.selected = s.name === body.default;
    opt.dataset.info = describe(s);
    select.appendChild(opt);
  }
  select.dispatchEvent(new Event("change"));
  const l = body.limits;
  $("limits").textContent = "PNG or JPEG up to " + formatMB(l.max_bytes) + " and " + l.max_side + " px per side; videos up to " +
    formatMB(l.max_video_bytes) + " and " + l.max_video_frames + " frames";
  document.body.dataset.ready = "1";
}

function describe(style) {
  const parts = [];
  if (style.step != null) parts.push(style.step + " steps");
  const m = style.metrics || {};
  if (typeof m.nme68_mean === "number") parts.push("NME " + m.nme68_mean.toFixed(3));
  if (typeof m.identity_distance_mean === "number") parts.push("identity " + m.identity_distance_mean.toFixed(3));
  return parts.join(", ");
}

function init() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  ["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.add("over");
  }));
  ["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.remove("over");
  }));
  drop.addEventListener("drop", (e) => { if (e.dataTransfer.files.length) chooseFile(e.dataTransfer.files[0]); });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
  // Dropping a file anywhere else must not navigate away from the page.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  $("strength").addEventListener("input", (e) => { $("strength-value").textContent = Number(e.target.value).toFixed(2); });
  $("style").addEventListener("change", (e) => {
    const opt = e.target.selectedOptions[0];
    $("style-info").textContent = opt ? opt.dataset.info : "";
  });
  $("go").addEventListener("click", go);
  $("cancel").addEventListener("click", cancelJob);
  loadStyles();
}

document.addEventListener("DOMContentLoaded", init);
