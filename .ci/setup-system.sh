#!/usr/bin/env bash
# Installs the Debian packages Tessera's tests need: Mesa's lavapipe Vulkan driver
# (Mesa 25 from bookworm-backports, ~4x faster than bookworm's Mesa 22) for Deno's
# WebGPU, and Chromium for the browser tests. Idempotent; needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
dpkg -s libvulkan1 >/dev/null 2>&1 || need+=(libvulkan1)
mesa_ok=0
if dpkg -s mesa-vulkan-drivers >/dev/null 2>&1; then
  case "$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)" in 25.*|26.*) mesa_ok=1;; esac
fi
if [ ${#need[@]} -eq 0 ] && [ $mesa_ok -eq 1 ]; then exit 0; fi
if [ ! -f /etc/apt/sources.list.d/backports.sources ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  cat > /etc/apt/sources.list.d/backports.sources <<SRC
Types: deb
URIs: ${mirror}
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
if [ $mesa_ok -eq 0 ]; then
  apt-get install -y -qq --no-install-recommends -t bookworm-backports mesa-vulkan-drivers >/dev/null
fi
