#!/usr/bin/env bash
# Here (no GPU): packs Node, Dawn and the Vulkan loader into .device/ (../shared/device/prepare.sh)
# and bundles the WebGPU bench into .device/attention_webgpu.mjs. Then, with the device tool:
#   run(command="bash bench/device/run.sh", carry=[".device"])
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
bash ../shared/device/prepare.sh
for entry in bench/attention_webgpu.ts bench/device/check_webgpu.mjs; do
  name=$(basename "${entry%.*}")
  npx esbuild "$entry" --bundle --platform=node --format=esm \
    --outfile=".device/$name.mjs" --log-level=warning \
    --banner:js="import{createRequire as __c}from'module';const require=__c(import.meta.url);"
done
du -sh .device
