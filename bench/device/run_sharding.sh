#!/usr/bin/env bash
# On the GPU machine (2 H200s), from the project root, with .device/ carried along (prepared here by
# bench/device/prepare_sharding.sh): tensor-parallel prefill through WebGPU, 1 worker process on GPU 0
# vs 2 worker processes each isolated to its own GPU, data through shared memory and through IPC,
# while nvidia-smi samples per-GPU memory.
#   args: shapes to run (default: small large)
set -uo pipefail
source .device/env.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi -L | tee "$OUT/gpus.log"
export TFJS_ATTENTION_SHARD_WORKER=$PWD/.device/b/s/shard_worker.mjs
# The x86-64-v3 addon built by prepare_sharding.sh: its mapShared gives the worker processes shared
# memory (without it they move data over IPC). Check that it loads and maps here first.
addon=$PWD/.device/b/native/tfjs_attention_native.node
if [ -f "$addon" ]; then
  export TFJS_ATTENTION_NATIVE_PATH=$addon
  "$NODE" -e "const a = require(process.env.TFJS_ATTENTION_NATIVE_PATH), p = '/dev/shm/check.' + process.pid;
    const b = a.mapShared(p, 1 << 20, true); new Float32Array(b)[1] = 2; a.unlinkShared(p);
    console.log('addon loads, mapShared works; /dev/shm:', require('child_process').execSync('df -h /dev/shm | tail -1').toString().trim())" 2>&1 | tee "$OUT/addon.log"
else echo "no .device/b/native addon: the workers move data over IPC" | tee "$OUT/addon.log"; fi
# The large shape maps 3 x 64 MiB (input + 2 partials); a container's /dev/shm is often 64 MiB, where the
# region cannot be made (ENOSPC) and the calls fall back to IPC: then a tmpfs of our own takes the files.
if [ "$(df -k --output=avail /dev/shm 2>/dev/null | tail -1)" -lt 2097152 ] 2>/dev/null; then
  mkdir -p /tmp/tfjs-shm && { mountpoint -q /tmp/tfjs-shm || mount -t tmpfs -o size=4g tmpfs /tmp/tfjs-shm; } \
    && export TFJS_ATTENTION_SHM_DIR=/tmp/tfjs-shm
  echo "/dev/shm: $(df -h /dev/shm | tail -1); region files in ${TFJS_ATTENTION_SHM_DIR:-/dev/shm}" | tee -a "$OUT/addon.log"
fi
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
