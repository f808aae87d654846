#!/usr/bin/env bash
# On the GPU machine, from the project root (bundle: bench/device/prepare_sgmat_check.sh): every
# risky kernel in its own process, each bounded; the whole run bounded by BUDGET seconds (115).
set -uo pipefail
source .device/env.sh
D=$(dirname "$0")
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
BUDGET=${BUDGET:-115}
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
for v in full no-overflow ovf-var no-sgiid emulated no-mma no-epilogue; do one 12 sgmat_split_check.mjs "variant:$v"; done
for t in 2x2:2x2:bk16 2x2:4x4:bk32 4x2:2x4:bk16; do one 12 sgmat_split_check.mjs "tile:$t:150x136x96"; done
one 25 sgmat_prefill_check.mjs tile --big-only
for v in sgmat:4:64:builtin sgmat:4:64:builtin:shared sgmat:2:32:builtin:shared sgmat:1:32:builtin; do one 20 sgmat_prefill_check.mjs "$v"; done
for v in emul:4:64 emulqk:4:64 emulpv:4:64 emulpv:4:64:builtin:shared; do one 15 sgmat_prefill_check.mjs "$v" --small-only; done
for t in 2x2:4x4:bk32 4x2:2x4:bk16 2x2:2x2:bk16; do
  for s in 2048x3072x2048 2048x16384x2048; do one 15 sgmat_split_check.mjs "tile:$t:$s" time; done
done
left=$(( end - $(date +%s) ))
(( left > 8 )) && timeout $left python3 "$D/torch_matmul.py" 2>&1 | grep RESULT
left=$(( end - $(date +%s) ))
(( left > 8 )) && timeout $left python3 "$D/torch_sdpa.py" 2>&1 | grep prefill | sed 's/^/RESULT /'
echo "RESULT done, $(( BUDGET - (end - $(date +%s)) )) s"
