// Uniform blocks of the transformer kernels: u32 fields in declaration order, some of them f32.
// One helper so every wrapper packs its struct the same way (WGSL uniform structs of scalars are
// laid out 4 bytes apart, rounded up to 16 bytes by the scheduler).

import { checkShape, IbgpuError } from '../errors.js';
import type { Engine } from '../runtime/engine.js';

/** Packs scalars: integers as u32, the entries whose index is in `floats` as f32. */
export function packParams(values: readonly number[], floats: readonly number[] = []): Uint8Array {
  const buf = new ArrayBuffer(Math.max(16, Math.ceil(values.length / 4) * 16));
  const u = new Uint32Array(buf);
  const f = new Float32Array(buf);
  values.forEach((v, i) => {
    if (floats.includes(i)) f[i] = v;
    else u[i] = v;
  });
  return new Uint8Array(buf);
}

export function checkCount(kernel: string, name: string, v: number, min = 1): void {
  checkShape(Number.isInteger(v) && v >= min, `${kernel}: ${name} = ${v} is not an integer ≥ ${min}`, 'pass whole-number tensor shapes');
}

export function checkFloats(kernel: string, name: string, buf: GPUBuffer, n: number): void {
  checkShape(buf.size >= n * 4, `${kernel}: ${name} (${buf.label}) holds ${Math.floor(buf.size / 4)} floats, the shape needs ${n}`,
    `allocate at least ${n * 4} bytes for ${name}`);
}

/**
 * Llvmpipe leaves every loop of an invocation after 65535 iterations in total, silently; kernels
 * whose per-invocation loops grow with the shape refuse shapes that would cross it.
 */
export function checkLoopBudget(engine: Engine, kernel: string, iterations: number, what: string): void {
  if (iterations > engine.loopBudget) {
    throw new IbgpuError('LIMIT_EXCEEDED',
      `${kernel}: ${what} needs ${iterations} loop iterations per invocation, over this adapter's budget of ${engine.loopBudget}`,
      'use a hardware GPU adapter, or fewer positions / narrower heads');
  }
}
