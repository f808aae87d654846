#!/usr/bin/env bash
# Here (no GPU): bundles bench/device/sgmat_probe.ts into .device/s6/lead/. Then, with the device tool:
#   run(command="source .device/env.sh && \"$NODE\" .device/s6/lead/sgmat_probe.mjs 2>&1 | grep -v '^Warning'",
#       carry=[".device/s6", ".device/node.xz", ".device/dawn.node.xz", ".device/debs", ".device/env.sh"])
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
[ -f .device/env.sh ] || bash ../shared/device/prepare.sh
mkdir -p .device/s6/lead
npx esbuild bench/device/sgmat_probe.ts --bundle --platform=node --format=esm \
  --outfile=.device/s6/lead/sgmat_probe.mjs --log-level=warning \
  --banner:js="import{createRequire as __c}from'module';const require=__c(import.meta.url);"
