#!/usr/bin/env bash
# Here (no GPU): bundles the whole-model bench and copies its scripts into /work/main/.device/j11g
# (the device tool ships /work/main's checkout). Then, with the device tool:
#   run(command="bash .device/j11g/run_models.sh", carry=[".device/j11g", ".device/node.xz",
#       ".device/dawn.node.xz", ".device/debs", ".device/env.sh"])
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
DEST=${DEST:-/work/main/.device/j11g}
mkdir -p "$DEST"
npx esbuild bench/device/models_webgpu.ts --bundle --platform=node --format=esm \
  --outfile="$DEST/models_webgpu.mjs" --log-level=warning \
  --banner:js="import{createRequire as __c}from'module';const require=__c(import.meta.url);"
cp bench/device/make_random_llama.py bench/device/hf_generate.py bench/device/run_models.sh "$DEST/"
du -sh "$DEST"
