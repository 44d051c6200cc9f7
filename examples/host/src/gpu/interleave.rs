//! The texture layout's row groups (shaders/interleave.wgsl): a staged chunk's main plane (the
//! floats, the repacked quants, Q4_K and Q5_K's super-blocks) with its rows in groups of 8,
//! texel j of a group's rows side by side, so that the rows an invocation of the texture kernel
//! multiplies, and a SIMD group's lanes, read neighbouring texels (texture/texel.wgsl's
//! row_texel), and the f16 scale planes of Q4_0, Q8_0 and Q6_K grouped the same way (one texel
//! a group and block: texture/half_scales.wgsl). Q2_K and Q3_K, read a word at a time through
//! their load8, keep row after row; so do the other formats' scale planes.

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
        scales: u32,
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

/// Blocks a row of `cols` values of `format` holds where its scale plane (one f16 d a block)
/// goes in groups too: Q4_0, Q8_0, Q6_K.
pub fn grouped_scales(format: WeightFormat, cols: usize) -> Option<usize> {
    match format {
        WeightFormat::Q4_0 | WeightFormat::Q8_0 | WeightFormat::Q6_K => Some(cols / format.block_type()?.block_elems() as usize),
        _ => None,
    }
}

/// How a chunk's planes go into the texture ([`record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grouping {
    /// The chunk's rows.
    pub rows: usize,
    /// Texels a row fills in the main plane ([`texels_per_row`]).
    pub per_row: usize,
    /// Blocks a row, where the scale plane goes in groups too ([`grouped_scales`]).
    pub scales: Option<usize>,
}

impl Grouping {
    /// Texels of the grouped layout of a chunk whose planes were `bytes`: the main plane grown
    /// to whole groups of rows, then the grouped scales or the rest as it was.
    pub fn texels(&self, bytes: u64) -> u64 {
        let groups = self.rows.div_ceil(GROUP);
        let main = (groups * GROUP * self.per_row) as u64;
        match self.scales {
            Some(blocks) => main + (groups * blocks) as u64,
            None => main + bytes.saturating_sub((self.rows * self.per_row * 16) as u64).div_ceil(16),
        }
    }
}

/// Records the grouping of `src`'s first `bytes` (a chunk's planes row after row: the main
/// plane, then the rest) into the start of `dst` ([`Grouping::texels`] of them, STORAGE usage).
pub fn record(
    ctx: &Context,
    enc: &mut wgpu::CommandEncoder,
    (src, bytes): (&Buffer, u64),
    dst: &Buffer,
    g: Grouping,
) -> Result<(), visattn::Error> {
    let (rows, per_row) = (g.rows, g.per_row);
    let main = (rows * per_row * 16) as u64;
    let tail = bytes.saturating_sub(main).div_ceil(16);
    let out = g.texels(bytes);
    let pipeline = ctx.pipeline::<InterleaveKernel>(&[])?;
    let params = ctx.uniform_buffer(
        "interleave params",
        &InterleaveParams {
            rows: rows as u32,
            per_row: per_row as u32,
            tail: tail as u32,
            scales: g.scales.unwrap_or(0) as u32,
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
