#!/usr/bin/env bash
# On the GPU machine, from the project root, with .device/ carried along (bench/device/prepare_quant.sh):
# QuantMatMul per weight format vs the float32 WebGPU DenseMatMul at [1, 8192] x [8192, 8192] and
# [8, 8192], ratios printed as a markdown table (bench/quant_webgpu.ts).
set -uo pipefail
source .device/env.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,memory.used --format=csv,noheader || true
"$NODE" .device/quant_webgpu.mjs "$@" 2>&1 | grep -v '^Warning' | tee "$OUT/quant_webgpu.log"
