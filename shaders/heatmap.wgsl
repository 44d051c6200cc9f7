// heatmap.wgsl: draws one attention row over the image's patch grid, before and after VAR side
// by side (a perceptual viridis colormap, one scale for both), sink patches outlined, a legend
// bar of the colormap with its values (0, half and the top of the scale, written here from the
// scale the gather found, so no number makes a round trip), a caption line and a title over each
// panel. A render pipeline: a full-screen triangle, the fragment shader draws by pixel.
//
// Bindings (group 0, fragment stage):
//   0  uniform          view: View             grid size and the layout (HeatmapLayout, in pixels)
//   1  storage, read    values: array<f32>     [2, grid x grid]: before, then after VAR
//   2  storage, read    scale: array<u32>      [1]: bit pattern of the largest value (>= 0)
//   3  storage, read    sinks: array<u32>      [grid x grid], 1 = a sink patch
//   4  texture_2d<f32>  picture                the image under the grid (1x1 when none)
//   5  sampler          picture_sampler        linear, clamped
//   6  storage, read    font: array<u32>       [95 x 2]: 5x7 glyphs of codes 32..126 (font.rs)
//   7  storage, read    labels: array<u32>     [3 x 64] codes, NUL-ended: caption, left and
//                                              right titles
// Draw: 3 vertices, no vertex buffers, any color target format.

struct View {
    grid: u32,
    // 1: blend the heatmap over the picture.
    has_picture: u32,
    // Pixels per font pixel.
    text_scale: u32,
    // Side of each square panel.
    side: u32,
    // Top-left corners of the two panels.
    panel0: vec2<u32>,
    panel1: vec2<u32>,
    // Legend bar: x0, y0, x1, y1 (exclusive).
    legend: vec4<u32>,
    // Top-left of the caption line (text_scale 0: no labels, in frames too small for them).
    caption: vec2<u32>,
    titles_y: u32,
    ticks_y: u32,
}

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<u32>;
@group(0) @binding(3) var<storage, read> sinks: array<u32>;
@group(0) @binding(4) var picture: texture_2d<f32>;
@group(0) @binding(5) var picture_sampler: sampler;
@group(0) @binding(6) var<storage, read> font: array<u32>;
@group(0) @binding(7) var<storage, read> labels: array<u32>;

const LABEL_CHARS: u32 = 64u;
const INK: vec3<f32> = vec3<f32>(0.93, 0.93, 0.93);

@vertex
fn vs_main(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    let x = f32(i32(i & 1u) * 4 - 1);
    let y = f32(i32(i >> 1u) * 4 - 1);
    return vec4<f32>(x, y, 0.0, 1.0);
}

// Viridis, a polynomial fit (monotonic in lightness, readable by the colour-blind).
fn viridis(t: f32) -> vec3<f32> {
    let c0 = vec3<f32>(0.2777273272234177, 0.005407344544966578, 0.3340998053353061);
    let c1 = vec3<f32>(0.1050930431085774, 1.404613529898575, 1.384590162594685);
    let c2 = vec3<f32>(-0.3308618287255563, 0.214847559468213, 0.09509516302823659);
    let c3 = vec3<f32>(-4.634230498983486, -5.799100973351585, -19.33244095627987);
    let c4 = vec3<f32>(6.228269936347081, 14.17993336680509, 56.69055260068105);
    let c5 = vec3<f32>(4.776384997670288, -13.74514537774601, -65.35303263337234);
    let c6 = vec3<f32>(-5.435455855934631, 4.645852612178535, 26.3124352495832);
    let x = clamp(t, 0.0, 1.0);
    return clamp(c0 + x * (c1 + x * (c2 + x * (c3 + x * (c4 + x * (c5 + x * c6))))), vec3<f32>(0.0), vec3<f32>(1.0));
}

// A line of text: up to 12 codes.
struct Text {
    codes: array<u32, 12>,
    len: u32,
}

