#!/usr/bin/env python3
"""Check synthetic GGUFs written by `cargo xtask synth` (xtask/src/synth.rs) with the
`gguf` package: every tensor dequantizes (gguf.quants.dequantize) to finite values whose
standard deviation is within a factor 1.5 of what the generator aimed for.

usage: check_synth.py [--measure] FILE...
  --measure  also print, per ggml type, the measured / aimed ratio (to calibrate
             Ty::unit_std in synth.rs: new unit_std = old unit_std * ratio)
"""
import math
import sys
from collections import defaultdict

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

LOGIT_STD = 3.0


def aimed(arch, name, shape, n_embd, tied):
    """(std, mean) the generator aimed for, by the same rules as synth.rs."""
    if name.endswith("post_attention_norm.weight") or name.endswith("post_ffw_norm.weight"):
        return 1.6, 16.0
    if name.endswith("norm.weight"):
        return 0.1, 1.0
    if name.endswith(".bias"):
        return 0.5, 0.0
    head = (2.0 if arch.startswith("gemma") else LOGIT_STD) / math.sqrt(n_embd)
    if name == "output.weight":
        return head, 0.0
    if name == "token_embd.weight":
        return (head if tied else 1.0), 0.0
    cols = shape[-1]  # numpy shape: (rows, cols)
    gain = 2.5 if (arch == "gemma2" and name.endswith("attn_q.weight")) else 1.0
    return gain / math.sqrt(cols), 0.0


def main():
    args = sys.argv[1:]
    measure = "--measure" in args
    files = [a for a in args if a != "--measure"]
    ratios = defaultdict(list)
    bad = 0
    for path in files:
        r = GGUFReader(path)
        arch = bytes(r.fields["general.architecture"].parts[-1]).decode()
        n_embd = int(r.fields[f"{arch}.embedding_length"].parts[-1][0])
        names = {t.name for t in r.tensors}
        tied = "output.weight" not in names
        for t in r.tensors:
            if t.name.startswith("rope_"):
                continue
            w = dequantize(t.data, t.tensor_type)
            if not np.all(np.isfinite(w)):
                print(f"FAIL {path}: {t.name} has non-finite values")
                bad += 1
                continue
            # Large tables: a sample of rows is plenty for the statistics.
            w2 = w.reshape(-1, w.shape[-1]) if w.ndim > 1 else w.reshape(1, -1)
            sample = w2[:: max(1, w2.shape[0] // 4096)].astype(np.float64)
            std, mean = float(sample.std()), float(sample.mean())
            want_std, want_mean = aimed(arch, t.name, w2.shape, n_embd, tied)
            ratio = std / want_std
            ratios[t.tensor_type.name].append(ratio)
            ok = 1 / 1.5 <= ratio <= 1.5 and abs(mean - want_mean) <= 0.5 * want_std + 1e-6
            if not ok:
                bad += 1
                print(f"FAIL {path}: {t.name} {t.tensor_type.name} std {std:.4g} (aimed {want_std:.4g}), mean {mean:.4g}")
        print(f"ok   {path}: {len(r.tensors)} tensors")
    if measure:
        for ty, rs in sorted(ratios.items()):
            print(f"{ty:8} measured/aimed std: mean {np.mean(rs):.3f} min {min(rs):.3f} max {max(rs):.3f} over {len(rs)} tensors")
    if bad:
        sys.exit(f"{bad} tensors out of bounds")


if __name__ == "__main__":
    main()
