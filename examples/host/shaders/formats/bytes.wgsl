// Byte reads of a GGML block format kept as the GGUF file stores it, as little-endian u32
// words read through word(i) (formats/word_buffer.wgsl or word_texture.wgsl): the prelude of
// every block format's load8 (formats/*.wgsl). Every f16 of a block sits at an even byte
// offset (every block size is even).

// The byte at offset b.
fn w_u8(b: u32) -> u32 {
    return (word(b >> 2u) >> ((b & 3u) * 8u)) & 0xffu;
}

// The signed byte at offset b.
fn w_i8(b: u32) -> i32 {
    return bitcast<i32>(w_u8(b) << 24u) >> 24u;
}

// The f16 at the even offset b, as f32 (exact: every f16 is an f32).
fn w_f16(b: u32) -> f32 {
    return unpack2x16float(word(b >> 2u) >> ((b & 2u) * 8u)).x;
}

// The 8 bytes at offset b (any alignment) as two little-endian words: 8 quants in 2 or 3 loads.
fn w_bytes8(b: u32) -> vec2<u32> {
    let q = b >> 2u;
    let s = (b & 3u) * 8u;
    let lo = word(q);
    let hi = word(q + 1u);
    if (s == 0u) {
        return vec2<u32>(lo, hi);
    }
    let next = word(q + 2u);
    return vec2<u32>((lo >> s) | (hi << (32u - s)), (hi >> s) | (next << (32u - s)));
}

// Byte j (< 8) of w_bytes8's result.
fn byte_of(v: vec2<u32>, j: u32) -> u32 {
    return (v[j / 4u] >> ((j % 4u) * 8u)) & 0xffu;
}

// The f16 at the even offset b, its 16 bits (the repack kernels move scales unchanged).
fn w_f16_bits(b: u32) -> u32 {
    return (word(b >> 2u) >> ((b & 2u) * 8u)) & 0xffffu;
}
