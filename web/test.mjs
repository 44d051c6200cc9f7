// Headless Chromium (SwiftShader's WebGPU) against the demo served on 127.0.0.1: the page's
// WebGPU numbers must equal the CPU reference's, a slider must change them (and they must still
// agree), and a screenshot is saved. No WebGPU adapter is a failure, never a skip.
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync, existsSync } from "node:fs";

const url = process.argv[2];
const fixture = process.argv[3] && existsSync(process.argv[3]) ? process.argv[3] : null;
const out = new URL("./out/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });
const fail = (message) => { console.error(`FAIL: ${message}`); process.exitCode = 1; };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--enable-unsafe-webgpu", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"],
});
let passed = 0, failed = 0;
const check = (ok, what) => { if (ok) { passed++; } else { failed++; fail(what); } };
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
  page.on("console", (m) => console.log(`page: ${m.text()}`));
  await page.goto(url);
  const hasGpu = await page.evaluate(async () => "gpu" in navigator && !!(await navigator.gpu.requestAdapter()));
  check(hasGpu, "no WebGPU adapter in this browser (navigator.gpu or requestAdapter missing)");
  const settle = (runs) => page.waitForFunction((n) => window.visattn && (window.visattn.status === "error" || (window.visattn.status === "done" && window.visattn.runs >= n)), runs, { timeout: 300000 });
  await settle(1);
  const first = await page.evaluate(() => window.visattn);
  check(first.status === "done", `the page failed: ${first.error}`);
  const compare = (results, tag) => {
    for (const l of results.layers) {
      const { gpu, reference } = l;
      check(gpu.text_sinks === reference.text_sinks && gpu.visual_sinks === reference.visual_sinks, `${tag} layer ${l.layer}: sinks ${JSON.stringify(gpu)} vs ${JSON.stringify(reference)}`);
      check(gpu.selected === reference.selected, `${tag} layer ${l.layer}: selected ${gpu.selected} vs ${reference.selected}`);
      check(Math.abs(gpu.moved - reference.moved) <= 1e-4 * Math.max(1, Math.abs(reference.moved)), `${tag} layer ${l.layer}: moved ${gpu.moved} vs ${reference.moved}`);
    }
    const h = results.heatmap;
    const worst = Math.max(...h.after.map((v, i) => Math.abs(v - h.after_reference[i]) / Math.max(1e-6, Math.abs(h.after_reference[i]))));
    check(worst <= 1e-4, `${tag}: heatmap values differ from the reference by ${worst}`);
  };
  compare(first.results, "defaults");
  const total = (r) => r.layers.reduce((s, l) => s + l.gpu.selected, 0);
  const moved = (r) => r.layers.reduce((s, l) => s + l.gpu.moved, 0);
  check(total(first.results) > 0 && moved(first.results) > 0, `the sample must select rows and move mass: ${total(first.results)} / ${moved(first.results)}`);
  await page.screenshot({ path: out + "screenshot.png", fullPage: true });

  // A slider: a lower non-sink floor (paper rho) selects more rows.
  await page.evaluate(() => { const r = document.getElementById("rho"); r.value = "0.5"; r.dispatchEvent(new Event("input")); });
  await settle(2);
  const second = await page.evaluate(() => window.visattn);
  check(second.status === "done", `after the slider: ${second.error}`);
  compare(second.results, "rho 0.5");
  check(total(second.results) > total(first.results), `rho 0.5 must select more rows than 0.8: ${total(second.results)} vs ${total(first.results)}`);
  await page.screenshot({ path: out + "screenshot-rho-0.5.png", fullPage: true });
  console.log(`adapter: ${first.adapter}; rows selected ${total(first.results)} -> ${total(second.results)}`);

  // The file pickers: the official fixture as "your dump", a picture under the grid.
  check(fixture !== null, "the official fixture must sit in ../shared/data beside the checkout");
  if (fixture) {
    await page.setInputFiles("#dump", fixture);
    await settle(3);
    const third = await page.evaluate(() => window.visattn);
    check(third.status === "done" && third.results.data === "your dump", `loading the fixture: ${third.error}`);
    check(third.results.layers.length === 6, `the fixture has 6 layers, the page shows ${third.results.layers.length}`);
    compare(third.results, "fixture");
    check(third.results.heatmap.before.length === 64, "the fixture's image is an 8x8 grid");
    await page.setInputFiles("#picture", out + "screenshot.png");
    await settle(4);
    const fourth = await page.evaluate(() => window.visattn);
    check(fourth.status === "done", `with a picture: ${fourth.error}`);
    await page.screenshot({ path: out + "screenshot-dump.png", fullPage: true });
  }
  // A broken file is a readable message on the page, not a crash.
  writeFileSync(out + "garbage.safetensors", "this is not a tensor file");
  await page.setInputFiles("#dump", out + "garbage.safetensors");
  await page.waitForFunction(() => window.visattn.status === "error", null, { timeout: 60000 });
  const broken = await page.evaluate(() => window.visattn.error);
  check(/garbage\.safetensors: .*safetensors/.test(broken), `a broken dump must say so: ${broken}`);
} catch (e) {
  failed++;
  fail(String(e));
} finally {
  await browser.close();
}
console.log(`web: ${passed} passed, ${failed} failed`);
if (failed > 0) process.exitCode = 1;
