// sluice's dashboard: reads the JSON API of the instance that serves it
// and refreshes every 5 s. No library, no network access beyond this
// instance. Worker names come from miners: everything shown goes through
// esc() or textContent.
"use strict";

const REFRESH_MS = 5000;
const main = document.getElementById("main");
const statusEl = document.getElementById("status");

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

async function api(path) {
  const r = await fetch(path, { headers: { accept: "application/json" } });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
  return body;
}

const fmt = {
  hashrate(h) {
    if (h == null) return "–";
    const units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s", "EH/s"];
    let i = 0;
    while (Math.abs(h) >= 1000 && i < units.length - 1) { h /= 1000; i++; }
    return h.toFixed(h >= 100 ? 0 : h >= 10 ? 1 : 2) + " " + units[i];
  },
  usd(x, digits = 2) {
    if (x == null) return "–";
    if (x !== 0 && Math.abs(x) < 0.01) return (x < 0 ? "−$" : "$") + Math.abs(x).toExponential(1);
    return (x < 0 ? "−$" : "$") + Math.abs(x).toFixed(digits);
  },
  pct(x) { return x == null ? "–" : (x * 100).toFixed(1) + " %"; },
  num(x, d = 2) { return x == null ? "–" : Number(x).toFixed(d); },
  ago(unix) {
    if (!unix) return "–";
    const s = Math.max(0, Date.now() / 1000 - unix);
    return s < 90 ? Math.round(s) + " s ago" : s < 5400 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago";
  },
};

function card(k, v, title) {
  return `<div class="card"${title ? ` title="${esc(title)}"` : ""}><div class="v">${esc(v)}</div><div class="k">${esc(k)}</div></div>`;
}

// ----- the farm: summary and the worker table -----

const table = { window: "1h", sort: "profit_usd_day", desc: false, offset: 0, limit: 50, prefix: "", below: false };
const COLUMNS = [
  ["name", "worker"],
  ["hashrate_submitted", "hashrate"],
  ["accept_rate", "accept"],
  ["effective_hashprice", "eff. $/PH/day"],
  ["efficiency", "vs network"],
  ["power_w", "power W"],
  ["profit_usd_day", "profit $/day"],
  ["last_share", "last share"],
];

// Every figure the API sorts by (the table's columns are a few of them).
const SORTABLE = ["name", "hashrate_accepted", "hashrate_submitted", "accepted_work", "stale_work", "rejected_work",
  "accepted_shares", "rejected_shares", "accept_rate", "earned_btc", "earned_usd", "revenue_usd_day",
  "effective_hashprice", "efficiency", "power_w", "profit_usd_day", "break_even_hashprice", "last_share", "difficulty"];

