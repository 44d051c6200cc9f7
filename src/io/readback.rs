//! Reading GPU buffers back to the host: a test and debug utility, not the API. One async core,
//! [`read_bytes_async`], which the browser demo awaits (the browser drives the map callback);
//! native tools and tests call [`read_bytes`], which polls the device and waits. A host that
//! records the copy into its own work reads its staging buffer with [`map_read`] /
//! [`map_read_async`] (no submit of their own).

use wgpu::{Buffer, BufferUsages, Device, Queue};

use crate::error::{Error, Result};

/// Copies `size` bytes of `src` from `offset` through a MAP_READ staging buffer and resolves when
/// they are mapped. Never blocks; on native backends something must poll the device (as
/// [`read_bytes`] does), in the browser the event loop does.
pub async fn read_bytes_async(device: &Device, queue: &Queue, src: &Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
    if size == 0 {
        return Ok(Vec::new());
    }
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("visattn readback"),
        size,
        usage: BufferUsages::MAP_READ | BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(src, offset, &staging, 0, size);
    queue.submit([encoder.finish()]);
    map_read_async(&staging, size).await
}

/// Maps `staging` (a MAP_READ buffer, filled by work already submitted), reads its first `size`
/// bytes and unmaps it: a readback with no submit of its own (a decode step records the copy of
/// its token into the step's encoder). Never blocks, as [`read_bytes_async`].
pub async fn map_read_async(staging: &Buffer, size: u64) -> Result<Vec<u8>> {
    if size == 0 {
        return Ok(Vec::new());
    }
    if size > staging.size() || !staging.usage().contains(BufferUsages::MAP_READ) {
        return Err(Error::Binding {
            name: "staging",
            reason: format!(
                "reading {size} bytes of a buffer of {} bytes with usage {:?} (MAP_READ needed)",
                staging.size(),
                staging.usage()
            ),
        });
    }
    let slice = staging.slice(..size);
    let (tx, rx) = futures::channel::oneshot::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    rx.await
        .map_err(|_| Error::Gpu("the map callback never ran".into()))?
        .map_err(|e| Error::Gpu(format!("mapping a readback buffer: {e}")))?;
    let bytes = slice
        .get_mapped_range()
        .map_err(|e| Error::Gpu(format!("reading a mapped buffer: {e}")))?
        .to_vec();
    staging.unmap();
    Ok(bytes)
}

/// [`read_bytes_async`] of `len` values from the start of `src`, as f32 or u32.
pub async fn read_vec_async<T: bytemuck::Pod>(device: &Device, queue: &Queue, src: &Buffer, len: usize) -> Result<Vec<T>> {
    let size = (len * std::mem::size_of::<T>()) as u64;
    Ok(bytemuck::cast_slice(&read_bytes_async(device, queue, src, 0, size).await?).to_vec())
}

/// [`read_bytes_async`], waiting on the calling thread (not compiled for the browser). The round
/// trip runs in error scopes: on a lost device every step reports an error (or the map fails)
/// and that comes back as [`Error::Gpu`].
#[cfg(not(target_arch = "wasm32"))]
pub fn read_bytes(device: &Device, queue: &Queue, src: &Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
    wait_for(device, read_bytes_async(device, queue, src, offset, size))
}

/// [`map_read_async`], waiting on the calling thread (not compiled for the browser), in error
/// scopes as [`read_bytes`].
#[cfg(not(target_arch = "wasm32"))]
pub fn map_read(device: &Device, staging: &Buffer, size: u64) -> Result<Vec<u8>> {
    wait_for(device, map_read_async(staging, size))
}

/// Runs a readback future to its end: its first poll submits what it submits and requests the
/// map; then the device is polled until the GPU is done.
#[cfg(not(target_arch = "wasm32"))]
fn wait_for(device: &Device, read: impl std::future::Future<Output = Result<Vec<u8>>>) -> Result<Vec<u8>> {
    crate::error::scoped_blocking(device, || {
        let mut read = std::pin::pin!(read);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        if let std::task::Poll::Ready(r) = std::future::Future::poll(read.as_mut(), &mut cx) {
            return r;
        }
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        futures::executor::block_on(read)
    })?
}

/// [`read_bytes`] of `len` values from the start of `src`, as f32 or u32.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_vec<T: bytemuck::Pod>(device: &Device, queue: &Queue, src: &Buffer, len: usize) -> Result<Vec<T>> {
    let size = (len * std::mem::size_of::<T>()) as u64;
    Ok(bytemuck::cast_slice(&read_bytes(device, queue, src, 0, size)?).to_vec())
}
