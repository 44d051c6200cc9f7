//! Block-format chunks into the planes the texture kernel reads (shaders/repack.wgsl): Q4_0,
//! Q4_1, Q5_0, Q5_1, Q8_0 and Q6_K blocks are 18, 20, 22, 24, 34 and 210 bytes, off texel
//! boundaries as the file stores them; repacked, each block's quants (Q6_K's quants and scales)
//! start a texel and the scales (Q5's after a plane of their fifth bits) follow the chunk's
//! quants: the file's bytes again, rounded to whole texels between the planes.

use std::sync::Arc;

use visattn::kernel::{PerWorkgroup, Pipeline, Storage};
use visattn::wgpu::{self, Buffer};
use visattn::{Context, kernel, uniform_block};

use super::matrix::WeightFormat;

uniform_block! {
    /// WGSL `RepackParams`.
    pub struct RepackParams = "RepackParams" {
        blocks: u32,
        pad0: u32,
        pad1: u32,
        pad2: u32,
    }
}

/// The prelude of a repack variant: storage words, byte reads, the format's pair mover.
macro_rules! repack_prelude {
    ($file:literal) => {
        concat!(
            include_str!("../../shaders/formats/word_buffer.wgsl"),
            include_str!("../../shaders/formats/bytes.wgsl"),
            include_str!(concat!("../../shaders/repack/", $file))
        )
    };
}

kernel! {
    /// One pair of blocks per invocation into planes; one variant per repacked format.
    pub struct RepackKernel, RepackInputs, RepackVariant = include_str!("../../shaders/repack.wgsl");
    variants {
        #[allow(non_camel_case_types)]
        Q4_0 = "repack.q4_0.wgsl", prelude repack_prelude!("q4_0.wgsl"), elem u32;
        #[allow(non_camel_case_types)]
        Q4_1 = "repack.q4_1.wgsl", prelude repack_prelude!("q4_1.wgsl"), elem u32;
        #[allow(non_camel_case_types)]
        Q8_0 = "repack.q8_0.wgsl", prelude repack_prelude!("q8_0.wgsl"), elem u32;
        #[allow(non_camel_case_types)]
        Q6_K = "repack.q6_k.wgsl", prelude repack_prelude!("q6_k.wgsl"), elem u32;
        #[allow(non_camel_case_types)]
        Q5_0 = "repack.q5_0.wgsl", prelude repack_prelude!("q5_0.wgsl"), elem u32;
        #[allow(non_camel_case_types)]
        Q5_1 = "repack.q5_1.wgsl", prelude repack_prelude!("q5_1.wgsl"), elem u32;
    }
    overrides [];
    per_workgroup PerWorkgroup::Fixed(64);
    {
        p: uniform(RepackParams),
        w: storage(u32, read),
        out: storage(u32, read_write),
    }
}

/// The repack of one format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repack {
    variant: RepackVariant,
    /// Bytes of a block's quants in the planes, and of its scale (Q5's qh plane aside).
    quant_bytes: u64,
    scale_bytes: u64,
}

impl Repack {
    /// The repack of `format`'s blocks, for the formats the texture kernel reads in planes.
    pub fn for_format(format: WeightFormat) -> Option<Self> {
        let (variant, quant_bytes, scale_bytes) = match format {
            WeightFormat::Q4_0 => (RepackVariant::Q4_0, 16, 2),
            WeightFormat::Q4_1 => (RepackVariant::Q4_1, 16, 4),
            WeightFormat::Q8_0 => (RepackVariant::Q8_0, 32, 2),
            WeightFormat::Q6_K => (RepackVariant::Q6_K, 208, 2),
            WeightFormat::Q5_0 => (RepackVariant::Q5_0, 16, 2),
            WeightFormat::Q5_1 => (RepackVariant::Q5_1, 16, 4),
            _ => return None,
        };
        Some(Self {
            variant,
            quant_bytes,
            scale_bytes,
        })
    }

    /// Texels a block's quants fill in their plane (the plane texture/texel.wgsl's row_texel
    /// groups): 1 for Q4_0, Q4_1, Q5_0 and Q5_1, 2 for Q8_0, 13 for Q6_K.
    pub fn quant_texels(&self) -> usize {
        (self.quant_bytes / 16) as usize
    }

    /// Bytes of the planes of `blocks` blocks (the scales in whole words; Q5's qh plane in
    /// whole texels before them): the file's bytes but for that rounding.
    pub fn bytes(&self, blocks: usize) -> u64 {
        let blocks = blocks as u64;
        let qh = match self.variant {
            RepackVariant::Q5_0 | RepackVariant::Q5_1 => blocks.div_ceil(4) * 16,
            _ => 0,
        };
        blocks * self.quant_bytes + qh + (blocks * self.scale_bytes).next_multiple_of(4)
    }

    fn pipeline(&self, ctx: &Context) -> Result<Arc<Pipeline>, visattn::Error> {
        ctx.pipeline_variant::<RepackKernel>(self.variant, &[])
    }

    /// Records the repack of `blocks` blocks from `src` (the chunk as stored) into the start of
    /// `dst` (STORAGE usage, at least [`Self::bytes`]).
    pub fn record(
        &self,
        ctx: &Context,
        enc: &mut wgpu::CommandEncoder,
        src: &Buffer,
        dst: &Buffer,
        blocks: usize,
    ) -> Result<(), visattn::Error> {
        let pipeline = self.pipeline(ctx)?;
        let params = ctx.uniform_buffer(
            "repack params",
            &RepackParams {
                blocks: blocks as u32,
                pad0: 0,
                pad1: 0,
                pad2: 0,
            },
        );
        let planes = self.bytes(blocks);
        let dispatch = ctx.bind::<RepackKernel>(
            &pipeline,
            RepackInputs {
                p: params.as_entire_buffer_binding(),
                w: Storage::new(src.as_entire_buffer_binding(), 1),
                out: Storage::new(
                    wgpu::BufferBinding {
                        buffer: dst,
                        offset: 0,
                        size: std::num::NonZeroU64::new(planes),
                    },
                    (planes / 4) as usize,
                ),
            },
            blocks.div_ceil(2) as u32,
        )?;
        let mut pass = enc.begin_compute_pass(&Default::default());
        dispatch.record(&mut pass, &[]);
        Ok(())
    }
}
