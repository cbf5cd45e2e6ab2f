// Shared loading and comparison helpers of the synthetic-transformer fixture tests.

import { readFileSync } from 'node:fs';
import { tokensFromTensor } from '../../src/data/tokens.js';
import { parseConfig, type BuildConfig } from '../../src/ib/config.js';
import { expect } from 'vitest';
import type { IbResult } from '../../src/ib/pipeline.js';
import { parseNpy } from '../../src/io/npy.js';
import { parseSafetensors } from '../../src/io/safetensors.js';
import { toFloat64, type Tensor } from '../../src/io/tensor.js';
import { compileTransformer } from '../../src/model/transformer/compile.js';
import { parseTransformerConfig } from '../../src/model/transformer/config.js';
import { loadTransformerFrom, tensorsSource, type TransformerModel } from '../../src/model/transformer/weights.js';
import { PassesF64 } from '../../src/transformer/passes-f64.js';
import { GpuPasses } from '../../src/transformer/gpu-passes.js';
import type { Engine } from '../../src/runtime/engine.js';
import { randomMatrix } from './random.js';
import { buildTransformer } from '../../src/transformer/pipeline.js';
import type { ModelProgram } from '../../src/model/program.js';

export const ROOT = 'test/fixtures/synthetic-transformer';
export const CASES: [string, string][] = [
  ['modadd-tiny', 'modadd-tiny_f64_jacobian'],
  ['modadd-tiny', 'modadd-tiny_f64_jacobian_mlp'],
  ['modadd-tiny', 'modadd-tiny_f64_svd'],
  ['gpt-tiny', 'gpt-tiny_f64_jacobian'],
  ['gpt-tiny', 'gpt-tiny_f64_jacobian_dense'],
  ['gpt-tiny', 'gpt-tiny_f64_svd'],
];

export async function tensorsOf(path: string): Promise<Record<string, Tensor>> {
  return parseSafetensors(new Uint8Array(readFileSync(path)), path).readAll();
}

export interface Loaded {
  model: TransformerModel;
  mp: ModelProgram;
  tokens: Int32Array;
  n: number;
  P: number;
  config: BuildConfig;
}

export async function load(modelDir: string, kase: string, weightsFile: string): Promise<Loaded> {
  const rib = JSON.parse(readFileSync(`${ROOT}/${modelDir}/rib-config/${kase}.json`, 'utf8'));
  const tc = parseTransformerConfig(JSON.parse(readFileSync(`${ROOT}/${modelDir}/config.json`, 'utf8')));
  const model = await loadTransformerFrom(tensorsSource(await tensorsOf(`${ROOT}/${modelDir}/${weightsFile}`)), tc);
  const ds = tokensFromTensor(parseNpy(new Uint8Array(readFileSync(`${ROOT}/${modelDir}/inputs.npy`))), 'inputs.npy', { nCtx: tc.n_ctx, vocab: tc.d_vocab });
  const config = parseConfig({
    node_layers: rib.node_layers,
    basis_formula: rib.basis_formula,
    edge_formula: rib.edge_formula,
    integration_method: rib.integration_method,
    n_intervals: rib.n_intervals,
    center: rib.center,
    truncation_threshold: rib.truncation_threshold,
    threshold_mode: 'absolute',
    rotate_final_node_layer: rib.rotate_final_node_layer,
    last_pos_module_type: rib.last_pos_module_type,
    isolate_ln_var: rib.isolate_ln_var,
  });
  const mp = compileTransformer(model, config.node_layers, { positions: ds.P, lastPosModuleType: config.last_pos_module_type ?? null });
  return { model, mp, tokens: ds.tokens, n: ds.n, P: ds.P, config };
}

/** The fixture cases the GPU pass tests compare on (one per model). */
export const GPU_CASES: [string, string][] = [
  ['modadd-tiny', 'modadd-tiny_f64_jacobian'],
  ['gpt-tiny', 'gpt-tiny_f64_jacobian'],
];

/**
 * GPU and float64 passes over the first ≤ maxN samples of a fixture case; the caller disposes `gpu`.
 * The GPU passes keep their statistics and edges on the GPU (stage_paths gpu), which these tests
 * cover; the host path has its own (transformer-host-stats.test.ts).
 */
export async function fixturePasses(
  engine: Engine,
  modelDir: string,
  kase: string,
  maxN = 48,
): Promise<{ l: Loaded; n: number; tokens: Int32Array; gpu: GpuPasses; cpu: PassesF64 }> {
  const l = await load(modelDir, kase, 'weights.safetensors');
  const n = Math.min(l.n, maxN);
  const tokens = l.tokens.slice(0, n * l.P);
  return { l, n, tokens, gpu: new GpuPasses(engine, l.mp, tokens, n, l.P, { stats: 'gpu', edges: 'gpu' }), cpu: new PassesF64(l.mp, tokens, n, l.P) };
}

/**
 * Random bases around section s of a model with node layers `nodes`: Ĉ with ≤ 6 columns at its
 * output (none at `output`: the identity), C and C⁺ with ≤ 5 at its input (seeds 100+s, 200+s, 300+s).
 */
