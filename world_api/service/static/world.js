// One world: the activation table, the world's equity (realized and pro forma) and metrics,
// each strategy's contribution, the allocation and the last plan, recent events, and the
// audit log for operators. Live: activation events (/events) and metrics and world-return
// pushes (/updates); without /updates on the server it polls instead.

import {
  allPoints, ApiError, esc, fmt, follow, get, loadPlotly, nsToDate, plotText, request, setLive, stamp,
} from "./api.js";
import { ActivationTable } from "./table.js";

const CONFIG = { displayModeBar: false, responsive: true };
const MARGIN = { l: 50, r: 10, t: 10, b: 40 };
const POLL_MS = 1000;
const AUDIT_PAGE = 50;

function layout(extra = {}) {
  return { margin: MARGIN, showlegend: true, legend: { orientation: "h", y: 1.12 }, ...extra };
}

const NOT_COMPUTED = new Set(["exposure", "turnover"]);

function metricsTable(m) {
  if (!m) return `<p class="note">This server has no world metrics (GET /worlds/{id}/metrics).</p>`;
  const kinds = ["realized", "pro_forma"];
  const names = [...new Set(kinds.flatMap((k) => Object.keys((m[k] && m[k].metrics) || {})))]
    .filter((n) => n !== "n_bars").sort(); // the bar count is the first row
  // "—" where a number would say nothing: a curve of 0 bars has no metrics yet, and a
  // world's exposure and turnover are not computed (its curves are returns, not positions)
  const cell = (k, name) => {
    const v = m[k] && m[k].metrics ? m[k].metrics[name] : undefined;
    if (!m[k] || !m[k].n_bars || NOT_COMPUTED.has(name)) {
      const why = NOT_COMPUTED.has(name) ? "not computed for a world" : "no bars yet";
      return `<td class="num" data-kind="${k}" data-metric="${esc(name)}" data-v="" title="${why}">—</td>`;
    }
    return `<td class="num" data-kind="${k}" data-metric="${esc(name)}" data-v="${v ?? ""}">${fmt(v)}</td>`;
  };
  return `<table class="kv" id="world-metrics">
    <thead><tr><th>metric</th><th class="num">realized</th><th class="num">pro forma</th></tr></thead>
    <tbody>
      <tr><td>bars</td>${kinds.map((k) => `<td class="num" data-kind="${k}" data-metric="n_bars"
        data-v="${m[k] ? m[k].n_bars : ""}">${m[k] ? m[k].n_bars : "–"}</td>`).join("")}</tr>
      ${names.map((n) => `<tr><td>${esc(n)}</td>${cell("realized", n)}${cell("pro_forma", n)}</tr>`).join("")}
    </tbody></table>${sharedNote(m.pro_forma)}`;
}

// The bars the pro forma stands on: those every active strategy has a return for.
function sharedNote(p) {
  if (!p || p.shared_bars === null || p.shared_bars === undefined) return "";
  const span = p.first_shared != null && p.last_shared != null
    ? ` (${stamp(p.first_shared)} to ${stamp(p.last_shared)} UTC)` : "";
  return `<p class="sub" id="shared-bars" data-v="${p.shared_bars}"
    data-first="${p.first_shared ?? ""}" data-last="${p.last_shared ?? ""}">The active
    strategies share <b>${p.shared_bars}</b> bars${span}: the pro forma and their
    correlations use only those.</p>`;
}

function planTable(plan) {
  if (!plan) return `<p class="note" id="plan">No plan yet (an operator makes one with POST /allocations/plan).</p>`;
  const ids = [...new Set([...Object.keys(plan.current || {}), ...Object.keys(plan.proposed || {})])].sort();
  return `<div id="plan" data-plan="${esc(plan.plan_id)}">
    <p class="sub">Last plan <code>${esc(plan.plan_id.slice(0, 12))}</code> by ${esc(plan.actor)},
      ${stamp(plan.ts)} UTC · base seq ${plan.base_seq} ·
      ${plan.applied ? "applied" : "not applied"}</p>
    <div class="scroll"><table><thead><tr><th>strategy</th><th class="num">current</th>
      <th class="num">proposed</th></tr></thead><tbody>
      ${ids.map((s) => `<tr data-sid="${esc(s)}"><td>${esc(s)}</td>
        <td class="num">${fmt(plan.current[s] ?? 0)}</td>
        <td class="num">${fmt(plan.proposed[s] ?? 0)}</td></tr>`).join("")}
    </tbody></table></div></div>`;
}

