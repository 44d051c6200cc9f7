//! The bench's texture read and its floor of a product through a texture
//! (examples/host/shaders/read_texture.wgsl, FMAS 0 and above) do the work they stand for:
//! every texel read, FMAS FMAs each, no more and no fewer. Their partial sums against the same
//! sums and FMAs on the CPU, for FMA counts that exercise each part of the unrolled body (whole
//! rounds of 8 chains, the chains left, the single FMAs), over a texel count no workgroup size
//! divides. And the FMA counts the bench asks for each format.

mod support;

use visattn::kernel::Storage;
use visattn_host::gpu::bandwidth::{ReadParams, ReadTexture, ReadTextureInputs, fmas_per_texel};
use visattn_host::gpu::matrix::{TEXELS_PER_ROW, WeightFormat, weight_texture};

/// The texels lane `lane` of a workgroup reads from its share [begin, end), in order: lanes
/// interleaved (64 texels a step), or in streams (each lane its own run of ceil(share / 64)).
fn lane_texels(begin: usize, end: usize, lane: usize, streams: bool) -> Vec<usize> {
    if streams {
        let span = (end - begin).div_ceil(64);
        let first = (begin + lane * span).min(end);
        (first..(first + span).min(end)).collect()
    } else {
        (begin + lane..end).step_by(64).collect()
    }
}

/// The floor's partial sum of one invocation over its texels, in its order (f32, fused
/// multiply-adds).
fn floor_sum(words: &[[u32; 4]], texels: &[usize], lane: usize, fmas: u32) -> (f32, f64) {
    let f = lane as f32 * 1e-3;
    let x0 = [f, f + 0.125, f + 0.25, f + 0.375];
    let scaled = |s: f32| x0.map(|v| v * s);
    let x1 = scaled(0.5);
    let xs = [
        x0,
        x1,
        scaled(0.25),
        scaled(0.125),
        x0.map(|v| v - 0.5),
        x1.map(|v| v - 0.5),
        scaled(0.25).map(|v| v - 0.5),
        scaled(0.125).map(|v| v - 0.5),
    ];
    let mut a = [0f32; 8];
    // The sum of |terms|, for the tolerance.
    let mut magnitude = 0f64;
    let (chains, single) = ((fmas / 4) as usize, (fmas % 4) as usize);
    for q in texels.iter().map(|&t| &words[t]) {
        let w = q.map(|u| f32::from_bits((u & 0x007f_ffff) | 0x3f80_0000));
        // chain(w, x, a): w.w x.w first, w.x x.x last.
        let mut chain = |i: usize, x: [f32; 4]| {
            for c in (0..4).rev() {
                a[i] = w[c].mul_add(x[c], a[i]);
                magnitude += (w[c] * x[c]).abs() as f64;
            }
        };
        for _ in 0..chains / 8 {
            for (i, &x) in xs.iter().enumerate() {
                chain(i, x);
            }
        }
        for (i, &x) in xs.iter().enumerate().take(chains % 8) {
            chain(i, x);
        }
        // The single FMAs: w.x, w.y, w.z in that order into the last sum.
        for c in 0..single {
            a[7] = w[c].mul_add(xs[7][c], a[7]);
            magnitude += (w[c] * xs[7][c]).abs() as f64;
        }
    }
    (((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])), magnitude)
}

#[test]
fn the_floor_probe_does_its_fmas() {
    let g = support::gpu::gpu();
    let height = 3u32;
    let texels = (TEXELS_PER_ROW * height - 5) as usize;
    let per_workgroup = 640usize;
    let mut words = vec![[0u32; 4]; (TEXELS_PER_ROW * height) as usize];
    let mut s = 0x9e37_79b9u32;
    for w in words.iter_mut().flatten() {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        *w = s;
    }
    let texture = weight_texture(&g.device, "floor probe test", height);
    g.queue.write_texture(
        texture.as_image_copy(),
        bytemuck::cast_slice(&words),
        wgpu::TexelCopyBufferLayout {
            offset: 0,
            bytes_per_row: Some(TEXELS_PER_ROW * 16),
            rows_per_image: None,
        },
        texture.size(),
    );
    let view = texture.create_view(&Default::default());
    let groups = texels.div_ceil(per_workgroup);
    let dst = g
        .ctx
        .storage_buffer("floor sums", (groups * 64 * 4) as u64, wgpu::BufferUsages::empty())
        .unwrap();
    for streams in [false, true] {
        check_orders(&g, (&view, &dst), &words, (texels, per_workgroup, groups), streams);
    }
}

