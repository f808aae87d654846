#!/usr/bin/env bash
# On the GPU machine, from the project root, after `source .device/env.sh` (sourced here if needed),
# with the bundle of bench/device/prepare_kv_decode.sh carried: PyTorch decode 32x4096 f16 / bf16 /
# f32, then the WebGPU decode sweep over every cache dtype (bench/attention_webgpu_kv_decode.ts:
# float64 checks on sampled rows, alternating rounds, GPU timestamps), bounded to ~115 s in all.
set -uo pipefail
D=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ -n "${NODE:-}" ] || source .device/env.sh
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,memory.used --format=csv,noheader || true
PYTHONUNBUFFERED=1 timeout 25 python3 "$D/torch_decode_kv.py" 2>&1 | grep -v Warning
timeout 85 "$NODE" "$D/attention_webgpu_kv_decode.mjs" --rounds 8 --budget 68 "$@" 2>&1 | grep -v '^Warning'
echo "run_kv_decode.sh done"
