// linear/params.wgsl: the parameters of every matmul kernel of the host (linear.wgsl,
// linear_vec.wgsl, linear_vec_subgroup.wgsl, linear_texture.wgsl, linear_shared.wgsl), one
// struct for them all (gpu/linear.rs's LinearParams mirrors it): x [n, k] (a tile's n rows
// from t0 in the texture kernels), W [m, k] (a row chunk, written at columns col0 .. col0 + m
// of out's rows of ldo), a bias where `bias` is not 0.

struct LinearParams {
    n: u32,
    m: u32,
    k: u32,
    bias: u32,
    ldo: u32,
    col0: u32,
    t0: u32,
    // The slice of k this dispatch multiplies (W's columns k0 .. k0 + kn; x's rows in its
    // bindings are kn long): the shared kernel's, where 16 tokens of k values pass the x
    // bindings (Matmul slices x first). A slice after the first adds to out. 0 and k elsewhere.
    k0: u32,
    kn: u32,
    pad1: u32,
    pad2: u32,
    pad3: u32,
}

