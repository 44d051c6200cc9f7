// attention_append.wgsl: a decode step's new token into a split-K session, in the caller's
// pass: its q [H, D] into the session's q rows of the layer, its k and v [Hkv, D] into the
// layer's caches at the step's position (att.attn.keys - 1, set before the step): what
// DecodeSession::copy_step does with buffer copies, as one dispatch, so that a layer's
// attention needs no change of pass (a CPU adapter pays for each).
//
// Bindings (group 0):
//   0  uniform          att: SplitParams     the layer's split-K uniform (keys, capacity)
//   1  storage, read    q_in: array<f32>     [H, D]
//   2  storage, read    k_in: array<f32>     [Hkv, D]
//   3  storage, read    v_in: array<f32>     [Hkv, D]
//   4  storage, rw      q: array<f32>        [H, D] (the session's q rows of the layer)
//   5  storage, rw      k: array<f32>        [Hkv, capacity, D]
//   6  storage, rw      v: array<f32>        [Hkv, capacity, D]
// Override: D (head_dim).
// Dispatch: one value an invocation, (H + 2 Hkv) D of them: ceil(n / 64) workgroups of 64 on
//   a 2-D grid (min(n, 65535), ceil(n / 65535), 1).

override D: u32 = 128u;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wg.x + wg.y * nwg.x) * WG + lid;
    let nq = att.attn.heads * D;
    let nkv = att.attn.kv_heads * D;
    let pos = att.attn.keys - 1u;
    if (i < nq) {
        q[i] = q_in[i];
    } else if (i < nq + nkv) {
        let j = i - nq;
        k[((j / D) * att.capacity + pos) * D + j % D] = k_in[j];
    } else if (i < nq + 2u * nkv) {
        let j = i - nq - nkv;
        v[((j / D) * att.capacity + pos) * D + j % D] = v_in[j];
    }
}