export function randomSectionBases(
  nodes: readonly { name: string; width: number }[],
  s: number,
): {
  Chat: Float64Array | undefined;
  rOut: number;
  input: { C: Float64Array; Cpinv: Float64Array; rIn: number };
  where: string;
} {
  const out = nodes[s + 1]!;
  const identity = out.name === 'output';
  const rOut = identity ? out.width : Math.min(out.width, 6);
  const Chat = identity ? undefined : randomMatrix(out.width, rOut, 100 + s);
  const rIn = Math.min(nodes[s]!.width, 5);
  const input = { C: randomMatrix(nodes[s]!.width, rIn, 200 + s), Cpinv: randomMatrix(rIn, nodes[s]!.width, 300 + s), rIn };
  return { Chat, rOut, input, where: `${nodes[s]!.name}->${out.name}` };
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** Worst |±a_col − b_col| / ‖b_col‖ over columns of [rows, cols] matrices (best sign per column). */
export function columnsUpToSign(a: Float64Array, b: Float64Array, rows: number, cols: number): number {
  let worst = 0;
  for (let c = 0; c < cols; c++) {
    let dp = 0;
    let dm = 0;
    let nb = 0;
    for (let r = 0; r < rows; r++) {
      const x = a[r * cols + c]!;
      const y = b[r * cols + c]!;
      dp = Math.max(dp, Math.abs(x - y));
      dm = Math.max(dm, Math.abs(x + y));
      nb = Math.max(nb, Math.abs(y));
    }
    worst = Math.max(worst, Math.min(dp, dm) / nb);
  }
  return worst;
}

export function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const t = new Float64Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = a[i * cols + j]!;
  return t;
}

/** Builds one rib case with the float64 reference pipeline and compares it with rib's outputs (tolerances: test/transformer-fixtures.test.ts). */
export async function checkCase(modelDir: string, kase: string, weightsFile: string): Promise<{ res: IbResult; loaded: Loaded; passes: PassesF64 }> {
  const loaded = await load(modelDir, kase, weightsFile);
  const passes = new PassesF64(loaded.mp, loaded.tokens, loaded.n, loaded.P);
  const res = await buildTransformer(passes, loaded.mp, loaded.config);

  const ref = await tensorsOf(`${ROOT}/${modelDir}/rib-reference/${kase}.safetensors`);
  const meta = JSON.parse(readFileSync(`${ROOT}/${modelDir}/rib-reference/${kase}.json`, 'utf8'));
  const worst: Record<string, number> = {};
  for (const name of loaded.config.node_layers) {
    if (name === 'output') continue;
    const b = res.bases.get(name)!;
    const want = meta.layers[name];
    expect(b.dim, `${name} dim`).toBe(want.orig_dim);
    expect(b.r, `${name} kept`).toBe(want.rib_dim);
    const mean = toFloat64(ref[`${name}/mean`]!);
    expect(maxAbs(b.mean.map((x, i) => x - mean[i]!)) / maxAbs(mean), `${name} mean`).toBeLessThan(1e-12);
    const C = toFloat64(ref[`${name}/C`]!);
    const Cp = toFloat64(ref[`${name}/C_pinv`]!);
    const cErr = columnsUpToSign(b.C, C, b.dim, b.r);
    const cpErr = columnsUpToSign(transpose(b.Cpinv, b.r, b.dim), transpose(Cp, b.r, b.dim), b.dim, b.r);
    worst['C'] = Math.max(worst['C'] ?? 0, cErr, cpErr);
    expect(cErr, `${name} C`).toBeLessThan(1e-8);
    expect(cpErr, `${name} C_pinv`).toBeLessThan(1e-8);
    if (`${name}/Lambda` in ref) {
      const lam = toFloat64(ref[`${name}/Lambda`]!);
      let e = 0;
      for (let i = 0; i < b.r; i++) e = Math.max(e, Math.abs(b.Lambda![i]! - lam[i]!) / Math.abs(lam[i]!));
      worst['Lambda'] = Math.max(worst['Lambda'] ?? 0, e);
      expect(e, `${name} Λ`).toBeLessThan(1e-8);
    }
  }
  for (const [key, e] of res.edges) {
    const want = toFloat64(ref[`edges/${key}/E_hat`]!);
    expect([e.rows, e.cols]).toEqual(ref[`edges/${key}/E_hat`]!.shape);
    const err = maxAbs(e.data.map((x, i) => x - want[i]!)) / maxAbs(want);
    worst['edges'] = Math.max(worst['edges'] ?? 0, err);
    expect(err, `edges ${key}`).toBeLessThan(1e-5);
  }
  console.log(
    `${kase} (${weightsFile}): worst C ${worst['C']?.toExponential(2)}, Λ ${worst['Lambda']?.toExponential(2) ?? '-'}, edges ${worst['edges']?.toExponential(2)}`,
  );
  return { res, loaded, passes };
}
