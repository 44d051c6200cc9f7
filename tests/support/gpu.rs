//! Getting a device is the host's job, never the library's: this helper is shared by the tests
//! and the examples (included with `#[path]`), as wgpu's own examples split `execute_gpu`
//! from `execute_gpu_inner`. `WGPU_BACKEND` (vulkan, gl, ...) and `WGPU_ADAPTER_NAME` choose.

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
}

/// The first adapter wgpu offers, with WebGPU's default limits when the adapter has them (the
/// limits we design to), else the adapter's own. Fails loudly when there is no adapter.
#[allow(dead_code)]
pub fn gpu() -> Gpu {
    gpu_with_limits(None)
}

/// As [`gpu`], with explicit limits (to test the splitting of work over small limits).
#[allow(dead_code)]
pub fn gpu_with_limits(limits: Option<wgpu::Limits>) -> Gpu {
    try_gpu(limits).unwrap_or_else(|e| panic!("{e}"))
}

/// As [`gpu_with_limits`], reporting failure as a message instead of panicking (for programs).
pub fn try_gpu(limits: Option<wgpu::Limits>) -> Result<Gpu, String> {
    try_gpu_with(wgpu::Features::empty(), limits)
}

/// As [`try_gpu`], also asking for whichever of `features` the adapter has.
pub fn try_gpu_with(features: wgpu::Features, limits: Option<wgpu::Limits>) -> Result<Gpu, String> {
    // Primary backends unless WGPU_BACKEND says otherwise: probing GL on a headless machine
    // only prints noise, and lavapipe is Vulkan.
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let instance = wgpu::Instance::new(desc);
    let adapter = pollster::block_on(wgpu::util::initialize_adapter_from_env_or_default(&instance, None))
        .map_err(|e| format!("no wgpu adapter ({e}): on Debian install mesa-vulkan-drivers (lavapipe), or set WGPU_BACKEND"))?;
    let available = adapter.limits();
    let wanted = limits.unwrap_or_else(|| {
        if wgpu::Limits::default().check_limits(&available) {
            wgpu::Limits::default()
        } else {
            wgpu::Limits::downlevel_defaults().using_alignment(available.clone())
        }
    });
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("visattn"),
        required_features: features & adapter.features(),
        required_limits: wanted,
        ..Default::default()
    }))
    .map_err(|e| format!("request_device: {e}"))?;
    Ok(Gpu {
        device,
        queue,
        info: adapter.get_info(),
    })
}
