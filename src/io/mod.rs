//! Files and readback: the dump format (dump-format.md) and reading GPU buffers back.

pub mod dump;
#[cfg(feature = "gpu")]
pub mod readback;
