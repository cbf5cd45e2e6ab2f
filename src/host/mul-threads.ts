// Dense float64 products X·M split by rows over the host worker threads (pool.ts), for the host
// passes' products that are too large for one thread (an MLP block's 512-wide gate maps) yet
// cheap to split: every row is summed in the same order whichever thread takes it, so the result
// is the same bits on any number of threads.

import { hostThreadPool, runHostTasks, sharedBytes } from './pool.js';

/** Rows per task. */
const MUL_CHUNK = 128;

function shared(a: Float64Array): Float64Array {
  if (a.buffer instanceof SharedArrayBuffer) return a;
  const b = new Float64Array(sharedBytes(a.byteLength));
  b.set(a);
  return b;
}

/**
 * X·M (X [rows, k], M [k, n], row-major), on the host threads when there are any (then in shared
 * memory); `threads: false` keeps it on this thread (a product small enough not to wait behind
 * the threads' queue), with the same bits.
 */
export async function mulOnThreads(
  X: Float64Array,
  rows: number,
  k: number,
  M: Float64Array,
  n: number,
  opts: { threads?: boolean } = {},
): Promise<Float64Array> {
  const threads = opts.threads !== false && (await hostThreadPool()) !== undefined;
  const out = threads ? new Float64Array(sharedBytes(rows * n * 8)) : new Float64Array(rows * n);
  const Xs = threads ? shared(X) : X;
  const Ms = threads ? shared(M) : M;
  const tasks: { X: Float64Array; k: number; M: Float64Array; n: number; r0: number; r1: number; out: Float64Array }[] = [];
  for (let r0 = 0; r0 < rows; r0 += MUL_CHUNK) tasks.push({ X: Xs, k, M: Ms, n, r0, r1: Math.min(rows, r0 + MUL_CHUNK), out });
  await runHostTasks('mul-rows', tasks, { threads });
  return out;
}
