// linear.wgsl: out = x W^T + b, the model host's matmul: x [n, k], W [m, k] (rows of a HF
// Linear's weight as stored, or one row chunk of it), b [m], out [n, ldo] written at columns
// col0 .. col0 + m, f32 accumulation. W's element type and load_w / load8 are the declaration's
// variant: f32, f16, f16 pairs in u32, or a GGML block format read as u32 words
// (shaders/formats/).
//
// Bindings (group 0, generated from the declaration in examples/host/src/gpu/linear.rs):
//   0  uniform          p: LinearParams      n, m, k, bias, ldo, col0
//   1  storage, read    x: array<f32>        [n, k]
//   2  storage, read    w: array<elem>       [m, k] in the variant's storage
//   3  storage, read    b: array<f32>        [col0 + m] (any 1-element buffer when p.bias is 0)
//   4  storage, rw      out: array<f32>      [n, ldo]
// Dispatch: workgroups of 64 (8 x 8 invocations), one per 16 x 16 tile of out, tiles row-major
//   over ceil(m / 16) columns, n = ceil(n / 16) x ceil(m / 16) on a 2-D grid
//   (min(n, 65535), ceil(n / 65535), 1). Each invocation computes 2 x 2 outputs; x and W go
//   through workgroup memory in 16 x 16 tiles of k: 2 KiB, W's read 8 values at a time
//   (load8: a block format's scale once per 8).

struct LinearParams {
    n: u32,
    m: u32,
    k: u32,
    bias: u32,
    ldo: u32,
    col0: u32,
    t0: u32,
    k0: u32,
    kn: u32,
    pad1: u32,
    pad2: u32,
    pad3: u32,
}

const TILE: u32 = 16u;

var<workgroup> xs: array<f32, 256>;
var<workgroup> ws: array<f32, 256>;

@compute @workgroup_size(8, 8)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let tiles_m = (p.m + TILE - 1u) / TILE;
    let tile = wg.x + wg.y * nwg.x;
    let tiles = tiles_m * ((p.n + TILE - 1u) / TILE);
    // Workgroups past the end still share the barriers; they write nothing.
    let live = tile < tiles;
    let row0 = (tile / tiles_m) * TILE;
    let col0 = (tile % tiles_m) * TILE;
    let flat = lid.y * 8u + lid.x;
    var acc = array<f32, 4>(0.0, 0.0, 0.0, 0.0);
    for (var k0 = 0u; k0 < p.k; k0 += TILE) {
        // 256 elements of each tile: invocations 0..32 load W's, 8 each through load8 (a
        // block format's scale read once), 32..64 x's; a tile's edge element by element.
        let half = flat / 32u;
        let r = (flat % 32u) / 2u;
        let c0 = (flat % 2u) * 8u;
        let kk = k0 + c0;
        if (half == 0u) {
            let wr = col0 + r;
            if (live && wr < p.m && kk + 8u <= p.k) {
                let v = load8(wr * p.k + kk);
                for (var j = 0u; j < 8u; j++) {
                    ws[r * TILE + c0 + j] = v[j];
                }
            } else {
                for (var j = 0u; j < 8u; j++) {
                    let ok = live && wr < p.m && kk + j < p.k;
                    ws[r * TILE + c0 + j] = select(0.0, load_w(min(wr, p.m - 1u) * p.k + min(kk + j, p.k - 1u)), ok);
                }
            }
        } else {
            let xr = row0 + r;
            for (var j = 0u; j < 8u; j++) {
                let ok = live && xr < p.n && kk + j < p.k;
                xs[r * TILE + c0 + j] = select(0.0, x[min(xr, p.n - 1u) * p.k + min(kk + j, p.k - 1u)], ok);
            }
        }
        workgroupBarrier();
        for (var c = 0u; c < TILE; c++) {
            let x0 = xs[(lid.y * 2u) * TILE + c];
            let x1 = xs[(lid.y * 2u + 1u) * TILE + c];
            let w0 = ws[(lid.x * 2u) * TILE + c];
            let w1 = ws[(lid.x * 2u + 1u) * TILE + c];
            acc[0] += x0 * w0;
            acc[1] += x0 * w1;
            acc[2] += x1 * w0;
            acc[3] += x1 * w1;
        }
        workgroupBarrier();
    }
    if (!live) {
        return;
    }
    for (var e = 0u; e < 4u; e++) {
        let r = row0 + lid.y * 2u + e / 2u;
        let c = col0 + lid.x * 2u + e % 2u;
        if (r < p.n && c < p.m) {
            out[r * p.ldo + p.col0 + c] = acc[e] + select(0.0, b[p.col0 + c], p.bias != 0u);
        }
    }
}