/// The probes with the lanes in one order (`streams`: each lane its own run).
fn check_orders(
    g: &visattn::util::Gpu,
    (view, dst): (&wgpu::TextureView, &wgpu::Buffer),
    words: &[[u32; 4]],
    (texels, per_workgroup, groups): (usize, usize, usize),
    streams: bool,
) {
    let params = g.ctx.uniform_buffer(
        "floor params",
        &ReadParams {
            texels: texels as u32,
            per_workgroup: per_workgroup as u32,
            streams: streams as u32,
            pad1: 0,
        },
    );
    // The plain read, then every count to 72 (every number of chains left after the rounds, 0
    // to 7, with every number of single FMAs, 0 to 3, and 0, 1 or 2 rounds), and a Q4 prefill
    // tile's 113 and 227.
    for fmas in (0u32..=72).chain([113, 227]) {
        let pipeline = g.ctx.pipeline::<ReadTexture>(&[("FMAS", fmas as f64)]).unwrap();
        let d = g
            .ctx
            .bind::<ReadTexture>(
                &pipeline,
                ReadTextureInputs {
                    p: params.as_entire_buffer_binding(),
                    src: view,
                    dst: Storage::whole(dst),
                },
                groups as u32,
            )
            .unwrap();
        let mut enc = g.device.create_command_encoder(&Default::default());
        d.record(&mut enc.begin_compute_pass(&Default::default()), &[]);
        g.queue.submit([enc.finish()]);
        let got: Vec<u32> = visattn::readback::read_vec(&g.device, &g.queue, dst, groups * 64).unwrap();
        for group in 0..groups {
            let begin = group * per_workgroup;
            let end = (begin + per_workgroup).min(texels);
            for lane in 0..64 {
                let mine = lane_texels(begin, end, lane, streams);
                if fmas == 0 {
                    // The read: the lane's texels summed word by word (wrapping), xor-folded.
                    let s = mine
                        .iter()
                        .fold([0u32; 4], |s, &t| [0, 1, 2, 3].map(|c| s[c].wrapping_add(words[t][c])));
                    assert_eq!(
                        got[group * 64 + lane],
                        s[0] ^ s[1] ^ s[2] ^ s[3],
                        "read (streams {streams}), workgroup {group}, lane {lane}"
                    );
                    continue;
                }
                let (want, magnitude) = floor_sum(words, &mine, lane, fmas);
                let have = f32::from_bits(got[group * 64 + lane]);
                // f32 sums in the kernel's order: within a few ulps of the terms' magnitude.
                assert!(
                    ((have - want).abs() as f64) <= 1e-6 * magnitude,
                    "FMAS {fmas} (streams {streams}), workgroup {group}, lane {lane}: {have} against {want} (terms' magnitude {magnitude})"
                );
            }
        }
    }
}

#[test]
fn the_floor_asks_the_fmas_a_texel_holds() {
    // 16 bytes of weights: f32 4, f16 8, Q8_0 (34 bytes a block of 32) 15, Q4_0 (18 bytes a 32)
    // and Q4_K (144 bytes a 256) 28: rounded down; a prefill tile of 4 tokens 4 times as many.
    let cases = [
        (WeightFormat::F32, 4),
        (WeightFormat::F16, 8),
        (WeightFormat::Q8_0, 15),
        (WeightFormat::Q4_0, 28),
        (WeightFormat::Q4_K, 28),
    ];
    for (format, fmas) in cases {
        assert_eq!(fmas_per_texel(format, 1), Some(fmas), "{}", format.name());
    }
    assert_eq!(fmas_per_texel(WeightFormat::Q4_0, 4), Some(113));
    assert_eq!(fmas_per_texel(WeightFormat::F16, 4), Some(32));
}
