#!/usr/bin/env bash
# On the GPU machine, from the project root, with the bundle folder (bench/device/prepare_quant.sh)
# and the shared .device pieces carried: QuantMatMul per weight format checked against the
# TypeScript kernel, the decode layouts swept, then kernel and op ratios vs the float32 WebGPU GEMV
# at [1 | 8, 8192] x [8192, 8192] as a markdown table (bench/quant_webgpu.ts). Bounded to 115 s.
set -uo pipefail
[ -n "${NODE:-}" ] || source .device/env.sh
D=$(dirname "$0")
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,memory.used --format=csv,noheader || true
nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,utilization.gpu,power.draw --format=csv,noheader -lms 2000 > "$OUT/clocks.log" 2>/dev/null &
CLOCKS=$!
timeout ${QUANT_TIMEOUT:-110} "$NODE" "$D/quant_webgpu.mjs" ${QUANT_ARGS:---sweep} 2>&1 | grep -v '^Warning' | tee "$OUT/quant_webgpu.log"
kill $CLOCKS 2>/dev/null
echo "GPU clocks every 2 s (sm, mem, util, power):"; cut -d, -f2- "$OUT/clocks.log" | tr '\n' ';' | cut -c1-3000; echo
