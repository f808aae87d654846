#!/usr/bin/env bash
# Sets up a fresh machine for this project; safe to run again (quick when nothing changed).
#   1. npm dependencies (ONNX Runtime's CPU binaries only; the native CPU kernels build in the
#      package's own install step and fall back to TypeScript when they cannot),
#   2. a software Vulkan driver from Debian, so WebGPU (Dawn) runs in Node without a GPU,
#   3. DejaVu Sans from Debian (fonts-dejavu-core), the font the main job's loss chart is drawn with,
#   4. the TypeScript build (dist/).
# Before the npm step: Debian's Open MPI (scripts/setup-mpi.sh), so the install step also builds
# the MPI binding (native/mpi); without it only the MPI features are unavailable.
set -euo pipefail
cd "$(dirname "$0")/.."
export ONNXRUNTIME_NODE_INSTALL=skip
bash scripts/setup-mpi.sh || echo "[setup] note: Open MPI could not be installed; the MPI features (data-parallel training, MpiShardedAttention) will be unavailable and spec/mpi skips"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm run --silent install   # (re)builds the native kernels if they are missing
fi
if [ -f scripts/setup-vulkan.sh ]; then
  bash scripts/setup-vulkan.sh || echo "[setup] note: no software Vulkan driver could be installed; the webgpu backend will be unavailable"
fi
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fonts-dejavu-core; } >/dev/null 2>&1 \
    || echo "[setup] note: fonts-dejavu-core could not be installed; the loss chart's PNG text falls back to system fonts"
fi
# Optional, opt-in: clang-19 + lld-19 to rebuild the WebAssembly SIMD kernels (native/wasm/); without them the
# committed build in wasm/ is used and spec/kernels/wasm_simd_build.spec.ts skips only its rebuild check.
if [ "${TFJS_ATTENTION_WASM_TOOLCHAIN:-0}" = 1 ] && ! command -v clang-19 >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends clang-19 lld-19; } >/dev/null 2>&1 \
    || echo "[setup] note: clang-19/lld-19 could not be installed; the committed WebAssembly SIMD build (wasm/) is used"
fi
bash scripts/setup-browser.sh || echo "[setup] note: Chromium could not be installed; spec/browser fails without it (TFJS_ATTENTION_SKIP_BROWSER_SPEC=1 skips it)"
npm run --silent build
echo "[setup] ready"
