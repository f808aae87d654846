#!/usr/bin/env bash
# Helpers put bundles in $ROUND/<dir>/run.sh (ROUND defaults to .device/s7); the lead calls
#   run(command="ONLY=<dirs> PER=<s> bash bench/device/run_round.sh",
#       carry=[".device/s7", ".device/node.xz", ".device/dawn.node.xz", ".device/debs", ".device/env.sh"]). Output per dir in $OUT/<dir>.txt.
# Lead's round runner on the GPU machine: each helper bundle's run.sh in turn, bounded, output kept per helper.
source .device/env.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv,noheader
ROUND=${ROUND:-.device/s7}
for d in ${ONLY:-$(ls $ROUND)}; do  # the bundle dirs
  [ -f "$ROUND/$d/run.sh" ] || continue
  echo "=== $d $(date +%T)"
  ( cd "$PWD" && OUT="$OUT/$d" timeout ${PER:-150} bash "$ROUND/$d/run.sh" ) > "$OUT/$d.txt" 2>&1
  echo "rc $? $(date +%T)" >> "$OUT/$d.txt"
  grep -v '^Warning' "$OUT/$d.txt" | grep -E "RESULT|rc |rror" | tail -40
done
