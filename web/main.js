// The demo page: one WebGPU device through wasm, sliders recompute VAR on the GPU, the CPU
// reference runs beside it, and window.visattn exposes both for tests.
import init, { start } from "./pkg/visattn_web.js";

const $ = (id) => document.getElementById(id);
const state = { status: "starting", runs: 0, results: null, error: null, adapter: null };
window.visattn = state;

function fail(message) {
  state.status = "error";
  state.error = message;
  $("status").textContent = message;
  $("status").className = "error";
}

function agree(gpu, ref) {
  return gpu.text_sinks === ref.text_sinks && gpu.visual_sinks === ref.visual_sinks &&
    gpu.selected === ref.selected && Math.abs(gpu.moved - ref.moved) <= 1e-4 * Math.max(1, Math.abs(ref.moved));
}

async function main() {
  if (!("gpu" in navigator)) {
    fail("WebGPU is not available in this browser (navigator.gpu is missing): try a recent Chrome or Edge.");
    return;
  }
  await init();
  let demo;
  try {
    demo = await start();
  } catch (e) {
    fail(String(e));
    return;
  }
  state.adapter = demo.adapter();
  const canvas = $("heatmap");
  const ctx = canvas.getContext("2d");
  // The demo object is used by one call at a time: every call goes through this chain.
  let chain = Promise.resolve();
  const serial = (job) => (chain = chain.then(job, job));

  function fillSelectors() {
    $("layer").replaceChildren(...Array.from({ length: demo.layers() }, (_, l) => new Option(String(l), String(l), false, l === demo.layers() >> 1)));
    $("head").replaceChildren(new Option("mean of selected", "-1"), ...Array.from({ length: demo.heads() }, (_, h) => new Option(String(h), String(h))));
  }

  async function run() {
    state.status = "running";
    for (const id of ["tau", "rho", "p"]) $(id + "-v").textContent = $(id).value;
    $("status").textContent = `computing on ${state.adapter}…`;
    const pixels = new Uint8Array(canvas.width * canvas.height * 4);
    try {
      const json = await demo.run(+$("tau").value, +$("rho").value, +$("p").value, $("convention").value,
        +$("layer").value, +$("head").value, pixels, canvas.width, canvas.height);
      const results = JSON.parse(json);
      ctx.putImageData(new ImageData(new Uint8ClampedArray(pixels.buffer), canvas.width, canvas.height), 0, 0);
      const body = $("layers").tBodies[0];
      body.replaceChildren();
      for (const r of results.layers) {
        const row = body.insertRow();
        for (const v of [r.layer, r.gpu.text_sinks, r.gpu.visual_sinks, r.gpu.selected, r.gpu.moved.toFixed(3), agree(r.gpu, r.reference) ? "yes" : "NO"]) {
          row.insertCell().textContent = v;
        }
      }
      state.results = results;
      window.visattnPixels = pixels; // the drawn heatmap, for tests (kept off `state`: it is large)
      state.runs += 1;
      state.status = "done";
      $("status").className = "";
      $("status").textContent = `${state.adapter}, ${results.data}: ${results.layers.reduce((s, r) => s + r.gpu.selected, 0)} rows selected in ${results.layers.length} layers`;
    } catch (e) {
      fail(String(e));
    }
  }

  fillSelectors();
  for (const id of ["tau", "rho", "p", "convention", "layer", "head"]) $(id).addEventListener("input", () => serial(run));
  $("dump").addEventListener("change", (ev) => serial(async () => {
    const file = ev.target.files[0];
    if (!file) return;
    state.status = "loading";
    try {
      $("source").textContent = `${file.name}: ` + await demo.load_dump(new Uint8Array(await file.arrayBuffer()), $("sinkdims").value);
      fillSelectors();
    } catch (e) {
      fail(`${file.name}: ${e}`);
      return;
    }
    await run();
  }));
  $("picture").addEventListener("change", (ev) => serial(async () => {
    const file = ev.target.files[0];
    if (!file) return;
    try {
      const bitmap = await createImageBitmap(file);
      const c = new OffscreenCanvas(bitmap.width, bitmap.height);
      const g = c.getContext("2d");
      g.drawImage(bitmap, 0, 0);
      const img = g.getImageData(0, 0, bitmap.width, bitmap.height);
      demo.set_picture(new Uint8Array(img.data.buffer), bitmap.width);
    } catch (e) {
      fail(`${file.name}: ${e}`);
      return;
    }
    await run();
  }));
  serial(run);
}

main();
