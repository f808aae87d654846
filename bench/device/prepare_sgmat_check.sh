#!/usr/bin/env bash
# Here (no GPU): bundles the subgroup-matrix checks (split-f16 matmul: sgmat_split_check.ts; tensor-core
# prefill: sgmat_prefill_check.ts) with run_sgmat_check.sh and the PyTorch peers into $DEST
# (default /work/main/.device/s6/g13p, as run.sh). On the GPU machine, from the project root:
#   source .device/env.sh && bash .device/s6/g13p/run.sh      (<= 120 s; RESULT lines)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
DEST=${DEST:-/work/main/.device/s6/g13p}
mkdir -p "$DEST"
for entry in bench/device/sgmat_split_check.ts bench/device/sgmat_prefill_check.ts; do
  npx esbuild "$entry" --bundle --platform=node --format=esm --outfile="$DEST/$(basename "${entry%.*}").mjs" --log-level=warning \
    --banner:js="import{createRequire as __c}from'module';const require=__c(import.meta.url);"
done
cp bench/device/torch_sdpa.py bench/device/torch_matmul.py "$DEST/"
cp bench/device/run_sgmat_check.sh "$DEST/run.sh"
du -sh "$DEST"