function runnersTable(runners) {
  if (!runners || !runners.length) {
    return `<p class="note" id="runners">No runner (<code>qmtl world run</code>) has reported.</p>`;
  }
  const lag = (r) => {
    const lags = Object.values((r.report || {}).strategies || {}).map((s) => s.lag_s)
      .filter((x) => x !== null && x !== undefined);
    return lags.length ? `${Math.max(...lags).toFixed(1)} s` : "–";
  };
  const last = (r) => {
    const ts = Object.values((r.report || {}).strategies || {}).map((s) => s.last_bar)
      .filter((x) => x !== null && x !== undefined);
    return ts.length ? `${stamp(Math.max(...ts))}` : "–";
  };
  const refused = (r) => Object.entries((r.report || {}).refused || {})
    .map(([s, why]) => `<b>${esc(s)}</b>: ${esc(why)}`).join("<br>");
  return `<div class="scroll" id="runners"><table><thead><tr><th>runner</th><th>alive</th>
    <th>strategies</th><th class="num">lag</th><th>last bar</th><th>refused</th></tr></thead><tbody>
    ${runners.map((r) => `<tr data-runner="${esc(r.runner)}" data-alive="${r.alive}">
      <td>${esc(r.runner)}</td><td>${r.alive ? "yes" : `<b class="bad">no</b> (${fmt(r.age_s)} s ago)`}</td>
      <td class="strategies">${esc((r.strategies || []).join(", "))}</td><td class="num">${lag(r)}</td>
      <td>${last(r)}</td><td class="note">${refused(r)}</td></tr>`).join("")}
    </tbody></table></div>`;
}

async function runnersOf(base) {
  try {
    return await get(`${base}/runners`);
  } catch (err) {
    return null; // a server without runners
  }
}

function eventItem(ev) {
  return `<li data-seq="${ev.seq}">#${ev.seq} ${stamp(ev.ts).slice(11)}
    <b>${esc(ev.strategy_id)}</b> ${ev.active ? "active" : "inactive"} w=${fmt(ev.weight)}
    <span class="note">${esc(ev.reason)}</span></li>`;
}

