//! The tests' device: `visattn::util`, failing loudly when there is no adapter.

pub use visattn::util::Gpu;

/// The first adapter wgpu offers, with WebGPU's default limits where it has them.
#[allow(dead_code)]
pub fn gpu() -> Gpu {
    gpu_with_limits(None)
}

/// As [`gpu`], with explicit limits (to test the splitting of work over small limits).
#[allow(dead_code)]
pub fn gpu_with_limits(limits: Option<wgpu::Limits>) -> Gpu {
    visattn::util::gpu_with(wgpu::Features::empty(), limits).unwrap_or_else(|e| panic!("{e}"))
}

/// The VAR kernels specialised on `lanes` lanes per row and `keys` keys per lane.
#[allow(dead_code)]
pub fn kernels(g: &Gpu, lanes: u32, keys: u32) -> visattn::VarKernels {
    kernels_staged(g, lanes, keys, false)
}

/// [`kernels`], staging the rows in a texture where a binding allows (`LayerBinding::encode`).
#[allow(dead_code)]
pub fn kernels_staged(g: &Gpu, lanes: u32, keys: u32, stage_in_texture: bool) -> visattn::VarKernels {
    let settings = visattn::KernelSettings {
        lanes_per_row: lanes,
        keys_per_lane: keys,
        stage_in_texture,
    };
    visattn::VarKernels::new(&g.ctx, settings).unwrap_or_else(|e| panic!("{settings}: {e}"))
}
