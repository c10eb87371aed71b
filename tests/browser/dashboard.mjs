// The dashboard in a real browser: headless Chromium (Debian's), driven
// by playwright-core, against `sluice demo`. Run by tests/browser/run.sh
// (CI installs what it needs). Screenshots go to target/dashboard/.
//
// Checks: the page loads the demo's workers; sorting by a column and the
// name filter work; losing workers are highlighted; a worker's charts
// render; the pools, advice and blocks pages show; no console errors.
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const bin = process.env.SLUICE_BIN || "target/debug/sluice";
const shots = "target/dashboard";
mkdirSync(shots, { recursive: true });

function fail(msg) {
  console.error("FAIL: " + msg);
  process.exitCode = 1;
  throw new Error(msg);
}

const demo = spawn(bin, ["demo", "--miners", "24", "--duration", "600s"], { stdio: ["ignore", "pipe", "ignore"] });
// However this script ends, the demo ends with it.
process.on("exit", () => demo.kill());
const url = await new Promise((resolve, reject) => {
  const lines = createInterface({ input: demo.stdout });
  const t = setTimeout(() => reject(new Error("the demo printed no dashboard address")), 30000);
  lines.on("line", (l) => {
    const m = l.match(/^dashboard on (http:\/\/\S+)/);
    if (m) { clearTimeout(t); resolve(m[1]); }
  });
  demo.on("exit", (c) => reject(new Error("the demo exited: " + c)));
});
console.log("dashboard at " + url);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("console", (m) => { if (m.type() === "error") errors.push("console: " + m.text()); });
  page.on("pageerror", (e) => errors.push("page: " + e.message));
  page.on("requestfailed", (r) => errors.push("request failed: " + r.url()));
  // The advice answers 503 until the first job gives a hashprice; the
  // page shows that as a message, so it is no error.
  page.on("response", (r) => {
    if (r.status() >= 400 && !(r.status() === 503 && r.url().includes("/api/v1/advice"))) errors.push(r.status() + " " + r.url());
  });

  // The farm page: every demo worker, eventually (each needs a share).
  await page.goto(url);
  await page.waitForFunction(() => /of 24$/.test(document.getElementById("pageinfo")?.textContent || ""), null, { timeout: 60000 });
  const names = () => page.$$eval("#workers tbody tr", (rows) => rows.map((r) => r.dataset.name));
  const cells = (i) => page.$$eval("#workers tbody tr", (rows, i) => rows.map((r) => r.children[i].textContent), i);
  if ((await names()).length !== 24) fail("24 rows expected, got " + (await names()).length);
  const money = (s) => { const n = parseFloat(s.replace("−", "-").replace("$", "")); return isNaN(n) ? null : n; };
  // Default: profit, smallest first — the S9s lead, highlighted.
  const profits = (await cells(6)).map(money);
  for (let i = 1; i < profits.length; i++) {
    if (profits[i - 1] != null && profits[i] != null && profits[i - 1] > profits[i]) fail("not sorted by profit: " + profits);
  }
  const firstLoss = await page.$eval("#workers tbody tr", (r) => r.classList.contains("loss"));
  if (!firstLoss) fail("the biggest loser is not highlighted");
  // The farm's power cost and profit (summed over its workers) show.
  const cardsText = await page.textContent("#cards");
  if (!/power cost \/ day/.test(cardsText) || /–\s*power cost/.test(cardsText)) fail("farm power cost: " + cardsText);
  if (!(await names())[0].startsWith("farm.s9-")) fail("an S9 should lose most: " + (await names())[0]);
  // Each class at its nominal size, in watts and dollars; the S9 loses.
  await page.waitForFunction(() => document.querySelectorAll("table.nominal tbody tr").length === 4, null, { timeout: 15000 });
  const s9row = await page.$eval("table.nominal tbody", (b) => { const r = [...b.rows].find((r) => r.cells[0].textContent.startsWith("s9 ")); return { cls: r.className, w: r.cells[2].textContent }; });
  if (s9row.cls !== "loss" || s9row.w !== "1323") fail("nominal S9: " + JSON.stringify(s9row));
  await page.screenshot({ path: shots + "/farm.png", fullPage: true });

  // Sort by name (click the header), then by hashrate descending.
  await page.click('th[data-key="name"]');
  await page.waitForFunction(() => document.querySelector('th[data-key="name"]').classList.contains("sorted"));
  await page.waitForFunction(() => {
    const n = [...document.querySelectorAll("#workers tbody tr")].map((r) => r.dataset.name);
    return n.length === 24 && n.every((x, i) => i === 0 || n[i - 1] <= x);
  }, null, { timeout: 10000 });
  // Any figure from the sort menu: efficiency, largest first.
  await page.selectOption("#sortby", "efficiency");
  await page.waitForFunction(() => {
    const v = [...document.querySelectorAll("#workers tbody tr")].map((r) => parseFloat(r.children[4].textContent));
    return v.length === 24 && v.every((x, i) => i === 0 || v[i - 1] >= x) && document.querySelector('th[data-key="efficiency"]').classList.contains("sorted");
  }, null, { timeout: 10000 });
  // The filter.
  await page.fill("#filter", "farm.s19xp-");
  await page.waitForFunction(() => {
    const n = [...document.querySelectorAll("#workers tbody tr")].map((r) => r.dataset.name);
    return n.length === 6 && n.every((x) => x.startsWith("farm.s19xp-"));
  }, null, { timeout: 10000 });
  await page.fill("#filter", "");

  // A worker's page: three charts with lines.
  await page.click("#workers tbody tr a");
  await page.waitForFunction(() => document.querySelectorAll("svg.chart").length === 3 && document.querySelectorAll("svg.chart polyline").length >= 3, null, { timeout: 15000 });
  const title = await page.textContent("#wname");
  if (!title.startsWith("farm.")) fail("worker page title: " + title);
  await page.screenshot({ path: shots + "/worker.png", fullPage: true });

  // Pools, advice, blocks.
  await page.click('nav a[data-page="pools"]');
  await page.waitForFunction(() => document.querySelectorAll("#pools tbody tr").length === 1 && /up/.test(document.querySelector("#pools tbody tr").textContent), null, { timeout: 10000 });
  // Its latency is timed (answers came back).
  await page.waitForFunction(() => /≤[0-9.]+ \/ ≤[0-9.]+ ms/.test(document.querySelector("#pools tbody tr").textContent), null, { timeout: 10000 });
  await page.screenshot({ path: shots + "/pools.png", fullPage: true });
  await page.click('nav a[data-page="advice"]');
  await page.waitForFunction(() => document.querySelectorAll("#adv tbody tr").length === 4 && /TH\/s/.test(document.getElementById("adv").textContent), null, { timeout: 10000 });
  const s9 = await page.$eval("#adv tbody", (b) => [...b.rows].find((r) => r.cells[0].textContent === "s9").className);
  if (s9 !== "loss") fail("the S9 class should be flagged as losing");
  await page.screenshot({ path: shots + "/advice.png", fullPage: true });
  await page.click('nav a[data-page="blocks"]');
  await page.waitForSelector("#blk p");

  // Live: the status line moves on without a reload.
  const before = await page.textContent("#status");
  await page.waitForFunction((b) => document.getElementById("status").textContent !== b, before, { timeout: 15000 });

  if (errors.length) fail("browser errors:\n" + errors.join("\n"));
  console.log("dashboard in Chromium: ok (screenshots in " + shots + ")");
} finally {
  await browser.close();
  demo.kill();
}
