
// load8: values i .. i + 8 (i a multiple of 8, all in one row), one load_w each: the float
// formats' storage holds no shared scale to read once.
fn load8(i: u32) -> array<f32, 8> {
    var v: array<f32, 8>;
    for (var j = 0u; j < 8u; j++) {
        v[j] = load_w(i + j);
    }
    return v;
}
