//! One sequence on the CPU engine: an f16 KV cache per layer and the forward pass.
//!
//! The pass is the oracle's (`model::cpu`), op for op, with three differences that make
//! it fast: matrices multiply through the integer kernels over 8-bit activations
//! ([`super::matrix`]), matrices that read one input share one quantization and one
//! parallel region (Q, K and V; gate and up), and keys and values are cached in f16 (as
//! the GPU engine and llama.cpp cache them).

use super::matrix::{matmul, Input};
use super::model::CpuEngine;
use super::pool::SharedOut;
use crate::generate::Forward;
use crate::model::math::{gelu_tanh, rms_norm, silu, softcap, softmax};
use crate::model::Logits;
use crate::quant::dequantize;
use crate::Error;
use std::sync::Arc;

pub struct CpuEngineSession {
    model: Arc<CpuEngine>,
    n_ctx: usize,
    /// The tokens whose keys and values are cached.
    tokens: Vec<u32>,
    /// Per layer: `n_ctx` rows of `k_dim` (`v_dim`) halves.
    k_cache: Vec<Vec<u16>>,
    v_cache: Vec<Vec<u16>>,
}

impl CpuEngineSession {
    /// A session with room for `n_ctx` positions. The cache is allocated zeroed, so
    /// untouched positions cost address space, not resident memory.
    pub fn new(model: Arc<CpuEngine>, n_ctx: usize) -> Result<CpuEngineSession, Error> {
        let cfg = &model.config;
        if n_ctx == 0 {
            return Err(Error::InvalidRequest(
                "the context must hold at least 1 token".into(),
            ));
        }
        let bytes = model.kv_bytes(n_ctx);
        if bytes > isize::MAX as u64 / 2 || (cfg!(target_pointer_width = "32") && bytes > 1 << 31) {
            return Err(Error::InvalidRequest(format!(
                "a {n_ctx}-token context needs {} MiB of KV cache, more than this machine can address",
                bytes >> 20
            )));
        }
        let k_cache = (0..cfg.n_layer)
            .map(|_| vec![0u16; n_ctx * cfg.k_dim()])
            .collect();
        let v_cache = (0..cfg.n_layer)
            .map(|_| vec![0u16; n_ctx * cfg.v_dim()])
            .collect();
        Ok(CpuEngineSession {
            model,
            n_ctx,
            tokens: Vec::new(),
            k_cache,
            v_cache,
        })
    }

    pub fn model(&self) -> &Arc<CpuEngine> {
        &self.model
    }

    fn n_past(&self) -> usize {
        self.tokens.len()
    }

    pub fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<Vec<f32>, Error> {
        let model = Arc::clone(&self.model);
        let mut out = run_pass(&model, &mut [self], &[tokens], logits)?;
        Ok(out.pop().expect("one sequence in, one out"))
    }

    /// Refuse what this sequence cannot evaluate, before anything is computed.
    fn check(&self, tokens: &[u32]) -> Result<(), Error> {
        let n_vocab = self.model.config.n_vocab;
        if tokens.is_empty() {
            return Err(Error::InvalidRequest("no tokens to evaluate".into()));
        }
        let needed = self.n_past() + tokens.len();
        if needed > self.n_ctx {
            return Err(Error::ContextFull {
                needed,
                n_ctx: self.n_ctx,
            });
        }
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= n_vocab) {
            return Err(Error::InvalidRequest(format!(
                "token id {bad} is outside the vocabulary (size {n_vocab})"
            )));
        }
        Ok(())
    }
}

/// Evaluate one step of several sequences of the same model in one pass: each
/// `sessions[i]` appends `steps[i]`. The rows of all of them go through every matrix
/// together (one mat-mat product per weight, so the weights are read once for all);
/// only attention and the caches are per sequence. Returns each sequence's logits (its
/// last row's, or all its rows'). This is what batches the decode steps of concurrent
/// requests ([`crate::batch`]); a single sequence is the ordinary forward pass.
///
/// Either every sequence is evaluated or, when one of them cannot be (a full context, a
/// token outside the vocabulary), none is and the error says which.
pub fn forward_many(
    sessions: &mut [&mut CpuEngineSession],
    steps: &[&[u32]],
    logits: Logits,
) -> Result<Vec<Vec<f32>>, Error> {
    let Some(first) = sessions.first() else {
        return Ok(Vec::new());
    };
    let model = Arc::clone(&first.model);
    let n_ctx = first.n_ctx;
    if sessions
        .iter()
        .any(|s| !Arc::ptr_eq(&s.model, &model) || s.n_ctx != n_ctx)
    {
        return Err(Error::InvalidRequest(
            "only sequences of one model and one context size share a pass".into(),
        ));
    }
    run_pass(&model, sessions, steps, logits)
}