export async function worldPage(app, world, session, crumbs) {
  crumbs([["worlds", "/ui"], [world, null]]);
  document.title = `${world} · QMTL`;
  const base = `/worlds/${encodeURIComponent(world)}`;
  const has = session.features;
  const [info, activation, views, allocations, last, runners] = await Promise.all([
    get(base), get(`${base}/activation`), get(`${base}/strategies`), get(`${base}/allocations`),
    get(`/ui/api/worlds/${encodeURIComponent(world)}/last-plan`), runnersOf(base),
  ]);
  app.innerHTML = `
    <h1 id="world-title">${esc(info.name || world)} <span class="sub">${esc(world)}</span></h1>
    <p class="sub" id="world-sub">${esc(info.mode)} · capital ${Number(info.capital).toLocaleString()}
      · policy v<span id="policy-version">${activation.policy_version}</span>
      · seq <span id="seq">${activation.seq}</span>
      · market <span id="market">${info.market ? `v${info.market_version} · ${esc(info.market)}` : "none (any symbols)"}</span></p>
    <div class="grid">
      <section class="card wide"><h2>Activation</h2><div id="table"></div></section>
      <section class="card"><h2>World equity</h2><div id="chart-equity" class="chart"></div></section>
      <section class="card"><h2>World metrics</h2><div id="metrics"></div></section>
      <section class="card"><h2>Contribution to the world's return</h2><div id="chart-contrib" class="chart"></div></section>
      <section class="card"><h2>Allocation</h2><div id="chart-alloc" class="chart"></div><div id="plan-box"></div></section>
      <section class="card"><h2>Recent events</h2><ul id="events" class="events"></ul></section>
      <section class="card wide"><h2>Runners</h2><div id="runners-box"></div></section>
      <section class="card wide" id="audit-card"><h2>Audit log</h2><div id="audit"></div></section>
    </div>`;
  const table = new ActivationTable(document.getElementById("table"), world);
  table.setRows(views);
  document.getElementById("plan-box").innerHTML = planTable(last.plan);
  document.getElementById("runners-box").innerHTML = runnersTable(runners);
  const runnersPoll = setInterval(async () => { // heartbeats make no events: poll them
    const box = document.getElementById("runners-box");
    if (!box) { clearInterval(runnersPoll); return; } // the page was left
    box.innerHTML = runnersTable(await runnersOf(base));
  }, 5 * POLL_MS);
  performance.mark("qmtl:table");

  const state = { views, weights: allocations.weights, curves: null, metrics: null };
  let Plotly = null; // the charts are drawn once plotly.js is loaded (after the live links)

  const drawContrib = () => {
    if (!Plotly) return;
    const rows = state.views.filter((v) => v.contribution !== 0 || v.active)
      .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution)).slice(0, 25).reverse();
    Plotly.react("chart-contrib", [{
      type: "bar", orientation: "h", name: "contribution",
      x: rows.map((v) => v.contribution), y: rows.map((v) => plotText(v.strategy_id)),
      marker: { color: rows.map((v) => (v.contribution >= 0 ? "#15803d" : "#b91c1c")) },
    }], layout({ showlegend: false, margin: { ...MARGIN, l: 110 } }), CONFIG);
  };
  const drawAlloc = () => {
    if (!Plotly) return;
    const ids = Object.keys(state.weights).sort((a, b) => state.weights[b] - state.weights[a]);
    const invested = ids.reduce((s, k) => s + state.weights[k], 0);
    Plotly.react("chart-alloc", [{
      type: "bar", name: "weight", x: [...ids.map(plotText), "cash"],
      y: [...ids.map((k) => state.weights[k]), Math.max(0, 1 - invested)],
    }], layout({ showlegend: false, yaxis: { tickformat: ".0%" } }), CONFIG);
  };
  const drawEquity = () => {
    if (!Plotly) return;
    const el = document.getElementById("chart-equity");
    if (!state.curves) {
      el.innerHTML = `<p class="note">This server has no world returns (GET /worlds/{id}/returns).</p>`;
      return;
    }
    const traces = ["realized", "pro_forma"].map((kind) => {
      const pts = state.curves[kind] || [];
      return { type: "scatter", mode: "lines", name: kind.replace("_", " "),
        x: pts.map((p) => nsToDate(p.ts)), y: pts.map((p) => p.equity) };
    });
    Plotly.react(el, traces, layout(), CONFIG);
  };
  const drawMetrics = () => { document.getElementById("metrics").innerHTML = metricsTable(state.metrics); };

  const loadCurves = async () => {
    if (has.returns) {
      const [r, p] = await Promise.all([allPoints(`${base}/returns?kind=realized`),
        allPoints(`${base}/returns?kind=pro_forma`)]);
      state.curves = { realized: r, pro_forma: p };
    }
    if (has.world_metrics) state.metrics = await get(`${base}/metrics`);
  };
  // -- live --------------------------------------------------------------------------
  let pending = null;
  let curvesToo = false;
  const refresh = (withCurves, delay = 250) => {
    curvesToo = curvesToo || withCurves;
    if (pending) return;
    pending = setTimeout(async () => {
      const curves = curvesToo;
      curvesToo = false;
      try {
        const [v, a, act, l, rs] = await Promise.all([get(`${base}/strategies`), get(`${base}/allocations`),
          get(`${base}/activation`), get(`/ui/api/worlds/${encodeURIComponent(world)}/last-plan`),
          runnersOf(base)]);
        document.getElementById("runners-box").innerHTML = runnersTable(rs);
        state.views = v; state.weights = a.weights;
        table.setRows(v);
        document.getElementById("seq").textContent = act.seq;
        document.getElementById("policy-version").textContent = act.policy_version;
        document.getElementById("plan-box").innerHTML = planTable(l.plan);
        drawContrib(); drawAlloc();
        if (curves) { await loadCurves(); drawEquity(); drawMetrics(); }
      } catch (err) {
        console.warn("refresh failed", err);
      } finally {
        pending = null;
      }
    }, delay);
  };

  const list = document.getElementById("events");
  follow((after) => `${base}/events?after=${after ?? Math.max(0, activation.seq - 50)}`, (ev) => {
    if (ev.event !== "activation") return;
    const e = JSON.parse(ev.data);
    list.insertAdjacentHTML("afterbegin", eventItem(e));
    while (list.children.length > 200) list.lastElementChild.remove();
    if (e.seq > activation.seq) {
      table.update(e.strategy_id, { active: e.active, weight: e.weight });
      table.render();
      refresh(true);
    }
  }, (s) => setLive("events", s));

  if (has.updates) {
    follow(() => `${base}/updates`, (ev) => {
      if (ev.event === "metrics") {
        const m = JSON.parse(ev.data);
        table.update(m.strategy_id, { n_bars: m.n_bars, metrics: m.metrics, active: m.active,
          weight: m.weight, rank: m.rank });
        table.render();
        refresh(false);
      } else if (ev.event === "world") {
        const w = JSON.parse(ev.data);
        if (w.metrics) { state.metrics = w.metrics; drawMetrics(); }
        // a point of the realized return may change when another strategy reports for its
        // time, and one update may add many: reload the curves unless nothing moved (the
        // snapshot sent on connecting is the point already drawn)
        const pts = state.curves ? state.curves.realized : [];
        const last = pts[pts.length - 1];
        if (w.realized && (!last || last.ts !== w.realized.ts || last.equity !== w.realized.equity)) {
          refresh(true);
        }
      }
    }, (s) => {
      setLive("updates", s);
      // the stream is not resumable: what changed before it opened is read once it has
      if (s === "on") refresh(false, 0);
    });
  } else {
    setInterval(() => refresh(true, 0), POLL_MS);
    setLive("updates", "poll");
  }

  auditPanel(base, session);
  const [P] = await Promise.all([loadPlotly(), loadCurves()]);
  Plotly = P;
  drawEquity(); drawMetrics(); drawContrib(); drawAlloc();
  performance.mark("qmtl:charts");
}

