// heatmap_gather.wgsl: one attention row per patch for heatmap.wgsl, straight from the GPU
// buffers VAR works on: for every image patch, the row's attention on it before and after VAR,
// for one head or averaged over the heads whose row was selected (all heads when none was),
// plus the largest value (the shared colour scale) and the patch's sink flag. A mean over
// layers gathers each layer in turn with weight 1 / layers, the first writing and the rest
// adding (accumulate); the scale is the largest running sum, which is the final one's (the
// values are >= 0, so the sums only grow).
//
// Bindings (group 0):
//   0  uniform          params: GatherParams   heads, keys, image_start, grid, head (or ALL),
//                                              weight, accumulate
//   1  storage, read    before: array<f32>     [H, K]: the row of every head before VAR
//   2  storage, read    after: array<f32>      [H, K]: the same row after VAR
//   3  storage, read    selected: array<u32>   [H]: the row's selected flag per head
//   4  storage, read    classes: array<u32>    [K]: bit 1 = sink
//   5  storage, rw      values: array<f32>     [2, grid x grid]
//   6  storage, rw      scale: array<atomic<u32>> [1], max value's bits; zero it first
//   7  storage, rw      sinks: array<u32>      [grid x grid], 1 = a sink (in any layer gathered)
// Dispatch: ceil(grid x grid / 64) workgroups of 64 (one invocation per patch).

struct GatherParams {
    heads: u32,
    keys: u32,
    image_start: u32,
    grid: u32,
    head: u32,
    weight: f32,
    accumulate: u32,
    pad0: u32,
}

const ALL: u32 = 0xffffffffu;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let cells = params.grid * params.grid;
    let p = id.x;
    if (p >= cells) {
        return;
    }
    let key = params.image_start + p;
    var b = 0.0;
    var a = 0.0;
    if (params.head != ALL) {
        b = before[params.head * params.keys + key];
        a = after[params.head * params.keys + key];
    } else {
        var count = 0u;
        for (var h = 0u; h < params.heads; h++) {
            count += selected[h];
        }
        var n = 0.0;
        for (var h = 0u; h < params.heads; h++) {
            if (count == 0u || selected[h] != 0u) {
                b += before[h * params.keys + key];
                a += after[h * params.keys + key];
                n += 1.0;
            }
        }
        b /= n;
        a /= n;
    }
    b *= params.weight;
    a *= params.weight;
    if (params.accumulate != 0u) {
        b += values[p];
        a += values[cells + p];
    }
    values[p] = b;
    values[cells + p] = a;
    // Over layers: a sink in any of them.
    let sink = (classes[key] >> 1u) & 1u;
    sinks[p] = select(sink, sinks[p] | sink, params.accumulate != 0u);
    atomicMax(&scale[0], bitcast<u32>(max(a, b)));
}
