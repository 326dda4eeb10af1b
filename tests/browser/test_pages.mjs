// Browser test of irene's HTML report and served page, in Debian's headless chromium driven by
// playwright-core (from web/node_modules). Registered with CTest as ExplainBrowser.
//
//   node tests/browser/test_pages.mjs --irene build/irene --out build/browser
//
// Makes a report (irene sweep ... --report), loads it, checks the energy map's elements, hovers
// and clicks a node to zoom, saves a screenshot; then starts `irene serve --port 0` on loopback,
// does the same on the served page (data from the JSON API) and runs a comparison. Fails on any
// console error, page error or failed request. Stops by itself (a 120 s guard).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const irene = path.resolve(args.irene || path.join(repo, "build", "irene"));
const out = path.resolve(args.out || path.join(repo, "build", "browser"));
const chromiumPath = process.env.IRENE_CHROMIUM || "/usr/bin/chromium";
mkdirSync(out, { recursive: true });

const guard = setTimeout(() => { console.error("browser test: timed out after 120 s"); process.exit(1); }, 120000);

let failures = 0, checks = 0;
function check(ok, what) {
  checks++;
  if (ok) console.log("ok   " + what);
  else { failures++; console.log("FAIL " + what); }
}

let chromium;
try {
  chromium = createRequire(path.join(repo, "web", "package.json"))("playwright-core").chromium;
} catch (e) {
  console.error("browser test: playwright-core is missing: run `npm ci` in web/ (scripts/install-deps.sh does it)");
  process.exit(1);
}

// 1. A report with a sweep (4 trees of one model).
const report = path.join(out, "report.html");
const made = spawnSync(irene, ["sweep", "bert-base-uncased", "--batch", "8", "--seq", "32:128:32", "--report", report,
  "-o", path.join(out, "sweep.csv"), "--format", "csv"], { encoding: "utf8" });
check(made.status === 0, "irene sweep --report wrote " + report + (made.status ? ": " + made.stderr : ""));
if (made.status !== 0) process.exit(1);

const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run"],
});
const errors = [];
async function openPage(url, ready = "#map svg rect.node") {
  const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
  page.on("console", (m) => { if (m.type() === "error") errors.push(url + ": console: " + m.text()); });
  page.on("pageerror", (e) => errors.push(url + ": page error: " + e.message));
  page.on("requestfailed", (r) => errors.push(url + ": request failed: " + r.url()));
  // Offline: anything but the file itself, data: URLs and the loopback server is refused.
  await page.route("**/*", (route) => {
    const u = route.request().url();
    if (u.startsWith("file:") || u.startsWith("data:") || u.startsWith("http://127.0.0.1:")) return route.continue();
    errors.push(url + ": tried the network: " + u);
    return route.abort();
  });
  await page.goto(url);
  await page.waitForSelector(ready, { timeout: 30000 });
  return page;
}

async function exerciseMap(page, name) {
  const rects = await page.locator("#map svg rect.node").count();
  check(rects > 100, `${name}: energy map has ${rects} node blocks`);
  check(await page.locator("#hotspots tbody tr").count() > 0, `${name}: hotspot table has rows`);
  const grouped = await page.locator("#hotspots tbody").innerText();
  check(grouped.includes("encoder.layer.*.intermediate.dense (Linear), 12 x"), `${name}: hotspots group the 12 layers`);
  await page.check("#hotspots-expand");
  check((await page.locator("#hotspots tbody").innerText()).includes("encoder.layer.0."), `${name}: hotspots expand to each layer`);
  await page.uncheck("#hotspots-expand");
  check(await page.locator("#by-kind tbody tr").count() === 5, `${name}: module-kind table has 5 rows (attention, feed-forward, embeddings, norm, other)`);
  check(await page.locator("#by-primitive tbody tr").count() >= 5, `${name}: primitive-type table has rows`);
  const own = await page.locator('#map rect.node[data-id$=":own"]').count();
  check(own > 0 && await page.locator('#map rect.node[data-id="embeddings:BertEmbeddings:own"]').count() === 1,
    `${name}: modules' own operations are blocks of the map (${own})`);
  const summary = await page.locator("#summary").innerText();
  check(/\[[^\]]+ \.\. [^\]]+\]/.test(summary), `${name}: total energy is shown with its interval`);
  // Hover: figures in the tooltip.
  const encoder = page.locator('#map rect.node[data-id="encoder:BertEncoder"]');
  await encoder.hover();
  const tip = await page.locator("#tooltip").innerText();
  check(/share of parent/.test(tip) && /FLOP/.test(tip) && / \.\. /.test(tip), `${name}: hover shows energy, interval, share, FLOPs`);
  // Click: zoom into the first encoder layer (about 1/12 of the width); it then spans the whole width.
  const layer = page.locator('#map rect.node[data-id="encoder.layer.0:BertLayer"]');
  const before = (await layer.boundingBox()).width;
  await layer.click();
  await page.waitForSelector('#map svg[data-focus="encoder.layer.0:BertLayer"]');
  await page.waitForTimeout(700);  // the zoom transition
  const mapWidth = (await page.locator("#map svg").boundingBox()).width;
  const after = (await layer.boundingBox()).width;
  check(before < 0.2 * mapWidth && after > 0.98 * mapWidth,
    `${name}: click zooms encoder.layer.0 from ${before.toFixed(0)} to ${after.toFixed(0)} px of ${mapWidth.toFixed(0)}`);
  check((await page.locator("#breadcrumb").innerText()).includes("layer.0") ||
    (await page.locator("#breadcrumb").innerText()).includes("0 BertLayer"), `${name}: breadcrumb shows the zoomed node`);
  // Click the focused block again: back out to its parent.
  await layer.click();
  await page.waitForSelector('#map svg[data-focus="encoder:BertEncoder"]');
  await page.waitForTimeout(700);
  check(true, `${name}: clicking the focus zooms out`);
}

