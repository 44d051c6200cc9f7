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
// Dispatch: workgroups of 64 (8 x 8 invocations), one per 32 x 32 tile of out, tiles row-major
//   over ceil(m / 32) columns, n = ceil(n / 32) x ceil(m / 32) on a 2-D grid
//   (min(n, 65535), ceil(n / 65535), 1). Each invocation computes 4 x 4 outputs in registers
//   (rows lid.y x 4 .., columns lid.x x 4 ..) from a vec4 of x and one of W a step: 16 FMAs
//   for 2 workgroup-memory loads, where 2 x 2 outputs took 4 for 4. x and W go through
//   workgroup memory in tiles of 32 rows x 16 of k, stored k-major as vec4 of 4 rows (4 KiB);
//   each invocation loads 8 values of W (load8: a block format's scale once per 8) and 8 of
//   x a tile.

const TILE: u32 = 32u;
const KT: u32 = 16u;

// Tile values (row r, k c) at [c * 8 + r / 4][r % 4]: a step over k reads 4 rows as one vec4.
var<workgroup> xs: array<vec4<f32>, 128>;
var<workgroup> ws: array<vec4<f32>, 128>;

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
    // What this invocation loads a tile: row r of W's tile and of x's, values c0 .. c0 + 8.
    let r = flat / 2u;
    let c0 = (flat % 2u) * 8u;
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    for (var k0 = 0u; k0 < p.k; k0 += KT) {
        let kk = k0 + c0;
        let wr = col0 + r;
        if (live && wr < p.m && kk + 8u <= p.k) {
            let v = load8(wr * p.k + kk);
            for (var j = 0u; j < 8u; j++) {
                ws[(c0 + j) * 8u + r / 4u][r % 4u] = v[j];
            }
        } else {
            // A tile's edge element by element (zeros past it).
            for (var j = 0u; j < 8u; j++) {
                let ok = live && wr < p.m && kk + j < p.k;
                ws[(c0 + j) * 8u + r / 4u][r % 4u] = select(0.0, load_w(min(wr, p.m - 1u) * p.k + min(kk + j, p.k - 1u)), ok);
            }
        }
        let xr = row0 + r;
        for (var j = 0u; j < 8u; j++) {
            let ok = live && xr < p.n && kk + j < p.k;
            xs[(c0 + j) * 8u + r / 4u][r % 4u] = select(0.0, x[min(xr, p.n - 1u) * p.k + min(kk + j, p.k - 1u)], ok);
        }
        workgroupBarrier();
        for (var c = 0u; c < KT; c++) {
            let xv = xs[c * 8u + lid.y];
            let wv = ws[c * 8u + lid.x];
            acc[0] = fma(vec4<f32>(xv.x), wv, acc[0]);
            acc[1] = fma(vec4<f32>(xv.y), wv, acc[1]);
            acc[2] = fma(vec4<f32>(xv.z), wv, acc[2]);
            acc[3] = fma(vec4<f32>(xv.w), wv, acc[3]);
        }
        workgroupBarrier();
    }
    if (!live) {
        return;
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let c = col0 + lid.x * 4u + j;
            if (row < p.n && c < p.m) {
                out[row * p.ldo + p.col0 + c] = acc[i][j] + select(0.0, b[p.col0 + c], p.bias != 0u);
            }
        }
    }
}
