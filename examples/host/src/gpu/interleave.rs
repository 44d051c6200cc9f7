//! The texture layout's row groups (shaders/interleave.wgsl): a staged chunk's main plane (the
//! floats, the repacked quants, Q4_K and Q5_K's super-blocks) with its rows in groups of 8,
//! texel j of a group's rows side by side, so that the rows an invocation of the texture kernel
//! multiplies, and a SIMD group's lanes, read neighbouring texels (texture/texel.wgsl's
//! row_texel). Q2_K and Q3_K, read a word at a time through their load8, keep row after row.

use visattn::kernel::{PerWorkgroup, Storage};
use visattn::wgpu::{self, Buffer};
use visattn::{Context, kernel, uniform_block};

use super::matrix::WeightFormat;
use super::repack::Repack;

uniform_block! {
    /// WGSL `InterleaveParams`.
    pub struct InterleaveParams = "InterleaveParams" {
        rows: u32,
        per_row: u32,
        tail: u32,
        pad0: u32,
    }
}

kernel! {
    /// One texel of the grouped layout per invocation.
    pub struct InterleaveKernel, InterleaveInputs = "interleave.wgsl", include_str!("../../shaders/interleave.wgsl"), prelude "";
    overrides [];
    per_workgroup PerWorkgroup::Fixed(64);
    {
        p: uniform(InterleaveParams),
        src: storage(u32, read),
        dst: storage(u32, read_write),
    }
}

/// Rows of a group (texture/texel.wgsl's row_texel).
pub const GROUP: usize = 8;

/// Texels a row of `cols` values of `format` fills in its main plane, the part whose rows go in
/// groups; None for the formats read row after row (Q2_K, Q3_K).
pub fn texels_per_row(format: WeightFormat, cols: usize) -> Option<usize> {
    match format {
        WeightFormat::Q2_K | WeightFormat::Q3_K => None,
        _ => match Repack::for_format(format) {
            // The quants' plane: whole texels a block.
            Some(r) => Some(cols / format.block_type()?.block_elems() as usize * r.quant_texels()),
            None => Some(format.row_bytes(cols)? / 16),
        },
    }
}

/// Bytes of a chunk of `rows` rows once grouped: the main plane grows to whole groups.
pub fn grouped_bytes(bytes: u64, rows: usize, per_row: usize) -> u64 {
    bytes + ((rows.next_multiple_of(GROUP) - rows) * per_row * 16) as u64
}

/// Records the grouping of `src`'s first `bytes` (a chunk of `rows` rows of `per_row` main-plane
/// texels, then the rest) into the start of `dst` ([`grouped_bytes`] of them, STORAGE usage).
pub fn record(
    ctx: &Context,
    enc: &mut wgpu::CommandEncoder,
    (src, bytes): (&Buffer, u64),
    dst: &Buffer,
    rows: usize,
    per_row: usize,
) -> Result<(), visattn::Error> {
    let main = (rows * per_row * 16) as u64;
    let tail = bytes.saturating_sub(main).div_ceil(16);
    let out = grouped_bytes(main, rows, per_row) / 16 + tail;
    let pipeline = ctx.pipeline::<InterleaveKernel>(&[])?;
    let params = ctx.uniform_buffer(
        "interleave params",
        &InterleaveParams {
            rows: rows as u32,
            per_row: per_row as u32,
            tail: tail as u32,
            pad0: 0,
        },
    );
    fn binding(buffer: &Buffer, texels: u64) -> Storage<'_> {
        Storage::new(
            wgpu::BufferBinding {
                buffer,
                offset: 0,
                size: std::num::NonZeroU64::new(texels * 16),
            },
            (texels * 4) as usize,
        )
    }
    let dispatch = ctx.bind::<InterleaveKernel>(
        &pipeline,
        InterleaveInputs {
            p: params.as_entire_buffer_binding(),
            src: binding(src, main / 16 + tail),
            dst: binding(dst, out),
        },
        out as u32,
    )?;
    let mut pass = enc.begin_compute_pass(&Default::default());
    dispatch.record(&mut pass, &[]);
    Ok(())
}