const reportPage = await openPage(pathToFileURL(report).href);
await exerciseMap(reportPage, "report");
check(await reportPage.locator("#sweep svg path.line").count() === 6, "report: sweep plot has 6 lines (model + the 5 kinds BERT has)");
check(await reportPage.locator("#tree-select option").count() === 4, "report: tree selector lists the 4 sweep points");
await reportPage.screenshot({ path: path.join(out, "report.png"), fullPage: true });
check(true, "report: screenshot " + path.join(out, "report.png"));

// 1b. A sweep over two variables with an override: one line per batch size, ticks with units,
// the override in the title.
const two = path.join(out, "two-variables.html");
const madeTwo = spawnSync(irene, ["sweep", "gpt2", "--batch", "1,8,16", "--seq", "32:256:32", "--set", "n_layer=6",
  "--report", two, "-o", path.join(out, "two.csv"), "--format", "csv"], { encoding: "utf8" });
check(madeTwo.status === 0, "irene sweep over batch and seq --report" + (madeTwo.status ? ": " + madeTwo.stderr : ""));
const twoPage = await openPage(pathToFileURL(two).href);
const legend = await twoPage.locator("#sweep svg text.legend").allTextContents();
check(await twoPage.locator("#sweep svg path.line").count() === 3 && legend.join(",") === "batch 1,batch 8,batch 16",
  "two-variable sweep: one line per batch size (" + legend.join(", ") + ")");
const ticks = await twoPage.locator("#sweep svg g.axis.y .tick text").allTextContents();
check(ticks.length >= 3 && ticks.every((t) => / (m|k)?J$/.test(t)), "two-variable sweep: y ticks carry units (" + ticks.join(", ") + ")");
check((await twoPage.locator("#sweep svg text.xlabel").textContent()).startsWith("sequence length"),
  "two-variable sweep: x axis is the sequence length");
const sweepWidth = (await twoPage.locator("#sweep svg").boundingBox()).width;
const panelWidth = (await twoPage.locator("#sweep-panel").boundingBox()).width;
check(sweepWidth > 0.9 * panelWidth, `two-variable sweep: plot spans the card (${sweepWidth.toFixed(0)} of ${panelWidth.toFixed(0)} px)`);
check((await twoPage.title()).includes("[n_layer=6]") && (await twoPage.locator("#summary").innerText()).includes("[n_layer=6]"),
  "report title and summary name the override (" + (await twoPage.title()) + ")");
await twoPage.screenshot({ path: path.join(out, "two-variables.png"), fullPage: true });
// 1b. A generation report: the generation panel (totals, the step plot, by module kind) above
// the trees of the prefill, the first and last decode steps and the whole generation.
const genReport = path.join(out, "generation.html");
const gm = spawnSync(irene, ["report", "meta-llama/Llama-2-7b-hf", "--prompt", "64", "--generate", "32",
  "--carbon-intensity", "400", "-o", genReport], { encoding: "utf8" });
