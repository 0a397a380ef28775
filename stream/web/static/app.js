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


// -- History: who was seen, a day's timeline per camera, search by face -----------------------------
// Every string from the store (names are typed by people) goes into the page as text, never as HTML.
const hist = { window: null, people: [], canName: false };
const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

// distinct colours for the people of the window, in their cards' order (a hash alone makes neighbours alike)
const PALETTE = ["#e0529c", "#4f7de0", "#37b36b", "#e8a33d", "#9a63d6", "#3fb8c4", "#d9d04a", "#e0643c",
  "#8fbf4a", "#c46fa8", "#5a9bd5", "#b5835a"];
const colours = new Map();

function colour(who) {  // one colour per person; unknowns grey
  if (!who) return "#777";
  if (colours.has(who)) return colours.get(who);
  let h = 2166136261;  // FNV-1a, then a final mix: stranger-000001 and -000002 must not look alike
  for (const c of who) h = Math.imul(h ^ c.codePointAt(0), 16777619);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d); h ^= h >>> 12;
  return `hsl(${(h >>> 0) % 360}, 65%, 55%)`;
}

function when(ts, clock, pts) {  // an archive with no known start shows its pts, a live run its clock
  if (clock === "pts") return `${Number(pts).toFixed(1)} s`;
  return new Date(ts * 1000).toLocaleString();
}

