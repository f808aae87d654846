#!/usr/bin/env bash
# On the 2-GPU machine (nvidia-h200-x2), from the project root, with .device/pp carried along
# (bench/device/prepare_pipeline.sh here). One call runs every issue-16 row:
#  1. tensor parallelism, whole attention layer, prefill 1x4096, hidden 4096, 32/8 heads, d128:
#     2 GPUs (one process each, reduce-scatter in the workers, float32 and float16 partials) vs one
#     GPU behind a worker and vs the layer on one GPU in one process (sharding_gpu.mjs);
#  2. pipeline parallelism, the Llama-3.2-1B shape (random checkpoint): batched decode 32 x 1024
#     context and prefill 8 x 2048, 2 stages on 2 GPUs vs the whole model on one GPU (pipeline_gpu.mjs);
# while nvidia-smi samples memory and utilisation per GPU.  `--small`: a 2-layer model, short shapes.
set -uo pipefail
source .device/env.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
D=.device/pp
nvidia-smi -L | tee "$OUT/gpus.log"
export TFJS_ATTENTION_SHARD_WORKER=$PWD/$D/s/shard_worker.mjs TFJS_ATTENTION_PIPELINE_WORKER=$PWD/$D/s/stage_worker.mjs
addon=$PWD/$D/native/tfjs_attention_native.node
if [ -f "$addon" ]; then
  export TFJS_ATTENTION_NATIVE_PATH=$addon
  "$NODE" -e "const a = require(process.env.TFJS_ATTENTION_NATIVE_PATH), p = '/dev/shm/check.' + process.pid;
    const b = a.mapShared(p, 1 << 20, true); new Float32Array(b)[1] = 2; a.unlinkShared(p); console.log('addon loads, mapShared works')" 2>&1 | tee "$OUT/addon.log"
else echo "no addon: the workers move data over IPC" | tee "$OUT/addon.log"; fi
# The activation banks and partial slots need a few GiB of tmpfs; a container's /dev/shm is often 64 MiB.
if [ "$(df -k --output=avail /dev/shm 2>/dev/null | tail -1)" -lt 8388608 ] 2>/dev/null; then
  mkdir -p /tmp/tfjs-shm && { mountpoint -q /tmp/tfjs-shm || mount -t tmpfs -o size=16g tmpfs /tmp/tfjs-shm; } \
    && export TFJS_ATTENTION_SHM_DIR=/tmp/tfjs-shm
fi
echo "region files in ${TFJS_ATTENTION_SHM_DIR:-/dev/shm}" | tee -a "$OUT/addon.log"
nvidia-smi --query-gpu=timestamp,index,memory.used,utilization.gpu --format=csv -lms 250 > "$OUT/smi_samples.csv" 2>&1 &
smi=$!
CKPT=/tmp/llama1b${1:+-small}
if [ "${1:-}" = --small ]; then export T=512 B=4 CTX=128 PB=2 PT=256 ITERS=2; fi
{
  echo "=== tensor parallel $(date -u +%T)"
  SHM_MODES=shm PARTIALS=float32,float16 timeout 200 "$NODE" $D/s/sharding_gpu.mjs large webgpu 2>&1 | grep -v '^Warning'
  echo "=== checkpoint $(date -u +%T)"
  PYTHONUNBUFFERED=1 python3 $D/make_random_llama.py "$CKPT" "$@" 2>&1 | grep -v Warning | tail -2
  echo "=== pipeline $(date -u +%T)"
  timeout 300 "$NODE" $D/s/pipeline_gpu.mjs "$CKPT" webgpu 2>&1 | grep -v '^Warning'
  echo "=== end $(date -u +%T)"
} 2>&1 | tee "$OUT/run.log"
kill "$smi"
awk -F', ' 'NR>1 && $2 ~ /^[0-9]+$/ { v=$3+0; u=$4+0; if (v>m[$2]) m[$2]=v; if (u>p[$2]) p[$2]=u } END { for (g in m) print "GPU " g ": peak memory.used " m[g] " MiB, peak utilization " p[g] " %" }' "$OUT/smi_samples.csv" | tee -a "$OUT/run.log"
grep RESULT "$OUT/run.log"