check(gm.status === 0, "irene report --prompt --generate" + (gm.status ? ": " + gm.stderr : ""));
const genPage = await openPage(pathToFileURL(genReport).href);
check(await genPage.locator("#generation-panel").isVisible(), "generation report: generation panel shown");
const genCards = await genPage.locator("#generation-cards").innerText();
check(/per generated token/.test(genCards) && /\[[^\]]+ \.\. [^\]]+\]/.test(genCards), "generation report: totals with intervals");
check(await genPage.locator("#generation-steps svg path.line").count() === 1, "generation report: step plot");
check(await genPage.locator("#generation-kinds tbody tr").count() >= 4, "generation report: energy by module kind");
check(await genPage.locator("#tree-select option").count() === 4,
  "generation report: prefill, first and last step trees and the whole generation");
// It opens on the last decode step, and says what the answer rests on (as the JSON does).
const genData = JSON.parse(await genPage.locator("#irene-data").textContent());
check(await genPage.locator("#tree-select").inputValue() === "2" &&
      (await genPage.title()).includes("seq 1 decode past 95") && genData.trees[2].phase === "decode",
  "generation report: opens on the last decode step (" + await genPage.title() + ")");
check((await genPage.locator("#generation-rests-on").innerText()).trim() === genData.generation.rests_on.summary &&
      genData.generation.rests_on.summary.startsWith("rests on: "),
  "generation report: states what the generation rests on");
check((await genPage.locator("#rests-on").innerText()).trim() === genData.trees[2].rests_on.summary,
  "generation report: the decode step's map says what it rests on");
check(/tokens\/s/.test(genCards) && /mean power/.test(genCards), "generation report: throughput and power cards");
check(await genPage.locator("#sweep-panel").isHidden(), "generation report: its passes are not plotted as a sweep");
// CO2e on the cards at the given carbon intensity, as the JSON has it.
const si4 = (v, base) => {  // the page's SI format: 4 significant digits
  const p = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"], [1, ""], [1e-3, "m"], [1e-6, "u"], [1e-9, "n"]]
    .find(([scale]) => Math.abs(v) >= scale * 0.99995) || [1e-9, "n"];
  return String(+(v / p[0]).toPrecision(4)) + " " + p[1] + base;
};
check(genData.carbon_intensity_g_per_kwh === 400 && genCards.includes("CO2e in total") &&
      genCards.includes(si4(genData.generation.normalized.co2e_g, "g")) &&
      genCards.includes(si4(genData.generation.normalized.per_token_co2e_g, "g")),
  "generation report: CO2e cards (" + si4(genData.generation.normalized.co2e_g, "g") + " in total at 400 g/kWh)");
check((await genPage.locator("#summary").innerText()).includes("CO2e per forward pass"),
  "generation report: the decode step's summary has its CO2e card");
// The whole generation: the prefill and every decode step summed node by node; its map, cards and
// tables are the JSON's, and add up to the generation's totals.
const whole = genData.trees[3];
check(whole.phase === "generation" && whole.generate === 32 &&
      Math.abs(whole.total.j - genData.generation.total_j.j) <= 1e-9 * genData.generation.total_j.j &&
      genData.generation.by_kind.every((k) => Math.abs(whole.by_kind.find((w) => w.name === k.name).energy.j - k.energy.j) <=
        1e-9 * genData.generation.total_j.j),
  "generation report: the whole generation's JSON holds the generation's total and energy by module kind");
await genPage.selectOption("#tree-select", "3");
await genPage.waitForFunction(() => document.title.includes("whole generation"));
const wholeIds = await genPage.locator("#map rect.node").evaluateAll((rs) =>
  rs.map((r) => r.getAttribute("data-id")).filter((id) => !id.endsWith(":own")));
const jsonIds = whole.nodes.map((n) => n.id).sort();
check(wholeIds.length === whole.nodes.length && wholeIds.sort().every((id, i) => id === jsonIds[i]),
  `generation report: the whole generation's map has the JSON's ${whole.nodes.length} nodes`);
const wholeSummary = await genPage.locator("#summary").innerText();
check(wholeSummary.includes("energy of the whole generation") && wholeSummary.includes(si4(whole.total.j, "J")) &&
      wholeSummary.includes("generate 32"),
  "generation report: the whole generation's card shows its total (" + si4(whole.total.j, "J") + ")");
const kindRows = await genPage.locator("#by-kind tbody tr").evaluateAll((rows) =>
  rows.map((r) => [...r.querySelectorAll("td")].map((td) => td.textContent)));
const shownKinds = whole.by_kind.filter((g) => g.count > 0 || g.energy.j > 0);
check(kindRows.length === shownKinds.length &&
      kindRows.every((r, i) => r[0].startsWith(shownKinds[i].name) && r[3] === si4(shownKinds[i].energy.j, "J")),
  "generation report: the whole generation's module kinds are the JSON's (" + kindRows.map((r) => r[0] + " " + r[3]).join(", ") + ")");
