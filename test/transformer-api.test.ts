// The transformer build as a library call on a model and token ids in memory
// (buildTransformerBasis, src/transformer/run.ts): the same result as the file-based build of the
// same config, and clear errors for the workflows that need files.

import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildFromConfigFile } from '../src/build/from-files.js';
import { modularArithmetic, parseModularArithmetic } from '../src/data/modular-arithmetic.js';
import { IbgpuError } from '../src/errors.js';
import { parseConfig } from '../src/ib/config.js';
import { parseTransformerConfig } from '../src/model/transformer/config.js';
import { loadTransformer } from '../src/model/transformer/weights.js';
import { readJsonFile } from '../src/io/json.js';
import { buildTransformerBasis } from '../src/transformer/run.js';
import { useEngine } from './helpers/gpu.js';

const DIR = new URL('../examples/modadd-transformer', import.meta.url).pathname;
const engine = useEngine();

async function inMemory(): Promise<{ fields: Record<string, unknown>; model: Awaited<ReturnType<typeof loadTransformer>>; spec: Record<string, unknown> }> {
  const raw = (await readJsonFile(join(DIR, 'build.json'), 'build config')) as Record<string, unknown>;
  const { dataset, model: _m, arch: _a, exp_name: _e, ...fields } = raw;
  const { type: _t, ...spec } = dataset as Record<string, unknown>;
  const model = await loadTransformer(join(DIR, 'weights.safetensors'), parseTransformerConfig(await readJsonFile(join(DIR, 'config.json'), 'model config')));
  return { fields, model, spec };
}

describe('buildTransformerBasis', () => {
  it.each(['gpu', 'cpu'] as const)('on %s: bit for bit the file-based build of the same config', async (device) => {
    const e = await engine();
    const { fields, model, spec } = await inMemory();
    const mem = await buildTransformerBasis(e, model, modularArithmetic(parseModularArithmetic(spec)), parseConfig({ ...fields, device }));
    const files = (await buildFromConfigFile(e, join(DIR, 'build.json'), { overrides: { device } })).result;
    expect([...mem.bases.keys()]).toEqual([...files.bases.keys()]);
    for (const [name, b] of files.bases) {
      expect(Array.from(mem.bases.get(name)!.C), `${name}: C`).toEqual(Array.from(b.C));
      if (b.Lambda) expect(Array.from(mem.bases.get(name)!.Lambda!), `${name}: Λ`).toEqual(Array.from(b.Lambda));
    }
    for (const [k, v] of files.edges) expect(Array.from(mem.edges.get(k)!.data), k).toEqual(Array.from(v.data));
  });

  it('refuses the workflows that read or write files, and a GPU build without an engine', async () => {
    const { fields, model, spec } = await inMemory();
    const data = modularArithmetic(parseModularArithmetic(spec));
    const refused = async (extra: Record<string, unknown>, engineGiven = true): Promise<string> => {
      try {
        await buildTransformerBasis(engineGiven ? await engine() : undefined, model, data, parseConfig({ ...fields, ...extra }));
      } catch (err) {
        expect(err).toBeInstanceOf(IbgpuError);
        return `${(err as IbgpuError).message} | ${(err as IbgpuError).hint}`;
      }
      throw new Error('not refused');
    };
    expect(await refused({ gram_matrices_path: 'grams' })).toMatch(/gram_matrices_path names files.*buildFromConfigFile/s);
    expect(await refused({ calculate_Cs: false, calculate_edges: false })).toMatch(/calculate_Cs false writes the statistics to files/);
    expect(await refused({}, false)).toMatch(/no engine was given.*"device": "cpu"/s);
  });
});
