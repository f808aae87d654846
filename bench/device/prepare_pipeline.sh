#!/usr/bin/env bash
# Here (no GPU): everything run_pipeline.sh needs on the 2-GPU machine, into $DEST (default
# .device/pp of this checkout; the device tool ships /work/main, so run this there, or pass
# DEST=/work/main/.device/pp): Node, Dawn and the Vulkan loader (../shared/device/prepare.sh), the
# benches and both worker kinds bundled into $DEST/s/ (three levels under the project root, so the
# bundles' package-root lookup lands on it), make_random_llama.py, run_pipeline.sh, and the
# x86-64-v3 native addon (mapShared: shared memory between the processes; see prepare_sharding.sh).
# Then, with the device tool, in one call:
#   run(command="bash .device/pp/run_pipeline.sh", kind="nvidia-h200-x2",
#       carry=[".device/pp", ".device/node.xz", ".device/dawn.node.xz", ".device/debs", ".device/env.sh"])
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
DEST=${DEST:-$PWD/.device/pp}
bash ../shared/device/prepare.sh >/dev/null
mkdir -p "$DEST/s" "$DEST/native"
for pair in bench/device/pipeline_gpu.ts:pipeline_gpu bench/device/sharding_gpu.ts:sharding_gpu \
            lib/sharding/worker.ts:shard_worker models/pipeline/stage_worker.ts:stage_worker; do
  npx esbuild "${pair%%:*}" --bundle --platform=node --format=esm --target=node20 \
    --outfile="$DEST/s/${pair##*:}.mjs" --log-level=warning \
    --banner:js="import{createRequire as __c}from'module';const require=__c(import.meta.url);"
done
cp bench/device/make_random_llama.py bench/device/run_pipeline.sh "$DEST/"
nodeinc="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")/include/node"
[ -f "$nodeinc/node_api.h" ] || nodeinc=/usr/include/node
addon="$DEST/native/tfjs_attention_native.node"
rm -f "$addon"
if g++ -O3 -std=c++17 -march=x86-64-v3 -fno-math-errno -ffp-contract=fast -fno-trapping-math -fPIC -shared -pthread \
     -Wno-psabi -I"$nodeinc" -DBUILDING_NODE_EXTENSION native/*.cc -o "$addon" 2>"$DEST/native/build.log" \
   && node -e "const a = require('$addon'); if (typeof a.mapShared !== 'function') process.exit(1)"; then
  echo "addon for the GPU machine: $addon (x86-64-v3)"
else
  echo "note: the x86-64-v3 addon did not build ($DEST/native/build.log); the GPU run moves data over IPC"
  rm -f "$addon"
fi
du -sh "$DEST"
