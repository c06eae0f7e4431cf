// The dashboard's entry: check the token, then draw the page the path names.
//   /ui                               the worlds
//   /ui/worlds/{id}                   one world (world.js)
//   /ui/worlds/{id}/strategies/{sid}  one strategy's tear sheet (strategy.js)

import { esc, get, setLive, setToken, token } from "./api.js";
import { worldPage } from "./world.js";
import { strategyPage } from "./strategy.js";

const app = document.getElementById("app");

function crumbs(parts) {
  document.getElementById("crumbs").innerHTML = parts
    .map(([label, href]) => (href ? `<a href="${href}">${esc(label)}</a>` : `<span>${esc(label)}</span>`))
    .join(" / ");
}

function askToken(detail) {
  app.innerHTML = `
    <form id="token-form" class="card tokenbox">
      <h1>Sign in</h1>
      <p class="sub">This world service needs a token (<code>qmtl world token create --role viewer</code>).
      It is kept in this tab only (sessionStorage) and sent as <code>Authorization: Bearer</code>.</p>
      ${detail ? `<p id="token-error" class="error">${esc(detail)}</p>` : ""}
      <input id="token" type="password" autocomplete="off" placeholder="qmtl_…" required>
      <button type="submit">Open dashboard</button>
    </form>`;
  document.getElementById("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken(document.getElementById("token").value);
    start();
  });
}

async function worldsPage() {
  crumbs([]);
  document.title = "Worlds · QMTL";
  const worlds = await get("/worlds");
  app.innerHTML = `
    <h1>Worlds</h1>
    <div class="card"><table id="worlds">
      <thead><tr><th>world</th><th>name</th><th>mode</th><th class="num">capital</th></tr></thead>
      <tbody>${worlds.map((w) => `
        <tr data-world="${esc(w.id)}">
          <td><a href="/ui/worlds/${encodeURIComponent(w.id)}">${esc(w.id)}</a></td>
          <td>${esc(w.name)}</td><td>${esc(w.mode)}</td>
          <td class="num">${Number(w.capital).toLocaleString()}</td></tr>`).join("")}
      </tbody></table>
      ${worlds.length ? "" : `<p class="note">No worlds yet: <code>qmtl world create NAME</code>.</p>`}
    </div>`;
}

async function start() {
  const session = await get("/ui/api/session");
  const who = document.getElementById("who");
  if (!session.authenticated) {
    who.textContent = "";
    askToken(token() ? session.detail : "");
    return;
  }
  who.innerHTML = `${esc(session.name)} (${esc(session.role)})`
    + (token() ? ` · <a href="#" id="signout">sign out</a>` : "");
  const out = document.getElementById("signout");
  if (out) out.addEventListener("click", (e) => { e.preventDefault(); setToken(""); location.reload(); });
  const parts = location.pathname.replace(/\/+$/, "").split("/").slice(2).map(decodeURIComponent);
  try {
    if (parts.length === 0) {
      await worldsPage();
      setLive("index", "none"); // the list is read once: nothing to be live or offline
    }
    else if (parts[0] === "worlds" && parts.length === 2) {
      await worldPage(app, parts[1], session, crumbs);
    } else if (parts[0] === "worlds" && parts[2] === "strategies" && parts.length === 4) {
      await strategyPage(app, parts[1], parts[3], session, crumbs);
    } else {
      app.innerHTML = `<p class="error">No such page: ${esc(location.pathname)}</p>`;
    }
  } catch (err) {
    app.innerHTML = `<p class="error" id="page-error">${esc(err.message)}</p>`;
  }
}

start();
