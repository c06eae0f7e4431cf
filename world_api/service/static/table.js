// The activation table: one row per strategy, sorted by a column, filtered by a text box,
// shown a page at a time (a world of thousands of strategies stays quick: only one page is
// in the DOM).

import { esc, num } from "./api.js";

const COLUMNS = [
  { key: "rank", label: "rank", numeric: true },
  { key: "strategy_id", label: "strategy" },
  { key: "status", label: "status" },
  { key: "weight", label: "weight", numeric: true },
  { key: "score", label: "score", numeric: true },
  { key: "sharpe", label: "sharpe", numeric: true },
  { key: "n_bars", label: "bars", numeric: true },
  { key: "contribution", label: "contribution", numeric: true },
  { key: "hints", label: "hints", sortable: false },
];

function value(row, key) {
  if (key === "sharpe") return row.metrics ? row.metrics.sharpe : undefined;
  return row[key];
}

export class ActivationTable {
  constructor(root, world, pageSize = 50) {
    this.world = world;
    this.rows = new Map();
    this.sortKey = "rank";
    this.ascending = true;
    this.page = 0;
    this.pageSize = pageSize;
    this.filter = "";
    this.flash = new Set();
    root.innerHTML = `
      <div class="toolbar">
        <input type="search" id="filter" placeholder="filter by strategy, status or hint">
        <span id="count" class="sub"></span>
      </div>
      <div class="scroll-x"><table id="activation">
        <thead><tr>${COLUMNS.map((c) => `<th data-key="${c.key}"
          class="${c.sortable === false ? "" : "sortable"} ${c.numeric ? "num" : ""}">${c.label}</th>`).join("")}</tr></thead>
        <tbody></tbody>
      </table></div>
      <div class="pager">
        <button id="prev" type="button">‹ prev</button>
        <span id="pageinfo"></span>
        <button id="next" type="button">next ›</button>
      </div>`;
    this.body = root.querySelector("tbody");
    this.head = root.querySelector("thead");
    this.count = root.querySelector("#count");
    this.pageInfo = root.querySelector("#pageinfo");
    this.prev = root.querySelector("#prev");
    this.next = root.querySelector("#next");
    root.querySelector("#filter").addEventListener("input", (e) => {
      this.filter = e.target.value.trim().toLowerCase();
      this.page = 0;
      this.render();
    });
    this.head.addEventListener("click", (e) => {
      const th = e.target.closest("th.sortable");
      if (!th) return;
      const key = th.dataset.key;
      if (key === this.sortKey) this.ascending = !this.ascending;
      else { this.sortKey = key; this.ascending = key === "rank" || key === "strategy_id"; }
      this.page = 0;
      this.render();
    });
    this.prev.addEventListener("click", () => { this.page--; this.render(); });
    this.next.addEventListener("click", () => { this.page++; this.render(); });
  }

  setRows(rows) {
    this.rows = new Map(rows.map((r) => [r.strategy_id, r]));
    this.render();
  }

  // Merge a partial row (from a pushed event) into the table; mark it for a highlight.
  update(sid, fields) {
    const old = this.rows.get(sid) || { strategy_id: sid, metrics: {}, hints: [], status: "candidate" };
    const row = { ...old, ...fields };
    if (fields.n_bars !== undefined) row.silent = false; // it reported
    if (fields.active !== undefined && fields.status === undefined) {
      row.status = fields.active ? "active" : old.status === "active" ? "candidate" : old.status;
    }
    this.rows.set(sid, row);
    this.flash.add(sid);
  }

  visible() {
    let rows = [...this.rows.values()];
    if (this.filter) {
      rows = rows.filter((r) => r.strategy_id.toLowerCase().includes(this.filter)
        || r.status.includes(this.filter)
        || (r.hints || []).some((h) => h.toLowerCase().includes(this.filter)));
    }
    const key = this.sortKey;
    const sign = this.ascending ? 1 : -1;
    rows.sort((a, b) => {
      const x = value(a, key), y = value(b, key);
      const xn = x === null || x === undefined, yn = y === null || y === undefined;
      if (xn || yn) return xn === yn ? a.strategy_id.localeCompare(b.strategy_id) : xn ? 1 : -1;
      if (x < y) return -sign;
      if (x > y) return sign;
      return a.strategy_id.localeCompare(b.strategy_id);
    });
    return rows;
  }

  render() {
    const rows = this.visible();
    const pages = Math.max(1, Math.ceil(rows.length / this.pageSize));
    this.page = Math.min(Math.max(0, this.page), pages - 1);
    const start = this.page * this.pageSize;
    const shown = rows.slice(start, start + this.pageSize);
    const base = `/ui/worlds/${encodeURIComponent(this.world)}/strategies/`;
    this.body.innerHTML = shown.map((r) => `
      <tr data-sid="${esc(r.strategy_id)}" class="${this.flash.has(r.strategy_id) ? "flash" : ""}">
        ${num("rank", r.rank, 0)}
        <td data-col="strategy_id"><a href="${base}${encodeURIComponent(r.strategy_id)}">${esc(r.strategy_id)}</a></td>
        <td data-col="status"><span class="status ${esc(r.status)}">${esc(r.status)}</span>${r.silent
          ? ` <span class="status silent" title="no update past max_silence: no weight until it reports">silent</span>` : ""}</td>
        ${num("weight", r.weight)}
        ${num("score", r.score, 3)}
        ${num("sharpe", value(r, "sharpe"), 3)}
        ${num("n_bars", r.n_bars, 0)}
        ${num("contribution", r.contribution, 5)}
        <td class="hints" data-col="hints">${esc((r.hints || []).join("; "))}</td>
      </tr>`).join("");
    this.flash.clear();
    for (const th of this.head.querySelectorAll("th.sortable")) {
      th.setAttribute("aria-sort", th.dataset.key === this.sortKey
        ? (this.ascending ? "ascending" : "descending") : "none");
    }
    const total = this.rows.size;
    this.count.textContent = rows.length === total ? `${total} strategies`
      : `${rows.length} of ${total} strategies`;
    this.pageInfo.textContent = `page ${this.page + 1} of ${pages}`;
    this.pageInfo.dataset.pages = String(pages);
    this.prev.disabled = this.page === 0;
    this.next.disabled = this.page >= pages - 1;
  }
}
