#!/usr/bin/env python3
"""Dump the headers of the three real test models as gguf-py's GGUFReader sees them.

Writes tests/fixtures/gguf/tables.json: per model file name, the GGUF version, the number
of metadata pairs, the alignment, the absolute data offset, every tensor (name, dims in
ggml order, type name, absolute offset, byte size) in file order, and every metadata key
with its value type: scalars with their value, arrays with element type and length.
tests/tests/gguf_real.rs checks Wisp's reader against it.

Usage: WISP_MODELS=/path/to/models python tests/reference/gguf_tables.py
"""
import json
import os
import sys
from pathlib import Path

from gguf import GGUFReader, GGUFValueType as V

ROOT = Path(__file__).resolve().parents[2]
MODELS = [
    "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma-3-270m-q4_k_m.gguf",
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
]
# gguf-py's value type names -> Wisp's (wisp::gguf::Value::type_name).
TYPE_NAMES = {
    V.UINT8: "u8", V.INT8: "i8", V.UINT16: "u16", V.INT16: "i16", V.UINT32: "u32",
    V.INT32: "i32", V.FLOAT32: "f32", V.BOOL: "bool", V.STRING: "string", V.ARRAY: "array",
    V.UINT64: "u64", V.INT64: "i64", V.FLOAT64: "f64",
}


def field_entry(field):
    kind = TYPE_NAMES[field.types[0]]
    if field.types[0] == V.ARRAY:
        elem = TYPE_NAMES[field.types[1]] if len(field.types) > 1 else None
        return {"type": "array", "elem": elem, "len": len(field.data)}
    value = field.contents()
    if isinstance(value, float):
        value = float(value)  # f32 values are exact in a double
    return {"type": kind, "value": value}


def table(path):
    r = GGUFReader(path)
    meta = {k: f for k, f in r.fields.items() if not k.startswith("GGUF.")}
    return {
        "version": int(r.fields["GGUF.version"].contents()),
        "n_kv": len(meta),
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "metadata": {k: field_entry(f) for k, f in meta.items()},
        "tensors": [
            {
                "name": t.name,
                "dims": [int(d) for d in t.shape],
                "type": t.tensor_type.name,
                "offset": int(t.data_offset),
                "n_bytes": int(t.n_bytes),
            }
            for t in r.tensors
        ],
    }


def main():
    models = Path(os.environ.get("WISP_MODELS", ROOT / "target" / "models"))
    out = {name: table(models / name) for name in MODELS}
    path = ROOT / "tests" / "fixtures" / "gguf" / "tables.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
