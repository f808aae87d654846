#!/usr/bin/env bash
# Sets up a fresh machine for this project; safe to run again (quick when nothing changed).
#   1. npm dependencies (ONNX Runtime's CPU binaries only; the native CPU kernels build in the
#      package's own install step and fall back to TypeScript when they cannot),
#   2. a software Vulkan driver from Debian, so WebGPU (Dawn) runs in Node without a GPU,
#   3. the TypeScript build (dist/).
set -euo pipefail
cd "$(dirname "$0")/.."
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm run --silent install   # (re)builds the native kernels if they are missing
fi
if [ -f scripts/setup-vulkan.sh ]; then
  bash scripts/setup-vulkan.sh || echo "[setup] note: no software Vulkan driver could be installed; the webgpu backend will be unavailable"
fi
bash scripts/setup-browser.sh || echo "[setup] note: Chromium could not be installed; spec/browser fails without it (TFJS_ATTENTION_SKIP_BROWSER_SPEC=1 skips it)"
npm run --silent build
echo "[setup] ready"
