#!/usr/bin/env bash
# Makes a fresh clone runnable: system libraries for the software adapter, npm dependencies,
# generated shader and WebAssembly modules. Cheap when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-system-deps.sh
# Any devDependency the steps below need that an older checkout's install lacks (wabt came later).
if [ ! -d node_modules/webgpu ] || [ ! -d node_modules/vitest ] || [ ! -d node_modules/wabt ]; then
  npm ci --no-audit --no-fund
fi
node scripts/gen-shaders.mjs
node scripts/gen-wasm.mjs
# The compiled package (dist/: library, CLI, viewer bundle), rebuilt when any source is newer than
# it: the packed-install test packs it as users get it, and `npm run example` runs it.
outputs="dist/src/index.js dist/src/index.d.ts dist/web/ibgpu.js dist/web/viewer.js dist/web/index.html"
stale=0
for f in $outputs; do [ -f "$f" ] || stale=1; done
if [ "$stale" = 0 ]; then
  # shellcheck disable=SC2086
  oldest=$(ls -tr $outputs | head -n 1)
  [ -n "$(find src web shaders scripts tsconfig.json -newer "$oldest" -print -quit)" ] && stale=1
fi
if [ "$stale" = 1 ]; then npm run --silent build; fi
