#!/usr/bin/env bash
# On the GPU machine, from the project root (bundle: bench/device/prepare_sgmat_check.sh): every
# risky kernel in its own process, each bounded; the whole run bounded by BUDGET seconds (115).
# Round 2 (2026-12-03): the sgmat prefill with its workgroup flag padded to 16 bytes (and the old
# scalar flag once, to confirm the cause), tile and key-tile variants, timed at 1x4096 beside the
# f32 tiles and PyTorch; the split-f16 matmul's best tile on every Llama-3.2-1B prefill shape and
# accumulator flushes (accuracy), two more tiles on the widest one. (Round 1's bisection variants: sgmat_split_check.ts variant:*.)
set -uo pipefail
source .device/env.sh
D=$(dirname "$0")
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BUDGET=${BUDGET:-95}
end=$(( $(date +%s) + BUDGET ))
# one case: "<timeout s> <script> <args...>"; skipped when the budget cannot hold it
one() {
  local t=$1; shift
  local left=$(( end - $(date +%s) ))
  (( left < 3 )) && { echo "RESULT skipped (budget): $*"; return; }
  (( t > left )) && t=$left
  local log="$OUT/case.log"
  timeout "$t" "$NODE" "$D/$1" "${@:2}" > "$log" 2>&1
  local rc=$?
  grep -v '^Warning' "$log" | tee -a "$OUT/all.log" | grep '^RESULT'
  (( rc != 0 )) && echo "RESULT rc $rc: $* (last lines: $(grep -v '^Warning' "$log" | tail -4 | tr '\n' '|' | cut -c1-400))"
}
# Round 3: accumulator-flush interval against speed, bk32 with and without flushes, the wide shapes.
for c in bk32:2048x16384x2048:f16 bk32:2048x16384x2048:f8 bk16:2048x16384x2048:f32 bk32:2048x3072x2048 bk32:2048x3072x2048:f16 bk32:2048x2048x8192 bk32:2048x2048x8192:f16; do
  one 14 sgmat_split_check.mjs "tile:4x2:2x4:$c" time
done
one 20 sgmat_prefill_check.mjs sgmat:4:64 --big-only
one 15 sgmat_prefill_check.mjs tile --big-only
echo "RESULT done, $(( BUDGET - (end - $(date +%s)) )) s"
