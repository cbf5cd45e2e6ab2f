// Large float64 eigendecompositions on the host worker threads (pool.ts), so that the host
// solver runs while the GPU works, and on several cores at once. Why: on a software adapter
// (llvmpipe through Dawn's OpenGL backend) every dispatch executes on the thread that submits it,
// so host work on the main thread and "GPU" work never overlap; during the bases stage one of a
// 2-core machine's cores would sit idle. On a real GPU the host eigensolve is the bases stage's
// critical path, and a GPU server has cores to spare for it.
//
// Problems of order >= PARALLEL_EIG_MIN_ORDER run the phased solver of src/cpu/eigh.ts over up to
// MAX_PARTS threads sharing the vectors through a SharedArrayBuffer (each part owns a fixed block
// of columns, so the bits do not depend on the number of parts); smaller ones run symEig whole on
// one thread. Where there are no threads (a browser, IBGPU_HOST_THREADS=0) `symEigInBackground`
// computes on the calling thread: same result, bit for bit.

import { symEigAssemble, type SymEigResult } from '../cpu/eigh.js';
import { symEigHost } from './eigh-wasm.js';
import { hostThreadPool } from './pool.js';

/** At most this many threads share one eigenproblem (the phases scale to a few cores). */
const MAX_PARTS = 4;
/** Below this order a parallel solve costs more in hand-offs than it saves. */
export const PARALLEL_EIG_MIN_ORDER = 192;

/** A copy of `a` in shared memory (read by every thread, never copied per thread). */
function shared<T extends Float64Array | Int32Array>(a: T): T {
  const b = new (a.constructor as new (buf: SharedArrayBuffer) => T)(new SharedArrayBuffer(a.byteLength));
  b.set(a);
  return b;
}

/**
 * symEig(a, n) off this thread when threads can be had (Node), else on it. Large problems
 * (n >= PARALLEL_EIG_MIN_ORDER) are split over up to `threads` host threads (default: the pool's
 * size, at most MAX_PARTS) with the phased solver of src/cpu/eigh.ts. Whichever way, the promise
 * settles with exactly what symEig returns (bit for bit); `a` is copied, never transferred.
 */
export async function symEigInBackground(a: Float64Array, n: number, opts: { threads?: number } = {}): Promise<SymEigResult> {
  const pool = await hostThreadPool();
  if (!pool) return symEigHost(a, n);
  const copy = Float64Array.from(a);
  const parts = n >= PARALLEL_EIG_MIN_ORDER ? Math.max(1, Math.min(MAX_PARTS, pool.size, opts.threads ?? pool.size)) : 1;
  if (parts < 2) return pool.run('eig', { a: copy, n }, [copy.buffer]);
  const red = await pool.run('eig-reduce', { a: copy, n }, [copy.buffer]);
  if ('done' in red) return red.done; // the zero matrix
  const r = red.reduced;
  const rot = r.rotations;
  const zt = new Float64Array(new SharedArrayBuffer(n * n * 8));
  const slices = Array.from({ length: parts }, (_, part) => part);
  const forAccumulate = { n, w: shared(r.w), beta: shared(r.beta) };
  await Promise.all(slices.map((part) => pool.run('eig-accumulate', { reduced: forAccumulate, zt, part, parts })));
  const forRotate = {
    n,
    rotations: { sweeps: rot.sweeps, lo: shared(rot.lo), hi: shared(rot.hi), at: shared(rot.at), c: shared(rot.c), s: shared(rot.s) },
  };
  await Promise.all(slices.map((part) => pool.run('eig-rotate', { reduced: forRotate, zt, part, parts })));
  return symEigAssemble(r, zt);
}

/** Whether host threads are running (for tests and `ibgpu doctor`). */
export async function backgroundSolverAvailable(): Promise<boolean> {
  return (await hostThreadPool()) !== undefined;
}

/**
 * Starts the host threads (if not yet) and says how many a large eigenproblem would use (the
 * pool's size, at most MAX_PARTS or `max`): 0 where there are none (a browser). Call it early so
 * that thread start-up overlaps other work.
 */
export async function solverThreads(max?: number): Promise<number> {
  const pool = await hostThreadPool();
  return pool ? Math.min(pool.size, MAX_PARTS, max ?? MAX_PARTS) : 0;
}
