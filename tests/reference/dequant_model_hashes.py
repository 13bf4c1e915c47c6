#!/usr/bin/env python3
"""Hash every dequantized tensor of the three real test models.

Writes tests/fixtures/dequant/model_hashes.json: model file name -> tensor name ->
{"type": ggml type name, "hash": sha256 of the tensor dequantized to float32 by
gguf.quants.dequantize (little-endian, C order, i.e. ggml element order)}.
tests/tests/dequant_models.rs checks Wisp's CPU dequantization against it.

Usage: WISP_MODELS=/path/to/models python tests/reference/dequant_model_hashes.py
"""
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGUFReader
from gguf.quants import dequantize

ROOT = Path(__file__).resolve().parents[2]
MODELS = [
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma-3-270m-q4_k_m.gguf",
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
]
# Rows of blocks dequantized per step, to bound memory on the large embeddings.
CHUNK_BYTES = 16 << 20


def tensor_hash(t) -> str:
    block, size = GGML_QUANT_SIZES[t.tensor_type]
    raw = np.asarray(t.data).reshape(-1).view(np.uint8)  # the tensor's bytes, in file order
    assert raw.size == t.n_bytes
    step = max(size, CHUNK_BYTES // size * size)
    h = hashlib.sha256()
    for start in range(0, raw.size, step):
        chunk = raw[start:start + step]
        y = dequantize(chunk, t.tensor_type)
        assert y.dtype == np.float32 and y.size == chunk.size // size * block
        h.update(np.ascontiguousarray(y, dtype="<f4").tobytes())
    return h.hexdigest()


def main():
    models = Path(os.environ.get("WISP_MODELS", ROOT / "target" / "models"))
    out = {}
    for name in MODELS:
        reader = GGUFReader(models / name)
        out[name] = {
            t.name: {"type": t.tensor_type.name, "hash": tensor_hash(t)} for t in reader.tensors
        }
        print(f"{name}: {len(out[name])} tensors", file=sys.stderr)
    path = ROOT / "tests" / "fixtures" / "dequant" / "model_hashes.json"
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
