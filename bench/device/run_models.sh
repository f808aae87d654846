#!/usr/bin/env bash
# On the GPU machine, from the project root, with .device/ carried along (prepare_models.sh here):
# makes the random Llama-3.2-1B-shaped checkpoint, runs PyTorch's float32 generate, then ours
# through WebGPU, and prints both sides with ratios and the token check. `--small` for a quick
# pipeline check on a 2-layer model.
set -uo pipefail
source .device/env.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
D=.device/j11g
CKPT=/tmp/llama1b${1:+-small}
N=${NEW_TOKENS:-64}
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,memory.used --format=csv,noheader || true
PYTHONUNBUFFERED=1 python3 $D/make_random_llama.py "$CKPT" "$@" 2>&1 | grep -v Warning | tail -3
PYTHONUNBUFFERED=1 python3 $D/hf_generate.py "$CKPT" "$N" "$OUT/hf.json" 2>&1 | grep -v -i warn | tail -5
"$NODE" $D/models_webgpu.mjs "$CKPT" "$N" "$OUT/ours.json" "$OUT/hf.json" 2>&1 | grep -v '^Warning' | tee "$OUT/ours.log"
