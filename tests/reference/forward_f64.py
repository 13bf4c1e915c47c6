#!/usr/bin/env python3
"""Independent float64 forward pass over a GGUF's dequantized weights.

An oracle for the oracle: the weights are dequantized with the `gguf` package (PyPI,
`gguf.quants.dequantize`, float32 values that are exact for every block format) and every
activation is then computed in float64 with numpy. Nothing is rounded to f16, and
activations are never quantized, so the only error left is the quantization of the
weights themselves, which every faithful GGUF runtime shares.

Architectures (the math follows llama.cpp's graphs, src/models/{llama,qwen2,gemma3}.cpp):
  llama   RMSNorm -> GQA attention with "normal" RoPE (adjacent pairs) -> SwiGLU FFN.
  qwen2   as llama, plus Q/K/V biases, and NeoX RoPE (pairs i, i + n_rot/2).
  gemma3  embeddings scaled by sqrt(n_embd); RMSNorm on Q and K per head (QK-norm);
          "sandwich" norms (attn_norm before, post_attention_norm after attention;
          ffn_norm before, post_ffw_norm after the FFN); GeGLU FFN with tanh-GELU;
          NeoX RoPE; every 6th layer (il % 6 == 5) global with rope base
          gemma3.rope.freq_base, the others local: sliding window of
          gemma3.attention.sliding_window keys (key k visible from query q iff
          0 <= q - k < window) and rope base gemma3.rope.freq_base_swa or 10000;
          Q scaled by 1/sqrt(head_dim) before QK^T (27B: 1/sqrt(n_embd/n_head));
          RMSNorm weights used as stored: the converter already added Gemma's +1.
          Final logit soft-capping only if gemma3.final_logit_softcapping is present.
  All:    output head = output.weight, or token_embd.weight when it is absent (tied).

Full-sequence causal attention (no KV cache): position i's logits are the distribution of
the token after token i.

usage: forward_f64.py --model PATH.gguf --tokens llama_<backend>_<key>.json --out f64_<key>.json
  (--tokens: any JSON with "cases": [{"tokens": [...]}, ...])
"""
import argparse
import json
import math
import sys
import time

import numpy as np
import gguf

TOP_K = 20
KV_F16 = False


class Model:
    def __init__(self, path):
        self.r = gguf.GGUFReader(path)
        self.t = {t.name: t for t in self.r.tensors}
        self.arch = self.meta("general.architecture")
        a = self.arch
        self.n_layer = self.meta(f"{a}.block_count")
        self.n_embd = self.meta(f"{a}.embedding_length")
        self.n_head = self.meta(f"{a}.attention.head_count")
        self.n_head_kv = self.meta(f"{a}.attention.head_count_kv", self.n_head)
        self.head_dim = self.meta(f"{a}.attention.key_length", self.n_embd // self.n_head)
        self.n_rot = self.meta(f"{a}.rope.dimension_count", self.head_dim)
        self.eps = float(self.meta(f"{a}.attention.layer_norm_rms_epsilon"))
        self.rope_base = float(self.meta(f"{a}.rope.freq_base", 10000.0))
        if self.meta(f"{a}.rope.scaling.type", "none") not in ("none",):
            raise NotImplementedError("rope scaling")
        self.rope_neox = {"llama": False, "qwen2": True, "gemma3": True}[a]
        self.attn_scale = 1.0 / math.sqrt(self.head_dim)
        self.swa = [False] * self.n_layer
        self.rope_base_l = [self.rope_base] * self.n_layer
        self.softcap = 0.0
        if a == "gemma3":
            # llama.cpp llama_model_gemma3::load_arch_hparams
            self.n_swa = self.meta(f"{a}.attention.sliding_window", 0)
            if self.n_swa > 0:
                pat = self.meta(f"{a}.attention.sliding_window_pattern", 6)
                if isinstance(pat, list):
                    self.swa = [bool(x) for x in pat]
                else:
                    self.swa = [pat == 0 or (il % pat) < (pat - 1) for il in range(self.n_layer)]
                base_swa = float(self.meta(f"{a}.rope.freq_base_swa", 10000.0))
                self.rope_base_l = [base_swa if s else self.rope_base for s in self.swa]
            self.softcap = float(self.meta(f"{a}.final_logit_softcapping", 0.0))
            if self.n_layer == 62:  # 27B: query_pre_attn_scalar = n_embd / n_head
                self.attn_scale = 1.0 / math.sqrt(self.n_embd / self.n_head)
        self.out_name = "output.weight" if "output.weight" in self.t else "token_embd.weight"

    def meta(self, key, default=None):
        f = self.r.fields.get(key)
        if f is None:
            if default is None:
                raise KeyError(key)
            return default
        return f.contents()

    def has(self, name):
        return name in self.t

    def w(self, name):
        t = self.t[name]
        return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float64)

    def rows(self, name, ids):
        t = self.t[name]
        data = np.asarray(t.data)
        return np.asarray(gguf.quants.dequantize(data[np.asarray(ids)], t.tensor_type), dtype=np.float64)

    def describe(self):
        return {
            "arch": self.arch, "n_layer": self.n_layer, "n_embd": self.n_embd,
            "n_head": self.n_head, "n_head_kv": self.n_head_kv, "head_dim": self.head_dim,
            "n_rot": self.n_rot, "eps": self.eps, "rope_neox": self.rope_neox,
            "rope_base_per_layer": sorted(set(self.rope_base_l)),
            "swa_layers": [i for i, s in enumerate(self.swa) if s],
            "n_swa": getattr(self, "n_swa", 0), "attn_scale": self.attn_scale,
            "softcap": self.softcap, "output": self.out_name,
        }


