#!/usr/bin/env bash
# Wisp and llama.cpp on the same models, prompt size and Vulkan device, one after the
# other per model; prints one table with the ratios.
#   benches/side_by_side.sh [PP] [TG]        (defaults 128 and 32)
# Needs: target/release/wisp (cargo build --release -p wisp-cli), the models
# (cargo xtask fetch-models), and node-llama-cpp in benches/node_modules
# (cd benches && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --ignore-scripts).
set -euo pipefail
cd "$(dirname "$0")/.."
PP=${1:-128}
TG=${2:-32}
MODELS=${WISP_MODELS:-target/models}
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true GGML_VK_VISIBLE_DEVICES=0
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
printf '| model | Wisp pp%s tok/s | llama.cpp-Vulkan pp%s | ratio | Wisp tg%s tok/s | llama.cpp-Vulkan tg%s | ratio |\n|---|---|---|---|---|---|---|\n' "$PP" "$PP" "$TG" "$TG"
for m in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf qwen2.5-coder-0.5b-instruct-q4_k_m.gguf; do
    w=$(target/release/wisp bench "$MODELS/$m" --pp "$PP" --tg "$TG" --reps 1 --json)
    l=$(node benches/llamacpp_bench.mjs "$MODELS/$m" --pp "$PP" --tg "$TG" --reps 1 --backend vulkan | tail -n 1)
    python3 - "$m" "$w" "$l" <<'PY'
import json, sys
m, w, l = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"| {m} | {w['pp_tok_s']:.1f} | {l['pp_tok_s']:.1f} | {w['pp_tok_s']/l['pp_tok_s']:.2f}× "
      f"| {w['tg_tok_s']:.2f} | {l['tg_tok_s']:.2f} | {w['tg_tok_s']/l['tg_tok_s']:.2f}× |")
PY
done
