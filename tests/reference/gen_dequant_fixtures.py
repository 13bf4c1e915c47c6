#!/usr/bin/env python3
"""Write the CPU dequantization fixtures in tests/fixtures/dequant/.

For every ggml type Wisp dequantizes, random blocks and the float32 values the `gguf`
Python package (gguf.quants.dequantize) produces for them. Wisp's kernels must match
these bit for bit (crates/runtime/tests/dequant.rs).

Blocks are random bytes, except that scale fields are overwritten with finite, modest
values so the results are finite. Plain scalar types (F32, F16, BF16, I8...) keep fully
random bytes, so NaN and infinity encodings are covered too. Types gguf-py has no
dequantizer for (F64, I8, I16, I32, Q8_K) use numpy's astype / ggml's one-line formula.

File format (little-endian): b"WDQ1", u32 type id, u32 element count, u32 source byte
count, the source bytes, then the expected f32 values.

Also writes f32_to_f16.bin: b"WH16", u32 count, count f32 inputs, count f16 results
from numpy's float32 -> float16 conversion.

Usage: python tests/reference/gen_dequant_fixtures.py   (needs gguf>=0.19, numpy)
"""
import struct
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType as T
from gguf.quants import dequantize

OUT = Path(__file__).resolve().parents[1] / "fixtures" / "dequant"
SEED = 20240611

# Byte offsets of the f16 scale fields inside one block of each quantized type.
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    T.IQ4_NL: [0], T.IQ4_XS: [0], T.TQ1_0: [52], T.TQ2_0: [64],
    T.Q8_K: [], T.MXFP4: [],
}
SCALAR = [T.F32, T.F16, T.BF16, T.F64, T.I8, T.I16, T.I32]


def modest_f16(rng, n):
    """Finite f16 scales of either sign, from subnormal up to ~4."""
    mag = rng.uniform(1.0, 2.0, n) * np.exp2(rng.integers(-20, 2, n).astype(np.float64))
    return (mag * rng.choice([-1.0, 1.0], n)).astype(np.float16)


def make_blocks(rng, t, n_blocks):
    block, size = GGML_QUANT_SIZES[t]
    raw = rng.integers(0, 256, (n_blocks, size), dtype=np.uint8)
    for off in F16_FIELDS.get(t, []):
        raw[:, off:off + 2] = modest_f16(rng, n_blocks).view(np.uint8).reshape(n_blocks, 2)
    if t == T.Q8_K:
        d = (rng.standard_normal(n_blocks) * 0.01).astype(np.float32)
        raw[:, 0:4] = d.view(np.uint8).reshape(n_blocks, 4)
    if t == T.MXFP4:
        raw[:, 0] = rng.integers(100, 156, n_blocks, dtype=np.uint8)  # e8m0 near 2^0
    if t == T.F64:
        # Half ordinary doubles (f32 rounding), half random bit patterns (inf/0/NaN).
        vals = rng.standard_normal(n_blocks) * np.exp2(rng.integers(-40, 40, n_blocks))
        ordinary = vals.view(np.uint8).reshape(n_blocks, 8)
        raw[: n_blocks // 2] = ordinary[: n_blocks // 2]
    return raw.reshape(-1)


def expected(t, data):
    if t == T.F64:
        with np.errstate(over="ignore"):
            return data.view(np.float64).astype(np.float32)
    if t in (T.I8, T.I16, T.I32):
        return data.view({T.I8: np.int8, T.I16: np.int16, T.I32: np.int32}[t]).astype(np.float32)
    if t == T.Q8_K:
        # ggml's dequantize_row_q8_K: y = d * q (gguf-py has no Q8_K class).
        blocks = data.reshape(-1, 292)
        d = blocks[:, 0:4].copy().view(np.float32)
        q = blocks[:, 4:260].view(np.int8).astype(np.float32)
        return (d * q).reshape(-1)
    out = dequantize(data, t)
    assert out.dtype == np.float32
    return out.reshape(-1)


def main():
    rng = np.random.default_rng(SEED)
    OUT.mkdir(parents=True, exist_ok=True)
    total = 0
    for t in SCALAR + list(F16_FIELDS):
        block, size = GGML_QUANT_SIZES[t]
        n_blocks = 2048 if block == 1 else (64 if block == 32 else 16)
        data = make_blocks(rng, t, n_blocks)
        y = np.ascontiguousarray(expected(t, data), dtype="<f4")
        assert y.size == n_blocks * block
        if t not in SCALAR:
            assert np.isfinite(y).all(), t.name
        blob = b"WDQ1" + struct.pack("<III", int(t), y.size, data.size) + data.tobytes() + y.tobytes()
        (OUT / f"{t.name}.bin").write_bytes(blob)
        total += len(blob)

    # f32 -> f16: values spread over (and past) the f16 range, exact midpoints, NaNs.
    n = 4096
    x = (rng.standard_normal(n) * np.exp2(rng.integers(-30, 20, n))).astype(np.float32)
    h = rng.integers(0, 0x7c00, n // 4, dtype=np.uint32)
    lo = h.astype(np.uint16).view(np.float16).astype(np.float64)
    hi = (h + 1).astype(np.uint16).view(np.float16).astype(np.float64)
    mid = ((lo + hi) / 2).astype(np.float32)
    x[: n // 4] = np.where(np.isfinite(mid), mid, 1.0)
    x[n // 4: n // 4 + 64] = rng.integers(0, 2**32, 64, dtype=np.uint64).astype(np.uint32).view(np.float32)
    x[n // 4 + 64: n // 4 + 72] = np.array(
        [0x7F800001, 0x7FC00000, 0xFF812345, 0x7F800000, 0xFF800000, 0x80000000, 0x00000001, 0x477FF000],
        dtype=np.uint32).view(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        f16 = x.astype(np.float16)
    blob = b"WH16" + struct.pack("<I", n) + x.astype("<f4").tobytes() + f16.view("<u2").tobytes()
    (OUT / "f32_to_f16.bin").write_bytes(blob)
    total += len(blob)
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
