#!/usr/bin/env bash
# Here (no GPU): bundles the prefill tile sweep / profile (prefill_profile.ts) and copies the scripts
# into DEST (default /work/main/.device/s6/g11p). Then, on the device tool:
#   run(command="bash .device/s6/g11p/run.sh", carry=[".device/s6", ".device/node.xz", ".device/dawn.node.xz",
#       ".device/debs", ".device/env.sh"])
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
DEST=${DEST:-/work/main/.device/s6/g11p}
mkdir -p "$DEST"
npx esbuild bench/device/prefill_profile.ts --bundle --minify --platform=node --format=esm --outfile="$DEST/prefill_profile.mjs" \
  --log-level=warning --banner:js="import{createRequire as __c}from'module';const require=__c(import.meta.url);"
cp bench/device/make_random_llama.py "$DEST/"
cp bench/device/run_prefill.sh "$DEST/run.sh"
du -sh "$DEST"
