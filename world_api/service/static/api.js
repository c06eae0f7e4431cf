// The JSON API as the page sees it: the bearer token (kept in sessionStorage), GET with
// `Authorization: Bearer`, Server-Sent Events read with fetch (EventSource cannot send
// headers), and plotly.js loaded on demand from the service itself.

const KEY = "qmtl.token";

export function token() {
  return sessionStorage.getItem(KEY) || "";
}

export function setToken(value) {
  if (value) sessionStorage.setItem(KEY, value.trim());
  else sessionStorage.removeItem(KEY);
}

export class ApiError extends Error {
  constructor(status, detail, path) {
    super(`${path}: ${status} ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

function headers(accept) {
  const h = { Accept: accept };
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

// GET a JSON resource: {data, headers}; an ApiError for a status >= 400.
export async function request(path) {
  const r = await fetch(path, { headers: headers("application/json") });
  let body = null;
  try { body = await r.json(); } catch { body = null; }
  if (!r.ok) {
    const detail = body && body.detail ? JSON.stringify(body.detail).replace(/^"|"$/g, "") : r.statusText;
    throw new ApiError(r.status, detail, path);
  }
  return { data: body, headers: r.headers };
}

export async function get(path) {
  return (await request(path)).data;
}

const PAGE = 100000;

// Every point of a returns endpoint ({points: [{ts, return, equity}]}), a page at a time
// (the service answers at most 100,000 points; the next page starts after the last ts).
export async function allPoints(path, size = PAGE) {
  const sep = path.includes("?") ? "&" : "?";
  let out = [];
  let after = null;
  for (;;) {
    const page = (await get(`${path}${sep}limit=${size}${after === null ? "" : `&after=${after}`}`)).points;
    // a ts past 2^53 reads rounded: a page may repeat the point it starts after
    out = out.concat(after === null ? page : page.filter((p) => p.ts > after));
    if (page.length < size) return out;
    after = page[page.length - 1].ts;
  }
}

// Parse one SSE block ("event: x\ndata: {...}\nid: 3") into {event, data, id}.
function parseBlock(block) {
  const ev = { event: "message", data: "", id: null };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? "" : line.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") ev.event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") ev.id = value;
  }
  ev.data = data.join("\n");
  return ev;
}

// Read an SSE stream until it ends; onEvent({event, data, id}) for each event.
// onOpen() once the response has started.
export async function stream(path, onEvent, onOpen = () => {}) {
  const r = await fetch(path, { headers: headers("text/event-stream"), cache: "no-store" });
  if (!r.ok) throw new ApiError(r.status, r.statusText, path);
  onOpen();
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      if (block.trim()) onEvent(parseBlock(block));
    }
  }
}

// Follow a stream for as long as the page lives, reconnecting after a drop.
// path(lastId) gives the URL to (re)connect to; onState("on" | "off") reports the link
// ("on" once connected).
export function follow(path, onEvent, onState) {
  let lastId = null;
  let delay = 500;
  const run = async () => {
    for (;;) {
      try {
        await stream(path(lastId), (ev) => {
          delay = 500;
          if (ev.id !== null) lastId = ev.id;
          onEvent(ev);
        }, () => onState("on"));
      } catch (err) {
        if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 404)) {
          onState("off");
          return;
        }
      }
      onState("off");
      await new Promise((ok) => setTimeout(ok, delay));
      delay = Math.min(delay * 2, 10000);
    }
  };
  run();
}

let plotly = null;

// plotly.js, served by the service from the `plotly` Python package; loaded once, after
// the page has painted its tables.
export function loadPlotly() {
  if (!plotly) {
    plotly = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = "/ui/vendor/plotly.min.js";
      s.onload = () => resolve(window.Plotly);
      s.onerror = () => reject(new Error("could not load /ui/vendor/plotly.min.js"));
      document.head.appendChild(s);
    });
  }
  return plotly;
}

export function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// A label for plotly to draw as text. plotly reads tags in its labels (<a href> becomes a
// working link, <span style> restyles it) and decodes &lt; &gt; &amp;, so a strategy id
// with markup is escaped here and shown as written.
export function plotText(text) {
  return String(text ?? "").replace(/[&<>]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" }[c]));
}

export function fmt(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  if (typeof value !== "number") return String(value);
  return value.toFixed(digits);
}

// A number cell: the formatted text, the exact value in data-v.
export function num(col, value, digits = 4) {
  const v = value === null || value === undefined ? "" : String(value);
  return `<td class="num" data-col="${col}" data-v="${esc(v)}">${fmt(value, digits)}</td>`;
}

export function nsToDate(ns) {
  return new Date(Number(ns) / 1e6);
}

// "2026-11-26 04:21:23" (UTC) for a timestamp in ns.
export function stamp(ns) {
  return nsToDate(ns).toISOString().replace("T", " ").slice(0, 19);
}

const links = {};

// The badge in the top bar: "live" when every link of the page is connected, "offline"
// while one is down, "polling" when the server has no update stream; hidden on a page with
// no links (state "none": the worlds list, read once).
export function setLive(name, state) {
  links[name] = state;
  const states = Object.values(links).filter((s) => s !== "none");
  const all = !states.length ? "none"
    : states.includes("off") ? "off" : states.includes("poll") ? "poll" : "on";
  const el = document.getElementById("live");
  if (!el) return;
  el.dataset.state = all;
  el.hidden = all === "none";
  el.textContent = { on: "live", poll: "polling", off: "offline", none: "" }[all];
}
