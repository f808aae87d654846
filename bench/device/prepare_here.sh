#!/usr/bin/env bash
# Here (no GPU): packs Node, Dawn and the Vulkan loader into .device/ (../shared/device/prepare.sh)
# and bundles the WebGPU bench into .device/attention_webgpu.mjs. Then, with the device tool:
#   run(command="bash bench/device/run.sh", carry=[".device"])
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
bash ../shared/device/prepare.sh
npx esbuild bench/attention_webgpu.ts --bundle --platform=node --format=esm \
  --outfile=.device/attention_webgpu.mjs --log-level=warning \
  --banner:js="import{createRequire as __c}from'module';const require=__c(import.meta.url);"
du -sh .device