/// Where one row of a pass belongs: its sequence and its position in that sequence.
#[derive(Clone, Copy)]
struct RowPlace {
    seq: usize,
    pos: usize,
}

fn run_pass(
    model: &CpuEngine,
    sessions: &mut [&mut CpuEngineSession],
    steps: &[&[u32]],
    logits: Logits,
) -> Result<Vec<Vec<f32>>, Error> {
    assert_eq!(sessions.len(), steps.len(), "one step per sequence");
    for (s, step) in sessions.iter().zip(steps) {
        s.check(step)?;
    }
    let cfg = &model.config;
    let file = model.file.bytes();
    let tokens: Vec<u32> = steps.concat();
    let places: Vec<RowPlace> = sessions
        .iter()
        .zip(steps)
        .enumerate()
        .flat_map(|(seq, (s, step))| {
            (s.n_past()..s.n_past() + step.len()).map(move |pos| RowPlace { seq, pos })
        })
        .collect();
    let n = tokens.len();
    let e = cfg.n_embd;
    let (qd, kd, vd) = (cfg.q_dim(), cfg.k_dim(), cfg.v_dim());
    let mut x = embed(model, &tokens);
    let positions: Vec<usize> = places.iter().map(|p| p.pos).collect();
    let mut rope = RopeCache::default();
    let (mut q, mut k, mut v) = (vec![0f32; n * qd], vec![0f32; n * kd], vec![0f32; n * vd]);
    let mut attn = vec![0f32; n * cfg.n_head * cfg.head_dim_v];
    let mut o = vec![0f32; n * e];
    let (mut gate, mut up) = (vec![0f32; n * cfg.n_ff], vec![0f32; n * cfg.n_ff]);
    // One context size for the whole pass (`forward_many` checks): it picks the
    // long-context rope factors.
    let n_ctx = sessions[0].n_ctx;

    for (il, l) in model.layers.iter().enumerate() {
        // Attention block.
        let mut h = x.clone();
        h.chunks_mut(e)
            .for_each(|r| rms_norm(r, &l.attn_norm, cfg.rms_eps));
        let mut input = Input::new(&h, e, model.precision);
        matmul(
            &model.pool,
            file,
            &mut input,
            &[&l.wq, &l.wk, &l.wv],
            &mut [&mut q, &mut k, &mut v],
        );
        add_bias(&mut q, &l.bq);
        add_bias(&mut k, &l.bk);
        add_bias(&mut v, &l.bv);
        let table = cfg.rope_layers[il].then(|| {
            let factors = model.rope_factors.as_ref().map(|(short, long)| match long {
                Some(long) if n_ctx > cfg.n_ctx_orig => long.as_slice(),
                _ => short.as_slice(),
            });
            rope.get(
                cfg.layer_rope_base(il),
                cfg.layer_rope_freq_scale(il),
                cfg.rope_dims,
                factors,
                &positions,
            )
        });
        for t in 0..n {
            let heads = [
                (&mut q[t * qd..(t + 1) * qd], &l.q_norm),
                (&mut k[t * kd..(t + 1) * kd], &l.k_norm),
            ];
            for (rows, norm) in heads {
                for head in rows.chunks_mut(cfg.head_dim_k) {
                    if let Some(w) = norm {
                        rms_norm(head, w, cfg.rms_eps);
                    }
                    if let Some(table) = &table {
                        table.apply(head, t, cfg.rope_style);
                    }
                }
            }
        }
        for (t, place) in places.iter().enumerate() {
            let s = &mut sessions[place.seq];
            let p = place.pos;
            (model.half.store)(
                &k[t * kd..(t + 1) * kd],
                &mut s.k_cache[il][p * kd..(p + 1) * kd],
            );
            (model.half.store)(
                &v[t * vd..(t + 1) * vd],
                &mut s.v_cache[il][p * vd..(p + 1) * vd],
            );
        }
        let caches: Vec<(&[u16], &[u16])> = sessions
            .iter()
            .map(|s| (s.k_cache[il].as_slice(), s.v_cache[il].as_slice()))
            .collect();
        attention(model, il, &q, &places, &caches, &mut attn);
        let mut input = Input::new(&attn, cfg.n_head * cfg.head_dim_v, model.precision);
        matmul(&model.pool, file, &mut input, &[&l.wo], &mut [&mut o]);
        if let Some(w) = &l.attn_post_norm {
            o.chunks_mut(e).for_each(|r| rms_norm(r, w, cfg.rms_eps));
        }
        x.iter_mut().zip(&o).for_each(|(xi, oi)| *xi += oi);

        // Feed-forward block.
        let mut h = x.clone();
        h.chunks_mut(e)
            .for_each(|r| rms_norm(r, &l.ffn_norm, cfg.rms_eps));
        let mut input = Input::new(&h, e, model.precision);
        matmul(
            &model.pool,
            file,
            &mut input,
            &[&l.ffn_gate, &l.ffn_up],
            &mut [&mut gate, &mut up],
        );
        let act: fn(f32) -> f32 = if cfg.arch.gelu_ffn() { gelu_tanh } else { silu };
        // Spread over the threads: an exp per value, serial, was ~4% of a prefill.
        let ff = cfg.n_ff;
        let gated = SharedOut::new(&mut gate);
        model.pool.for_each(n, |t| {
            // SAFETY: job t alone touches token t's row.
            let g = unsafe { gated.slice(t * ff, ff) };
            g.iter_mut()
                .zip(&up[t * ff..(t + 1) * ff])
                .for_each(|(g, u)| *g = act(*g) * u);
        });
        let mut input = Input::new(&gate, cfg.n_ff, model.precision);
        matmul(&model.pool, file, &mut input, &[&l.ffn_down], &mut [&mut o]);
        if let Some(w) = &l.ffn_post_norm {
            o.chunks_mut(e).for_each(|r| rms_norm(r, w, cfg.rms_eps));
        }
        x.iter_mut().zip(&o).for_each(|(xi, oi)| *xi += oi);
    }
    for (s, step) in sessions.iter_mut().zip(steps) {
        s.tokens.extend_from_slice(step);
    }

    // The rows whose logits are wanted, and how many of them each sequence owns.
    let mut owned = Vec::with_capacity(steps.len());
    let mut rows = Vec::new();
    let mut start = 0;
    for step in steps {
        let end = start + step.len();
        let first = match logits {
            Logits::All => start,
            Logits::Last => end - 1,
        };
        rows.extend_from_slice(&x[first * e..end * e]);
        owned.push(end - first);
        start = end;
    }
    rows.chunks_mut(e)
        .for_each(|r| rms_norm(r, &model.output_norm, cfg.rms_eps));
    let m = rows.len() / e;
    let mut out = vec![0f32; m * cfg.n_vocab];
    let mut input = Input::new(&rows, e, model.precision);
    matmul(
        &model.pool,
        file,
        &mut input,
        &[&model.output],
        &mut [&mut out],
    );
    if cfg.final_logit_softcap > 0.0 {
        softcap(&mut out, cfg.final_logit_softcap);
    }
    let mut rest = out.as_slice();
    Ok(owned
        .into_iter()
        .map(|r| {
            let (mine, tail) = rest.split_at(r * cfg.n_vocab);
            rest = tail;
            mine.to_vec()
        })
        .collect())
}

