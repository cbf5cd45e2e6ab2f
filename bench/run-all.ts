// Runs every benchmark suite on one engine and writes bench/results/<adapter>/<suite>.json.
//   npx tsx bench/run-all.ts [--quick] [--only matmul,gram,...]

import { Engine } from '../src/runtime/engine.js';
import { runMatmulBench } from './matmul.bench.js';
import { runGramBench } from './gram.bench.js';
import { runEighBench } from './eigh.bench.js';
import { runSignPatternsBench } from './sign-patterns.bench.js';
import { runIbMnistBench } from './ib-mnist.bench.js';
import { runIbModaddBench } from './ib-modadd.bench.js';

const SUITES = {
  matmul: runMatmulBench,
  gram: runGramBench,
  eigh: runEighBench,
  'sign-patterns': runSignPatternsBench,
  'ib-mnist': runIbMnistBench,
  // rib's modular-addition transformer; skips when its weights are absent (not in the repository)
  'ib-modadd': (engine: Engine, _opts: { quick?: boolean }) => runIbModaddBench(engine),
} as const;

const quick = process.argv.includes('--quick');
const onlyArg = process.argv.indexOf('--only');
const only = onlyArg > 0 ? process.argv[onlyArg + 1]!.split(',') : Object.keys(SUITES);
const engine = await Engine.create();
console.log(`adapter: ${engine.adapterName}`);
try {
  for (const [name, run] of Object.entries(SUITES)) {
    if (!only.includes(name)) continue;
    await run(engine, { quick });
  }
} finally {
  engine.dispose();
}