def rms_norm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, n_rot, base, neox):
    """x: (T, H, D). Rotates the first n_rot dims of each head."""
    half = n_rot // 2
    inv = base ** (-2.0 * np.arange(half, dtype=np.float64) / n_rot)
    ang = pos[:, None].astype(np.float64) * inv[None, :]  # (T, half)
    c = np.cos(ang)[:, None, :]
    s = np.sin(ang)[:, None, :]
    y = x.copy()
    if neox:
        x0, x1 = x[..., :half], x[..., half:n_rot]
        y[..., :half] = x0 * c - x1 * s
        y[..., half:n_rot] = x0 * s + x1 * c
    else:
        x0, x1 = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        y[..., 0:n_rot:2] = x0 * c - x1 * s
        y[..., 1:n_rot:2] = x0 * s + x1 * c
    return y


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def attention(q, k, v, scale, window):
    """q: (T, H, D), k/v: (T, Hkv, D); causal, optional sliding window."""
    T, H, D = q.shape
    Hkv = k.shape[1]
    g = H // Hkv
    qpos = np.arange(T)[:, None]
    kpos = np.arange(T)[None, :]
    masked = kpos > qpos
    if window:
        masked |= (qpos - kpos) >= window
    out = np.empty((T, H, v.shape[2]))
    for h in range(H):
        kv = h // g
        s = (q[:, h, :] @ k[:, kv, :].T) * scale
        s[masked] = -np.inf
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        out[:, h, :] = p @ v[:, kv, :]
    return out


def layer_forward(m, il, W, x):
    a = m.arch
    T = x.shape[0]
    pos = np.arange(T)
    h = rms_norm(x, W["attn_norm"], m.eps)
    q = h @ W["attn_q"].T
    k = h @ W["attn_k"].T
    v = h @ W["attn_v"].T
    if "attn_q_b" in W:
        q = q + W["attn_q_b"]
        k = k + W["attn_k_b"]
        v = v + W["attn_v_b"]
    q = q.reshape(T, m.n_head, m.head_dim)
    k = k.reshape(T, m.n_head_kv, m.head_dim)
    v = v.reshape(T, m.n_head_kv, -1)
    if a == "gemma3":
        q = rms_norm(q, W["attn_q_norm"], m.eps)
        k = rms_norm(k, W["attn_k_norm"], m.eps)
    q = rope(q, pos, m.n_rot, m.rope_base_l[il], m.rope_neox)
    k = rope(k, pos, m.n_rot, m.rope_base_l[il], m.rope_neox)
    if KV_F16:  # diagnostic only: mimic llama.cpp's f16 KV cache
        k = k.astype(np.float16).astype(np.float64)
        v = v.astype(np.float16).astype(np.float64)
    window = m.n_swa if (a == "gemma3" and m.swa[il]) else 0
    o = attention(q, k, v, m.attn_scale, window).reshape(T, -1)
    o = o @ W["attn_output"].T
    if a == "gemma3":
        o = rms_norm(o, W["post_attention_norm"], m.eps)
    x = x + o
    h = rms_norm(x, W["ffn_norm"], m.eps)
    gate = h @ W["ffn_gate"].T
    up = h @ W["ffn_up"].T
    act = gelu_tanh(gate) if a == "gemma3" else silu(gate)
    f = (act * up) @ W["ffn_down"].T
    if a == "gemma3":
        f = rms_norm(f, W["post_ffw_norm"], m.eps)
    return x + f


