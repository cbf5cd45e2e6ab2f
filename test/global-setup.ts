import { execFileSync } from 'node:child_process';

// Shaders are compiled into src/shaders/index.generated.ts and the host WebAssembly into
// src/host/wasm/modules.generated.ts; make sure both are fresh.
export default function setup(): void {
  execFileSync(process.execPath, ['scripts/gen-shaders.mjs'], { stdio: 'inherit' });
  execFileSync(process.execPath, ['scripts/gen-wasm.mjs'], { stdio: 'inherit' });
}
