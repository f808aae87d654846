#!/usr/bin/env bash
# Installs a software Vulkan driver from Debian so WebGPU (Dawn, npm package `webgpu`) runs in
# Node on a machine without a GPU (CI, Debian 12). Idempotent; quick when already installed.
#
#   bash scripts/setup-vulkan.sh            # lavapipe (Mesa 25 from bookworm-backports)
#   VULKAN_DRIVER=swiftshader bash scripts/setup-vulkan.sh   # SwiftShader from the chromium package
#
# Why lavapipe from backports: Debian 12's own Mesa 22.3 lavapipe is too old for Dawn; Mesa 25 from
# bookworm-backports works and runs these kernels 3-8x faster than SwiftShader 5.0 from chromium
# (bench/attention_webgpu.ts --small on 2 cores: decode 8x1024 41 vs 266 ms, prefill 1x512 1.7 vs
# 8.7 s, rope 28 vs 193 ms). Under SwiftShader the rope spec passes but the flash spec's jest
# worker was killed (out of memory while compiling the unrolled shaders), so CI uses lavapipe.
# The SwiftShader route needs VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json at run time.
# Needs root (apt-get); prints what it did and exits non-zero only when no driver could be had.
set -euo pipefail
driver="${VULKAN_DRIVER:-lavapipe}"
lvp_icd=/usr/share/vulkan/icd.d/lvp_icd.json
ss_icd=/usr/lib/chromium/vk_swiftshader_icd.json

have_lavapipe() {
  [ -f "$lvp_icd" ] && dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -qv '^22\.'
}

if [ "$driver" = lavapipe ] && have_lavapipe && ldconfig -p | grep -q libvulkan.so.1; then
  echo "[setup-vulkan] lavapipe $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers) already installed"
  exit 0
fi
if [ "$driver" = swiftshader ] && [ -f "$ss_icd" ] && ldconfig -p | grep -q libvulkan.so.1; then
  echo "[setup-vulkan] SwiftShader already installed; export VK_ICD_FILENAMES=$ss_icd"
  exit 0
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then sudo=sudo; else echo "[setup-vulkan] need root for apt-get" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")

if [ "$driver" = lavapipe ]; then
  if [ "$codename" = bookworm ]; then
    src=/etc/apt/sources.list.d/bookworm-backports.sources
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      $sudo tee "$src" >/dev/null <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    fi
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
  fi
  echo "[setup-vulkan] installed lavapipe $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
else
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends chromium libvulkan1 >/dev/null
  echo "[setup-vulkan] installed SwiftShader; export VK_ICD_FILENAMES=$ss_icd"
fi