LAYER_TENSORS = {
    "attn_norm": "attn_norm.weight", "attn_q": "attn_q.weight", "attn_k": "attn_k.weight",
    "attn_v": "attn_v.weight", "attn_output": "attn_output.weight",
    "attn_q_b": "attn_q.bias", "attn_k_b": "attn_k.bias", "attn_v_b": "attn_v.bias",
    "attn_q_norm": "attn_q_norm.weight", "attn_k_norm": "attn_k_norm.weight",
    "post_attention_norm": "post_attention_norm.weight", "ffn_norm": "ffn_norm.weight",
    "ffn_gate": "ffn_gate.weight", "ffn_up": "ffn_up.weight", "ffn_down": "ffn_down.weight",
    "post_ffw_norm": "post_ffw_norm.weight",
}


def forward_all(m, seqs, log=sys.stderr):
    """seqs: list of token-id lists. Returns per sequence (top_ids (T,20), top_vals (T,20))."""
    xs = []
    for ids in seqs:
        x = m.rows("token_embd.weight", ids)
        if m.arch == "gemma3":
            x = x * math.sqrt(m.n_embd)
        xs.append(x)
    t0 = time.time()
    for il in range(m.n_layer):
        W = {}
        for k, suffix in LAYER_TENSORS.items():
            name = f"blk.{il}.{suffix}"
            if m.has(name):
                W[k] = m.w(name)
        xs = [layer_forward(m, il, W, x) for x in xs]
        print(f"  layer {il + 1}/{m.n_layer} {time.time() - t0:.1f} s", file=log, flush=True)
    hs = [rms_norm(x, m.w("output_norm.weight"), m.eps) for x in xs]
    # output head in row chunks, keeping a running top-K per position
    t = m.t[m.out_name]
    n_vocab = int(t.shape[1])
    data = np.asarray(t.data)
    best = [(np.zeros((h.shape[0], 0), dtype=np.int64), np.zeros((h.shape[0], 0))) for h in hs]
    chunk = 16384
    for a in range(0, n_vocab, chunk):
        b = min(n_vocab, a + chunk)
        Wc = np.asarray(gguf.quants.dequantize(data[a:b], t.tensor_type), dtype=np.float64)
        for i, h in enumerate(hs):
            lg = h @ Wc.T
            if m.softcap:
                lg = np.tanh(lg / m.softcap) * m.softcap
            ids = np.concatenate([best[i][0], np.broadcast_to(np.arange(a, b), lg.shape)], axis=1)
            vals = np.concatenate([best[i][1], lg], axis=1)
            sel = np.argpartition(-vals, TOP_K - 1, axis=1)[:, :TOP_K]
            best[i] = (np.take_along_axis(ids, sel, 1), np.take_along_axis(vals, sel, 1))
    out = []
    for ids, vals in best:
        order = np.argsort(-vals, axis=1, kind="stable")
        out.append((np.take_along_axis(ids, order, 1), np.take_along_axis(vals, order, 1)))
    print(f"  head done {time.time() - t0:.1f} s", file=log, flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--kv-f16", action="store_true",
                    help="diagnostic: round K and V to f16 like llama.cpp's default KV cache (not for fixtures)")
    args = ap.parse_args()
    global KV_F16
    KV_F16 = args.kv_f16
    m = Model(args.model)
    print(f"[f64] {args.model}: {json.dumps(m.describe())}", file=sys.stderr)
    src = json.load(open(args.tokens))
    seqs = [c["tokens"] for c in src["cases"]]
    res = forward_all(m, seqs)
    cases = []
    for c, (ids, vals) in zip(src["cases"], res):
        cases.append({
            "tokens": c["tokens"],
            "f64": [[[int(i), float(v)] for i, v in zip(ri, rv)] for ri, rv in zip(ids, vals)],
            "gap": [float(rv[0] - rv[1]) for rv in vals],
        })
    json.dump({"model": args.model, "config": m.describe(), "cases": cases}, open(args.out, "w"))
    print(f"[f64] wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
