// One strategy's tear sheet, computed in the browser from its streamed returns
// (GET /worlds/{id}/strategies/{sid}/returns): equity, drawdown, rolling Sharpe, the return
// distribution, and its metrics (the world's, and the ones computed here).

import { allPoints, esc, fmt, follow, get, loadPlotly, nsToDate, setLive } from "./api.js";
import { drawdown, equity, periodsPerYear, rollingSharpe, rollingWindow, summary } from "./stats.js";

const CONFIG = { displayModeBar: false, responsive: true };
const MARGIN = { l: 50, r: 10, t: 10, b: 40 };
const POLL_MS = 2000;

const COMPUTED = [
  ["periods", "periods", 0], ["total_return", "total return", 4], ["volatility", "volatility (ann.)", 4],
  ["sharpe", "Sharpe (ann.)", 3], ["max_drawdown", "max drawdown", 4], ["best", "best period", 5],
  ["worst", "worst period", 5], ["hit_rate", "positive periods", 3],
];

function header(view) {
  return `<p class="sub" id="strategy-sub">
    <span class="status ${esc(view.status)}" id="strategy-status">${esc(view.status)}</span>
    ${view.silent ? `<span class="status silent" id="strategy-silent">silent</span>` : ""}
    weight <b data-field="weight" data-v="${view.weight}">${fmt(view.weight)}</b> ·
    rank <b data-field="rank" data-v="${view.rank ?? ""}">${view.rank ?? "–"}</b> ·
    score <b data-field="score" data-v="${view.score ?? ""}">${fmt(view.score, 3)}</b> ·
    bars <b data-field="n_bars" data-v="${view.n_bars}">${view.n_bars}</b> ·
    contribution <b data-field="contribution" data-v="${view.contribution}">${fmt(view.contribution, 5)}</b></p>
    ${records(view)}
    ${view.hints.length ? `<ul id="hints">${view.hints.map((h) => `<li>${esc(h)}</li>`).join("")}</ul>` : ""}`;
}

// The strategy's record per stage; the one its gates and score read is marked.
function records(view) {
  const stages = ["backtest", "shadow", "paper", "live"].filter((s) => view.records && view.records[s]);
  if (!stages.length) return "";
  return `<table id="records"><thead><tr><th>record</th><th class="num">bars</th><th>runs</th>
    <th class="num">sharpe</th></tr></thead><tbody>${stages.map((s) => {
      const r = view.records[s];
      return `<tr data-record="${s}" class="${s === view.record ? "read" : ""}"><td>${s}${s === view.record ? " (read)" : ""}</td>
        <td class="num">${r.n_bars}</td><td>${esc(r.runs.join(", "))}</td>
        <td class="num">${fmt(r.metrics.sharpe, 3)}</td></tr>`;
    }).join("")}</tbody></table>`;
}

function metricRows(view) {
  return Object.keys(view.metrics).sort().map((k) => `<tr><td>${esc(k)}</td>
    <td class="num" data-metric="${esc(k)}" data-v="${view.metrics[k]}">${fmt(view.metrics[k])}</td></tr>`).join("");
}

function computedRows(s, ppy) {
  return COMPUTED.map(([k, label, d]) => `<tr><td>${label}</td>
    <td class="num" data-computed="${k}" data-v="${Number.isNaN(s[k]) ? "" : s[k]}">${fmt(s[k], d)}</td></tr>`).join("")
    + `<tr><td>periods per year (bar interval)</td><td class="num" data-computed="ppy"
      data-v="${ppy ?? ""}">${ppy ? fmt(ppy, 1) : "–"}</td></tr>`;
}