function clockTime(ts, clock, span) {
  if (clock === "pts") return `${ts.toFixed(span < 20 ? 1 : 0)} s`;
  const d = new Date(ts * 1000);
  if (span < 30) return d.toLocaleTimeString([], { hour: "numeric", minute: "2-digit", second: "2-digit", fractionalSecondDigits: 1 });
  return span < 120 ? d.toLocaleTimeString() : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function whoOf(sel) {
  const opt = sel.selectedOptions[0];
  return opt?.dataset.kind === "unknowns" ? { unknowns: true } : opt?.value ? { who: opt.value } : {};
}

function showTab(name) {
  document.body.classList.toggle("show-history", name === "history");
  $("#tab-live").classList.toggle("on", name !== "history");
  $("#tab-history").classList.toggle("on", name === "history");
  if (name === "history" && !hist.window) loadHistory();
}

async function loadHistory() {
  const state = $("#h-state");
  state.className = "muted"; state.textContent = "loading…";
  try {
    const q = new URLSearchParams({ tz: zone });
    if ($("#h-day").value) q.set("day", $("#h-day").value);
    const camera = $("#h-camera").value;
    if (camera) q.set("camera", camera);
    const tl = await api(`/api/history/timeline?${q}`);
    hist.window = tl;
    if (tl.day && !$("#h-day").value) $("#h-day").value = tl.day;
    const p = new URLSearchParams();
    if (tl.start != null) { p.set("since", tl.start); p.set("until", tl.end); }
    if (camera) p.set("camera", camera);
    hist.people = await api(`/api/history/people?${p}`);
    colours.clear();
    hist.people.filter((x) => x.kind !== "unknown").forEach((x, i) => { if (i < PALETTE.length) colours.set(x.key, PALETTE[i]); });
    fillWho();
    drawTimeline(tl);
    drawPeople();
    $("#h-window").textContent = tl.clock === "pts" ? "(recorded files: times are their pts)"
      : tl.day ? `(${tl.day}, ${tl.tz})` : "(nothing recorded yet)";
    state.textContent = tl.truncated ? "the longest tracks only (too many to draw)" : "";
  } catch (e) { state.className = "error"; state.textContent = e.message; }
}

async function fillCameras() {
  const sel = $("#h-camera");
  for (const name of await api("/api/history/cameras")) sel.append(el("option", { value: name }, name));
}

function fillWho() {  // the people of the window, keeping the choice made
  const sel = $("#h-who"), chosen = sel.value, kind = sel.selectedOptions[0]?.dataset.kind;
  for (const opt of [...sel.options].slice(2)) opt.remove();
  for (const p of hist.people) if (p.kind !== "unknown") sel.append(el("option", { value: p.key }, p.key));
  if (!kind) sel.value = [...sel.options].some((o) => o.value === chosen) ? chosen : "";
}

function shown(who, identity) {  // the "who" filter, applied on the page (the window's data is all here)
  const f = whoOf($("#h-who"));
  if (f.unknowns) return !identity;
  return !f.who || f.who === who;
}

function packed(spans) {  // a row per span, so that faces seen at once on one camera do not hide each other
  const ends = [], rows = [];
  for (const s of spans) {  // sorted by start (the API's order)
    let r = ends.findIndex((end) => end < s.start);
    if (r < 0) { r = ends.length; ends.push(0); }
    ends[r] = s.end; rows.push(r);
  }
  return rows;
}

function drawTimeline(tl) {
  const box = $("#h-timeline");
  const lanes = Object.entries(tl.cameras).map(([cam, spans]) => [cam, spans.filter((s) => shown(s.who, s.identity))]);
  const all = lanes.flatMap(([, spans]) => spans);
  if (!all.length) { box.replaceChildren(el("p", { class: "muted" }, "no tracks in this window")); return; }
  // zoomed to the tracks of the window: a day's axis would draw a few seconds as a hairline
  let lo = Math.min(...all.map((s) => s.start)), hi = Math.max(...all.map((s) => s.end));
  const pad = Math.max((hi - lo) * 0.03, 0.5);
  lo -= pad; hi += pad;
  if (tl.start != null) { lo = Math.max(lo, tl.start); hi = Math.min(hi, tl.end); }
  const span = hi - lo, x = (t) => `${((t - lo) / span * 100).toFixed(3)}%`;
  const ticks = el("div", { class: "axis" });
  for (let k = 0; k <= 6; k++) {
    const t = lo + span * k / 6;
    ticks.append(el("span", { style: `left:${x(t)}` }, clockTime(t, tl.clock, span)));
  }
  const rows = lanes.map(([cam, spans]) => {
    const row = packed(spans);
    const depth = row.length ? Math.max(...row) + 1 : 1;
    return el("div", { class: "lane", "data-camera": cam },
    el("b", { title: cam }, cam),
    el("div", { class: "bar", style: `height:${depth === 1 ? 18 : depth * 9 + 4}px` }, ...spans.map((s, i) => el("span", {
      class: "span", "data-track": s.id, "data-who": s.who || "",
      style: `left:${x(s.start)};width:max(3px, ${((s.end - s.start) / span * 100).toFixed(3)}%);` +
        `top:${row[i] * 9 + 2}px;height:${depth === 1 ? 14 : 7}px;background:${colour(s.who)}`,
      title: `${s.who || "unknown"} · ${cam} · ${when(s.start, tl.clock, s.start_pts)} – ${when(s.end, tl.clock, s.end_pts)}`,
      onclick: () => searchBy(`track=${s.id}`, s.who || "this unknown track") }))));
  });
  box.replaceChildren(el("div", { class: "lane axis-row" }, el("b", {}, ""), ticks), ...rows);
}

function drawPeople() {
  const box = $("#h-people");
  const list = hist.people.filter((p) => shown(p.kind === "unknown" ? null : p.key, p.kind === "person" ? p.key : null));
  if (!list.length) { box.replaceChildren(el("p", { class: "muted" }, "nobody seen in this window")); return; }
  const clock = hist.window?.clock;
  box.replaceChildren(...list.map((p) => {
    const label = p.kind === "unknown" ? "other unknowns" : p.key;
    const card = el("div", { class: `hperson ${p.kind}`, "data-key": p.key, "data-kind": p.kind },
      p.thumb ? el("img", { src: p.thumb, alt: label, title: "find every track like this one",
        onerror: (e) => e.target.replaceWith(el("div", { class: "nothumb" })),  // a track stored without one
        onclick: () => searchBy(`track=${p.best_track_id}`, label) }) : el("div", { class: "nothumb" }),
      el("div", { class: "who" }, el("i", { style: `background:${colour(p.kind === "unknown" ? null : p.key)}` }), label),
      el("div", { class: "muted" }, `${p.tracks} track${p.tracks === 1 ? "" : "s"} · ${p.cameras.join(", ")}`),
      el("div", { class: "muted" }, `first ${when(p.first_seen, clock, p.first_seen)}`),
      el("div", { class: "muted" }, `last ${when(p.last_seen, clock, p.last_seen)}`));
    if (p.kind === "stranger" && hist.canName) card.append(nameStranger(p.key));
    if (p.kind === "person") card.append(forgetButton(p.key));
    return card;
  }));
}

function forgetButton(name) {
  const out = el("span", { class: "muted" });
  const go = async () => {
    if (!confirm(`Forget ${name}? Their gallery entries, photos and every stored track, thumbnail and embedding are deleted.`)) return;
    try {
      out.textContent = (await api(`/api/history/people/${encodeURIComponent(name)}`, { method: "DELETE" })).message;
      out.className = "muted"; loadHistory();
    } catch (e) { out.textContent = e.message; out.className = "error"; }
  };
  return el("div", { class: "forget" }, el("button", { type: "button", onclick: go, "data-forget": name }, "forget"), out);
}

function nameStranger(id) {
  const input = el("input", { placeholder: "who is this?", "data-stranger": id });
  const out = el("span", { class: "muted" });
  const go = async () => {
    try {
      out.textContent = (await api(`/api/history/strangers/${encodeURIComponent(id)}/name`, {
        method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ name: input.value }) })).message;
      out.className = "muted"; loadHistory();
    } catch (e) { out.textContent = e.message; out.className = "error"; }
  };
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
  return el("div", { class: "name" }, input, el("button", { type: "button", onclick: go }, "name"), out);
}

