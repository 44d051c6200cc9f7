//! `--check-kernels`: every GPU kernel of the host against the CPU reference on odd shapes
//! and random inputs, on the adapter at hand. tests/llava.rs runs it; its tolerances are there.

use crate::error::{Error, Result};
use crate::gguf::quant;
use crate::gguf::types::GgmlType;
use crate::gpu::elementwise::{Act, Elementwise, Op};
use crate::gpu::layout::Layout;
use crate::gpu::linear::{Matmul, upload};
use crate::gpu::matrix::{Matrix, TextureTiling, WeightFormat};
use crate::gpu::norm::Normalize;
use crate::gpu::rope::Rope;
use crate::random::{random, random_blocks};
use crate::reference::{self, Tensor};
use visattn::kernel::Dispatch;

/// Records `make`'s dispatch, runs it and reads `len` values of `out`, all in an error scope.
fn run_one(
    g: &visattn::util::Gpu,
    make: impl FnOnce() -> Result<Dispatch, visattn::Error>,
    out: &visattn::wgpu::Buffer,
    len: usize,
) -> Result<Vec<f32>> {
    run_all(g, || make().map(|d| vec![d]), out, len)
}

/// [`run_one`] for a kernel that records one dispatch per weight chunk.
fn run_all(
    g: &visattn::util::Gpu,
    make: impl FnOnce() -> Result<Vec<Dispatch>, visattn::Error>,
    out: &visattn::wgpu::Buffer,
    len: usize,
) -> Result<Vec<f32>> {
    visattn::scoped_blocking(&g.device, || -> Result<Vec<f32>, visattn::Error> {
        let dispatches = make()?;
        let mut enc = g.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for d in &dispatches {
                d.record(&mut pass, &[]);
            }
        }
        g.queue.submit([enc.finish()]);
        visattn::readback::read_vec(&g.device, &g.queue, out, len)
    })
    .and_then(|r| r)
    .map_err(Error::from)
}

/// The tokens the sampler picks from `row` with the draw's top_p and u, and each 1e-4 either
/// side (the kernel's f32 weights, summed in another order, may put a boundary there): greedy
/// draws have one.
fn acceptable_picks(row: &[f32], d: &crate::sampling::Draw) -> Result<Vec<u32>> {
    let mut picks = Vec::new();
    for sp in [1.0 - 1e-4, 1.0, 1.0 + 1e-4] {
        for su in [1.0 - 1e-4, 1.0, 1.0 + 1e-4] {
            let top_p = (d.top_p() * sp).min(1.0);
            let u = (d.u() * su).min(1.0 - f64::EPSILON);
            let draw = crate::sampling::Draw::new(d.temperature(), top_p, u)?;
            picks.push(crate::sampling::pick(row, &draw)?);
        }
    }
    Ok(picks)
}

/// Worst |a - b| / (|b| + 1), infinite where the GPU left a NaN.
fn worst_relative(got: &[f32], want: &[f32]) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&a, &b)| {
            if a.is_finite() {
                ((a - b).abs() / (b.abs() + 1.0)) as f64
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max)
}