const farm = {
  mount() {
    main.innerHTML = `
      <div id="cards" class="cards"></div>
      <div id="nominal"></div>
      <div class="controls">
        <label>Sort by <select id="sortby">${SORTABLE.map((k) => `<option${k === table.sort ? " selected" : ""}>${k}</option>`).join("")}</select></label>
        <label>Window <select id="window">${["1m", "5m", "1h", "24h"].map((w) => `<option${w === table.window ? " selected" : ""}>${w}</option>`).join("")}</select></label>
        <label>Name starts with <input id="filter" value="${esc(table.prefix)}" placeholder="farm.s9-"></label>
        <label><input type="checkbox" id="below"${table.below ? " checked" : ""}> below break-even only</label>
        <button id="prev">‹ prev</button><span id="pageinfo" class="muted"></span><button id="next">next ›</button>
      </div>
      <table id="workers"><thead><tr>${COLUMNS.map(([k, label]) => `<th class="sort" data-key="${k}">${esc(label)}</th>`).join("")}</tr></thead><tbody></tbody></table>
      <p class="note">Rows in red lose money at the current power price. Click a column to sort, a worker for its charts.</p>`;
    document.getElementById("window").onchange = (e) => { table.window = e.target.value; table.offset = 0; refresh(); };
    document.getElementById("sortby").onchange = (e) => { table.sort = e.target.value; table.desc = table.sort !== "name"; table.offset = 0; refresh(); };
    document.getElementById("filter").oninput = (e) => { table.prefix = e.target.value; table.offset = 0; refresh(); };
    document.getElementById("below").onchange = (e) => { table.below = e.target.checked; table.offset = 0; refresh(); };
    document.getElementById("prev").onclick = () => { table.offset = Math.max(0, table.offset - table.limit); refresh(); };
    document.getElementById("next").onclick = () => { table.offset += table.limit; refresh(); };
    for (const th of main.querySelectorAll("th.sort")) {
      th.onclick = () => {
        const k = th.dataset.key;
        if (table.sort === k) table.desc = !table.desc;
        else { table.sort = k; table.desc = k !== "name"; }
        table.offset = 0;
        refresh();
      };
    }
  },
  async update(isStale) {
    const q = new URLSearchParams({ window: table.window, sort: table.sort, order: table.desc ? "desc" : "asc", offset: table.offset, limit: table.limit });
    if (table.prefix) q.set("prefix", table.prefix);
    if (table.below) q.set("below_break_even", "true");
    const [f, page, blocks, adv] = await Promise.all([
      api("/api/v1/farm"), api("/api/v1/workers?" + q), api("/api/v1/blocks"),
      api("/api/v1/advice?limit=0").catch(() => null),
    ]);
    if (isStale()) return;
    // Machine classes configured with a nominal size: one real machine of
    // each, in watts and dollars a day (test rigs hash at kH/s).
    const nominal = adv ? adv.classes.filter((c) => c.nominal) : [];
    document.getElementById("nominal").innerHTML = nominal.length
      ? `<table class="nominal"><thead><tr><th>class, one machine at its NOMINAL size</th><th>TH/s</th><th>power W</th><th>earns $/day</th><th>power $/day</th><th>profit $/day</th></tr></thead><tbody>` +
        nominal.map((c) => `<tr class="${c.nominal.profit_usd_day < 0 ? "loss" : ""}"><td>${esc(c.class)} (nominal)</td><td>${fmt.num(c.nominal.th_s, 1)}</td><td>${fmt.num(c.nominal.power_w, 0)}</td><td>${fmt.usd(c.nominal.revenue_usd_day)}</td><td>${fmt.usd(c.nominal.power_cost_usd_day)}</td><td class="profit">${fmt.usd(c.nominal.profit_usd_day)}</td></tr>`).join("") +
        `</tbody></table><p class="note">Nominal figures: what one real machine of each class would earn and cost a day at what its class really earns here and the current power price.</p>`
      : "";
    const w = f.windows[table.window] || {};
    document.getElementById("cards").innerHTML = [
      card("hashrate (" + table.window + ")", fmt.hashrate(w.hashrate_submitted)),
      card("accept rate", fmt.pct(w.accept_rate)),
      card("network hashprice $/PH/day", fmt.num(f.network_hashprice)),
      card("effective hashprice $/PH/day", fmt.num(w.effective_hashprice), "what the farm really earns per PH/s per day"),
      card("revenue / day", fmt.usd(w.revenue_usd_day)),
      // Power and profit over the last hour, summed over the workers with
      // power settings.
      card("power cost / day (1 h)", f.power.workers ? fmt.usd(f.power.power_cost_usd_day) : "–", f.power.workers + " workers with power settings, " + fmt.num(f.power.power_w, 3) + " W"),
      card("profit / day (1 h)", f.power.workers ? fmt.usd(f.power.profit_usd_day) : "–"),
      card("workers below break-even", f.below_break_even + " of " + f.workers),
      card("blocks found", blocks.found),
    ].join("");
    document.getElementById("sortby").value = table.sort;
    for (const th of main.querySelectorAll("th.sort")) {
      th.classList.toggle("sorted", th.dataset.key === table.sort);
      th.classList.toggle("asc", th.dataset.key === table.sort && !table.desc);
    }
    const tbody = main.querySelector("#workers tbody");
    tbody.innerHTML = page.workers.map((r) => {
      const loss = r.profit && r.profit.below_break_even;
      return `<tr class="${loss ? "loss" : ""}" data-name="${esc(r.name)}">
        <td><a href="#/worker/${encodeURIComponent(r.name)}">${esc(r.name)}</a></td>
        <td>${fmt.hashrate(r.hashrate_submitted)}</td>
        <td>${fmt.pct(r.accept_rate)}</td>
        <td>${fmt.num(r.effective_hashprice)}</td>
        <td>${fmt.pct(r.efficiency)}</td>
        <td>${r.profit ? fmt.num(r.profit.power_w, r.profit.power_w < 10 ? 6 : 0) : "–"}</td>
        <td class="profit">${r.profit ? fmt.usd(r.profit.profit_usd_day, 4) : "–"}</td>
        <td>${fmt.ago(r.last_share)}</td></tr>`;
    }).join("");
    const last = Math.min(page.total, table.offset + page.workers.length);
    document.getElementById("pageinfo").textContent = page.total ? `${table.offset + 1}–${last} of ${page.total}` : "no workers";
    document.getElementById("prev").disabled = table.offset === 0;
    document.getElementById("next").disabled = last >= page.total;
  },
};