async function searchBy(query, label, options = {}) {
  const state = $("#h-search-state");
  state.className = "muted"; state.textContent = `searching for ${label}…`;
  const q = new URLSearchParams(query);
  if ($("#h-camera").value) q.set("camera", $("#h-camera").value);
  try {
    const found = await api(`/api/history/search?${q}`, options);
    state.textContent = `${found.results.length} track(s) within ${found.threshold} of ${label}` +
      (found.faces > 1 ? ` (${found.faces} faces in the photo: the largest searched)` : "");
    drawResults(found.results);
  } catch (e) { state.className = "error"; state.textContent = e.message; $("#h-results").replaceChildren(); }
  $("#h-search").scrollIntoView({ block: "nearest" });
}

function drawResults(results) {
  $("#h-results").replaceChildren(...results.map((r) => {
    const video = r.video ? r.video.split(/[\\/]/).pop() : null;
    const where = video ? `${video} at ${Number(r.start_pts).toFixed(1)}–${Number(r.end_pts).toFixed(1)} s`
      : `${when(r.started_at, r.clock, r.start_pts)} – ${new Date(r.ended_at * 1000).toLocaleTimeString()}`;
    return el("div", { class: "hresult", "data-track": r.id, "data-who": r.who || "" },
      el("img", { src: r.thumb, alt: r.who || "unknown", title: "find every track like this one",
        onclick: () => searchBy(`track=${r.id}`, r.who || `track ${r.id}`) }),
      el("div", { class: "who" }, el("i", { style: `background:${colour(r.who)}` }), r.who || "unknown"),
      el("div", { class: "muted" }, `distance ${r.distance.toFixed(3)} · ${r.camera} #${r.track_id}`),
      el("div", { class: "muted" }, r.clock === "pts" ? "" : when(r.started_at, r.clock, r.start_pts)),
      el("div", { class: "where", title: r.video || "" }, where));
  }));
}

$("#h-filters").addEventListener("submit", (e) => { e.preventDefault(); loadHistory(); });
$("#h-who").addEventListener("change", () => { if (hist.window) { drawTimeline(hist.window); drawPeople(); } });
$("#h-search").addEventListener("submit", (e) => {
  e.preventDefault();
  const file = $("#h-photo").files[0];
  if (!file) return;
  // the enroll upload's rules: its own type and the header only this origin may send
  searchBy("", file.name, { method: "POST", body: file, headers: { "x-filename": file.name,
    "content-type": file.type || "application/octet-stream", "x-facestream-request": "1" } });
});
$("#tab-live").addEventListener("click", () => { location.hash = ""; showTab("live"); });
$("#tab-history").addEventListener("click", () => { location.hash = "history"; showTab("history"); });

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
  if (status.history) {
    hist.canName = status.history_names_strangers;
    $("#tabs").hidden = false;
    fillCameras().catch(() => {});
    // a view of the history alone (serve --history) opens on it, as does a link to #history
    if (!status.cameras.length && !status.gallery) $("#tabs").hidden = $("#conn").hidden = true;  // the History page alone
    if (location.hash === "#history" || (!status.cameras.length && !status.gallery)) showTab("history");
  }
  openEvents(); loadGallery(); loadStrangers();
})();