const hot = await genPage.locator("#hotspots tbody tr").first().innerText();
check(hot.includes(whole.hotspot_groups[0].pattern), "generation report: the whole generation's first hotspot is the JSON's (" +
  whole.hotspot_groups[0].pattern + ")");
check((await genPage.locator("#rests-on").innerText()).trim() === whole.rests_on.summary &&
      whole.rests_on.summary === genData.generation.rests_on.summary,
  "generation report: the whole generation's map says what the generation rests on");
await genPage.screenshot({ path: path.join(out, "generation-whole.png"), fullPage: true });

// 1c. A sweep of generations: the plotted points are the JSON's (x = generated tokens, y = total joules).
const genSweep = path.join(out, "generation-sweep.html");
const gs = spawnSync(irene, ["sweep", "gpt2", "--prompt", "64", "--generate", "16:64:16", "--batch", "2",
  "--report", genSweep, "--format", "json", "-o", path.join(out, "generation-sweep.json")], { encoding: "utf8" });
check(gs.status === 0, "irene sweep --prompt --generate --report" + (gs.status ? ": " + gs.stderr : ""));
const gsJson = JSON.parse(readFileSync(path.join(out, "generation-sweep.json"), "utf8"));
const gsPage = await openPage(pathToFileURL(genSweep).href);
const plotted = await gsPage.locator("#sweep svg circle.s0").evaluateAll((cs) =>
  cs.map((c) => ({ x: +c.getAttribute("data-x"), j: +c.getAttribute("data-j"), cy: +c.getAttribute("cy") })));
check(plotted.length === gsJson.points.length && plotted.every((p, i) => p.x === gsJson.points[i].generate &&
      Math.abs(p.j - gsJson.points[i].total_j.j) <= 1e-9 * gsJson.points[i].total_j.j),
  "generation sweep: " + plotted.length + " plotted points are the JSON's generated tokens and total joules");
check(plotted.every((p, i) => i === 0 || p.cy < plotted[i - 1].cy), "generation sweep: more tokens plot higher");
check((await gsPage.locator("#sweep svg text.xlabel").textContent()).startsWith("generated tokens per sequence"),
  "generation sweep: x axis is the generated tokens");

// 1d. A serving explanation (irene explain --serving --format html): the page's shares and bars are
// the JSON's. Needs the serving table (../shared/llm-energy or $IRENE_LLM_ENERGY).
const servingTable = process.env.IRENE_LLM_ENERGY || path.join(repo, "..", "shared", "llm-energy", "mlenergy-v3-llm.csv");
if (existsSync(servingTable)) {
  const servingArgs = ["explain", "meta-llama/Llama-3.1-8B-Instruct", "--serving", "--hardware", "H100",
    "--max-num-seqs", "8,256", "--table", servingTable];
  const servingHtml = path.join(out, "serving.html"), servingJson = path.join(out, "serving.json");
  const sh = spawnSync(irene, [...servingArgs, "--format", "html", "-o", servingHtml], { encoding: "utf8" });
  const sj = spawnSync(irene, [...servingArgs, "--format", "json", "-o", servingJson], { encoding: "utf8" });
  check(sh.status === 0 && sj.status === 0, "irene explain --serving --format html and json" + (sh.status ? ": " + sh.stderr : ""));
  const want = JSON.parse(readFileSync(servingJson, "utf8"));
  const sp = await openPage(pathToFileURL(servingHtml).href, "#serving-shares tbody tr");
  check(await sp.locator("#serving-panel").isVisible() && await sp.locator("#map-panel, #map svg").count() === 0,
    "serving page: the serving panel, no energy map");
  const rows = await sp.locator("#serving-shares tbody tr.serving-share").evaluateAll((trs) =>
    trs.map((tr) => ({ part: tr.getAttribute("data-part"), cells: [...tr.querySelectorAll("td.num")].map((td) => td.textContent) })));
  check(rows.length === want.parts.length && rows.every((r, i) => r.part === want.parts[i].part &&
        r.cells.length === want.points.length &&
        r.cells.every((c, k) => c === want.shares[r.part][k].toFixed(2) + "%")),
    "serving page: the share table is the JSON's shares (" + rows.length + " parts x " + want.points.length + " points)");
  const bars = await sp.locator("g.serving-point").evaluateAll((gs) => gs.map((g) =>
    [...g.querySelectorAll("rect.serving-part")].map((r) => ({ part: r.getAttribute("data-part"), w: +r.getAttribute("width") }))));
  const barsMatch = bars.length === want.points.length && bars.every((b, k) => {
    const total = b.reduce((a, r) => a + r.w, 0);
    return b.every((r, i) => r.part === want.points[k].by_part[i].part &&
      Math.abs(r.w / total - want.points[k].by_part[i].share_pct / 100) < 1e-6);
  });
  check(barsMatch, "serving page: each point's bar is split as the JSON's by_part shares");
  const sums = want.points.map((p) => p.by_part.reduce((a, x) => a + x.share_pct, 0));
  check(sums.every((x) => Math.abs(x - 100) < 1e-6), "serving JSON: the parts add up to 100% at every point");
  const servingRests = await sp.locator("#serving-rests-on").textContent();
  check(want.rests_on && servingRests === want.rests_on.summary && servingRests.startsWith("rests on: H100"),
    "serving page: the rests-on line is the JSON's (" + servingRests.slice(0, 60) + ")");
  const figureText = await sp.locator("#serving-shares tbody tr.serving-figure").first().innerText();
  check(figureText.includes("step energy"), "serving page: the step energies are listed");
  await sp.screenshot({ path: path.join(out, "serving.png"), fullPage: true });
} else {
  console.log("skip serving page: no table at " + servingTable);
}

