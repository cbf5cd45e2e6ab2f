#!/usr/bin/env bash
# System libraries for WebGPU without a GPU (Debian/Ubuntu):
#   Mesa llvmpipe through EGL/OpenGL (Dawn's OpenGL backend, the default software adapter) and
#   SwiftShader Vulkan from chromium-common (a core-feature-level adapter with subgroups and
#   timestamp queries, used by some tests and available as IBGPU_BACKEND=swiftshader).
#   chromium itself: the browser tests (test/browser.test.ts, headless with --enable-unsafe-webgpu).
# Idempotent: installs only what is missing. Needs root (or sudo) only when something is missing.
set -euo pipefail
pkgs=(libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri libvulkan1 chromium-common chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if ! command -v apt-get >/dev/null; then
  echo "ibgpu: missing system packages (${missing[*]}) and no apt-get; install Mesa EGL/GL (llvmpipe) or a GPU driver by hand" >&2
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "ibgpu: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
