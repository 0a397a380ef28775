"use strict";
// The facestream web view: no build step. Pictures come over a WebSocket per camera (a JSON header
// with the faces, then the JPEG), events over Server-Sent Events, the rest from the JSON API.

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
};
const api = async (path, options = {}) => {
  const r = await fetch(path, options);
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error(body.error || body || r.statusText);
  return body;
};
// For tests and the latency benchmark: capture-to-pixel times of the last frames shown, per camera.
window.facestream = { latencies: {}, shown: {} };

function cameraCard(name) {
  const img = el("img", { alt: `camera ${name}`, "data-camera": name });
  const card = el("div", { class: "camera", id: `camera-${name}` },
    el("b", {}, name), img, el("div", { class: "state" }, "…"), el("ul", { class: "inview" }));
  const inview = card.querySelector(".inview");
  let url = null;
  const open = () => {
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/cameras/${encodeURIComponent(name)}/ws`);
    ws.binaryType = "arraybuffer";
    ws.onmessage = (msg) => {
      const view = new DataView(msg.data);
      const n = view.getUint32(0);
      const header = JSON.parse(new TextDecoder().decode(new Uint8Array(msg.data, 4, n)));
      const blob = new Blob([new Uint8Array(msg.data, 4 + n)], { type: "image/jpeg" });
      const next = URL.createObjectURL(blob);
      img.onload = () => {
        if (url) URL.revokeObjectURL(url);
        url = next;
        const shown = Date.now() / 1000;
        const lat = (window.facestream.latencies[name] ||= []);
        lat.push(shown - header.capture_ts);
        if (lat.length > 1000) lat.shift();
        window.facestream.shown[name] = (window.facestream.shown[name] || 0) + 1;
        inview.replaceChildren(...header.faces.map((f) =>
          el("li", { class: f.identity ? "known" : "unknown" }, f.label)));
      };
      img.src = next;
    };
    ws.onclose = () => setTimeout(open, 1000);
  };
  open();
  return card;
}

async function refreshCameras() {
  try {
    const cams = await api("/api/cameras");
    for (const c of cams) {
      const card = document.getElementById(`camera-${c.name}`);
      if (!card) continue;
      const online = c.ended ? el("span", {}, "ended") : c.online === false
        ? el("span", { class: "offline" }, "offline") : el("span", { class: "online" }, "live");
      card.querySelector(".state").replaceChildren(online,
        ` · ${c.fps} fps · ${c.frames} frames · dropped ${c.dropped} · corrupt ${c.corrupt} · lost ${c.lost}` +
        (c.reconnects ? ` · reconnects ${c.reconnects}` : "") + (c.last_error ? ` · ${c.last_error}` : ""));
    }
  } catch (e) { /* the run ended: the page stays as it was */ }
}

function addEvent(ev) {
  if (ev.type === "heartbeat") return;
  const t = new Date((ev.ts || Date.now() / 1000) * 1000).toLocaleTimeString();
  let text;
  if (ev.type === "identity") text = [el("b", {}, ev.identity || "unknown"), ` on ${ev.source} #${ev.track_id}` + (ev.score != null ? ` (${Number(ev.score).toFixed(2)})` : "")];
  else if (ev.type === "gallery_changed") { text = [ev.message]; loadGallery(); loadStrangers(); }
  else text = [`${ev.type} ${ev.source || ""} ${ev.track_id != null ? "#" + ev.track_id : ""} ${ev.identity || ""} ${ev.reason || ""}`];
  if (ev.type === "track_ended") setTimeout(loadStrangers, 500);
  const li = el("li", { class: ev.type }, el("span", { class: "t" }, t), ...text);
  $("#timeline").prepend(li);
  while ($("#timeline").children.length > 300) $("#timeline").lastChild.remove();
}

function openEvents() {
  const es = new EventSource("/api/events");
  es.onopen = () => { $("#conn").textContent = "live"; };
  es.onerror = () => { $("#conn").textContent = "reconnecting…"; };
  es.onmessage = (m) => addEvent(JSON.parse(m.data));
}

async function loadGallery() {
  const list = await api("/api/gallery");
  $("#people").replaceChildren(...(list.length ? list.map((p) => el("div", { class: "person" },
    el("b", {}, p.name), el("span", { class: "muted" }, ` ${p.embeddings} embedding(s) `),
    el("button", { onclick: async () => {
      if (!confirm(`Delete ${p.name} from the gallery?`)) return;
      await api(`/api/gallery/${encodeURIComponent(p.name)}`, { method: "DELETE" }); loadGallery();
    } }, "delete"), el("div", {}, ...p.photos.slice(0, 8).map((i) => el("img", { src: `/api/gallery/photo/${i}`, alt: p.name })))))
    : [el("p", { class: "muted" }, "nobody enrolled")]));
}

async function loadStrangers() {
  let list;
  try { list = await api("/api/unknowns"); } catch (e) { return; }
  const box = $("#strangers");
  // Cards stay as they are (a name half typed in one survives a refresh); new ones come first.
  const wanted = new Set(list.map((t) => `stranger-${t.name}`));
  for (const card of [...box.children]) if (!wanted.has(card.id)) card.remove();
  for (const t of [...list].reverse()) if (!document.getElementById(`stranger-${t.name}`)) box.prepend(strangerCard(t));
  if (!box.children.length) box.append(el("p", { class: "muted", id: "stranger-none" }, "none yet"));
  else if (list.length) document.getElementById("stranger-none")?.remove();
}

function strangerCard(t) {
  const input = el("input", { placeholder: "who is this?", "data-track": t.name });
  const result = el("span", { class: "muted" });
  const name = async () => {
    try {
      result.textContent = (await api(`/api/unknowns/${encodeURIComponent(t.name)}/name`, {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: input.value }) })).message;
      loadGallery(); setTimeout(loadStrangers, 300);
    } catch (e) { result.textContent = e.message; result.className = "error"; }
  };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") name(); });
  return el("div", { class: "stranger", id: `stranger-${t.name}` },
    el("div", {}, `${t.source} #${t.track_id} · ${t.frames} frames`),
    el("div", {}, ...Array.from({ length: Math.min(t.crops, 5) }, (_, k) =>
      el("img", { src: `/api/unknowns/${encodeURIComponent(t.name)}/crop/${k}`, alt: "crop" }))),
    input, el("button", { onclick: name, "data-track": t.name }, "name"), result);
}

