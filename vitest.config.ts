import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // The default report, plus the name of any test file whose process died before it finished.
    reporters: ['default', './test/reporters/unfinished-files.ts'],
    // One GPU device per process, and llvmpipe already uses both cores: run files one at a time.
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Tests (and the CLI runs they spawn, e.g. `ibgpu doctor`) keep their tuning measurements in
    // a cache of their own, never in the user's ~/.cache/ibgpu.
    env: { IBGPU_CACHE_DIR: join(tmpdir(), `ibgpu-test-cache-${process.pid}`) },
  },
});
