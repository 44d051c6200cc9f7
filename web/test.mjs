// Headless Chromium (SwiftShader's WebGPU) against the demo served on 127.0.0.1: the page's
// WebGPU results must equal the CPU reference's (which rows and tokens, not only how many), a
// slider must change them (and they must still agree), and on dumps the page must agree with
// `visattn apply` on the same file: the same selected rows and sinks, the same errors, the same
// heatmap pixels. No WebGPU adapter is a failure, never a skip.
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync, existsSync, readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { inflateSync } from "node:zlib";

const url = process.argv[2];
const fixture = process.argv[3] && existsSync(process.argv[3]) ? process.argv[3] : null;
// The native CLI (test.sh builds it): the page is checked against what it writes.
const cli = process.argv[4];
const out = new URL("./out/", import.meta.url).pathname;
mkdirSync(out, { recursive: true });
const fail = (message) => { console.error(`FAIL: ${message}`); process.exitCode = 1; };

/** A safetensors file: its header and each tensor's bytes. */
function readTensors(path) {
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString());
  const tensor = (name) => {
    if (!header[name]) throw new Error(`${path}: no tensor ${name}`);
    const [a, b] = header[name].data_offsets;
    return bytes.subarray(8 + n + a, 8 + n + b);
  };
  return { header, tensor };
}

/** `src` rewritten to `dst` without the tensors `drop`, with metadata `meta` merged in. */
function editTensors(src, dst, { drop = [], meta = {} }) {
  const { header, tensor } = readTensors(src);
  const out = { __metadata__: { ...(header.__metadata__ || {}), ...meta } };
  const parts = [];
  let offset = 0;
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__" || drop.includes(name)) continue;
    const data = tensor(name);
    out[name] = { ...t, data_offsets: [offset, offset + data.length] };
    parts.push(data);
    offset += data.length;
  }
  let json = JSON.stringify(out);
  json += " ".repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileSync(dst, Buffer.concat([len, Buffer.from(json), ...parts]));
}

/** 32-bit FNV-1a, as web/src/lib.rs hashes the page's flags. */
const fnv1a = (bytes) => bytes.reduce((h, b) => Math.imul(h ^ b, 0x01000193) >>> 0, 0x811c9dc5);

/** An 8-bit RGBA PNG (what `apply --png` writes) as { width, height, rgba }. */
function readPng(path) {
  const bytes = readFileSync(path);
  let at = 8, width = 0, height = 0;
  const idat = [];
  while (at < bytes.length) {
    const len = bytes.readUInt32BE(at), type = bytes.toString("latin1", at + 4, at + 8);
    const body = bytes.subarray(at + 8, at + 8 + len);
    if (type === "IHDR") {
      width = body.readUInt32BE(0); height = body.readUInt32BE(4);
      if (body[8] !== 8 || body[9] !== 6 || body[12] !== 0) throw new Error(`${path}: not 8-bit RGBA without interlace`);
    } else if (type === "IDAT") idat.push(body);
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat)), stride = width * 4, rgba = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)], line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= 4 ? rgba[y * stride + x - 4] : 0, b = y > 0 ? rgba[(y - 1) * stride + x] : 0;
      const c = x >= 4 && y > 0 ? rgba[(y - 1) * stride + x - 4] : 0;
      const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
      const predictor = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][filter];
      rgba[y * stride + x] = (line[x] + predictor) & 255;
    }
  }
  return { width, height, rgba };
}

