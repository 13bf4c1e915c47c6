// Embedding lookup from a chunk of a (possibly split) quantized table:
// out[out_offset + t*cols + c] = dequant(W[id_t - row_start][c]) * scale for the tokens
// whose id falls in this chunk; other tokens are left untouched, so one dispatch per
// chunk fills the whole output. One invocation writes 8 consecutive columns.

struct RowsParams {
    cols: u32, n_tokens: u32, row_start: u32, rows_in_chunk: u32,
    scale: f32, out_offset: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
@group(0) @binding(3) var<uniform> P: RowsParams;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(workgroup_id) wg: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = wg.y + wg.z * nwg.y;
    let g = gid.x;
    if (t >= P.n_tokens || 8u * g >= P.cols) { return; }
    let id = ids[t];
    if (id < P.row_start || id - P.row_start >= P.rows_in_chunk) { return; }
    let w = dq8((id - P.row_start) * row_bytes(P.cols), g, P.cols);
    let o = P.out_offset + t * P.cols + 8u * g;
    for (var k = 0u; k < 4u; k++) {
        if (8u * g + k < P.cols) { O[o + k] = w.a[k] * P.scale; }
        if (8u * g + 4u + k < P.cols) { O[o + 4u + k] = w.b[k] * P.scale; }
    }
}