async function auditPanel(base, session) {
  const box = document.getElementById("audit");
  const denied = (role) => {
    box.innerHTML = `<p class="note" id="audit-hidden">The audit log is for operators; this session
      is a ${esc(role)}. Sign in with an operator token to see it.</p>`;
  };
  if (session.role !== "operator") { denied(session.role); return; }
  // metrics posts (one per strategy per bar) would bury the operators' actions: hidden
  // unless asked for
  box.innerHTML = `<label class="sub"><input id="audit-metrics" type="checkbox"> show metrics posts
    (<code>post_metrics</code>)</label>
    <div class="scroll"><table id="audit-table"><thead><tr><th>id</th><th>time (UTC)</th>
    <th>actor</th><th>action</th><th>detail</th></tr></thead><tbody></tbody></table></div>
    <div class="pager"><button id="audit-more" type="button">older</button></div>`;
  const body = box.querySelector("tbody");
  const more = box.querySelector("#audit-more");
  const showMetrics = box.querySelector("#audit-metrics");
  let cursor = null;
  const page = async () => {
    try {
      const hide = showMetrics.checked ? "" : "&not_action=post_metrics";
      const { data, headers } = await request(`${base}/audit?limit=${AUDIT_PAGE}${hide}${cursor ? `&before=${cursor}` : ""}`);
      body.insertAdjacentHTML("beforeend", data.map((r) => `<tr data-id="${r.id}"><td>${r.id}</td>
        <td>${stamp(r.ts)}</td><td>${esc(r.actor)}</td><td>${esc(r.action)}</td>
        <td class="detail">${esc(JSON.stringify(r.detail).slice(0, 200))}</td></tr>`).join(""));
      cursor = headers.get("X-Next-Cursor");
      more.hidden = !cursor;
    } catch (err) {
      if (err instanceof ApiError && err.status === 403) denied(session.role);
      else box.insertAdjacentHTML("beforeend", `<p class="error">${esc(err.message)}</p>`);
    }
  };
  more.addEventListener("click", page);
  showMetrics.addEventListener("change", () => { body.innerHTML = ""; cursor = null; page(); });
  await page();
}
