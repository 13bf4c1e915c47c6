#!/usr/bin/env bash
# Regenerate tests/fixtures/logits/{smollm2,gemma3,qwen2,greedy}.json end to end:
#   1. llama.cpp (node-llama-cpp 3.22.1 prebuilt, Vulkan backend; lavapipe without a GPU):
#      tokenize, 32-token greedy continuation, teacher-forced top-10 logits per position
#   2. float64 numpy forward pass over the dequantized GGUF weights: top-20 per position
#   3. merge (logits rounded to 5 decimals) and check that 1 and 2 agree
# env: WISP_MODELS   directory with the three GGUF files (default <repo>/target/models)
#      MODELS        comma list, default smollm2,gemma3,qwen2
#      SKIP_LLAMA=1  reuse target/logit-fixtures/llama_vulkan_*.json (redo f64, merge, check)
#      CPU_COMPARE=1 also teacher-force SmolLM2 on llama.cpp's CPU backend and report it
#      F16_COMPARE=1 also teacher-force SmolLM2 on Vulkan with its default f16 accumulators
# The Vulkan run sets GGML_VK_DISABLE_F16=1 (see logits_llamacpp.mjs and README.md).
# Takes ~30-60 min on 2 shared CPU cores with lavapipe (most of it llama.cpp on lavapipe).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export WISP_MODELS="${WISP_MODELS:-$repo/target/models}"
export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true
export GGML_VK_VISIBLE_DEVICES="${GGML_VK_VISIBLE_DEVICES:-0}"
export LP_NUM_THREADS="${LP_NUM_THREADS:-3}"
MODELS="${MODELS:-smollm2,gemma3,qwen2}"
work="$repo/target/logit-fixtures"
mkdir -p "$work"

declare -A FILE=(
  [smollm2]=SmolLM2-135M-Instruct.Q4_1.gguf
  [gemma3]=gemma-3-270m-q4_k_m.gguf
  [qwen2]=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
)

if [ ! -d "$here/node_modules/node-llama-cpp" ]; then
  (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund)
fi

if [ "${SKIP_LLAMA:-0}" != 1 ]; then
  node "$here/logits_llamacpp.mjs" --backend vulkan --mode generate --models "$MODELS" --out "$work"
fi
for key in ${MODELS//,/ }; do
  OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}" python3 "$here/forward_f64.py" \
    --model "$WISP_MODELS/${FILE[$key]}" --tokens "$work/llama_vulkan_$key.json" --out "$work/f64_$key.json"
done
python3 "$here/merge_logit_fixtures.py" --work "$work" --models "$MODELS"
compare=""
if [ "${CPU_COMPARE:-0}" = 1 ]; then
  node "$here/logits_llamacpp.mjs" --backend cpu --mode teacher-force --models smollm2 --out "$work"
  compare="$work/llama_cpu_smollm2.json"
fi
if [ "${F16_COMPARE:-0}" = 1 ]; then
  node "$here/logits_llamacpp.mjs" --backend vulkan --vk-f16 --mode teacher-force --models smollm2 --out "$work"
  compare="${compare:+$compare,}$work/llama_vulkan-f16_smollm2.json"
fi
python3 "$here/check_logit_fixtures.py" --models "$MODELS" --compare "$compare"
