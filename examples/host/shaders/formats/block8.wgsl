
// load_w: one value of a block format, one of load8's eight (the block formats' rows are whole
// blocks, so the group of 8 holding i lies in one row): each format's decoding is written once.
fn load_w(i: u32) -> f32 {
    var group = load8(i & ~7u);
    return group[i & 7u];
}