// ----- one worker: figures and 24 h charts -----

function chart(title, points, series, unit) {
  // points: [{t, v: [..]}]; series: names. Drawn as polylines on a fixed
  // 600×160 view box scaled to the panel.
  const W = 600, H = 160, L = 50, B = 20;
  const vals = points.flatMap((p) => p.v).filter((v) => v != null && isFinite(v));
  let lo = Math.min(0, ...vals), hi = Math.max(...vals, 0);
  if (!(hi > lo)) hi = lo + 1;
  const t0 = points.length ? points[0].t : 0, t1 = points.length ? points[points.length - 1].t : 1;
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - 5);
  const y = (v) => 5 + (1 - (v - lo) / (hi - lo)) * (H - B - 5);
  const lines = series.map((_, i) => {
    const pts = points.filter((p) => p.v[i] != null && isFinite(p.v[i])).map((p) => x(p.t).toFixed(1) + "," + y(p.v[i]).toFixed(1));
    return pts.length ? `<polyline class="s${i}" points="${pts.join(" ")}"/>` : "";
  }).join("");
  const label = (v) => (Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.01) ? v.toExponential(1) : v.toFixed(2));
  return `<div><div>${esc(title)} <span class="muted">${series.map((s, i) => (i ? "· - - " : "— ") + esc(s)).join(" ")}</span></div>
    <svg class="chart" viewBox="0 0 ${W} ${H}" preserveAspectRatio="none" role="img" aria-label="${esc(title)}">
      <line class="grid" x1="${L}" y1="${y(lo)}" x2="${W}" y2="${y(lo)}"/><line class="grid" x1="${L}" y1="${y(hi)}" x2="${W}" y2="${y(hi)}"/>
      <text x="2" y="${y(hi) + 4}">${label(hi)}</text><text x="2" y="${y(lo)}">${label(lo)}</text>
      <text x="${L}" y="${H - 4}">−24 h</text><text x="${W - 30}" y="${H - 4}">now</text>
      ${lines}
    </svg><div class="note">${esc(unit)}</div></div>`;
}