$("#add-person").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = $("#add-name").value, out = $("#add-result");
  out.className = "muted"; out.textContent = "enrolling…";
  const messages = [];
  for (const file of $("#add-file").files) {
    try { messages.push((await api(`/api/gallery/${encodeURIComponent(name)}/photos`, {
      // its own type (a file of unknown type as octet-stream) and the header that only this origin may send
      method: "POST", body: file, headers: { "x-filename": file.name, "content-type": file.type || "application/octet-stream",
        "x-facestream-request": "1" } })).message);
    } catch (err) { messages.push(`${file.name}: ${err.message}`); out.className = "error"; }
  }
  out.textContent = messages.join("; ");
  loadGallery();
});

(async () => {
  const status = await api("/api/status");
  $("#title").textContent = status.title;
  $("#gallery-name").textContent = status.gallery ? `(${status.gallery})` : "(none)";
  if (!status.can_enroll_photos) $("#add-person").style.display = "none";
  if (status.cameras.length) {
    $("#no-cameras").remove();
    for (const name of status.cameras) $("#cameras").append(cameraCard(name));
    refreshCameras(); setInterval(refreshCameras, 1000);
  } else $("#cameras-section").style.display = "none";
  if (!status.unknowns) $("#strangers-section").style.display = "none";
  openEvents(); loadGallery(); loadStrangers();
})();
