// Float64 reference of shaders/load_cost.wgsl (the load-cost microbenchmark kernel): the value
// each invocation writes, computed step by step on the host. Used by test/load-cost.test.ts to
// check that the benchmark kernel really ran every step of every mode.

export type LoadCostMode = 'reg' | 'strided' | 'coalesced' | 'uniform' | 'workgroup' | 'ubo' | 'ubo-uniform';

/** In the order of the shader's MODE override. */
export const LOAD_COST_MODES: readonly LoadCostMode[] = ['reg', 'strided', 'coalesced', 'uniform', 'workgroup', 'ubo', 'ubo-uniform'];

/** Elements (vec4) of the uniform-buffer table: the first LOAD_COST_TABLE elements of the data. */
export const LOAD_COST_TABLE = 4096;

/** Elements (vec4) of the data buffer; indices are masked with LOAD_COST_LEN - 1. */
export const LOAD_COST_LEN = 65536;

export interface LoadCostCase {
  mode: LoadCostMode;
  /** f32 accumulators and the .x component instead of vec4. */
  scalar: boolean;
  /** FMAs per step (per obtained value). */
  k: number;
  steps: number;
  workgroups: number;
  wg: number;
}

/** The per-invocation outputs, for `data` of LOAD_COST_LEN * 4 floats. */
export function loadCostF64(data: Float32Array, c: LoadCostCase): Float64Array {
  const mask = LOAD_COST_LEN - 1;
  const n = c.workgroups * c.wg;
  const out = new Float64Array(n);
  const comps = c.scalar ? 1 : 4;
  const a = new Float64Array(4);
  const b = new Float64Array(4);
  for (let gid = 0; gid < n; gid++) {
    const lid = gid % c.wg;
    const wgBase = gid - lid;
    a.fill(0);
    b.fill(0);
    for (let i = 0; i < c.steps; i++) {
      let idx: number;
      let regValue: number | undefined;
      switch (c.mode) {
        case 'strided':
          idx = (gid * 64 + i) & mask;
          break;
        case 'coalesced':
          idx = (gid + i * 256) & mask;
          break;
        case 'uniform':
          idx = i & mask;
          break;
        // wg[lid'] holds data[(wgBase + lid') & mask]
        case 'workgroup':
          idx = (wgBase + ((lid + i) & 255)) & mask;
          break;
        case 'ubo':
          idx = (gid + i * 256) & (LOAD_COST_TABLE - 1);
          break;
        case 'ubo-uniform':
          idx = i & (LOAD_COST_TABLE - 1);
          break;
        default:
          idx = 0;
          regValue = ((i + gid) & 255) / 512 - 0.25;
      }
      for (let q = 0; q < comps; q++) {
        const v = regValue ?? data[idx * 4 + q]!;
        for (let j = 0; j < c.k; j += 2) {
          a[q] = a[q]! * v + 0.25;
          if (j + 1 < c.k) b[q] = b[q]! * v - 0.125;
        }
      }
    }
    let s = 0;
    for (let q = 0; q < comps; q++) s += a[q]! + b[q]!;
    out[gid] = s;
  }
  return out;
}
