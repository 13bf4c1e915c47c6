// What both attention kernels (attention.wgsl, attention_rows.wgsl) share: their params,
// "minus infinity" and the causal / sliding-window key range. Each kernel binds `p`.

struct Params {
    n_head: u32,
    n_head_kv: u32,
    head_dim_k: u32, // even, <= 256
    head_dim_v: u32, // even, <= 256
    n_tokens: u32,   // queries in this call
    pos0: u32,       // position of query 0; keys 0 .. pos0 + n_tokens are in the cache
    window: u32,     // sliding window (a query at p sees keys > p - window); 0 = full
    scale: f32,      // score multiplier (1 / sqrt(head_dim) or the model's)
    split_len: u32,  // keys per split
    n_splits: u32,   // splits (1: no scratch, no combine)
    softcap: f32,    // scores become softcap * tanh(s / softcap) when > 0 (Gemma 2)
    _pad1: u32,
}

const NEG: f32 = -3.0e38; // "minus infinity" (WGSL has no infinite literals)

// First key position a query at `pos` may see.
fn first_key(pos: u32) -> u32 {
    if (p.window > 0u && pos + 1u > p.window) {
        return pos + 1u - p.window;
    }
    return 0u;
}
