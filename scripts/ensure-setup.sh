#!/usr/bin/env bash
# Makes a fresh clone runnable: system libraries for the software adapter, npm dependencies,
# generated shader module. Cheap when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
if [ ! -d node_modules/webgpu ] || [ ! -d node_modules/vitest ]; then
  npm ci --no-audit --no-fund
fi
node scripts/gen-shaders.mjs
