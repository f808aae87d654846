#!/usr/bin/env bash
# On the GPU machine, from the project root, with the bundle's folder carried (prepare_prefill.sh here):
# makes the random Llama-3.2-1B-shaped checkpoint (16 layers; `--small` for a 2-layer pipeline check),
# then prefill_profile.mjs: the f32 tile sweep (each tile checked against the session-5 tile, then the
# four layer products timed per tile in alternation), a per-kernel GPU profile of one 2048-token
# prefill, and prefill 2048 with the kept tiles vs the session-5 tile shape; then the same prefill
# with Dawn's robustness off (TFJS_ATTENTION_DAWN_TOGGLES=disable_robustness) for scale. <= 120 s.
set -uo pipefail
source .device/env.sh
D=$(dirname "$0")
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
CKPT=/tmp/llama1b${1:+-small}
T0=$(date +%s)
nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,memory.used --format=csv,noheader || true
[ -f "$CKPT/prompts.json" ] || PYTHONUNBUFFERED=1 timeout 40 python3 "$D/make_random_llama.py" "$CKPT" "$@" 2>&1 | grep -v Warning | tail -2
left() { local s=$(( ${1} - ($(date +%s) - T0) )); echo $(( s < 5 ? 5 : s )); }
timeout $(left 88) "$NODE" "$D/prefill_profile.mjs" "$CKPT" "$OUT/prefill.json" 2>&1 | grep -v '^Warning' | cut -c1-400 | tee "$OUT/prefill.log"
echo "--- robustness off (disable_robustness), kept-candidate tiles only"
TFJS_ATTENTION_DAWN_TOGGLES=disable_robustness TILES="${TILES_NR:-v1,128x128 8x8 bk8 sb p0,128x128 8x8 bk16 db p1,128x64 8x8 bk16 db p1}" \
  timeout $(left 117) "$NODE" "$D/prefill_profile.mjs" "$CKPT" 2>&1 | grep -v '^Warning' | grep -E 'RESULT|prefill|tile|kept|toggles' | cut -c1-400
echo "run_prefill.sh: $(( $(date +%s) - T0 )) s"
