//! Files and readback: the dump format (dump-format.md) and reading GPU buffers back.

pub mod dump;
pub mod half;
pub mod output;
#[cfg(feature = "gpu")]
pub mod readback;
