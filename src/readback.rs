//! Reading GPU buffers back to the host: a test and debug utility, not the API. It blocks the
//! calling thread until the GPU is done, so it is not compiled for the browser.

use wgpu::{Buffer, BufferUsages, Device, Queue};

use crate::error::{Error, Result};

/// Copies `size` bytes of `src` from `offset` through a MAP_READ staging buffer and waits.
pub fn read_bytes(device: &Device, queue: &Queue, src: &Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
    if size == 0 {
        return Ok(Vec::new());
    }
    // The whole round trip runs in error scopes: on a lost device every step reports an error
    // (or the map fails) and that comes back as Error::Gpu.
    crate::error::scoped_blocking(device, || read_unscoped(device, queue, src, offset, size))?
}

fn read_unscoped(device: &Device, queue: &Queue, src: &Buffer, offset: u64, size: u64) -> Result<Vec<u8>> {
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("visattn readback"),
        size,
        usage: BufferUsages::MAP_READ | BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(src, offset, &staging, 0, size);
    queue.submit([encoder.finish()]);
    let (tx, rx) = std::sync::mpsc::channel();
    staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
    rx.recv()
        .map_err(|_| Error::Gpu("the map callback never ran".into()))?
        .map_err(|e| Error::Gpu(format!("mapping a readback buffer: {e}")))?;
    let bytes = staging
        .slice(..)
        .get_mapped_range()
        .map_err(|e| Error::Gpu(format!("reading a mapped buffer: {e}")))?
        .to_vec();
    staging.unmap();
    Ok(bytes)
}

/// [`read_bytes`] of a whole buffer, as f32 or u32 values.
pub fn read_vec<T: bytemuck::Pod>(device: &Device, queue: &Queue, src: &Buffer, len: usize) -> Result<Vec<T>> {
    let size = (len * std::mem::size_of::<T>()) as u64;
    Ok(bytemuck::cast_slice(&read_bytes(device, queue, src, 0, size)?).to_vec())
}
