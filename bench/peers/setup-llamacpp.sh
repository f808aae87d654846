#!/usr/bin/env bash
# Installs the llama.cpp peer of bench/models_llamacpp.ts: node-llama-cpp 3.22.1 and its prebuilt llama.cpp
# CPU binaries (@node-llama-cpp/linux-x64 3.22.1), from the npm registry only, into $LLAMACPP_PEER_DIR
# (default out/peers/llamacpp, git-ignored). Not a dependency of the package; CI never runs it. Idempotent.
#
#   bash bench/peers/setup-llamacpp.sh
#
# NODE_LLAMA_CPP_SKIP_DOWNLOAD=true keeps node-llama-cpp's postinstall from fetching or building llama.cpp;
# --omit=optional skips every other platform's (and the CUDA) binaries. `npm install`, not `npm ci`:
# node-llama-cpp names mac/win binary packages the registry does not serve, so a lock file cannot be complete.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEER=${LLAMACPP_PEER_DIR:-$ROOT/out/peers/llamacpp}
mkdir -p "$PEER"
cp "$ROOT/bench/peers/llamacpp/peer-package.json" "$PEER/package.json"
cd "$PEER"
NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --omit=optional --no-audit --no-fund
# a file, not `node -e`: node-llama-cpp tests its binary in a child process that inherits execArgv
cat > "$PEER/verify.mjs" <<JS
const { getLlama, LlamaLogLevel } = await import('$PEER/node_modules/node-llama-cpp/dist/index.js');
const llama = await getLlama({ gpu: false, build: 'never', usePrebuiltBinaries: true, skipDownload: true, logLevel: LlamaLogLevel.error });
console.log('node-llama-cpp loads: build', llama.buildType, '| llama.cpp', llama.llamaCppRelease.release, '|', llama.systemInfo.trim());
await llama.dispose();
JS
node "$PEER/verify.mjs"
echo "llama.cpp peer installed in $PEER"
