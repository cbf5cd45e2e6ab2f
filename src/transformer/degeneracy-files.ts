// The transformer degeneracy report from a build config and its files (`ibgpu report --recompute`
// on a transformer result): loads the model and data as the build did and runs
// src/transformer/degeneracy.ts with the build's passes (GPU on a fresh engine, or the float64
// passes with "device": "cpu").

import type { Backend } from '../gpu/acquire.js';
import type { BuildConfig } from '../ib/config.js';
import type { DegeneracyReport } from '../report/degeneracy.js';
import { Engine } from '../runtime/engine.js';
import { loadTransformerBuild } from './build.js';
import { transformerDegeneracy } from './degeneracy.js';
import { gpuPassesFactory } from './gpu-passes.js';
import { PassesF64 } from './passes-f64.js';

export async function degeneracyFromFiles(
  config: BuildConfig,
  base: string,
  o: { backend?: Backend; log?: (m: string) => void } = {},
): Promise<DegeneracyReport> {
  const { model, data } = await loadTransformerBuild(config, base);
  const engine = config.device === 'cpu' ? undefined : await Engine.create(o.backend ? { backend: o.backend } : {});
  try {
    const gpu = engine ? gpuPassesFactory(engine) : undefined;
    o.log?.(`degeneracy statistics of the MLP blocks: ${data.n} sequences × ${data.P} positions on ${engine ? engine.adapterName : 'the CPU (float64)'}`);
    return await transformerDegeneracy(
      model,
      data,
      config,
      (mp) => (gpu ? gpu(mp, data.tokens, data.n, data.P) : Promise.resolve(new PassesF64(mp, data.tokens, data.n, data.P))),
      o.log,
    );
  } finally {
    engine?.dispose();
  }
}
