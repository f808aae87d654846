#!/usr/bin/env bash
# Here (no GPU): packs Node, Dawn and the Vulkan loader into .device/ (../shared/device/prepare.sh;
# skipped when .device/env.sh exists) and bundles the QuantMatMul WebGPU bench into
# .device/quant_webgpu.mjs. Then, with the device tool:
#   run(command="bash bench/device/run_quant.sh", carry=[".device"])
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
[ -f .device/env.sh ] || bash ../shared/device/prepare.sh
npx esbuild bench/quant_webgpu.ts --bundle --platform=node --format=esm \
  --outfile=.device/quant_webgpu.mjs --log-level=warning \
  --banner:js="import{createRequire as __c}from'module';const require=__c(import.meta.url);"
du -sh .device/quant_webgpu.mjs
