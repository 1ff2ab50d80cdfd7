#!/usr/bin/env bash
# Installs what Tessera needs on a fresh Debian 12 machine: the system packages
# (Mesa's lavapipe Vulkan driver for WebGPU on the CPU, Chromium for the browser
# tests; needs root or sudo) and the npm packages (npm ci, when node_modules is
# missing or older than package-lock.json). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${TESSERA_SKIP_SYSTEM:-0}" != 1 ]; then
  if [ "$(id -u)" = 0 ]; then bash .ci/setup-system.sh
  elif command -v sudo >/dev/null; then sudo bash .ci/setup-system.sh
  else echo "note: not root and no sudo: skipping the Debian packages (chromium, mesa-vulkan-drivers)" >&2
  fi
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
