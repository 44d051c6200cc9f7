// heatmap.wgsl: draws one attention row over the image's patch grid, before and after VAR side
// by side (a perceptual viridis colormap, one scale for both), sink patches outlined, and a
// legend bar of the colormap underneath. A render pipeline: a full-screen triangle, the
// fragment shader does the layout.
//
// Bindings (group 0, fragment stage):
//   0  uniform          view: View             grid size, target size in pixels
//   1  storage, read    values: array<f32>     [2, grid x grid]: before, then after VAR
//   2  storage, read    scale: array<u32>      [1]: bit pattern of the largest value (>= 0)
//   3  storage, read    sinks: array<u32>      [grid x grid], 1 = a sink patch
//   4  texture_2d<f32>  picture                the image under the grid (1x1 when none)
//   5  sampler          picture_sampler        linear, clamped
// Draw: 3 vertices, no vertex buffers, any color target format.
// Layout: two square panels in the top 80% (left: before, right: after), the legend in a
// strip along the bottom.

struct View {
    grid: u32,
    width: f32,
    height: f32,
    // 1: blend the heatmap over the picture.
    has_picture: u32,
}

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<u32>;
@group(0) @binding(3) var<storage, read> sinks: array<u32>;
@group(0) @binding(4) var picture: texture_2d<f32>;
@group(0) @binding(5) var picture_sampler: sampler;

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

@fragment
fn fs_main(@builtin(position) frag: vec4<f32>) -> @location(0) vec4<f32> {
    let background = vec4<f32>(0.08, 0.08, 0.09, 1.0);
    let px = frag.xy;
    let panels_h = view.height * 0.8;
    let margin = view.height * 0.04;
    // Legend: the colormap from 0 to the shared maximum, left to right.
    if (px.y > panels_h + margin) {
        let lx = (px.x - margin) / (view.width - 2.0 * margin);
        if (lx < 0.0 || lx > 1.0 || px.y > view.height - margin) {
            return background;
        }
        return vec4<f32>(viridis(lx), 1.0);
    }
    let side = min(view.width * 0.5 - 2.0 * margin, panels_h - margin);
    let panel = select(0u, 1u, px.x >= view.width * 0.5);
    let origin = vec2<f32>(select(margin, view.width * 0.5 + margin, panel == 1u), margin);
    let local = (px - origin) / side;
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
