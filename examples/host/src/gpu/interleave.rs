//! The texture layout's row groups (shaders/interleave.wgsl): a staged chunk's main plane (the
//! floats, the repacked quants, Q4_K and Q5_K's super-blocks) with its rows in groups of 8,
//! texel j of a group's rows side by side, so that the rows an invocation of the texture kernel
//! multiplies, and a SIMD group's lanes, read neighbouring texels (texture/texel.wgsl's
//! row_texel), and the scale planes of Q4_0, Q8_0 and Q6_K (an f16 d a block: one texel a group
//! and block, texture/half_scales.wgsl) and Q4_1 (a (d, m) word a block: two texels a group and
//! block, texture/dm_words.wgsl) grouped the same way. Q2_K and Q3_K, read a word at a time
//! through their load8, keep row after row; so do Q5_0 and Q5_1's planes after their quants.

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
        words: u32,
        pad0: u32,
        pad1: u32,
        pad2: u32,
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

/// A scale plane that goes in groups too: one scale a block of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupedScales {
    /// Blocks a row.
    pub blocks: usize,
    /// A scale is a word (Q4_1's (d, m) pair), not an f16 half (Q4_0, Q8_0, Q6_K's d).
    pub words: bool,
}

/// The scale plane of a row of `cols` values of `format`, where it goes in groups.
pub fn grouped_scales(format: WeightFormat, cols: usize) -> Option<GroupedScales> {
    let words = match format {
        WeightFormat::Q4_0 | WeightFormat::Q8_0 | WeightFormat::Q6_K => false,
        WeightFormat::Q4_1 => true,
        _ => return None,
    };
    let blocks = cols / format.block_type()?.block_elems() as usize;
    Some(GroupedScales { blocks, words })
}

/// How a chunk's planes go into the texture ([`record`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grouping {
    /// The chunk's rows.
    pub rows: usize,
    /// Texels a row fills in the main plane ([`texels_per_row`]).
    pub per_row: usize,
    /// Where the scale plane goes in groups too ([`grouped_scales`]).
    pub scales: Option<GroupedScales>,
}

impl Grouping {
    /// The grouping of a chunk of `rows` rows of `cols` values of `format`; None for the formats
    /// read row after row.
    pub fn of(format: WeightFormat, cols: usize, rows: usize) -> Option<Self> {
        Some(Self {
            rows,
            per_row: texels_per_row(format, cols)?,
            scales: grouped_scales(format, cols),
        })
    }

    /// Texels after the main plane in a chunk whose planes, row after row, were `bytes`.
    fn tail(&self, bytes: u64) -> u64 {
        bytes.saturating_sub((self.rows * self.per_row * 16) as u64).div_ceil(16)
    }

    /// Texels of the grouped layout of a chunk whose planes were `bytes`: the main plane grown
    /// to whole groups of rows, then the grouped scales or the rest as it was.
    pub fn texels(&self, bytes: u64) -> u64 {
        let groups = self.rows.div_ceil(GROUP);
        let main = (groups * GROUP * self.per_row) as u64;
        match self.scales {
            Some(s) => main + (groups * s.blocks * if s.words { 2 } else { 1 }) as u64,
            None => main + self.tail(bytes),
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
    let tail = g.tail(bytes);
    let out = g.texels(bytes);
    let pipeline = ctx.pipeline::<InterleaveKernel>(&[])?;
    let params = ctx.uniform_buffer(
        "interleave params",
        &InterleaveParams {
            rows: rows as u32,
            per_row: per_row as u32,
            tail: tail as u32,
            scales: g.scales.map_or(0, |s| s.blocks) as u32,
            words: g.scales.is_some_and(|s| s.words) as u32,
            pad0: 0,
            pad1: 0,
            pad2: 0,
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
            src: binding(src, (rows * per_row) as u64 + tail),
            dst: binding(dst, out),
        },
        out as u32,
    )?;
    let mut pass = enc.begin_compute_pass(&Default::default());
    dispatch.record(&mut pass, &[]);
    Ok(())
}
