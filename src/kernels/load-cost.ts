// The load-cost microbenchmark kernel (shaders/load_cost.wgsl): register-only FMAs against one
// memory load per loop step, per access pattern, with K FMAs per loaded value. It measures what
// a load costs on an adapter relative to an FMA, which decides the shape of every kernel on
// software adapters (bench/load-cost.bench.ts, docs in bench/RESULTS.notes.md).

import { IbgpuError } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { LOAD_COST_LEN, LOAD_COST_MODES, LOAD_COST_TABLE, type LoadCostCase } from '../cpu/load-cost.js';
import { packParams } from '../runtime/params.js';
import { mulberry32 } from '../util/mulberry32.js';
import { shaderKernel } from './shader-kernel.js';

export const loadCostKernel = shaderKernel('load_cost', { MODE: 0, SCALAR: 0, K: 1, WG: 256 });

/** The most steps that keep steps * (K + 1) under llvmpipe's 65535 loop iterations. */
export function maxLoadCostSteps(k: number): number {
  return Math.floor(65000 / (k + 1));
}

function check(c: LoadCostCase): void {
  const bad = (msg: string, hint: string): never => {
    throw new IbgpuError('SHAPE', `load_cost: ${msg}`, hint);
  };
  if (!LOAD_COST_MODES.includes(c.mode)) bad(`unknown mode ${String(c.mode)}`, `use one of ${LOAD_COST_MODES.join(', ')}`);
  if (!Number.isInteger(c.k) || c.k < 1 || c.k > 32) bad(`K = ${c.k} is outside 1..32`, 'pass 1 <= k <= 32');
  if (!Number.isInteger(c.steps) || c.steps < 1 || c.steps > maxLoadCostSteps(c.k)) {
    bad(`steps = ${c.steps} with K = ${c.k} would exceed llvmpipe's 65535 loop iterations per invocation`, `use steps <= ${maxLoadCostSteps(c.k)}`);
  }
  if (c.mode === 'workgroup' && c.wg !== 256) bad(`workgroup mode needs wg = 256 (got ${c.wg})`, 'pass wg: 256');
  if (!Number.isInteger(c.wg) || c.wg < 1 || c.wg > 256) bad(`wg = ${c.wg} is outside 1..256`, 'pass 1 <= wg <= 256');
}

/** A data buffer of LOAD_COST_LEN vec4 values in [-0.5, 0.5) (deterministic). */
export function loadCostData(seed = 1): Float32Array {
  const out = new Float32Array(LOAD_COST_LEN * 4);
  const rand = mulberry32(seed);
  for (let i = 0; i < out.length; i++) out[i] = rand() - 0.5;
  return out;
}

/**
 * Records one load_cost dispatch; `data` holds LOAD_COST_LEN vec4 on the device, `table` the
 * first LOAD_COST_TABLE vec4 of the same values (the uniform-buffer modes read it), `out` one
 * f32 per invocation.
 */
export function loadCost(engine: Engine, data: GPUBuffer, table: Float32Array, out: GPUBuffer, c: LoadCostCase): void {
  check(c);
  if (table.length !== LOAD_COST_TABLE * 4) {
    throw new IbgpuError('SHAPE', `load_cost: table has ${table.length} floats, needs ${LOAD_COST_TABLE * 4}`, 'pass data.subarray(0, LOAD_COST_TABLE * 4)');
  }
  if (out.size < c.workgroups * c.wg * 4) {
    throw new IbgpuError('SHAPE', `load_cost: out holds ${out.size} bytes, needs ${c.workgroups * c.wg * 4}`, 'allocate one f32 per invocation');
  }
  engine.dispatch(loadCostKernel, {
    bindings: { data, out, params: packParams(loadCostKernel, { steps: c.steps }), table },
    workgroups: c.workgroups,
    overrides: { MODE: LOAD_COST_MODES.indexOf(c.mode), SCALAR: c.scalar ? 1 : 0, K: c.k, WG: c.wg },
    label: `load_cost ${c.mode}${c.scalar ? ' scalar' : ''} k${c.k}`,
  });
}

/** Useful floating-point operations of one dispatch (2 per FMA per component). */
export function loadCostFlops(c: LoadCostCase): number {
  return c.workgroups * c.wg * c.steps * c.k * 2 * (c.scalar ? 1 : 4);
}
