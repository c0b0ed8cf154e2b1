#!/usr/bin/env bash
# Installs the node packages that the reference and benchmark scripts use
# (tiktoken, OpenAI's tokenizer compiled to WASM) into build/node/.
# Usage: scripts/node_deps.sh   (prints the NODE_PATH to use)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build/node
if [ ! -d "$dir/node_modules/tiktoken" ]; then
    mkdir -p "$dir"
    npm install --silent --no-audit --no-fund --prefix "$dir" tiktoken@1.0.22 >&2
fi
echo "$PWD/$dir/node_modules"
