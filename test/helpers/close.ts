// Agreement checks shared by the transformer GPU tests.

import { expect } from 'vitest';
import { maxAbs } from './transformer-fixtures.js';

/** Worst entry error relative to |ref| plus the mean |ref| (so tiny entries are not judged alone). */
export function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, what: string, tol: number): void {
  expect(got.length, `${what}: length`).toBe(ref.length);
  let mean = 0;
  for (let i = 0; i < ref.length; i++) mean += Math.abs(ref[i]!);
  mean /= Math.max(1, ref.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < ref.length; i++) {
    const e = Math.abs(got[i]! - ref[i]!) / (Math.abs(ref[i]!) + mean + 1e-300);
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  expect(worst, `${what}: worst relative error at ${at} (gpu ${got[at]}, ref ${ref[at]})`).toBeLessThanOrEqual(tol);
}

/** Largest error relative to the largest |ref| entry. */
export function expectNear(got: ArrayLike<number>, ref: ArrayLike<number>, what: string, tol = 1e-4): void {
  expect(got.length, what).toBe(ref.length);
  let worst = 0;
  for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(got[i]! - ref[i]!));
  expect(worst / (maxAbs(ref) || 1), `${what}: max error relative to the largest entry`).toBeLessThanOrEqual(tol);
}
