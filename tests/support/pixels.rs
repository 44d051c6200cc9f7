//! Reads a heatmap back from its pixels: colours as positions on the colormap, and the labels,
//! each character cell matched against the font (visattn::font), so a test sees the text the
//! shader drew, not just "some ink".

use visattn::font::{CELL_WIDTH, GLYPH_HEIGHT, GLYPH_WIDTH, code, glyph};
use visattn::heatmap::{HeatmapLayout, viridis};

/// The colormap position of an RGB pixel: the nearest of 1024 viridis samples.
pub fn colormap_position(px: &[u8]) -> f32 {
    (0..=1023)
        .map(|i| i as f32 / 1023.0)
        .min_by(|a, b| {
            let d = |t: f32| viridis(t).iter().zip(px).map(|(c, &p)| (c * 255.0 - p as f32).powi(2)).sum::<f32>();
            d(*a).total_cmp(&d(*b))
        })
        .unwrap()
}

/// Whether the pixel at (x, y) of an RGBA frame `width` wide is label ink (light grey).
fn ink(rgba: &[u8], width: u32, x: u32, y: u32) -> bool {
    let at = ((y * width + x) * 4) as usize;
    rgba[at..at + 3].iter().all(|&c| c > 200)
}

/// The character whose glyph the cell at (x, y) shows, sampled at each font pixel's centre;
/// None for a cell that is no glyph of the font. A blank cell reads as ' '.
pub fn read_char(rgba: &[u8], layout: &HeatmapLayout, (x, y): (u32, u32)) -> Option<char> {
    let s = layout.text_scale;
    let mut rows = [0u8; 7];
    for (r, row) in rows.iter_mut().enumerate() {
        for c in 0..GLYPH_WIDTH {
            let on = ink(rgba, layout.width, x + c * s + s / 2, y + r as u32 * s + s / 2);
            *row = (*row << 1) | on as u8;
        }
    }
    (32u8..=126)
        .map(|b| b as char)
        .filter(|&ch| code(ch) == ch as u32)
        .find(|&ch| glyph(ch) == rows)
}

/// The text of `len` cells from (x, y), trailing blanks dropped.
pub fn read_text(rgba: &[u8], layout: &HeatmapLayout, (x, y): (u32, u32), len: usize) -> String {
    let cell = CELL_WIDTH * layout.text_scale;
    let text: String = (0..len as u32)
        .map(|i| read_char(rgba, layout, (x + i * cell, y)).unwrap_or('\u{fffd}'))
        .collect();
    text.trim_end().to_string()
}

/// The text of a line from `x0` to `x1` wherever it starts (labels centred or right-aligned by
/// the shader): the first inked column is in the first glyph, at most 4 font pixels from its
/// left edge; the edge is the nearest one from which every cell reads as a glyph.
pub fn read_line(rgba: &[u8], layout: &HeatmapLayout, (x0, x1): (u32, u32), y: u32) -> String {
    let s = layout.text_scale;
    let height = GLYPH_HEIGHT * s;
    let Some(first) = (x0..x1).find(|&x| (y..y + height).any(|yy| ink(rgba, layout.width, x, yy))) else {
        return String::new();
    };
    let cell = CELL_WIDTH * s;
    (0..GLYPH_WIDTH)
        .filter_map(|k| first.checked_sub(k * s))
        .find_map(|x| {
            // The last glyph needs no space after it.
            let cells = ((x1.saturating_sub(x) + s) / cell) as usize;
            let chars: Option<String> = (0..cells as u32).map(|i| read_char(rgba, layout, (x + i * cell, y))).collect();
            chars.filter(|t| !t.starts_with(' ')).map(|t| t.trim_end().to_string())
        })
        .unwrap_or_else(|| "\u{fffd}".into())
}
