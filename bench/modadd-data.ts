// rib's modular-addition model and its 3830 training triples, as the transformer benches load them
// (../shared/data/rib-modadd beside the repository, or a folder given on the command line; the
// model is not part of the repository), compiled with rib's node layers and last-position cut.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { mulberry32 } from '../src/util/mulberry32.js';
import { loadNpy } from '../src/io/npy.js';
import type { ModelProgram } from '../src/model/program.js';
import { compileTransformer } from '../src/model/transformer/compile.js';
import { parseTransformerConfig } from '../src/model/transformer/config.js';
import { loadTransformer } from '../src/model/transformer/weights.js';

export const DEFAULT_MODADD_DIR = resolve(import.meta.dirname, '..', '..', 'shared', 'data', 'rib-modadd');

export interface ModaddData {
  mp: ModelProgram;
  tokens: Int32Array;
  n: number;
  P: number;
}

/** Loads and compiles rib's modadd model (node layers ln1.0, ln2.0, unembed, output; add_resid1). */
export async function loadModadd(dir = DEFAULT_MODADD_DIR): Promise<ModaddData> {
  const config = parseTransformerConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')), 'modadd config');
  const model = await loadTransformer(join(dir, 'weights.safetensors'), config);
  const inputs = await loadNpy(join(dir, 'inputs.npy'));
  const n = inputs.shape[0]!;
  const P = inputs.shape[1]!;
  const tokens = Int32Array.from(inputs.data as BigInt64Array, (v) => Number(v));
  const mp = compileTransformer(model, ['ln1.0', 'ln2.0', 'unembed', 'output'], { positions: P, lastPosModuleType: 'add_resid1' });
  return { mp, tokens, n, P };
}

/** A seeded random basis [rows, cols] with entries of scale 1/√rows (stands in for a build's C). */
export function randomBasis(rows: number, cols: number, seed: number): Float64Array {
  const r = mulberry32(seed);
  return Float64Array.from({ length: rows * cols }, () => (r() - 0.5) / Math.sqrt(rows));
}
