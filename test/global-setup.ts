import { execFileSync } from 'node:child_process';

// Shaders are compiled into src/shaders/index.generated.ts; make sure it is fresh.
export default function setup(): void {
  execFileSync(process.execPath, ['scripts/gen-shaders.mjs'], { stdio: 'inherit' });
}
