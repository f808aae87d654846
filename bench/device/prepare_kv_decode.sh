#!/usr/bin/env bash
# Here (no GPU): bundles the compact-cache decode sweep into DEST (default
# /work/main/.device/s6/g13d; run from the worktree). On the GPU machine: `bash $DEST/run.sh`
# from the project root with DEST and the shared pieces (.device/node.xz, .device/dawn.node.xz,
# .device/debs, .device/env.sh) carried.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
DEST=${DEST:-/work/main/.device/s6/g13d}
mkdir -p "$DEST"
npx esbuild bench/attention_webgpu_kv_decode.ts --bundle --platform=node --format=esm --outfile="$DEST/attention_webgpu_kv_decode.mjs" \
  --log-level=warning --banner:js="import{createRequire as __c}from'module';const require=__c(import.meta.url);"
cp bench/device/torch_decode_kv.py "$DEST/"
cp bench/device/run_kv_decode.sh "$DEST/run.sh"
du -sh "$DEST"