// 2. Predicted against measured: a tree with ground truth on every node, predicted by the
// default predictor, gets the scatter plot (one point per node).
const treeFile = path.join(out, "measured.jsonl");
const tree = spawnSync(irene, ["tree", "bert-base-uncased", "--batch", "8", "--seq", "64", "--format", "jsonl", "-o", treeFile],
  { encoding: "utf8" });
check(tree.status === 0, "irene tree --format jsonl" + (tree.status ? ": " + tree.stderr : ""));
const record = JSON.parse(readFileSync(treeFile, "utf8"));
(function addTruth(node) {  // a stand-in measurement: 2 nJ per FLOP plus 1 mJ
  node.ground_truth_energy = node.flops * 1e6 * 2e-9 + 1e-3;
  (node.child_nodes_obj || []).forEach(addTruth);
})(record.frontend_tree);
writeFileSync(treeFile, JSON.stringify(record) + "\n");
const predictorFile = process.env.IRENE_PREDICTOR || path.join(repo, "predictors", "device_1.json");
const measuredReport = path.join(out, "measured.html");
const mr = spawnSync(irene, ["report", treeFile, "--predictor", predictorFile, "-o", measuredReport], { encoding: "utf8" });
check(mr.status === 0, "irene report of a measured tree" + (mr.status ? ": " + mr.stderr : ""));
const measuredPage = await openPage(pathToFileURL(measuredReport).href);
check(await measuredPage.locator("#measured-panel").isVisible(), "measured report: predicted-against-measured panel shown");
const points = await measuredPage.locator("#pred-vs-measured circle.pt").count();
check(points > 100, `measured report: ${points} nodes plotted predicted against measured`);
check((await measuredPage.locator("#summary").innerText()).includes("measured"), "measured report: summary shows the measured total");

// 3. The served page, on an ephemeral loopback port.
const server = spawn(irene, ["serve", "--port", "0", "--host", "127.0.0.1"], { stdio: ["ignore", "pipe", "pipe"] });
let serverErr = "";
server.stderr.on("data", (d) => { serverErr += d; });
const url = await new Promise((resolve, reject) => {
  let buf = "";
  server.stdout.on("data", (d) => {
    buf += d;
    const m = buf.match(/serving (http:\/\/127\.0\.0\.1:\d+\/)/);
    if (m) resolve(m[1]);
  });
  server.on("exit", (code) => reject(new Error("irene serve exited with " + code + ": " + serverErr)));
});
check(true, "irene serve listens on " + url);
try {
  const served = await openPage(url);
  await exerciseMap(served, "served page");
  await served.fill("#seq-b", "256");
  await served.click("#go-compare");
  await served.waitForSelector("#compare-kinds tbody tr", { timeout: 30000 });
  const cmp = await served.locator("#compare").innerText();
  check(/\+\d/.test(cmp) && /%/.test(cmp), "served page: compare shows differences with percent");
  await served.screenshot({ path: path.join(out, "served.png"), fullPage: true });
  check(true, "served page: screenshot " + path.join(out, "served.png"));
} finally {
  server.kill("SIGTERM");
  await new Promise((r) => server.once("exit", r));
}

await browser.close();
for (const e of errors) console.log("error: " + e);
check(errors.length === 0, `no console errors, page errors or failed requests (${errors.length})`);
clearTimeout(guard);
console.log(`${checks - failures} passed, ${failures} failed`);
process.exit(failures ? 1 : 0);
