#!/usr/bin/env bash
# On the GPU machine (2 H200s), from the project root, with .device/ carried along (prepared here by
# bench/device/prepare_sharding.sh): tensor-parallel prefill through WebGPU, 1 worker process on GPU 0
# vs 2 worker processes each isolated to its own GPU, while nvidia-smi samples per-GPU memory.
#   args: shapes to run (default: small large)
set -uo pipefail
source .device/env.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi -L | tee "$OUT/gpus.log"
export TFJS_ATTENTION_SHARD_WORKER=$PWD/.device/b/s/shard_worker.mjs
nvidia-smi --query-gpu=timestamp,index,memory.used,utilization.gpu --format=csv -lms 250 > "$OUT/smi_samples.csv" 2>&1 &
smi=$!
for shape in "${@:-small large}"; do
  for s in $shape; do
    echo "=== $s $(date -u +%T.%N)"
    timeout 270 "$NODE" .device/b/s/sharding_gpu.mjs "$s" webgpu 2>&1 | grep -v '^Warning' | tee "$OUT/sharding_$s.log"
    echo "=== end $s $(date -u +%T.%N)"
  done
done 2>&1 | tee "$OUT/run.log"
kill "$smi"
# peak memory.used per GPU over the whole run
awk -F', ' 'NR>1 && $2 ~ /^[0-9]+$/ { v=$3+0; if (v>m[$2]) m[$2]=v } END { for (g in m) print "peak memory.used GPU " g ": " m[g] " MiB" }' "$OUT/smi_samples.csv"
