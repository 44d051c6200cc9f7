// word(i): the matrix's u32 word i, from its storage binding `w: array<u32>`.
fn word(i: u32) -> u32 {
    return w[i];
}
