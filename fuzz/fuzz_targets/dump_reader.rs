//! Any bytes through the dump reader: header parsing, the dump-format checks, every tensor's
//! upcast and NaN scan, the image spans from metadata. Errors are fine; panics are crashes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use visattn::dump::{Dump, TensorFile, spans_from_metadata};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = TensorFile::from_bytes(data.to_vec()) else { return };
    let _ = spans_from_metadata(file.metadata());
    for name in file.names().to_vec() {
        let _ = file.f32(&name);
        let _ = file.u8(&name);
    }
    let Ok(dump) = Dump::from_file(file) else { return };
    let _ = dump.tokens();
    for l in 0..dump.layers.min(8) {
        let _ = dump.attention(l);
        let _ = dump.hidden_states(l);
    }
});
