//! Files and readback: the dump format (dump-format.md) and reading GPU buffers back.

pub mod dump;
pub mod half;
#[cfg(feature = "gpu")]
pub mod readback;
