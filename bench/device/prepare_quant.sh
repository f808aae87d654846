#!/usr/bin/env bash
# Here (no GPU): the shared Node / Dawn / Vulkan pieces (../shared/device/prepare.sh, skipped when
# /work/main/.device/env.sh exists) and the QuantMatMul WebGPU bench bundled into $DEST (default
# /work/main/.device/s6/g12) with run_quant.sh. Then, with the device tool:
#   run(command="source .device/env.sh && bash .device/s6/g12/run.sh", carry=[".device/s6", ".device/node.xz",
#       ".device/dawn.node.xz", ".device/debs", ".device/env.sh"])
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
DEST=${DEST:-/work/main/.device/s6/g12}
mkdir -p "$DEST"
[ -f /work/main/.device/env.sh ] || bash ../shared/device/prepare.sh
npx esbuild bench/quant_webgpu.ts --bundle --platform=node --format=esm \
  --outfile="$DEST/quant_webgpu.mjs" --log-level=warning \
  --banner:js="import{createRequire as __c}from'module';const require=__c(import.meta.url);"
cp bench/device/run_quant.sh "$DEST/run.sh"
du -sh "$DEST"
