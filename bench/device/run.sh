#!/usr/bin/env bash
# On the GPU machine, from the project root, with .device/ carried along (prepared here by
# bench/device/prepare_here.sh): the webgpu kernel checks (check_webgpu.mjs), the WebGPU bench
# through Dawn on NVIDIA's Vulkan driver, then PyTorch float32 SDPA on the same shapes, in one call.
set -uo pipefail
source .device/env.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,memory.used --format=csv,noheader || true
"$NODE" .device/check_webgpu.mjs 2>&1 | grep -v '^Warning' | tee "$OUT/check.log" | grep -E 'FAIL|passed|rror'
"$NODE" .device/attention_webgpu.mjs --json "$OUT/webgpu.json" "$@" 2>&1 | grep -v '^Warning' | tee "$OUT/webgpu.log"
PYTHONUNBUFFERED=1 python3 bench/device/torch_sdpa.py 2>&1 | tee "$OUT/torch.log"
