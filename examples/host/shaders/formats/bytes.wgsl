// Byte reads of a GGML block format kept as the GGUF file stores it, in `w: array<u32>`
// (little-endian words): the prelude of every block format's load_w (formats/*.wgsl). Every
// f16 of a block sits at an even byte offset (every block size is even).

// The byte at offset b.
fn w_u8(b: u32) -> u32 {
    return (w[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

// The signed byte at offset b.
fn w_i8(b: u32) -> i32 {
    return bitcast<i32>(w_u8(b) << 24u) >> 24u;
}

// The f16 at the even offset b, as f32 (exact: every f16 is an f32).
fn w_f16(b: u32) -> f32 {
    return unpack2x16float(w[b >> 2u] >> ((b & 2u) * 8u)).x;
}
