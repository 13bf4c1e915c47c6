// Element-wise kernels, one invocation per element, selected by a define:
//   GLU_SILU / GLU_GELU  gate = act(gate) * up         (0 gate rw, 1 up, 2 params {n})
//     + PAIR             the same on rows [gate | up] of one buffer, each half `period`
//                        wide, the result in the gate half (0 x rw, 1 params {n, period})
//   ADD                  a += b                         (0 a rw, 1 b, 2 params {n})
//   ADD_BIAS             x[i] += bias[i % period]       (0 x rw, 1 bias, 2 params {n, period})
//   SOFTCAP              x = cap * tanh(x / cap)        (0 x rw, 1 params {n, cap})
// Dispatches may be 2-D (more than 65535 workgroups); the flat index is rebuilt here.

struct Params {
    n: u32,
#if SOFTCAP
    cap: f32,
#else
    period: u32, // ADD_BIAS, PAIR
#endif
    _pad0: u32,
    _pad1: u32,
}

#if ONE_BUFFER
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
#else
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
#endif

// tanh with a small relative error everywhere. Built-in tanh may be (e^2x - 1)/(e^2x + 1)
// (lavapipe: 3e-4 relative error near 0 from the cancellation; others: NaN from inf/inf
// for large |x|), so: a Taylor series near 0, exp(-2|x|) (no overflow) elsewhere.
fn tanh_safe(v: f32) -> f32 {
    let a = abs(v);
    if (a < 0.125) {
        let v2 = v * v;
        return v * (1.0 + v2 * (-1.0 / 3.0 + v2 * (2.0 / 15.0 - v2 * (17.0 / 315.0))));
    }
    let e = exp(-2.0 * min(a, 10.0));
    return sign(v) * (1.0 - e) / (1.0 + e);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = (wid.x + wid.y * nwg.x) * 256u + lid;
    if (i >= p.n) {
        return;
    }
#if PAIR
    // Element c of row t: gate at t * 2 * period + c, up `period` further.
    let gi = i + (i / p.period) * p.period;
    let g = x[gi];
    let u = x[gi + p.period];
#else
#if GLU_SILU
    let gi = i;
    let g = x[i];
    let u = y[i];
#endif
#if GLU_GELU
    let gi = i;
    let g = x[i];
    let u = y[i];
#endif
#endif
#if GLU_SILU
    x[gi] = g / (1.0 + exp(-g)) * u;
#endif
#if GLU_GELU
    let inner = 0.7978845608 * g * (1.0 + 0.044715 * g * g);
    x[gi] = 0.5 * g * (1.0 + tanh_safe(inner)) * u;
#endif
#if ADD
    x[i] = x[i] + y[i];
#endif
#if ADD_BIAS
    x[i] = x[i] + y[i % p.period];
#endif
#if SOFTCAP
    x[i] = p.cap * tanh_safe(x[i] / p.cap);
#endif
}
