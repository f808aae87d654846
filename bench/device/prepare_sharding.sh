#!/usr/bin/env bash
# Here (no GPU): Node, Dawn and the Vulkan loader into .device/ (../shared/device/prepare.sh), then the
# sharding bench and the shard worker bundled into .device/b/s/ (two levels down, so that the bundles'
# package-root lookup, `../../../` from the file, lands on the project root). The bench finds the worker
# through TFJS_ATTENTION_SHARD_WORKER (lib/sharding/worker_script.ts); run_sharding.sh sets it. Then:
#   run(command="bash bench/device/run_sharding.sh", kind="nvidia-h200-x2",
#       carry=[".device/b", ".device/node.xz", ".device/dawn.node.xz", ".device/debs", ".device/env.sh"])
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
bash ../shared/device/prepare.sh >/dev/null
mkdir -p .device/b/s
for pair in bench/device/sharding_gpu.ts:sharding_gpu bench/device/shard_compute_gpu.ts:shard_compute_gpu lib/sharding/worker.ts:shard_worker; do
  npx esbuild "${pair%%:*}" --bundle --platform=node --format=esm --target=node20 \
    --outfile=".device/b/s/${pair##*:}.mjs" --log-level=warning \
    --banner:js="import{createRequire as __c}from'module';const require=__c(import.meta.url);"
done
du -sh .device
