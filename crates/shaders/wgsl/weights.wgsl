// The weights binding (0) of the matrix kernels and get_rows, and how they read it:
// `wd(i)` is word i of the weights (4 bytes), `wv4(i)` the 16 bytes from byte 16i.
//
// TEXW (native CPU-backed devices, `quant::TEXTURE_WIDTH`): the weights are the texels
// of an rgba32uint texture, 16 bytes each, TEXTURE_WIDTH texels per texture row, in
// byte order. On lavapipe a texel fetch is a branch-free gather while a storage load is
// a per-lane loop with a bounds check per word: the same decode reads its rows with
// 30-45% fewer instructions (see `quant::matvec_rows`).
#if TEXW
@group(0) @binding(0) var WT: texture_2d<u32>;
fn wv4(i: u32) -> vec4<u32> {
    return textureLoad(WT, vec2<u32>(i & 4095u, i >> 12u), 0);
}
fn wd(i: u32) -> u32 {
    return wv4(i >> 2u)[i & 3u];
}
#else
#if WIN
@group(0) @binding(0) var<storage, read> W4: array<vec4<u32>>;
fn wv4(i: u32) -> vec4<u32> {
    return W4[i];
}
fn wd(i: u32) -> u32 {
    return W4[i >> 2u][i & 3u];
}
#else
@group(0) @binding(0) var<storage, read> W: array<u32>;
fn wd(i: u32) -> u32 {
    return W[i];
}
#endif
#endif
