// Measures how many loop iterations one invocation really executes (see engine.loopBudget).

import type { Engine } from '../runtime/engine.js';
import { packParams } from '../runtime/params.js';
import { shaderKernel } from './shader-kernel.js';

export const loopProbeKernel = shaderKernel('loop_probe');

export async function executedIterations(engine: Engine, n: number): Promise<number> {
  return engine.withScope(async (s) => {
    const out = s.alloc(16, 'loop_probe.out');
    engine.dispatch(loopProbeKernel, { bindings: { out, params: packParams(loopProbeKernel, { n }) }, workgroups: 1 });
    return (await engine.readU32(out, 1))[0]!;
  });
}