/** `visattn apply` on `input`: its output tensors, its PNG, or its one error line. */
function apply(input, tag, flags) {
  const output = `${out}${tag}.var.safetensors`, png = `${out}${tag}.cli.png`;
  const run = spawnSync(cli, ["apply", "--input", input, "--output", output, "--png", png, "--size", "768x384", ...flags], { encoding: "utf8" });
  const error = run.stderr.split("\n").find((l) => l.startsWith("error: "));
  if (run.status !== 0) return { error: (error || run.stderr).replace(/^error: /, "").replace(`${input}: `, "") };
  return { tensors: readTensors(output), png: readPng(png) };
}

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
      check(gpu.selected_hash === reference.selected_hash, `${tag} layer ${l.layer}: the selected rows differ from the reference's (same count ${gpu.selected})`);
      check(gpu.sinks_hash === reference.sinks_hash, `${tag} layer ${l.layer}: the sink tokens differ from the reference's`);
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

  // Dumps: the page and `apply` on the same file agree (apply's defaults are the page's:
  // paper convention, tau 20, rho 0.8, p 0.6, the middle layer drawn over the last row).
  check(fixture !== null, "the official fixture must sit in ../shared/data beside the checkout");
  check(!!cli && existsSync(cli), `the visattn CLI binary must be given (test.sh builds it): ${cli}`);
  if (fixture && cli && existsSync(cli)) {
    await page.evaluate(() => { const r = document.getElementById("rho"); r.value = "0.8"; r.dispatchEvent(new Event("input")); });
    await settle(3);
    let runs = 3;
    const load = async (path, dims) => {
      await page.evaluate((d) => { window.visattn.status = "pending"; document.getElementById("sinkdims").value = d; }, dims);
      await page.setInputFiles("#dump", path);
      await page.waitForFunction((n) => window.visattn.status === "error" || (window.visattn.status === "done" && window.visattn.runs > n), runs, { timeout: 300000 });
      const got = await page.evaluate(() => ({ ...window.visattn, pixels: Array.from(window.visattnPixels || []) }));
      if (got.status === "done") runs = got.runs;
      return got;
    };
    const agreesWithApply = (got, cliOut, tag) => {
      check(got.status === "done" && got.results.data === "your dump", `${tag}: the page failed: ${got.error}`);
      check(!cliOut.error, `${tag}: apply failed: ${cliOut.error}`);
      if (got.status !== "done" || cliOut.error) return;
      compare(got.results, tag);
      for (const l of got.results.layers) {
        check(l.gpu.selected_hash === fnv1a(cliOut.tensors.tensor(`selected.${l.layer}`)), `${tag} layer ${l.layer}: the page selects other rows than apply`);
        check(l.gpu.sinks_hash === fnv1a(cliOut.tensors.tensor(`sinks.${l.layer}`)), `${tag} layer ${l.layer}: the page finds other sinks than apply`);
      }
      // The same heatmap pipeline on two drivers (SwiftShader here, lavapipe for apply):
      // cell colours must match to a unit of rounding; 1 channel in 1000 may differ more (a
      // cell edge rasterised differently). Measured: identical.
      const png = cliOut.png, pixels = got.pixels;
      check(png.width === 768 && png.height === 384, `${tag}: apply's PNG is ${png.width}x${png.height}`);
      let off = 0, worst = 0;
      for (let i = 0; i < png.rgba.length; i++) {
        const d = Math.abs(png.rgba[i] - pixels[i]);
        worst = Math.max(worst, d);
        if (d > 1) off++;
      }
      console.log(`${tag}: heatmap pixels vs apply --png: ${off} of ${png.rgba.length} channels off by > 1 (worst ${worst})`);
      check(off <= png.rgba.length / 1000, `${tag}: ${off} channels of the page's heatmap differ from apply's PNG by more than 1`);
    };

    // No model in the fixture's metadata and no D_sink: the page refuses as apply does.
    const noDims = apply(fixture, "fixture-no-dims", []);
    const refused = await load(fixture, "");
    check(!!noDims.error && refused.status === "error" && refused.error.endsWith(noDims.error), `no D_sink: page "${refused.error}" vs apply "${noDims.error}"`);

    const dims = ["--sink-dims", "1415,2533"];
    const copy = out + "fixture-d-sink.safetensors";
    editTensors(fixture, copy, {});
    const one = await load(copy, "1415,2533");
    agreesWithApply(one, apply(copy, "fixture", dims), "fixture");
    check(one.results?.layers.length === 6, `the fixture has 6 layers, the page shows ${one.results?.layers.length}`);
    check(one.results?.heatmap.before.length === 64, "the fixture's image is an 8x8 grid");

    // Two image spans (the text tokens as a second image): every span counts, on both sides.
    const spans = out + "fixture-two-spans.safetensors";
    editTensors(fixture, spans, { meta: { image_spans: "5:64,69:16" } });
    const two = await load(spans, "1415,2533");
    agreesWithApply(two, apply(spans, "two-spans", dims), "two spans");
    const visual = (r) => r?.layers.reduce((s, l) => s + l.gpu.visual_sinks, 0);
    check(visual(two.results) > visual(one.results), `the second span's sinks must count as visual: ${visual(two.results)} vs ${visual(one.results)}`);

    // A detecting layer without its hidden states: the same error, no zeros in their place.
    const holes = out + "fixture-no-hidden-3.safetensors";
    editTensors(fixture, holes, { drop: ["hidden_states.3"] });
    const noHidden = apply(holes, "no-hidden", dims);
    const missing = await load(holes, "1415,2533");
    check(!!noHidden.error && missing.status === "error" && missing.error.endsWith(noHidden.error), `missing hidden states: page "${missing.error}" vs apply "${noHidden.error}"`);

    // A picture under the grid.
    await load(copy, "1415,2533");
    await page.evaluate(() => { window.visattn.status = "pending"; });
    await page.setInputFiles("#picture", out + "screenshot.png");
    await page.waitForFunction((n) => window.visattn.status === "error" || (window.visattn.status === "done" && window.visattn.runs > n), runs, { timeout: 300000 });
    const pictured = await page.evaluate(() => window.visattn.status + " " + window.visattn.error);
    check(pictured.startsWith("done"), `with a picture: ${pictured}`);
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
