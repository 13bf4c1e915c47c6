#!/usr/bin/env bash
# Wisp against llama.cpp (Vulkan on the same device, and CPU) on every benchmark model:
# a thin wrapper over `cargo xtask bench --vs llama.cpp`, which builds the CLI, installs
# node-llama-cpp when missing and prints the table (options: see benches/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo xtask bench --vs llama.cpp "$@"
