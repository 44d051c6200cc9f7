//! Staging a binding's probability rows in a texture for the row kernel
//! ([`KernelSettings::stage_in_texture`](crate::KernelSettings)): the layout the kernel reads
//! (`PRELUDE_ROWS_STAGED` in src/shaders.rs), the copies that fill it, and the textures a state
//! shares among its bindings.
//!
//! Why: lavapipe loads storage one SIMD lane at a time (a loop with a branch and a bounds check
//! per float), 5x slower than it fetches texels (a vector gather) and slower than a copy into a
//! texture (a memcpy per texture row). The rows go through the texture; the edits go back to
//! the caller's buffer, so the texture is scratch, shared by every binding of a state.

use std::sync::Mutex;

use wgpu::{Buffer, CommandEncoder, Texture, TextureView};

/// Texels per texture row (`STAGE_WIDTH` in the prelude); 64 KiB, a multiple of the 256-byte
/// row pitch copies need.
pub(crate) const STAGE_WIDTH: u32 = 4096;
const TEXEL_BYTES: u64 = 16;
/// `wgpu::COPY_BYTES_PER_ROW_ALIGNMENT`: a copy's row pitch is a multiple of it.
const COPY_PITCH_ALIGNMENT: u64 = wgpu::COPY_BYTES_PER_ROW_ALIGNMENT as u64;

/// Where each bound head's rows `row_start..Q` sit in the texture: 4 keys a texel, consecutive,
/// each head from a texture row of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StagingLayout {
    pub heads: usize,
    pub queries: usize,
    /// K, a multiple of 4.
    pub tokens: usize,
}

impl StagingLayout {
    fn texels_per_head(&self, row_start: usize) -> u64 {
        ((self.queries - row_start) * self.tokens / 4) as u64
    }

    fn rows_per_head(&self, row_start: usize) -> u32 {
        self.texels_per_head(row_start).div_ceil(STAGE_WIDTH as u64) as u32
    }

    /// Texture rows the layout needs at its largest (every row visited).
    pub fn height(&self) -> u64 {
        self.heads as u64 * self.rows_per_head(0) as u64
    }

    /// Records the copies of rows `row_start..` of every head from `buffer` (the binding's
    /// range starts at `offset`, a multiple of 16) into `texture`. One copy where the heads'
    /// blocks form one rectangle (whole texture rows back to back, or one row each at a head
    /// stride a copy may step by), else per head its whole texture rows, then the part of a row
    /// left: lavapipe pays for each copy command.
    pub fn copy(&self, encoder: &mut CommandEncoder, buffer: &Buffer, offset: u64, texture: &Texture, row_start: usize) {
        let texels = self.texels_per_head(row_start);
        let rows_per_head = self.rows_per_head(row_start);
        let width = STAGE_WIDTH as u64;
        let pitch = width * TEXEL_BYTES;
        let head_bytes = (self.queries * self.tokens * 4) as u64;
        let first = offset + (row_start * self.tokens * 4) as u64;
        let heads = self.heads as u32;
        let mut copy = |at: u64, pitch: u64, y: u32, width: u32, height: u32| {
            encoder.copy_buffer_to_texture(
                wgpu::TexelCopyBufferInfo {
                    buffer,
                    layout: wgpu::TexelCopyBufferLayout {
                        offset: at,
                        bytes_per_row: Some(pitch as u32),
                        rows_per_image: None,
                    },
                },
                wgpu::TexelCopyTextureInfo {
                    texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d { x: 0, y, z: 0 },
                    aspect: wgpu::TextureAspect::All,
                },
                wgpu::Extent3d {
                    width,
                    height,
                    depth_or_array_layers: 1,
                },
            );
        };
        if row_start == 0 && texels % width == 0 {
            copy(first, pitch, 0, STAGE_WIDTH, heads * rows_per_head);
        } else if texels <= width && head_bytes % COPY_PITCH_ALIGNMENT == 0 && head_bytes <= u32::MAX as u64 {
            copy(first, head_bytes, 0, texels as u32, heads);
        } else {
            let (full, rest) = ((texels / width) as u32, (texels % width) as u32);
            for h in 0..heads {
                let (src, y) = (first + h as u64 * head_bytes, h * rows_per_head);
                if full > 0 {
                    copy(src, pitch, y, STAGE_WIDTH, full);
                }
                if rest > 0 {
                    copy(src + full as u64 * pitch, pitch, y + full, rest, 1);
                }
            }
        }
    }
}

/// The staging textures of one state: bindings share one when it is tall enough (the layers of
/// a model bind ranges of the same size), so a 32-layer prefill keeps one layer's copy.
#[derive(Debug, Default)]
pub(crate) struct StagingTextures {
    textures: Mutex<Vec<Texture>>,
}

impl StagingTextures {
    /// A texture of at least `height` rows, with a view, made on first need.
    pub fn get(&self, device: &wgpu::Device, height: u32) -> (Texture, TextureView) {
        let mut textures = self.textures.lock().unwrap_or_else(|e| e.into_inner());
        let texture = match textures.iter().find(|t| t.height() >= height) {
            Some(t) => t.clone(),
            None => {
                let t = device.create_texture(&wgpu::TextureDescriptor {
                    label: Some("visattn staged rows"),
                    size: wgpu::Extent3d {
                        width: STAGE_WIDTH,
                        height,
                        depth_or_array_layers: 1,
                    },
                    mip_level_count: 1,
                    sample_count: 1,
                    dimension: wgpu::TextureDimension::D2,
                    format: wgpu::TextureFormat::Rgba32Float,
                    usage: wgpu::TextureUsages::COPY_DST | wgpu::TextureUsages::TEXTURE_BINDING,
                    view_formats: &[],
                });
                textures.push(t.clone());
                t
            }
        };
        let view = texture.create_view(&Default::default());
        (texture, view)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_staged_prelude_reads_the_layout_the_copies_write() {
        let wgsl = format!("const STAGE_WIDTH: u32 = {}u;", super::STAGE_WIDTH);
        assert!(
            crate::shaders::PRELUDE_ROWS_STAGED.contains(&wgsl),
            "the WGSL STAGE_WIDTH must be {wgsl}"
        );
    }
}
