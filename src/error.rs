//! The one error type of the library: every failure a caller can meet is a variant here,
//! never a panic.

/// Everything that can go wrong in visattn, typed so that hosts can react to each class.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A configuration field is out of its range.
    #[error("invalid config: {field} = {value}: {reason}")]
    Config {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// A preset name that is not in the table of var-spec.md section 1.
    #[error("unknown preset '{name}' (known: {known})")]
    UnknownPreset { name: String, known: String },
    /// Tensor shapes that do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A sink dimension that does not exist in the hidden states.
    #[error("sink dim {dim} is out of range for hidden size {hidden}")]
    SinkDimOutOfRange { dim: u32, hidden: usize },
    /// An image span that is empty, out of range, unsorted or overlapping.
    #[error("image span {start}:{len} is invalid for {tokens} tokens: {reason}")]
    Span {
        start: usize,
        len: usize,
        tokens: usize,
        reason: &'static str,
    },
    /// The image mask marks no token at all: VAR has nothing to do.
    #[error("no image tokens: VAR needs at least one image span")]
    NoImage,
    /// A NaN or an infinity in an input tensor (refused, never propagated).
    #[error("non-finite value {value} in {tensor} at flat index {index}")]
    NonFinite { tensor: String, index: usize, value: f32 },
    /// A non-finite result from finite inputs: an attention logit (scale x q . k) or an output
    /// overflowed f32. Refused rather than written (NaN is never propagated).
    #[error(
        "layer {layer}, head {head}, query row {row}: the attention output is {value}: a logit (scale x q . k) overflowed f32; q, k or the scale are too large"
    )]
    NonFiniteOutput { layer: usize, head: usize, row: usize, value: f32 },
    /// An attention row that is not a probability row (negative entries, or a sum off 1 by
    /// more than its dtype's tolerance): VAR's masses and redistribution assume rows sum to 1.
    #[error("attentions.{layer}, head {head}, row {row} is not a row of probabilities: {reason}")]
    NotProbabilities {
        layer: usize,
        head: usize,
        row: usize,
        reason: String,
    },
    /// A buffer range handed to the builder that cannot be bound as asked.
    #[error("binding '{name}': {reason}")]
    Binding { name: &'static str, reason: String },
    /// A binding over a device limit that this call cannot split.
    #[error("binding '{name}' needs {needed} bytes, over the device limit {limit} ({limit_name})")]
    Limit {
        name: &'static str,
        needed: u64,
        limit: u64,
        limit_name: &'static str,
    },
    /// A layer index outside the model.
    #[error("layer {layer} out of range for {layers} layers")]
    Layer { layer: usize, layers: usize },
    /// A validation error or device loss reported by wgpu.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// No D_sink anywhere: neither given nor named by the dump's `model` (it has no default,
    /// since a preset's dims belong to one set of trained weights).
    #[error(
        "no D_sink: the dump names no model preset; pass a preset ({known}) or sink dims (--preset / --sink-dims), or run `visattn discover` on the dump to find them"
    )]
    NoSinkDims { known: String },
    /// A dump file that breaks dump-format.md.
    #[error("dump: {0}")]
    Dump(String),
    /// Reading or writing a file failed.
    #[error("io: {0}")]
    Io(String),
    /// An output path that would destroy something: an input or another output of the same
    /// run, a device, a pipe or a directory (outputs only ever replace regular files).
    #[error("refusing to write {path}: {reason}")]
    Output { path: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

#[cfg(feature = "gpu")]
/// Runs `f` inside wgpu validation and out-of-memory error scopes: what wgpu reports comes back
/// as [`Error::Gpu`] instead of reaching the device's uncaptured-error handler (whose default
/// panics). The future resolves at once on native backends.
pub async fn scoped<T>(device: &wgpu::Device, f: impl FnOnce() -> T) -> Result<T> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let out = f();
    let v = validation.pop().await;
    let o = oom.pop().await;
    match v.or(o) {
        None => Ok(out),
        Some(e) => Err(Error::Gpu(e.to_string())),
    }
}

/// [`scoped`], waiting on the calling thread (native tools and tests only). `f` runs outside
/// any executor, so it may itself use blocking helpers (nested scopes are fine).
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
pub fn scoped_blocking<T>(device: &wgpu::Device, f: impl FnOnce() -> T) -> Result<T> {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let out = f();
    let v = futures::executor::block_on(validation.pop());
    let o = futures::executor::block_on(oom.pop());
    match v.or(o) {
        None => Ok(out),
        Some(e) => Err(Error::Gpu(e.to_string())),
    }
}