const worker = {
  name: "",
  mount(name) {
    worker.name = name;
    main.innerHTML = `<p><a href="#/">‹ all workers</a></p><h2 id="wname"></h2><div id="wcards" class="cards"></div><div id="charts" class="charts"></div>`;
    document.getElementById("wname").textContent = name;
  },
  async update(isStale) {
    const [w, hp] = await Promise.all([api("/api/v1/workers/" + encodeURIComponent(worker.name)), api("/api/v1/hashprice")]);
    if (isStale()) return;
    const h1 = w.windows["1h"] || {};
    const p = h1.profit || {};
    document.getElementById("wcards").innerHTML = [
      card("hashrate (1 h)", fmt.hashrate(h1.hashrate_submitted)),
      card("accept rate", fmt.pct(h1.accept_rate)),
      card("effective $/PH/day", fmt.num(h1.effective_hashprice)),
      card("network $/PH/day", fmt.num(hp.network_hashprice_usd)),
      card("break-even $/PH/day", fmt.num(p.break_even_hashprice)),
      card("profit / day", fmt.usd(p.profit_usd_day, 4)),
      card("connection", (w.connections ? "up" : "down") + (w.ip ? " · " + w.ip : "")),
      card("pool", w.pool || "–"),
    ].join("");
    const price = hp.price && hp.price.usd;
    const kwh = hp.price ? hp.price.power_usd_per_kwh : 0;
    const eff = w.power && w.power.efficiency_j_per_th;
    const watts = w.power && w.power.watts;
    const net = hp.network_hashprice_usd;
    const pts = w.series.map((b) => {
      const ph = b.hashrate_submitted / 1e15;
      // The current bucket is partial: rates divide by the seconds passed.
      const rev = price != null && b.secs > 0 ? (b.earned_btc * price * 86400) / b.secs : null;
      const effective = ph > 0 && rev != null ? rev / ph : null;
      const w_ = eff != null ? (eff * b.hashrate_submitted) / 1e12 : watts != null && ph > 0 ? watts : null;
      const cost = w_ != null ? (w_ / 1000) * 24 * kwh : null;
      return { t: b.start, hashrate: b.hashrate_submitted, effective, net: ph > 0 ? net : null, profit: rev != null && cost != null && ph > 0 ? rev - cost : null };
    });
    document.getElementById("charts").innerHTML = [
      chart("Hashrate", pts.map((p) => ({ t: p.t, v: [p.hashrate] })), ["submitted"], "H/s over 24 h: 2-hour points, then 5-minute points for the last hour"),
      chart("Effective hashprice", pts.map((p) => ({ t: p.t, v: [p.effective, p.net] })), ["this worker", "network (now)"], "USD per PH/s per day"),
      chart("Profit", pts.map((p) => ({ t: p.t, v: [p.profit] })), ["profit"], "USD per day at the current power price"),
    ].join("");
  },
};

// ----- pools -----

const pools = {
  mount() { main.innerHTML = `<h2>Pools</h2><table id="pools"></table><p class="note" id="routing"></p>`; },
  async update(isStale) {
    const [ps, r] = await Promise.all([api("/api/v1/pools"), api("/api/v1/routing").catch(() => null)]);
    if (isStale()) return;
    const route = (name) => (r ? r.pools.find((x) => x.name === name) : null) || {};
    const total = ps.reduce((a, p) => a + ((p.windows["1h"] || {}).hashrate_submitted || 0), 0);
    document.getElementById("pools").innerHTML =
      `<thead><tr><th>pool</th><th>state</th><th>weight</th><th>sessions</th><th>target share</th><th>hashrate (1 h)</th><th>share of hashrate</th><th>difficulty</th><th>latency p50 / p99</th><th>accept</th><th>rejects</th><th>pays $/PH/day</th><th>fee</th><th>scheme</th></tr></thead><tbody>` +
      ps.map((p) => {
        const w = p.windows["1h"] || {};
        const rt = route(p.name);
        const rejects = Object.entries(p.rejects_by_reason).map(([k, v]) => k + " " + v).join(", ") || "none";
        const lat = p.latency ? `≤${fmt.num(p.latency.p50_ms, 1)} / ${p.latency.p99_ms == null ? "> 10000" : "≤" + fmt.num(p.latency.p99_ms, 1)} ms` : "–";
        return `<tr><td>${esc(p.name)}</td><td class="${p.up ? "up" : "down"}">${p.up ? "up" : "down"}</td>
          <td>${fmt.num(p.weight, 1)}</td><td>${p.connections.reduce((a, c) => a + c.sessions, 0)}</td><td>${fmt.pct(rt.target_share)}</td>
          <td>${fmt.hashrate(w.hashrate_submitted)}</td><td>${fmt.pct(total > 0 ? (w.hashrate_submitted || 0) / total : null)}</td><td>${p.network ? esc(p.network.difficulty.toPrecision(4)) : "–"}</td><td>${lat}</td>
          <td>${fmt.pct(w.accept_rate)}</td><td>${esc(rejects)}</td>
          <td>${fmt.num(rt.hashprice_usd)}${rt.sigma_usd != null ? " ± " + fmt.num(rt.sigma_usd) : ""}</td>
          <td>${fmt.pct(p.fee)}</td><td>${esc(p.scheme)}</td></tr>`;
      }).join("") + "</tbody>";
    document.getElementById("routing").textContent = r ? `Routing policy: ${r.policy} over ${r.window}; split changes ${r.split_changes}, sessions moved ${r.session_moves}. ` + r.pools.map((p) => p.name + ": " + p.why).join(" · ") : "";
  },
};

