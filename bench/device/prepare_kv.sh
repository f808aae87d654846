#!/usr/bin/env bash
# Here (no GPU): the shared Node / Dawn / Vulkan pieces (../shared/device/prepare.sh) and the
# compact-cache bundles into .device/j13g (run from the worktree; DEST overrides the folder). Then:
#   run(command="bash .device/j13g/run_kv.sh", carry=[".device/j13g", ".device/node.xz",
#       ".device/dawn.node.xz", ".device/debs", ".device/env.sh"])
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
DEST=${DEST:-/work/main/.device/j13g}
mkdir -p "$DEST"
[ -f /work/main/.device/env.sh ] || bash ../shared/device/prepare.sh
for entry in bench/attention_webgpu_kv.ts bench/device/check_webgpu.mjs; do
  name=$(basename "${entry%.*}")
  npx esbuild "$entry" --bundle --platform=node --format=esm --outfile="$DEST/$name.mjs" --log-level=warning \
    --banner:js="import{createRequire as __c}from'module';const require=__c(import.meta.url);"
done
cp bench/device/torch_sdpa.py bench/device/run_kv.sh "$DEST/"
du -sh "$DEST"
