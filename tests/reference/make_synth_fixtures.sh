#!/usr/bin/env bash
# Regenerate tests/fixtures/synth/*.json: the synthetic 2B-4B-family models of
# `cargo xtask synth` (xtask/src/synth.rs, fixed seed), checked with gguf.quants.dequantize
# (check_synth.py), then llama.cpp's teacher-forced top-10 logits over a fixed token
# sequence (synth_logits_llamacpp.mjs, node-llama-cpp 3.22.1, CPU backend: its Vulkan
# backend aborts on lavapipe for these shapes), each fixture stamped with the model's sha256.
# env: WISP_MODELS (default <repo>/target/models; models go to $WISP_MODELS/synth)
#      BACKEND     cpu (default) or vulkan
# ~3 min on 2 cores (generation 30 s, check 2 min, llama.cpp ~10 s per model).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export WISP_MODELS="${WISP_MODELS:-$repo/target/models}"
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
work="$repo/target/synth-ref"
mkdir -p "$work" "$repo/tests/fixtures/synth"

if [ ! -d "$here/node_modules/node-llama-cpp" ]; then
  (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund)
fi
(cd "$repo" && cargo run -q -p xtask -- synth) | tee "$work/sha256.txt"
files=$(awk '{print $2}' "$work/sha256.txt")
python3 "$here/check_synth.py" $files
node "$here/synth_logits_llamacpp.mjs" --backend "${BACKEND:-cpu}" --out "$work" $files
# Phi-3 beyond its original 4096-token context: the long LongRoPE factors.
phi=$(grep -o '[^ ]*synth-phi35-mini-q4km-[^ ]*\.gguf' "$work/sha256.txt")
node "$here/synth_logits_llamacpp.mjs" --backend "${BACKEND:-cpu}" --out "$work" --context 8192 "$phi"
python3 - "$work" "$repo/tests/fixtures/synth" <<'PY'
import json, os, sys
work, out = sys.argv[1], sys.argv[2]
jobs = []
for line in open(os.path.join(work, "sha256.txt")):
    if not line.strip():
        continue
    digest, path = line.split()
    stem = os.path.basename(path)[: -len(".gguf")]
    jobs.append((digest, stem, stem))
    if os.path.exists(os.path.join(work, stem + ".ctx8192.llama.json")):
        jobs.append((digest, stem + ".ctx8192", stem))
for digest, stem, model_stem in jobs:
    ref = json.load(open(os.path.join(work, stem + ".llama.json")))
    gaps = [p[0][1] - p[1][1] for p in ref["llama"]]
    fx = {"model": ref["model"], "sha256": digest,
          "generator": "tests/reference/make_synth_fixtures.sh (cargo xtask synth)",
          "llama_cpp": ref["llama_cpp"], "n_ctx": ref.get("n_ctx", 256), "token_seed": ref["token_seed"],
          "tokens": ref["tokens"], "llama": ref["llama"]}
    with open(os.path.join(out, stem + ".json"), "w") as f:
        json.dump(fx, f, separators=(",", ":"))
    print(f"{stem}: {len(gaps)} positions, {sum(g >= 0.3 for g in gaps)} with top-2 gap >= 0.3, "
          f"top-1 logit range {min(p[0][1] for p in ref['llama']):.2f}..{max(p[0][1] for p in ref['llama']):.2f}")
PY
