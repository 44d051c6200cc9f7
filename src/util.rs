//! Getting a device, for the examples, the tests and the tools: hosts bring their own, and no
//! library call creates one (every other module takes the host's `Device` and `Queue`). As
//! wgpu's own examples split `execute_gpu` from `execute_gpu_inner`. `WGPU_BACKEND` (vulkan,
//! gl, ...) and `WGPU_ADAPTER_NAME` choose the adapter. [`Gpu`] itself exists on every target: a
//! browser host fills it with the device it got.

#[cfg(not(target_arch = "wasm32"))]
use crate::error::{Error, Result};

/// Mesa's Vulkan device-select layer probes Wayland when it starts and, on a machine without a
/// display server (no XDG_RUNTIME_DIR), prints "error: XDG_RUNTIME_DIR is invalid or not set
/// in the environment." twice: harmless, but it reads as the program failing. Choosing among
/// adapters is wgpu's job here, so the layer is turned off (NODEVICE_SELECT=1) in that case.
///
/// # Safety
/// It sets an environment variable: call it first thing in `main`, before any thread exists
/// (nothing may read the environment concurrently).
#[cfg(not(target_arch = "wasm32"))]
pub unsafe fn quiet_vulkan_probe() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() && std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: the caller guarantees no other thread runs.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// A device, its queue, the adapter's description and a [`Context`](crate::Context) over it.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub ctx: crate::kernel::Context,
}

/// The first adapter wgpu offers, with WebGPU's default limits when the adapter has them (the
/// limits we design to), else the adapter's own; `limits` overrides them (to test the splitting
/// of work over small limits). Also asks for whichever of `features` the adapter has.
#[cfg(not(target_arch = "wasm32"))]
pub fn gpu_with(features: wgpu::Features, limits: Option<wgpu::Limits>) -> Result<Gpu> {
    // Primary backends unless WGPU_BACKEND says otherwise: probing GL on a headless machine
    // only prints noise, and lavapipe is Vulkan.
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let instance = wgpu::Instance::new(desc);
    let adapter = futures::executor::block_on(wgpu::util::initialize_adapter_from_env_or_default(&instance, None)).map_err(|e| {
        Error::Gpu(format!(
            "no wgpu adapter ({e}): on Debian install mesa-vulkan-drivers (lavapipe), or set WGPU_BACKEND"
        ))
    })?;
    let available = adapter.limits();
    let wanted = limits.unwrap_or_else(|| {
        if wgpu::Limits::default().check_limits(&available) {
            wgpu::Limits::default()
        } else {
            wgpu::Limits::downlevel_defaults().using_alignment(available.clone())
        }
    });
    let (device, queue) = futures::executor::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("visattn"),
        required_features: features & adapter.features(),
        required_limits: wanted,
        ..Default::default()
    }))
    .map_err(|e| Error::Gpu(format!("request_device: {e}")))?;
    Ok(Gpu {
        ctx: crate::kernel::Context::new(&device),
        device,
        queue,
        info: adapter.get_info(),
    })
}

/// [`gpu_with`] with no optional features and the default limits.
#[cfg(not(target_arch = "wasm32"))]
pub fn gpu() -> Result<Gpu> {
    gpu_with(wgpu::Features::empty(), None)
}