// ----- advice -----

const advice = {
  mount() { main.innerHTML = `<h2>Curtailment advice</h2><div id="adv"></div><p class="note">Advice only: sluice never switches machines off.</p>`; },
  async update(isStale) {
    let a;
    try { a = await api("/api/v1/advice?limit=100"); } catch (e) {
      if (!isStale()) document.getElementById("adv").innerHTML = `<p class="muted">${esc(e.message)}</p>`;
      return;
    }
    if (isStale()) return;
    const el = document.getElementById("adv");
    const c = a.scenario;
    el.innerHTML = `<p>Hashprice ${fmt.num(c.hashprice)} $/PH/day · BTC ${fmt.usd(c.btc_price, 0)} · power now ${fmt.num(c.prices[c.hour], 3)} $/kWh</p>
      <table><thead><tr><th>class</th><th>J/TH</th><th>workers</th><th>earns $/PH/day</th><th>costs $/PH/day</th><th>margin</th><th>loses at hours</th><th>break-even BTC</th><th>nominal machine</th><th>its profit $/day</th></tr></thead><tbody>` +
      a.classes.map((k) => `<tr class="${k.losing_now ? "loss" : ""}"><td>${esc(k.class)}</td><td>${fmt.num(k.efficiency_j_per_th, 1)}</td><td>${k.workers}</td>
        <td>${fmt.num(k.hashprice)}</td><td>${fmt.num(k.break_even_hashprice)}</td><td class="profit">${fmt.num(k.margin)}</td>
        <td>${esc(k.losing_hours.join(", ") || "never")}</td><td>${fmt.usd(k.break_even_btc_price, 0)}</td>
        <td>${k.nominal ? esc(k.nominal.th_s + " TH/s, " + Math.round(k.nominal.power_w) + " W") + " (nominal)" : "–"}</td>
        <td class="profit">${k.nominal ? fmt.usd(k.nominal.profit_usd_day) : "–"}</td></tr>`).join("") +
      `</tbody></table><p>Switch off now: ${a.switch_off_now} workers; switching the losing ones off at their losing hours saves ${fmt.usd(a.saved_usd_day, 4)}/day.</p>`;
  },
};

// ----- blocks -----

const blocks = {
  mount() { main.innerHTML = `<h2>Blocks</h2><div id="blk"></div>`; },
  async update(isStale) {
    const b = await api("/api/v1/blocks");
    if (isStale()) return;
    document.getElementById("blk").innerHTML = `<p>Found ${b.found}, accepted ${b.accepted}, rejected ${b.rejected}, failed ${b.failed}.</p>` +
      (b.blocks.length ? `<table><thead><tr><th>block</th><th>worker</th><th>found</th><th>state</th></tr></thead><tbody>` +
        b.blocks.map((x) => `<tr><td>${esc(x.hash)}</td><td>${esc(x.worker)}</td><td>${esc(new Date(x.found_at_ms).toLocaleString())}</td><td>${esc(typeof x.status === "string" ? x.status : JSON.stringify(x.status))}</td></tr>`).join("") + "</tbody></table>" : "");
  },
};

// ----- routing between pages, and the live refresh -----

let current = null;
let timer = null;
// Each update writes the page only if it is still the latest one asked
// for on the page still shown (answers can come back out of order).
let seq = 0;

function stale(mine, page) {
  return mine !== seq || page !== current;
}

async function refresh() {
  if (!current) return;
  const mine = ++seq;
  const page = current;
  try {
    await page.update(() => stale(mine, page));
    if (!stale(mine, page)) statusEl.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    if (!stale(mine, page)) statusEl.textContent = "update failed: " + e.message;
  }
}

function route() {
  const h = location.hash.replace(/^#\/?/, "");
  let page = "farm";
  if (h.startsWith("worker/")) {
    let name;
    try { name = decodeURIComponent(h.slice("worker/".length)); } catch { name = h.slice("worker/".length); }
    current = worker;
    worker.mount(name);
  } else {
    page = ["pools", "advice", "blocks"].includes(h) ? h : "farm";
    current = { farm, pools, advice, blocks }[page];
    current.mount();
  }
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  clearInterval(timer);
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

window.addEventListener("hashchange", route);
route();
