#!/usr/bin/env bash
# On the GPU machine, from the project root, with .device/j13g and the shared pieces carried
# (bench/device/prepare_kv.sh here): the webgpu kernel checks incl. compact caches and the
# subgroup-matrix prefill (check_webgpu.mjs), the compact-cache sweep (attention_webgpu_kv.mjs),
# then PyTorch SDPA f32 / f16 / bf16 on the same shapes, in one call.
set -uo pipefail
source .device/env.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
D=.device/j13g
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,memory.used --format=csv,noheader || true
PYTHONUNBUFFERED=1 python3 $D/torch_sdpa.py 2>&1 | tee "$OUT/torch.log"
"$NODE" $D/attention_webgpu_kv.mjs "$@" 2>&1 | grep -v '^Warning' | tee "$OUT/kv.log"
${CHECK:-true} && { CHECK_COMPACT_ONLY=${CHECK_COMPACT_ONLY:-} timeout ${CHECK_TIMEOUT:-120} "$NODE" $D/check_webgpu.mjs 2>&1 | grep -v '^Warning' > "$OUT/check.log"; grep -E 'FAIL|passed|features' "$OUT/check.log" | cut -c1-1500; }