// Whether pixel p (relative to a glyph's top-left) is ink of character `code`.
fn glyph_ink(p: vec2<i32>, code: u32) -> bool {
    let s = max(i32(view.text_scale), 1);
    let g = p / s;
    if (view.text_scale == 0u || p.x < 0 || p.y < 0 || g.x >= 5 || g.y >= 7) {
        return false;
    }
    let c = select(63u, code, code >= 32u && code <= 126u);
    let word = font[(c - 32u) * 2u + u32(g.y) / 4u];
    return ((word >> (u32(g.y) % 4u * 5u + u32(4 - g.x))) & 1u) != 0u;
}

// Whether pixel p is ink of `text` written from `origin` (its top-left).
fn text_ink(p: vec2<i32>, origin: vec2<i32>, text: Text) -> bool {
    let cell = i32(6u * view.text_scale);
    let local = p - origin;
    if (local.x < 0 || local.y < 0 || local.y >= i32(7u * view.text_scale)) {
        return false;
    }
    let col = u32(local.x / cell);
    if (col >= text.len) {
        return false;
    }
    return glyph_ink(vec2<i32>(local.x % cell, local.y), text.codes[col]);
}

// Width in pixels of `len` characters (no space after the last).
fn text_width(len: u32) -> i32 {
    return i32(len * 6u * view.text_scale) - i32(view.text_scale);
}

// Label `slot` from the labels buffer (the first 12 codes are enough for the titles; the caption
// is drawn with caption_ink).
fn label(slot: u32) -> Text {
    var t: Text;
    t.len = 0u;
    for (var i = 0u; i < 12u; i++) {
        let c = labels[slot * LABEL_CHARS + i];
        if (c == 0u) {
            break;
        }
        t.codes[i] = c;
        t.len = i + 1u;
    }
    return t;
}

// The caption line: up to 64 codes, read where the pixel falls.
fn caption_ink(p: vec2<i32>) -> bool {
    let cell = i32(6u * view.text_scale);
    let local = p - vec2<i32>(view.caption);
    if (local.x < 0 || local.y < 0 || local.y >= i32(7u * view.text_scale)) {
        return false;
    }
    let col = u32(local.x / cell);
    if (col >= LABEL_CHARS) {
        return false;
    }
    for (var i = 0u; i < col; i++) {
        if (labels[i] == 0u) {
            return false;
        }
    }
    let c = labels[col];
    return c != 0u && glyph_ink(vec2<i32>(local.x % cell, local.y), c);
}

fn push(t: ptr<function, Text>, code: u32) {
    if ((*t).len < 12u) {
        (*t).codes[(*t).len] = code;
        (*t).len += 1u;
    }
}

// v >= 0 with three significant digits: "0", "0.0123", "1.23", "12.3", "123" or "1.23e-5".
fn format_value(v: f32) -> Text {
    var t: Text;
    t.len = 0u;
    if (!(v > 0.0) || v > 3.0e38) {
        push(&t, 48u);
        return t;
    }
    // The decimal exponent: a first guess from log2, then corrected against powers of ten
    // built by multiplication (log2's rounding may land one off near a power of ten).
    var e = i32(floor(log2(v) * 0.30103));
    var m = v;
    for (var i = 0; i < abs(e); i++) {
        m = select(m * 10.0, m / 10.0, e > 0);
    }
    if (m >= 10.0) {
        m /= 10.0;
        e += 1;
    }
    if (m < 1.0) {
        m *= 10.0;
        e -= 1;
    }
    var digits = u32(round(m * 100.0));
    if (digits >= 1000u) {
        digits = 100u;
        e += 1;
    }
    let d = vec3<u32>(digits / 100u, digits / 10u % 10u, digits % 10u) + vec3<u32>(48u);
    if (e < -4 || e > 2) {
        push(&t, d.x);
        push(&t, 46u);
        push(&t, d.y);
        push(&t, d.z);
        push(&t, 101u);
        push(&t, select(43u, 45u, e < 0));
        let a = u32(abs(e));
        if (a >= 10u) {
            push(&t, 48u + a / 10u);
        }
        push(&t, 48u + a % 10u);
    } else if (e < 0) {
        push(&t, 48u);
        push(&t, 46u);
        for (var i = 1; i < -e; i++) {
            push(&t, 48u);
        }
        push(&t, d.x);
        push(&t, d.y);
        push(&t, d.z);
    } else {
        push(&t, d.x);
        if (e == 0) {
            push(&t, 46u);
        }
        push(&t, d.y);
        if (e == 1) {
            push(&t, 46u);
        }
        push(&t, d.z);
    }
    return t;
}

