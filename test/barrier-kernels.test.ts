// Kernels that rely on workgroup barriers and workgroup memory, run on SwiftShader Vulkan.
// llvmpipe runs a workgroup's invocations as coroutines that switch only at barriers, so a
// missing barrier can go unnoticed there; SwiftShader executes invocations in SIMD groups that
// interleave more like a GPU's, so a missing barrier shows up as wrong results here. (The Gram
// tiled kernel and the sign-packing kernels have their SwiftShader tests in their own files.)
import { describe, expect, it } from 'vitest';
import { matmulAbsF64, matmulF64 } from '../src/cpu/matmul.js';
import { symEig } from '../src/cpu/eigh.js';
import { eighGpu } from '../src/kernels/eigh.js';
import { loadCostData } from '../src/kernels/load-cost.js';
import { matmulHost, matmulTolerance, type MatmulShape, type MatmulVariantName } from '../src/kernels/matmul.js';
import type { Engine } from '../src/runtime/engine.js';
import { useSwiftShader } from './helpers/gpu.js';
import { randomF32 } from './helpers/random.js';
import { LOAD_COST_TOL, loadCostWorstError } from './helpers/load-cost.js';

const U = 2 ** -24;
const swiftshader = useSwiftShader();

function need(ctx: { skip: () => void }): Engine | undefined {
  const e = swiftshader.get();
  if (!e) {
    console.log(`skipped: ${swiftshader.why()}`);
    ctx.skip();
  }
  return e;
}

async function checkMatmul(e: Engine, s: MatmulShape, variant: MatmulVariantName, seed: number): Promise<void> {
  const a = randomF32(s.m * s.k, seed);
  const b = randomF32(s.k * s.n, seed + 1);
  const c = randomF32(s.m * s.n, seed + 2);
  const ref = matmulF64(a, b, s, c);
  const scale = matmulAbsF64(a, b, s, c);
  const out = await matmulHost(e, a, b, s, { variant, c });
  let worst = 0;
  for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(out[i]! - ref[i]!) / matmulTolerance(scale[i]!, s.k));
  expect(worst, `${variant} ${JSON.stringify(s)}`).toBeLessThanOrEqual(1);
}

describe('barrier / workgroup-memory kernels on SwiftShader Vulkan', () => {
  it('matmul tiled128 (double-buffered workgroup slabs): tiles, ragged edges, transposes', async (ctx) => {
    const e = need(ctx);
    if (!e) return;
    await checkMatmul(e, { m: 1, n: 1, k: 1 }, 'tiled128', 1);
    await checkMatmul(e, { m: 131, n: 137, k: 29, beta: 0.5 }, 'tiled128', 2); // 2 x 2 tiles, odd k (partial slab)
    await checkMatmul(e, { m: 37, n: 41, k: 23, transA: true, transB: true }, 'tiled128', 3);
  }, 60_000);

  it('matmul panel variants (uniform-buffer panels) agree too', async (ctx) => {
    const e = need(ctx);
    if (!e) return;
    await checkMatmul(e, { m: 263, n: 70, k: 141, alpha: 0.5, beta: -1 }, 'panel128', 4);
  }, 60_000);

  it('load_cost workgroup mode (one barrier after filling workgroup memory)', async (ctx) => {
    const e = need(ctx);
    if (!e) return;
    const c = { mode: 'workgroup' as const, scalar: false, k: 3, steps: 300, workgroups: 3, wg: 256 };
    expect(await loadCostWorstError(e, c, loadCostData(3))).toBeLessThanOrEqual(LOAD_COST_TOL);
  }, 60_000);

  it('eighGpu (block Jacobi: barriers between rotation phases) converges to the float64 eigenvalues', async (ctx) => {
    const e = need(ctx);
    if (!e) return;
    for (const n of [17, 40]) {
      const x = randomF32(n * n, 50 + n);
      const a = new Float64Array(n * n);
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) a[i * n + j] = (x[i * n + j]! + x[j * n + i]!) / 2;
      const ref = symEig(a, n);
      const g = await eighGpu(e, a, n);
      expect(g.converged).toBe(true);
      const norm = Math.max(...ref.values.map(Math.abs));
      // f32 Jacobi: eigenvalues within n * 2^-24 of the largest magnitude (as in test/eigh.test.ts)
      for (let k = 0; k < n; k++) expect(Math.abs(g.values[k]! - ref.values[k]!)).toBeLessThan(n * U * norm);
    }
  }, 60_000);
});
