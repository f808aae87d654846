#!/usr/bin/env bash
# Used in session 6: helpers put bundles in .device/s6/<dir>/run.sh; run(command="ONLY=<dirs> PER=<s> bash bench/device/run_round.sh",
#   carry=[".device/s6", ".device/node.xz", ".device/dawn.node.xz", ".device/debs", ".device/env.sh"]). Output per dir in $OUT/<dir>.txt.
# Lead's round runner on the GPU machine: each helper bundle's run.sh in turn, bounded, output kept per helper.
source .device/env.sh
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,memory.used --format=csv,noheader
for d in ${ONLY:-$(ls .device/s6)}; do  # the bundle dirs
  [ -f ".device/s6/$d/run.sh" ] || continue
  echo "=== $d $(date +%T)"
  ( cd "$PWD" && OUT="$OUT/$d" timeout ${PER:-150} bash ".device/s6/$d/run.sh" ) > "$OUT/$d.txt" 2>&1
  echo "rc $? $(date +%T)" >> "$OUT/$d.txt"
  grep -v '^Warning' "$OUT/$d.txt" | grep -E "RESULT|rc |rror" | tail -40
done