fn embed(model: &CpuEngine, tokens: &[u32]) -> Vec<f32> {
    let cfg = &model.config;
    let t = &model.tok_embd;
    let cols = t.row_len() as usize;
    let data = model.file.tensor_data(t);
    let row_bytes = data.len() / t.n_rows() as usize;
    let mut x = vec![0f32; tokens.len() * cols];
    for (row, &tok) in x.chunks_mut(cols).zip(tokens) {
        let r = tok as usize;
        dequantize(t.ggml_type, &data[r * row_bytes..(r + 1) * row_bytes], row)
            .expect("embedding type and size checked at load");
        if cfg.embd_scale != 1.0 {
            row.iter_mut().for_each(|v| *v *= cfg.embd_scale);
        }
    }
    x
}

/// Causal (optionally sliding-window) GQA attention of the pass's queries, each against
/// its own sequence's cache (`caches[seq]`, which already holds the pass's keys and
/// values); one job per (row, head).
fn attention(
    model: &CpuEngine,
    il: usize,
    q: &[f32],
    places: &[RowPlace],
    caches: &[(&[u16], &[u16])],
    out: &mut [f32],
) {
    let cfg = &model.config;
    let half = model.half;
    let (dk, dv) = (cfg.head_dim_k, cfg.head_dim_v);
    let (kd, vd) = (cfg.k_dim(), cfg.v_dim());
    let group = cfg.n_head / cfg.n_head_kv;
    let window = cfg.layer_window(il);
    out.fill(0.0);
    let shared = SharedOut::new(out);
    model.pool.for_each(places.len() * cfg.n_head, |idx| {
        let (t, head) = (idx / cfg.n_head, idx % cfg.n_head);
        let kv_head = head / group;
        let RowPlace { seq, pos } = places[t];
        let (kc, vc) = caches[seq];
        let first = window.map_or(0, |w| (pos + 1).saturating_sub(w));
        let qh = &q[t * cfg.q_dim() + head * dk..][..dk];
        let mut scores: Vec<f32> = (first..=pos)
            .map(|p| (half.dot)(qh, &kc[p * kd + kv_head * dk..][..dk]) * cfg.attn_scale)
            .collect();
        if cfg.attn_softcap > 0.0 {
            softcap(&mut scores, cfg.attn_softcap);
        }
        softmax(&mut scores);
        // SAFETY: job idx alone writes output row idx.
        let o = unsafe { shared.slice(idx * dv, dv) };
        for (p, &s) in (first..=pos).zip(&scores) {
            (half.axpy)(o, s, &vc[p * vd + kv_head * dv..][..dv]);
        }
    });
}

