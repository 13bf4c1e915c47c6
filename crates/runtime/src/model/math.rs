//! Plain-Rust reference operations of the forward pass. The CPU oracle is built from
//! these, and every GPU kernel is tested against them.

use super::config::RopeStyle;

/// Dot product with eight independent accumulators (keeps the compiler free to
/// vectorise without changing results between runs).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut tail = 0f32;
    for i in chunks * 8..a.len() {
        tail += a[i] * b[i];
    }
    let pairs = [
        acc[0] + acc[4],
        acc[1] + acc[5],
        acc[2] + acc[6],
        acc[3] + acc[7],
    ];
    (pairs[0] + pairs[2]) + (pairs[1] + pairs[3]) + tail
}

/// RMSNorm in place: x / sqrt(mean(x²) + eps) * weight.
pub fn rms_norm(x: &mut [f32], weight: &[f32], eps: f32) {
    let mean_sq = x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len() as f64;
    let scale = (1.0 / (mean_sq + eps as f64).sqrt()) as f32;
    for (v, &w) in x.iter_mut().zip(weight) {
        *v = *v * scale * w;
    }
}

/// Rotate the first `n_rot` dimensions of one head at position `pos`.
pub fn rope(
    head: &mut [f32],
    pos: usize,
    n_rot: usize,
    base: f32,
    freq_scale: f32,
    style: RopeStyle,
) {
    rope_factors(head, pos, n_rot, base, freq_scale, style, None)
}

/// [`rope`] with per-pair frequency divisors (Llama 3 `rope_freqs`, Phi-3 LongRoPE):
/// pair i turns at `pos * freq_scale * base^(-2i/n_rot) / factors[i]`, as ggml's rope.
pub fn rope_factors(
    head: &mut [f32],
    pos: usize,
    n_rot: usize,
    base: f32,
    freq_scale: f32,
    style: RopeStyle,
    factors: Option<&[f32]>,
) {
    let half = n_rot / 2;
    for i in 0..half {
        let inv_freq = (base as f64).powf(-2.0 * i as f64 / n_rot as f64);
        let ff = factors.map_or(1.0, |f| f[i] as f64);
        let theta = pos as f64 * freq_scale as f64 * inv_freq / ff;
        let (sin, cos) = (theta.sin() as f32, theta.cos() as f32);
        let (a, b) = match style {
            RopeStyle::Normal => (2 * i, 2 * i + 1),
            RopeStyle::Neox => (i, i + half),
        };
        let (x0, x1) = (head[a], head[b]);
        head[a] = x0 * cos - x1 * sin;
        head[b] = x0 * sin + x1 * cos;
    }
}

/// Softmax in place (max-subtracted).
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// GELU, tanh approximation (as Gemma and ggml use it).
pub fn gelu_tanh(x: f32) -> f32 {
    const SQRT_2_OVER_PI: f32 = 0.797_884_6;
    0.5 * x * (1.0 + (SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x * x)).tanh())
}

/// Soft-cap logits: cap * tanh(x / cap).
pub fn softcap(x: &mut [f32], cap: f32) {
    for v in x.iter_mut() {
        *v = cap * (*v / cap).tanh();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let naive: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        assert!((dot(&a, &b) as f64 - naive).abs() < 1e-5);
    }

    #[test]
    fn rope_position_zero_is_identity_and_preserves_norm() {
        let orig: Vec<f32> = (0..8).map(|i| i as f32 + 1.0).collect();
        for style in [RopeStyle::Normal, RopeStyle::Neox] {
            let mut h = orig.clone();
            rope(&mut h, 0, 8, 10000.0, 1.0, style);
            assert_eq!(h, orig);
            rope(&mut h, 17, 8, 10000.0, 1.0, style);
            let n0: f32 = orig.iter().map(|v| v * v).sum();
            let n1: f32 = h.iter().map(|v| v * v).sum();
            assert!((n0 - n1).abs() < 1e-3);
        }
    }

    #[test]
    fn softmax_sums_to_one() {
        let mut x = vec![1.0, 2.0, 3.0, -1e9];
        softmax(&mut x);
        assert!((x.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert_eq!(x[3], 0.0);
    }
}