@fragment
fn fs_main(@builtin(position) frag: vec4<f32>) -> @location(0) vec4<f32> {
    let background = vec4<f32>(0.08, 0.08, 0.09, 1.0);
    let p = vec2<i32>(floor(frag.xy));
    let s = i32(view.text_scale);
    let side = i32(view.side);

    // Text: the caption, the panels' titles, the legend's values.
    if (caption_ink(p)) {
        return vec4<f32>(INK, 1.0);
    }
    if (p.y >= i32(view.titles_y) && p.y < i32(view.titles_y) + 7 * s) {
        let slot = select(1u, 2u, p.x >= (i32(view.panel0.x) + i32(view.panel1.x) + side) / 2);
        let title = label(slot);
        let panel_x = select(i32(view.panel0.x), i32(view.panel1.x), slot == 2u);
        let origin = vec2<i32>(panel_x + side / 2 - text_width(title.len) / 2, i32(view.titles_y));
        if (text_ink(p, origin, title)) {
            return vec4<f32>(INK, 1.0);
        }
        return background;
    }
    let legend = vec4<i32>(view.legend);
    if (p.y >= i32(view.ticks_y) && p.y < i32(view.ticks_y) + 7 * s) {
        let top = bitcast<f32>(scale[0]);
        let third = (legend.z - legend.x) / 3;
        var origin = vec2<i32>(legend.x, i32(view.ticks_y));
        var text = format_value(0.0);
        if (p.x >= legend.z - third) {
            text = format_value(top);
            origin.x = legend.z - text_width(text.len);
        } else if (p.x >= legend.x + third) {
            text = format_value(top * 0.5);
            origin.x = (legend.x + legend.z) / 2 - text_width(text.len) / 2;
        }
        if (text_ink(p, origin, text)) {
            return vec4<f32>(INK, 1.0);
        }
        return background;
    }
    // Legend: the colormap from 0 to the shared maximum, left to right.
    if (p.y >= legend.y && p.y < legend.w) {
        if (p.x < legend.x || p.x >= legend.z) {
            return background;
        }
        return vec4<f32>(viridis((frag.x - f32(legend.x)) / f32(legend.z - legend.x)), 1.0);
    }

    let panel = select(0u, 1u, p.x >= (i32(view.panel0.x) + i32(view.panel1.x) + side) / 2);
    let origin = vec2<f32>(select(view.panel0, view.panel1, panel == 1u));
    let local = (frag.xy - origin) / f32(view.side);
    if (local.x < 0.0 || local.y < 0.0 || local.x >= 1.0 || local.y >= 1.0) {
        return background;
    }
    let g = f32(view.grid);
    let cell = vec2<u32>(floor(local * g));
    let patch_index = cell.y * view.grid + cell.x;
    let v = values[panel * view.grid * view.grid + patch_index];
    let top = bitcast<f32>(scale[0]);
    var color = viridis(select(0.0, v / top, top > 0.0));
    // Over a picture: its lightness shows through a half-transparent heatmap.
    let under = textureSampleLevel(picture, picture_sampler, local, 0.0).rgb;
    if (view.has_picture != 0u) {
        color = mix(vec3<f32>(dot(under, vec3<f32>(0.299, 0.587, 0.114))), color, 0.6);
    }
    // Sink patches: a red outline inside the cell.
    let inside = fract(local * g);
    let edge = min(min(inside.x, inside.y), min(1.0 - inside.x, 1.0 - inside.y));
    if (sinks[patch_index] != 0u && edge < 0.12) {
        color = vec3<f32>(0.95, 0.15, 0.1);
    }
    return vec4<f32>(color, 1.0);
}
