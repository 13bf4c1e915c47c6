#!/usr/bin/env python3
"""Merge llama.cpp (Vulkan) top-10 logits and the float64 reference's top-20 into
tests/fixtures/logits/<key>.json, and write tests/fixtures/logits/greedy.json.

usage: merge_logit_fixtures.py [--work target/logit-fixtures] [--models smollm2,gemma3,qwen2]
"""
import argparse
import ctypes
import glob
import json
import os
import re

import gguf

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "logits")
GENERATOR = "tests/reference/make_logit_fixtures.sh"
MODEL_FILES = {"smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf", "gemma3": "gemma-3-270m-q4_k_m.gguf",
               "qwen2": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"}
NEAR_TIE = 0.3
CAPITAL = "The capital of France is"


def r5(x):
    return round(float(x), 5)


def llama_cpp_build():
    """The commit the prebuilt libllama was built from, via llama_build_info() in
    libllama-common.so (the prebuilt build number is 1: built from a source bundle)."""
    pat = os.path.join(HERE, "node_modules", "@node-llama-cpp", "linux-x64-vulkan", "bins", "*", "libllama-common.so")
    for so in glob.glob(pat):
        try:
            lib = ctypes.CDLL(so)
            fn = lib._Z16llama_build_infov
            fn.restype = ctypes.c_char_p
            return fn().decode()
        except (OSError, AttributeError):
            pass
    return None


def dump_fixture(out):
    """JSON with one line per position, so that diffs of regenerated fixtures are readable."""
    d = lambda v: json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    lines = ["{" + ", ".join(f"{d(k)}: {d(out[k])}" for k in ("model", "generator", "llama_cpp")) + ',\n "cases": [']
    for ci, c in enumerate(out["cases"]):
        lines.append("  {" + f'"prompt": {d(c["prompt"])}, "n_prompt": {c["n_prompt"]},')
        lines.append(f'   "tokens": {d(c["tokens"])},')
        for key in ("llama", "f64"):
            lines.append(f'   "{key}": [')
            lines.append(",\n".join("    " + d(p) for p in c[key]))
            lines.append("   ]" + ("," if key == "llama" else ""))
        lines.append("  }" + ("," if ci + 1 < len(out["cases"]) else ""))
    lines.append(" ]}")
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == out
    return text


def vocab_pieces(key, ids):
    """Raw vocabulary strings of the tokens (special tokens included), from the GGUF."""
    models = os.environ.get("WISP_MODELS", os.path.join(REPO, "target", "models"))
    r = gguf.GGUFReader(os.path.join(models, MODEL_FILES[key]))
    f = r.fields["tokenizer.ggml.tokens"]
    return [bytes(f.parts[f.data[i]]).decode("utf-8", "replace") for i in ids]


def compact_json(obj):
    text = json.dumps(obj, ensure_ascii=False, indent=1)
    # keep number lists on one line
    text = re.sub(r"\[\s*(-?[\d.e+-]+(?:,\s*-?[\d.e+-]+)*)\s*\]",
                  lambda m: "[" + re.sub(r",\s*", ", ", m.group(1)) + "]", text)
    # and lists of strings
    s = r'"(?:[^"\\]|\\.)*"'
    text = re.sub(r"\[\s*(" + s + r"(?:,\s*" + s + r")*)\s*\]",
                  lambda m: "[" + re.sub(r'",\s*"', '", "', m.group(1)) + "]", text)
    assert json.loads(text) == obj
    return text + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.join(REPO, "target", "logit-fixtures"))
    ap.add_argument("--models", default="smollm2,gemma3,qwen2")
    args = ap.parse_args()
    build = llama_cpp_build()
    gpath = os.path.join(FIXTURES, "greedy.json")
    old = json.load(open(gpath))["models"] if os.path.exists(gpath) else {}
    greedy = {"prompt": CAPITAL, "generator": GENERATOR,
              "near_tie_threshold": NEAR_TIE,
              "first_near_tie_doc": "index j (0-based) into the continuation of the first token whose choice "
                                    "was a near-tie: the f64 top-2 gap of the distribution at position "
                                    "n_prompt-1+j is below near_tie_threshold; null if none",
              "models": old}
    for key in args.models.split(","):
        L = json.load(open(os.path.join(args.work, f"llama_vulkan_{key}.json")))
        F = json.load(open(os.path.join(args.work, f"f64_{key}.json")))
        info = L["info"]
        rel = info["llama_cpp_release"]
        version = f"{rel['repo']} {rel['release']}"
        if build:
            version += f" (build {build})"
        version += f", node-llama-cpp {info['node_llama_cpp']} {info['build_type']}"
        if info.get("env", {}).get("GGML_VK_DISABLE_F16"):
            version += ", GGML_VK_DISABLE_F16=1 (f32 mat-mat accumulation; KV cache f16)"
        cases = []
        assert len(L["cases"]) == len(F["cases"])
        for lc, fc in zip(L["cases"], F["cases"]):
            assert lc["tokens"] == fc["tokens"], "f64 was run on other tokens"
            assert len(lc["llama"]) == len(fc["f64"]) == len(lc["tokens"])
            cases.append({
                "prompt": lc["prompt"],
                "n_prompt": lc["n_prompt"],
                "tokens": lc["tokens"],
                "llama": [[[int(i), r5(v)] for i, v in pos] for pos in lc["llama"]],
                "f64": [[[int(i), r5(v)] for i, v in pos] for pos in fc["f64"]],
            })
            if lc["prompt"] == CAPITAL:
                n = lc["n_prompt"]
                gaps = fc["gap"][n - 1:n - 1 + 32]
                first = next((j for j, g in enumerate(gaps) if g < NEAR_TIE), None)
                greedy["models"][key] = {
                    "model": L["model"],
                    "prompt_tokens": lc["tokens"][:n],
                    "continuation_ids": lc["tokens"][n:],
                    "continuation_text": lc["continuation_text"],
                    "continuation_pieces": vocab_pieces(key, lc["tokens"][n:]),
                    "first_near_tie": first,
                    "first_near_tie_f64_gap": None if first is None else r5(gaps[first]),
                    "f64_top2_gap": [r5(g) for g in gaps],
                }
        out = {
            "model": L["model"],
            "generator": GENERATOR,
            "llama_cpp": {"version": version, "backend": info["backend"], "device": info["device"]},
            "cases": cases,
        }
        path = os.path.join(FIXTURES, f"{key}.json")
        with open(path, "w") as f:
            f.write(dump_fixture(out))
        print(f"wrote {os.path.relpath(path, REPO)} ({len(cases)} cases)")
    greedy["models"] = {k: greedy["models"][k] for k in sorted(greedy["models"])}
    path = gpath
    with open(path, "w") as f:
        f.write(compact_json(greedy))
    print(f"wrote {os.path.relpath(path, REPO)}")


if __name__ == "__main__":
    main()
