// The load-cost microbenchmark kernel computes what its float64 reference says, in every mode,
// so the benchmark (bench/load-cost.bench.ts) times real work: a loop cut short by llvmpipe's
// iteration cap, a wrong index or code the compiler dropped changes the outputs by O(0.1).
// Outputs are held to LOAD_COST_TOL (its bound is derived in test/helpers/load-cost.ts).
import { describe, expect, it } from 'vitest';
import { IbgpuError } from '../src/errors.js';
import { LOAD_COST_MODES, LOAD_COST_TABLE, loadCostF64 } from '../src/cpu/load-cost.js';
import { loadCost, loadCostData, loadCostKernel, maxLoadCostSteps } from '../src/kernels/load-cost.js';
import { packParams } from '../src/runtime/params.js';
import { useEngine } from './helpers/gpu.js';
import { LOAD_COST_TOL, loadCostWorstError } from './helpers/load-cost.js';

const engine = useEngine();

describe('load_cost kernel vs float64 reference', () => {
  const data = loadCostData(7);
  for (const mode of LOAD_COST_MODES) {
    for (const scalar of [false, true]) {
      it(`${mode}${scalar ? ' scalar' : ' vec4'}: K in {1, 3, 16}, odd shapes`, async () => {
        const wg = mode === 'workgroup' ? 256 : 7;
        for (const [k, steps, workgroups] of [
          [1, 97, 3],
          [3, 300, 1],
          [16, 61, 2],
        ] as const) {
          expect(await loadCostWorstError(await engine(), { mode, scalar, k, steps, workgroups, wg }, data)).toBeLessThanOrEqual(LOAD_COST_TOL);
        }
      }, 30_000);
    }
  }

  it('runs the full step count the bench uses (no iteration cap hit)', async () => {
    const k = 16;
    const steps = maxLoadCostSteps(k);
    expect(steps * (k + 1)).toBeLessThan(65535);
    expect(await loadCostWorstError(await engine(), { mode: 'coalesced', scalar: false, k, steps, workgroups: 1, wg: 256 }, data)).toBeLessThanOrEqual(
      LOAD_COST_TOL,
    );
  }, 30_000);

  it('rejects step counts past the loop cap and bad workgroup sizes', async () => {
    const e = await engine();
    const buf = e.alloc(16, 'x');
    expect(() =>
      loadCost(e, buf, new Float32Array(LOAD_COST_TABLE * 4), buf, { mode: 'reg', scalar: false, k: 4, steps: 20000, workgroups: 1, wg: 1 }),
    ).toThrow(IbgpuError);
    expect(() =>
      loadCost(e, buf, new Float32Array(LOAD_COST_TABLE * 4), buf, { mode: 'workgroup', scalar: false, k: 1, steps: 10, workgroups: 1, wg: 64 }),
    ).toThrow(/wg = 256/);
    e.release(buf);
  });

  it('reads a uniform table from a device buffer window (engine.allocUniformStorage) and checks the window limits', async () => {
    const e = await engine();
    const c = { mode: 'ubo' as const, scalar: false, k: 2, steps: 77, workgroups: 2, wg: 7 };
    const bytes = LOAD_COST_TABLE * 16;
    const u = e.allocUniformStorage(2 * bytes, 'uniform-windows');
    e.write(u, data.subarray(LOAD_COST_TABLE * 4, LOAD_COST_TABLE * 8), 0); // window 0: other values
    e.write(u, data.subarray(0, LOAD_COST_TABLE * 4), bytes); // window 1: the table
    const buf = e.upload(data, 'load-cost-data');
    const out = e.alloc(c.workgroups * c.wg * 4, 'load-cost-out');
    e.dispatch(loadCostKernel, {
      bindings: { data: buf, out, params: packParams(loadCostKernel, { steps: c.steps }), table: { buffer: u, offset: bytes, size: bytes } },
      workgroups: c.workgroups,
      overrides: { MODE: LOAD_COST_MODES.indexOf('ubo'), SCALAR: 0, K: c.k, WG: c.wg },
    });
    const got = await e.readF32(out, c.workgroups * c.wg);
    const ref = loadCostF64(data, c);
    for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i]! - ref[i]!)).toBeLessThanOrEqual(LOAD_COST_TOL);
    const bad = (offset: number, size: number) => () =>
      e.dispatch(loadCostKernel, {
        bindings: { data: buf, out, params: packParams(loadCostKernel, { steps: 1 }), table: { buffer: u, offset, size } },
        workgroups: 1,
      });
    expect(bad(16, bytes)).toThrow(/uniform 'table' window/); // offset not a multiple of the alignment
    expect(bad(0, 2 * bytes)).toThrow(/uniform 'table' window/); // past maxUniformBufferBindingSize
    e.release(u, buf, out);
  });
});