export async function strategyPage(app, world, sid, session, crumbs) {
  const wpath = `/ui/worlds/${encodeURIComponent(world)}`;
  crumbs([["worlds", "/ui"], [world, wpath], [sid, null]]);
  document.title = `${sid} · ${world} · QMTL`;
  const base = `/worlds/${encodeURIComponent(world)}/strategies/${encodeURIComponent(sid)}`;
  const has = session.features;
  app.innerHTML = `
    <h1>${esc(sid)} <span class="sub">in <a href="${wpath}">${esc(world)}</a></span></h1>
    <div id="head"></div>
    <div class="grid">
      <section class="card"><h2>Equity</h2><div id="chart-equity" class="chart"></div></section>
      <section class="card"><h2>Drawdown</h2><div id="chart-drawdown" class="chart"></div></section>
      <section class="card"><h2>Rolling Sharpe</h2><div id="chart-sharpe" class="chart"></div></section>
      <section class="card"><h2>Return distribution</h2><div id="chart-dist" class="chart"></div></section>
      <section class="card"><h2>Metrics reported to the world</h2>
        <table class="kv" id="metrics"><tbody></tbody></table></section>
      <section class="card"><h2>Computed here from the streamed returns</h2>
        <table class="kv" id="computed"><tbody></tbody></table></section>
    </div>`;
  loadPlotly();
  await draw();
  performance.mark("qmtl:charts");

  async function draw() {
    const view = await get(base);
    document.getElementById("head").innerHTML = header(view);
    document.getElementById("metrics").tBodies[0].innerHTML = metricRows(view);
    const charts = ["chart-equity", "chart-drawdown", "chart-sharpe", "chart-dist"];
    if (!has.strategy_returns) {
      for (const id of charts) {
        document.getElementById(id).innerHTML = `<p class="note">This server does not stream
          strategy returns (GET ${esc(base)}/returns).</p>`;
      }
      return;
    }
    const pts = await allPoints(`${base}/returns`);
    const returns = pts.map((p) => p.return);
    const ts = pts.map((p) => p.ts);
    const x = ts.map(nsToDate);
    const ppy = periodsPerYear(ts);
    const eq = equity(returns);
    const dd = drawdown(eq);
    const window = rollingWindow(returns.length);
    const rs = rollingSharpe(returns, window, ppy);
    document.getElementById("computed").tBodies[0].innerHTML = computedRows(summary(returns, ppy), ppy);
    const P = await loadPlotly();
    const lay = (extra) => ({ margin: MARGIN, showlegend: false, ...extra });
    P.react("chart-equity", [{ type: "scatter", mode: "lines", x, y: eq, name: "equity" }], lay({}), CONFIG);
    P.react("chart-drawdown", [{ type: "scatter", mode: "lines", x, y: dd, fill: "tozeroy",
      line: { color: "#b91c1c" }, name: "drawdown" }], lay({ yaxis: { tickformat: ".1%" } }), CONFIG);
    P.react("chart-sharpe", [{ type: "scatter", mode: "lines", x, y: rs.map((v) => (Number.isNaN(v) ? null : v)),
      name: `Sharpe (${window} periods)` }], lay({ yaxis: { title: { text: `${window}-period window` } } }), CONFIG);
    P.react("chart-dist", [{ type: "histogram", x: returns, nbinsx: 50, name: "returns",
      marker: { color: "#2563eb" } }], lay({ xaxis: { tickformat: ".2%" }, bargap: 0.02 }), CONFIG);
  }

  let pending = null;
  const redraw = () => {
    if (pending) return;
    pending = setTimeout(async () => {
      try { await draw(); } catch (err) { console.warn("redraw failed", err); } finally { pending = null; }
    }, 200);
  };
  if (has.updates) {
    follow(() => `/worlds/${encodeURIComponent(world)}/updates`, (ev) => {
      if (ev.event === "metrics" && JSON.parse(ev.data).strategy_id === sid) redraw();
    }, (s) => {
      setLive("updates", s);
      if (s === "on") redraw(); // what changed before the stream opened
    });
  } else {
    setInterval(redraw, POLL_MS);
    setLive("updates", "poll");
  }
}