/// Worst |a - b| of products over k terms with weights up to w_max, relative to the sum of
/// |terms| such a dot product reaches (k x w_max); infinite where the GPU left a NaN.
fn worst_of_products(got: &[f32], want: &[f32], k: usize, w_max: f32) -> f64 {
    got.iter()
        .zip(want)
        .map(|(&a, &b)| {
            if a.is_finite() {
                ((a - b).abs() / (k as f32 * w_max)) as f64
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max)
}

/// The float weight formats the adapter runs: f16 where it has SHADER_F16.
fn formats(g: &visattn::util::Gpu) -> Vec<WeightFormat> {
    let mut v = vec![WeightFormat::F32, WeightFormat::F16Packed];
    if g.device.features().contains(visattn::wgpu::Features::SHADER_F16) {
        v.insert(1, WeightFormat::F16);
    }
    v
}

fn kernel_name(base: &str, format: WeightFormat) -> String {
    match format {
        WeightFormat::F32 => base.to_string(),
        WeightFormat::F16 => format!("{base}_f16"),
        WeightFormat::F16Packed => format!("{base}_packed"),
        block => format!("{base}_{}", block.name().to_ascii_lowercase()),
    }
}

/// A random matrix of `format` on the device and the values it holds: floats rounded as the
/// format stores them, block formats random blocks and their CPU dequantization.
fn random_matrix(
    g: &visattn::util::Gpu,
    format: WeightFormat,
    (rows, cols): (usize, usize),
    chunk_rows: Option<usize>,
    seed: u64,
) -> Result<(Matrix, Vec<f32>)> {
    let row_bytes = format.row_bytes(cols).expect("whole blocks");
    let max_chunk = chunk_rows.map_or(g.ctx.max_binding(), |r| (r * row_bytes) as u64);
    match format.block_type() {
        None => {
            let w: Vec<f32> = random(rows * cols, seed).into_iter().map(|v| format.round(v)).collect();
            let m = Matrix::from_f32(&g.ctx, &g.queue, "w", (rows, cols), &w, format, max_chunk)?;
            Ok((m, w))
        }
        Some(ty) => {
            // Scales for values of about unit size (the quants reach 8 to 128 times the scale).
            let bytes = random_blocks(ty, rows * cols, if ty == GgmlType::BF16 { 1.0 } else { 1.0 / 64.0 }, seed);
            let w = quant::dequantize(ty, &bytes, rows * cols)?;
            let m = Matrix::upload_stored(&g.ctx, &g.queue, "w", (rows, cols), (ty, format), max_chunk, |r0, n| {
                Ok(bytes[r0 * row_bytes..(r0 + n) * row_bytes].to_vec())
            })?;
            Ok((m, w))
        }
    }
}

/// The shapes (n, m, k, bias, rows per chunk) a matmul of `format` is checked on: odd shapes,
/// W split into row chunks of odd sizes (an odd count of f16 per chunk when packed); k whole
/// blocks for the block formats.
fn matmul_shapes(format: WeightFormat) -> Vec<(usize, usize, usize, bool, Option<usize>)> {
    match format.block_type().map(|t| t.block_elems() as usize) {
        None | Some(1) => vec![
            (1, 1, 1, false, None),
            (1, 402, 64, false, None),
            (35, 160, 64, true, None),
            (63, 65, 17, true, None),
            (17, 577, 33, false, None),
            (65, 64, 160, true, None),
            (17, 577, 33, true, Some(101)),
            (21, 70, 4352, true, None),
            (66, 301, 64, true, Some(101)),
        ],
        Some(b) => vec![
            (1, 1, b, false, None),
            (1, 402, 2 * b, false, None),
            (35, 33, 3 * b, true, None),
            (17, 65, b, true, Some(7)),
            (21, 70, 4352, true, None),
        ],
    }
}

/// The texture kernels' tilings every staged matrix is checked in: x through the uniform tile
/// in decode rows 1, 2, 4, 8 and prefill tiles of 4, 2 and 1 tokens with 1 to 8 rows (4 x 8:
/// the most registers); then x shared through subgroups (where the device runs it: else these
/// fall back to the uniform tile) in tiles of 16, 8 and 4 tokens, up to 128 sums (16 x 8).
const TILINGS: [TextureTiling; 8] = [
    TextureTiling::PLAIN,
    TextureTiling {
        decode_rows: 2,
        prefill_tokens: 2,
        prefill_rows: 4,
        decode_shared: false,
        prefill_shared: false,
    },
    TextureTiling {
        decode_rows: 8,
        prefill_tokens: 4,
        prefill_rows: 8,
        decode_shared: false,
        prefill_shared: false,
    },
    TextureTiling {
        decode_rows: 4,
        prefill_tokens: 1,
        prefill_rows: 2,
        decode_shared: false,
        prefill_shared: false,
    },
    TextureTiling {
        decode_rows: 1,
        prefill_tokens: 16,
        prefill_rows: 4,
        decode_shared: true,
        prefill_shared: true,
    },
    TextureTiling {
        decode_rows: 8,
        prefill_tokens: 8,
        prefill_rows: 8,
        decode_shared: true,
        prefill_shared: true,
    },
    TextureTiling {
        decode_rows: 2,
        prefill_tokens: 4,
        prefill_rows: 1,
        decode_shared: true,
        prefill_shared: true,
    },
    TextureTiling {
        decode_rows: 4,
        prefill_tokens: 16,
        prefill_rows: 8,
        decode_shared: true,
        prefill_shared: true,
    },
];

pub fn run() -> Result<serde_json::Value> {
    let g = visattn::util::gpu_with(crate::gpu::FEATURES, None)?;
    let e = Error::from;
    let mut cases = Vec::new();
    let linear = Matmul::new(&g.ctx);
    let all_formats: Vec<WeightFormat> = formats(&g).into_iter().chain(WeightFormat::BLOCKS).collect();
    for &format in &all_formats {
        for (i, (n, m, k, bias, chunk)) in matmul_shapes(format).into_iter().enumerate() {
            let x = random(n * k, 3 * i as u64 + 1);
            // The reference multiplies the values the device holds.
            let (wm, w) = random_matrix(&g, format, (m, k), chunk, 3 * i as u64 + 2)?;
            let b = random(m, 3 * i as u64 + 3);
            let (xb, bb) = (
                upload(&g.ctx, &g.queue, "x", &x).map_err(e)?,
                upload(&g.ctx, &g.queue, "b", &b).map_err(e)?,
            );
            let w_max = w.iter().fold(1f32, |a, v| a.max(v.abs()));
            let wt = Tensor {
                shape: vec![m, k],
                data: w,
            };
            let bt = Tensor { shape: vec![m], data: b };
            let want = reference::linear(&x, n, &wt, bias.then_some(&bt));
            let worst = |got: Vec<f32>| worst_of_products(&got, &want, k, w_max);
            // A decode step's (one row of x) partial sums added in workgroup memory, and
            // through subgroups where the device has them ("sums").
            let sums: &[bool] = if n == 1 && linear.subgroup_sums { &[false, true] } else { &[false] };
            for &subgroup_sums in sums {
                let mut linear = Matmul::new(&g.ctx);
                linear.subgroup_sums = subgroup_sums;
                let out = upload(&g.ctx, &g.queue, "out", &vec![f32::NAN; n * m]).map_err(e)?;
                let got = run_all(&g, || linear.bind(n, &xb, &wm, bias.then_some(&bb), &out), &out, n * m)?;
                cases.push(serde_json::json!({
                    "kernel": kernel_name("linear", format), "n": n, "m": m, "k": k, "bias": bias,
                    "chunks": wm.chunks.len(), "error": worst(got),
                    "sums": if n > 1 { "tiles" } else if subgroup_sums { "subgroup" } else { "workgroup" },
                }));
            }
            // The same matrix staged in textures, x read as uniforms in tiles of up to 4 rows
            // (from an activation buffer: padded, UNIFORM usage), in every tiling's rows per
            // invocation (1, 2, 4, 8: rows past m included) and tokens per tile (1, 2, 4); x
            // shared through subgroups in tiles of up to 16 where the device, format and rows
            // allow it ("shared").
            let mut wm = wm;
            if wm.stage_in_texture(&g.ctx, &g.queue)? {
                let xa = crate::gpu::weights::buffer(&g.ctx, "x", n * k)?;
                g.queue.write_buffer(&xa, 0, bytemuck::cast_slice(&x));
                for tiling in TILINGS {
                    let linear = Matmul::tiled(&g.ctx, tiling);
                    let out = upload(&g.ctx, &g.queue, "out", &vec![f32::NAN; n * m]).map_err(e)?;
                    let got = run_all(&g, || linear.bind(n, &xa, &wm, bias.then_some(&bb), &out), &out, n * m)?;
                    cases.push(serde_json::json!({
                        "kernel": kernel_name("linear_texture", format), "n": n, "m": m, "k": k, "bias": bias,
                        "chunks": wm.chunks.len(), "tiling": tiling.to_string(), "error": worst(got),
                        "shared": linear.shares(n, k), "slices": linear.slices(n, k),
                    }));
                }
            }
        }
    }
    // Stacked matrices (LLaMA's gate and up as one): 5 rows on 7 in chunks of 2 rows, stacked
    // with room for 4 a chunk, so some chunks join and some stay (a seam off a word: odd rows
    // of 18-byte Q4_0 blocks and of 33 f16), then multiplied as one: in buffers, and staged in
    // textures where the rows allow.
    for (i, &(format, k)) in [
        (WeightFormat::F32, 64),
        (WeightFormat::F16Packed, 33),
        (WeightFormat::Q4_0, 32),
        (WeightFormat::Q8_0, 64),
        (WeightFormat::Q4_K, 256),
    ]
    .iter()
    .enumerate()
    {
        let (n, seed) = (3, 700 + 10 * i as u64);
        let (top, mut w) = random_matrix(&g, format, (5, k), Some(2), seed)?;
        let (below, w_below) = random_matrix(&g, format, (7, k), Some(2), seed + 1)?;
        w.extend(w_below);
        let parts = top.chunks.len() + below.chunks.len();
        let row_bytes = format.row_bytes(k).expect("whole blocks");
        let mut stacked = top.stack(below, &g.ctx, &g.queue, (4 * row_bytes) as u64)?;
        let x = random(n * k, seed + 2);
        let xb = crate::gpu::weights::buffer(&g.ctx, "x", n * k)?;
        g.queue.write_buffer(&xb, 0, bytemuck::cast_slice(&x));
        let w_max = w.iter().fold(1f32, |a, v| a.max(v.abs()));
        let want = reference::linear(
            &x,
            n,
            &Tensor {
                shape: vec![12, k],
                data: w,
            },
            None,
        );
        let worst = |got: Vec<f32>| worst_of_products(&got, &want, k, w_max);
        let mut run = |stacked: &Matrix, tiling: TextureTiling, staged: bool| -> Result<()> {
            let out = upload(&g.ctx, &g.queue, "out", &vec![f32::NAN; n * 12]).map_err(e)?;
            let got = run_all(&g, || Matmul::tiled(&g.ctx, tiling).bind(n, &xb, stacked, None, &out), &out, n * 12)?;
            cases.push(serde_json::json!({
                "kernel": "linear_stacked", "format": format.name(), "k": k, "staged": staged,
                "parts": parts, "chunks": stacked.chunks.len(),
                "chunk_rows": stacked.chunks.iter().map(|c| c.rows).collect::<Vec<_>>(),
                "error": worst(got),
            }));
            Ok(())
        };
        run(&stacked, TextureTiling::PLAIN, false)?;
        if stacked.stage_in_texture(&g.ctx, &g.queue)? {
            run(&stacked, TILINGS[5], true)?;
        }
    }
    // Matrices of different columns do not stack.
    let (a, _) = random_matrix(&g, WeightFormat::F32, (2, 8), None, 790)?;
    let (b, _) = random_matrix(&g, WeightFormat::F32, (2, 16), None, 791)?;
    let refused = a.stack(b, &g.ctx, &g.queue, g.ctx.max_binding()).is_err();
    cases.push(serde_json::json!({ "kernel": "stack_mismatch", "error": if refused { 0.0 } else { f64::INFINITY } }));
    let norm = Normalize::new(&g.ctx).map_err(e)?;
    for (i, &(rows, dim)) in [(1, 1), (1, 64), (35, 64), (63, 65), (3, 577), (70, 4096)].iter().enumerate() {
        // Rows of different scales and offsets, so both normalisations matter.
        let x: Vec<f32> = random(rows * dim, 100 + i as u64)
            .iter()
            .enumerate()
            .map(|(j, v)| v * (1 + j / dim) as f32 + (j / dim) as f32 * 0.5)
            .collect();
        let w = random(dim, 200 + i as u64);
        let b = random(dim, 250 + i as u64);
        let (xb, wb, bb) = (
            upload(&g.ctx, &g.queue, "x", &x).map_err(e)?,
            upload(&g.ctx, &g.queue, "w", &w).map_err(e)?,
            upload(&g.ctx, &g.queue, "b", &b).map_err(e)?,
        );
        let (wt, bt) = (Tensor { shape: vec![dim], data: w }, Tensor { shape: vec![dim], data: b });
        // The addend of the residual variant, on the same scale as x.
        let y: Vec<f32> = random(rows * dim, 150 + i as u64).iter().map(|v| v * 3.0).collect();
        let sum: Vec<f32> = x.iter().zip(&y).map(|(a, b)| a + b).collect();
        for (layer, residual) in [(false, false), (true, false), (false, true), (true, true)] {
            // With the residual add: out holds y in, x + y is normalised and left in x.
            let (xr, out) = if residual {
                (
                    upload(&g.ctx, &g.queue, "x", &x).map_err(e)?,
                    upload(&g.ctx, &g.queue, "out", &y).map_err(e)?,
                )
            } else {
                (xb.clone(), upload(&g.ctx, &g.queue, "out", &vec![f32::NAN; rows * dim]).map_err(e)?)
            };
            let got = run_one(
                &g,
                || norm.bind((rows, dim), 1e-5, &xr, &wb, layer.then_some(&bb), &out, residual),
                &out,
                rows * dim,
            )?;
            let input = if residual { &sum } else { &x };
            let want = if layer {
                reference::layer_norm(input, dim, &wt, &bt, 1e-5)
            } else {
                reference::rms_norm(input, dim, &wt, 1e-5)
            };
            let mut error = worst_relative(&got, &want);
            if residual {
                // The residual stream: x + y exactly as the CPU adds it.
                let stream = visattn::readback::read_vec(&g.device, &g.queue, &xr, rows * dim).map_err(Error::from)?;
                error = error.max(worst_relative(&stream, &sum));
            }
            let name = match (layer, residual) {
                (false, false) => "rms_norm",
                (true, false) => "layer_norm",
                (false, true) => "add_rms_norm",
                (true, true) => "add_layer_norm",
            };
            cases.push(serde_json::json!({ "kernel": name, "n": rows, "m": dim, "error": error }));
        }
    }
    let ew = Elementwise::new(&g.ctx).map_err(e)?;
    for (i, &len) in [1usize, 255, 256, 257, 70001].iter().enumerate() {
        let x: Vec<f32> = random(len, 300 + i as u64).iter().map(|v| v * 6.0).collect();
        let y = random(len, 400 + i as u64);
        let yb = upload(&g.ctx, &g.queue, "y", &y).map_err(e)?;
        for (op, name) in [(Op::Add, "add"), (Op::Mul, "mul")] {
            let xb = upload(&g.ctx, &g.queue, "x", &x).map_err(e)?;
            let got = run_one(&g, || ew.binary(op, len, &xb, &yb), &xb, len)?;
            let want: Vec<f32> = x
                .iter()
                .zip(&y)
                .map(|(&a, &b)| match op {
                    Op::Add => a + b,
                    Op::Mul => a * b,
                })
                .collect();
            cases.push(serde_json::json!({ "kernel": name, "n": len, "error": worst_relative(&got, &want) }));
        }
        for name in ["quick_gelu", "gelu", "silu"] {
            let xb = upload(&g.ctx, &g.queue, "x", &x).map_err(e)?;
            let got = run_one(
                &g,
                || ew.activation(Act::parse(name).expect("a known activation"), len, &xb),
                &xb,
                len,
            )?;
            let want: Vec<f32> = x.iter().map(|&v| reference::act(name, v)).collect::<Result<_, _>>()?;
            cases.push(serde_json::json!({ "kernel": name, "n": len, "error": worst_relative(&got, &want) }));
        }
    }
    // SwiGLU over stacked gate and up rows: gates in [-6, 6), ups in [-1, 1).
    for (i, &(rows, width)) in [(1usize, 1usize), (3, 85), (2, 128), (257, 1), (7, 10001)].iter().enumerate() {
        let gu: Vec<f32> = random(rows * 2 * width, 500 + i as u64)
            .iter()
            .enumerate()
            .map(|(j, v)| if j % (2 * width) < width { v * 6.0 } else { *v })
            .collect();
        let gub = upload(&g.ctx, &g.queue, "gu", &gu).map_err(e)?;
        let out = upload(&g.ctx, &g.queue, "out", &vec![f32::NAN; rows * width]).map_err(e)?;
        let got = run_one(&g, || ew.glu((rows, width), &gub, &out), &out, rows * width)?;
        let want: Vec<f32> = gu
            .chunks_exact(2 * width)
            .flat_map(|row| row[..width].iter().zip(&row[width..]))
            .map(|(&gate, &up)| reference::act("silu", gate).map(|s| s * up))
            .collect::<Result<_, _>>()?;
        cases.push(serde_json::json!({ "kernel": "glu", "n": rows, "m": width, "error": worst_relative(&got, &want) }));
    }
    // RoPE at LLaMA's theta and head dims, up to 4096 positions (where f32 angles would drift:
    // the host's table is computed in f64).
    for (i, &(heads, tokens, d, pos0, theta)) in [
        (1, 1, 4, 0, 10000.0),
        (4, 35, 16, 0, 10000.0),
        (2, 1, 16, 34, 10000.0),
        (3, 63, 128, 7, 10000.0),
        (2, 5, 128, 4090, 500000.0),
    ]
    .iter()
    .enumerate()
    {
        let rope = Rope::new(&g.ctx, &g.queue, pos0 + tokens, d, theta).map_err(e)?;
        let x = random(heads * tokens * d, 500 + i as u64);
        let xb = upload(&g.ctx, &g.queue, "x", &x).map_err(e)?;
        let got = run_one(&g, || rope.bind((heads, tokens), pos0, &xb), &xb, x.len())?;
        let mut want = x.clone();
        reference::rope(&mut want, (heads, tokens, d), pos0, theta);
        cases.push(serde_json::json!({ "kernel": "rope", "n": heads * tokens, "m": d, "error": worst_relative(&got, &want) }));
    }
    let layout = Layout::new(&g.ctx).map_err(e)?;
    for (i, &(a, b, c)) in [(1, 1, 1), (35, 4, 16), (17, 2, 16), (1, 32, 128), (63, 5, 7)].iter().enumerate() {
        let x = random(a * b * c, 600 + i as u64);
        let xb = upload(&g.ctx, &g.queue, "x", &x).map_err(e)?;
        let out = upload(&g.ctx, &g.queue, "out", &vec![f32::NAN; x.len()]).map_err(e)?;
        let got = run_one(&g, || layout.swap((a, b, c), &xb, &out), &out, x.len())?;
        let mut want = vec![0f32; x.len()];
        for (j, row) in x.chunks_exact(c).enumerate() {
            let (ia, ib) = (j / b, j % b);
            want[(ib * a + ia) * c..][..c].copy_from_slice(row);
        }
        cases.push(serde_json::json!({ "kernel": "swap", "n": a * b, "m": c, "error": worst_relative(&got, &want) }));
    }
    // The step's token picked on the device against the sampler's `pick`. Greedy ("argmax"):
    // ties (to the lowest index), -0 against +0, a row of equal values, a row at an offset, a
    // vocabulary-sized row with its maximum last; rows with a NaN or an infinity flagged.
    let sample = crate::gpu::sample::Sample::new(&g.ctx).map_err(e)?;
    let mut big = random(49152, 900);
    big[49151] = 10.0;
    let greedy = crate::sampling::Draw::GREEDY;
    let mut rows: Vec<(&str, Vec<f32>, usize, crate::sampling::Draw)> = vec![
        ("argmax", vec![1.5], 0, greedy),
        ("argmax", vec![3.0, 5.0, 5.0, 1.0], 0, greedy),
        ("argmax", vec![-0.0, 0.0, -1.0], 0, greedy),
        ("argmax", vec![-2.0; 300], 0, greedy),
        ("argmax", random(1000, 901), 17, greedy),
        ("argmax", big.clone(), 0, greedy),
        ("argmax", vec![1.0, f32::NAN, 2.0], 0, greedy),
        ("argmax", vec![f32::NEG_INFINITY, -1.0], 0, greedy),
    ];
    // Top-p ("top_p"): one token; ties within the nucleus (resolved by index: rows of 300 and
    // 2000 equal values, searched in workgroup memory and in the row); rows at an offset; a
    // vocabulary-sized row at temperatures from below f32's range (the argmax) to above it
    // (equal weights), its nucleus gathered whole (temperature 0.05) or searched in the row
    // until it narrows, top_p from a sliver (the argmax) to 1, u 0 (the top token) to just
    // under 1; draws at random; a NaN flagged.
    let peaked: Vec<f32> = big.iter().map(|v| v * 8.0).collect();
    let draw = |t: f64, p: f64, u: f64| crate::sampling::Draw::new(t, p, u);
    for (row, offset, d) in [
        (vec![1.5], 0, draw(1.0, 0.9, 0.5)?),
        (vec![3.0, 5.0, 5.0, 1.0], 0, draw(1.0, 0.95, 0.6)?),
        (vec![-2.0; 300], 0, draw(0.7, 0.5, 0.3)?),
        (vec![-2.0; 300], 0, draw(0.7, 1.0, 0.999)?),
        (vec![-2.0; 2000], 0, draw(0.7, 0.5, 0.3)?),
        (peaked.clone(), 0, draw(0.05, 0.9, 0.3)?),
        (random(1000, 902).iter().map(|v| v * 4.0).collect(), 17, draw(0.8, 0.9, 0.42)?),
        (peaked.clone(), 0, draw(1.0, 0.95, 0.77)?),
        (peaked.clone(), 0, draw(0.5, 0.5, 0.01)?),
        (peaked.clone(), 0, draw(1e-30, 0.9, 0.9)?),
        (peaked.clone(), 0, draw(1e30, 1.0, 0.999)?),
        (peaked.clone(), 0, draw(1.0, 1e-6, 0.5)?),
        (peaked.clone(), 0, draw(1.0, 0.9, 0.0)?),
        (peaked.clone(), 3, draw(2.0, 1.0, 0.999_999)?),
        (vec![0.5, 1.0, f32::NAN], 0, draw(1.0, 0.9, 0.5)?),
    ] {
        rows.push(("top_p", row, offset, d));
    }
    let mut u = crate::sampling::Sampler::new(1.0, 1.0, 903)?;
    let spread: Vec<f32> = random(5000, 904).iter().map(|v| v * 6.0).collect();
    for _ in 0..12 {
        let (a, b, c) = (u.draw().u(), u.draw().u(), u.draw().u());
        rows.push(("top_p", spread.clone(), 0, draw(0.2 + 2.0 * a, 0.05 + 0.95 * b, c)?));
    }
    for (i, (kernel, row, offset, d)) in rows.into_iter().enumerate() {
        let n = row.len() - offset;
        let rb = upload(&g.ctx, &g.queue, "row", &row).map_err(e)?;
        let out = upload(&g.ctx, &g.queue, "out", &[f32::NAN; 2]).map_err(e)?;
        let make = || {
            let step = sample.bind(&rb, offset, n, &out)?;
            step.set(&g.queue, &d);
            Ok(step.dispatch)
        };
        let got: Vec<u32> = run_one(&g, make, &out, 2)?.iter().map(|v| v.to_bits()).collect();
        // The sampler refuses a row with a value that is not finite; the kernel flags it.
        let ok = match acceptable_picks(&row[offset..], &d) {
            Ok(picks) => got[1] == 0 && picks.contains(&got[0]),
            Err(_) => got[1] == 1,
        };
        cases.push(serde_json::json!({ "kernel": kernel, "n": n, "case": i, "error": if ok { 0.0 } else { 1.0 } }));
    }
    // (tokens, dim, vocab, rows per chunk): the table split into chunks of odd sizes too; dim
    // whole blocks for the block formats.
    for &format in &all_formats {
        let b = format.block_type().map_or(1, |t| t.block_elems() as usize);
        let tables: Vec<(usize, usize, usize, Option<usize>)> = if b == 1 {
            vec![
                (1, 1, 1, None),
                (35, 64, 402, None),
                (7, 33, 5, None),
                (513, 16, 1000, None),
                (513, 17, 1000, Some(301)),
            ]
        } else {
            vec![(1, b, 1, None), (35, 2 * b, 402, None), (513, b, 1000, Some(301))]
        };
        for (i, (tokens, dim, vocab, chunk)) in tables.into_iter().enumerate() {
            let (tm, table) = random_matrix(&g, format, (vocab, dim), chunk, 700 + i as u64)?;
            let ids: Vec<u32> = (0..tokens).map(|t| ((t * 7919 + i) % vocab) as u32).collect();
            let ib = upload(&g.ctx, &g.queue, "ids", bytemuck::cast_slice(&ids)).map_err(e)?;
            let want: Vec<f32> = ids.iter().flat_map(|&id| table[id as usize * dim..][..dim].to_vec()).collect();
            // Value by value (load_w), and 8 at a time (load8) where rows are whole groups of 8.
            for by8 in [false, true].into_iter().filter(|&b| !b || dim % 8 == 0) {
                let out = upload(&g.ctx, &g.queue, "out", &vec![f32::NAN; tokens * dim]).map_err(e)?;
                let got = run_all(&g, || layout.embed_by(tokens, &ib, &tm, &out, by8), &out, tokens * dim)?;
                // Bit for bit: the lookup is the dequantization, which is exact in f32.
                let differ = got.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                cases.push(serde_json::json!({
                    "kernel": kernel_name("embed", format), "n": tokens, "m": dim, "chunks": tm.chunks.len(),
                    "by8": by8, "error": worst_relative(&got, &want), "bits_differ": differ,
                }));
            }
        }
    }
    Ok(serde_json::json!({
        "adapter": g.info.name,
        "shader_f16": g.device.features().contains(visattn::wgpu::Features::SHADER_F16),
        "subgroups": crate::gpu::linear::subgroups_usable(&g.ctx),
        "cases": cases,
    }))
}