fn add_bias(x: &mut [f32], bias: &Option<Vec<f32>>) {
    if let Some(b) = bias {
        for row in x.chunks_mut(b.len()) {
            row.iter_mut().zip(b).for_each(|(v, bi)| *v += bi);
        }
    }
}

/// cos/sin of every rotated pair at the positions of one forward call, per distinct
/// (base, scale) — most models have one, Gemma 3 two (local and global layers).
#[derive(Default)]
struct RopeCache {
    tables: Vec<((u32, u32), std::rc::Rc<RopeTable>)>,
}

struct RopeTable {
    half: usize,
    /// `[t][i]` = (cos, sin) of pair i at row t's position.
    cs: Vec<(f32, f32)>,
}

impl RopeCache {
    fn get(
        &mut self,
        base: f32,
        freq_scale: f32,
        n_rot: usize,
        factors: Option<&[f32]>,
        positions: &[usize],
    ) -> std::rc::Rc<RopeTable> {
        let key = (base.to_bits(), freq_scale.to_bits());
        if let Some((_, t)) = self.tables.iter().find(|(k, _)| *k == key) {
            return std::rc::Rc::clone(t);
        }
        // The oracle's arithmetic (f64 angles), so both engines rotate alike.
        let half = n_rot / 2;
        let mut cs = Vec::with_capacity(positions.len() * half);
        for &pos in positions {
            let pos = pos as f64;
            for i in 0..half {
                let inv_freq = (base as f64).powf(-2.0 * i as f64 / n_rot as f64);
                let ff = factors.map_or(1.0, |f| f[i] as f64);
                let theta = pos * freq_scale as f64 * inv_freq / ff;
                cs.push((theta.cos() as f32, theta.sin() as f32));
            }
        }
        let table = std::rc::Rc::new(RopeTable { half, cs });
        self.tables.push((key, std::rc::Rc::clone(&table)));
        table
    }
}

impl RopeTable {
    fn apply(&self, head: &mut [f32], t: usize, style: crate::model::RopeStyle) {
        let half = self.half;
        for (i, &(cos, sin)) in self.cs[t * half..(t + 1) * half].iter().enumerate() {
            let (a, b) = match style {
                crate::model::RopeStyle::Normal => (2 * i, 2 * i + 1),
                crate::model::RopeStyle::Neox => (i, i + half),
            };
            let (x0, x1) = (head[a], head[b]);
            head[a] = x0 * cos - x1 * sin;
            head[b] = x0 * sin + x1 * cos;
        }
    }
}

impl Forward for CpuEngineSession {
    fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    fn cached_tokens(&self) -> &[u32] {
        &self.tokens
    }

    fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
    }

    fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<Vec<f32>, Error> {
        CpuEngineSession::forward(self, tokens, logits)
    }
}
