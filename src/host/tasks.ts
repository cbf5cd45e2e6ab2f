// The tasks a host worker thread (thread-pool.ts) runs, by name. Each writes its result into
// shared memory (typed arrays over a SharedArrayBuffer) passed in its arguments; nothing is sent
// back but completion. The same functions run on the calling thread when there are no workers.

import {
  addEdgeAttentionSums, addMDashAttentionSums, mDashSumsView, type AttentionShape, type EdgeAttentionTables,
} from './attention-sums.js';

export interface MDashAttentionChunk {
  shape: AttentionShape;
  DZ: Float64Array;
  alpha: number;
  xj: Float64Array;
  n0: number;
  n1: number;
  /** The chunk's partial: a zeroed region of Σ mDashSumLengths values. */
  out: Float64Array;
}

export interface EdgeAttentionChunk {
  shape: AttentionShape;
  DZ: Float64Array;
  alpha: number;
  tables: EdgeAttentionTables;
  xj: Float64Array;
  u: Float64Array;
  n0: number;
  n1: number;
  /** The chunk's partial E (K × r), zeroed. */
  out: Float64Array;
}

export const HOST_TASKS = {
  'attention-mdash': (a: MDashAttentionChunk): void => addMDashAttentionSums(a.shape, a.DZ, a.alpha, a.xj, a.n0, a.n1, mDashSumsView(a.shape, a.out)),
  'attention-edges': (a: EdgeAttentionChunk): void => addEdgeAttentionSums(a.shape, a.DZ, a.alpha, a.tables, a.xj, a.u, a.n0, a.n1, a.out),
} as const;

export type HostTaskName = keyof typeof HOST_TASKS;
export type HostTaskArgs<T extends HostTaskName> = Parameters<(typeof HOST_TASKS)[T]>[0];
