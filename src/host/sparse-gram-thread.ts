// The input layer's sparse Gram (sparse-gram.ts) on a host worker thread (pool.ts), so that it is
// accumulated beside the host statistics pass's forward pass instead of before it: on rib's MNIST
// MLP the two are of a size, and the Gram's eigensolve (the bases stage's longest) can start as
// soon as the Gram is complete. The accumulator is state held by one pool thread (tasks.ts
// HOST_STATES 'sparse-gram') until `result` answers.
//
// Where there are no threads (a browser, IBGPU_HOST_THREADS=0) the same accumulator runs on the
// calling thread: the same sums, bit for bit (the same code adds the same rows in the same order).

import { hostSparseGram } from './sparse-gram.js';
import { hostThreadPool } from './pool.js';

export interface InputGramSums {
  n: number;
  sum: Float64Array;
  /** Σ (x − shift)(x − shift)ᵀ, d×d. */
  gram: Float64Array;
}

export interface SparseGramFeed {
  /** True when the sums run on another thread (their replies need the caller's event loop). */
  readonly threaded: boolean;
  /** Adds `rows` rows of x (copied when they go to a thread: the caller keeps x). */
  add(x: Float32Array, rows: number): void;
  /** The sums of every row added; call once, after the last add. Frees the thread. */
  result(shift: Float64Array): Promise<InputGramSums>;
  /** Frees the thread without a result (a pass that gave up); a no-op after `result`. */
  dispose(): void;
}

/** A sparse Gram accumulator on a host thread where one can be had, else on this thread. */
export async function startSparseGram(d: number): Promise<SparseGramFeed> {
  let held;
  try {
    const pool = await hostThreadPool();
    held = pool ? await pool.hold('sparse-gram', { d }) : undefined;
  } catch {
    held = undefined;
  }
  if (!held) {
    const acc = hostSparseGram(d);
    return {
      threaded: false,
      add: (x, rows) => acc.add(x, rows),
      result: (shift) => Promise.resolve({ n: acc.rows, sum: acc.sums(), gram: acc.gram(shift) }),
      dispose: () => {},
    };
  }
  const h = held;
  let released = false;
  const release = (): void => {
    if (!released) void h.release();
    released = true;
  };
  return {
    threaded: true,
    dispose: release,
    add(x, rows): void {
      const copy = x.slice(0, rows * d);
      h.post('add', { x: copy, rows }, [copy.buffer]);
    },
    async result(shift): Promise<InputGramSums> {
      try {
        return await h.call('result', { shift: Float64Array.from(shift) });
      } finally {
        release();
      }
    },
  };
}
