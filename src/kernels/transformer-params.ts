// Argument checks shared by the transformer kernel wrappers (their uniforms are written by field
// name with src/runtime/params.ts).

import { checkShape, IbgpuError } from '../errors.js';
import type { Engine } from '../runtime/engine.js';

export function checkCount(kernel: string, name: string, v: number, min = 1): void {
  checkShape(Number.isInteger(v) && v >= min, `${kernel}: ${name} = ${v} is not an integer ≥ ${min}`, 'pass whole-number tensor shapes');
}

export function checkFloats(kernel: string, name: string, buf: GPUBuffer, n: number): void {
  checkShape(
    buf.size >= n * 4,
    `${kernel}: ${name} (${buf.label}) holds ${Math.floor(buf.size / 4)} floats, the shape needs ${n}`,
    `allocate at least ${n * 4} bytes for ${name}`,
  );
}

/**
 * Llvmpipe leaves every loop of an invocation after 65535 iterations in total, silently; kernels
 * whose per-invocation loops grow with the shape refuse shapes that would cross it.
 */
export function checkLoopBudget(engine: Engine, kernel: string, iterations: number, what: string): void {
  if (iterations > engine.loopBudget) {
    throw new IbgpuError(
      'LIMIT_EXCEEDED',
      `${kernel}: ${what} needs ${iterations} loop iterations per invocation, over this adapter's budget of ${engine.loopBudget}`,
      'use a hardware GPU adapter, or fewer positions / narrower heads',
    );
  }
}
