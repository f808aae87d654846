#!/usr/bin/env bash
# Installs headless Chromium from Debian (for spec/browser: the layer's fixtures in a real browser on
# webgl, webgpu and cpu). Idempotent: a no-op when /usr/bin/chromium is already there.
# The spec skips itself with a printed reason when Chromium is missing, so a failure here is not fatal.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "[setup-browser] no apt-get: install Chromium by hand to run spec/browser" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# 'apt-get update' only when the package lists do not know chromium yet.
if ! apt-cache show chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq
fi
$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "[setup-browser] installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
