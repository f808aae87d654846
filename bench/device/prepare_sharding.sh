#!/usr/bin/env bash
# Here (no GPU): Node, Dawn and the Vulkan loader into .device/ (../shared/device/prepare.sh), then the
# sharding bench and the shard worker bundled into .device/b/s/ (two levels down, so that the bundles'
# package-root lookup, `../../../` from the file, lands on the project root). The bench finds the worker
# through TFJS_ATTENTION_SHARD_WORKER (lib/sharding/worker_script.ts); run_sharding.sh sets it.
# The native addon (its mapShared gives the process transport shared memory instead of IPC) is built
# again into .device/b/native/ for the GPU machine's CPU, whatever it is: -march=x86-64-v3 (AVX2 + FMA),
# not the -march=native of native/build/, libstdc++ linked dynamically (a static one pulls in glibc 2.35+
# symbols); it needs glibc >= 2.27 and GLIBCXX_3.4.30 (gcc 12's libstdc++) there. run_sharding.sh points
# TFJS_ATTENTION_NATIVE_PATH at it and checks that it loads (if not, the workers fall back to IPC). Then:
#   run(command="bash bench/device/run_sharding.sh", kind="nvidia-h200-x2",
#       carry=[".device/b", ".device/node.xz", ".device/dawn.node.xz", ".device/debs", ".device/env.sh"])
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
bash ../shared/device/prepare.sh >/dev/null
mkdir -p .device/b/s .device/b/native
for pair in bench/device/sharding_gpu.ts:sharding_gpu bench/device/shard_compute_gpu.ts:shard_compute_gpu lib/sharding/worker.ts:shard_worker; do
  npx esbuild "${pair%%:*}" --bundle --platform=node --format=esm --target=node20 \
    --outfile=".device/b/s/${pair##*:}.mjs" --log-level=warning \
    --banner:js="import{createRequire as __c}from'module';const require=__c(import.meta.url);"
done
nodeinc="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")/include/node"
[ -f "$nodeinc/node_api.h" ] || nodeinc=/usr/include/node
addon=.device/b/native/tfjs_attention_native.node
rm -f "$addon"
if g++ -O3 -std=c++17 -march=x86-64-v3 -fno-math-errno -ffp-contract=fast -fno-trapping-math -fPIC -shared -pthread \
     -Wno-psabi -I"$nodeinc" -DBUILDING_NODE_EXTENSION native/*.cc -o "$addon" 2>.device/b/native/build.log \
   && node -e "const a = require('./$addon'); if (typeof a.mapShared !== 'function') process.exit(1)"; then
  echo "addon for the GPU machine: $addon (x86-64-v3), needs $(objdump -T "$addon" | grep -o 'GLIBC_[0-9.]*\|GLIBCXX_[0-9.]*' | sort -uV | awk -F_ '{m[$1]=$0} END {print m["GLIBC"], m["GLIBCXX"]}')"
else
  echo "note: the x86-64-v3 addon did not build (.device/b/native/build.log); the GPU run moves data over IPC"
  rm -f "$addon"
fi
du -sh .device .device/b
