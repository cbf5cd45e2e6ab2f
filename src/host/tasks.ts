// The one registry of work the host worker threads (pool.ts) run, by name. A worker imports this
// module and nothing else, so every host computation that runs off the main thread is listed here;
// the same functions run on the calling thread where there are no workers (a browser,
// IBGPU_HOST_THREADS=0), with the same bits.
//
// Two kinds:
// - HOST_TASKS: stateless functions of their arguments. Large inputs and outputs live in shared
//   memory (typed arrays over a SharedArrayBuffer) and are written in place; what a task returns
//   is posted back (its typed arrays moved, not copied).
// - HOST_STATES: factories of state that one worker holds from `hold` until `release` (a pass's
//   operands posted once and used by many runs; an accumulator fed batch by batch). Each returns
//   an object of methods, called by name through the pool.
//
// This module imports only the computations, never pool.ts or its users (no import cycles).

import { addEdgeAttentionSums, addMDashAttentionSums, mDashSumsView, type AttentionShape, type EdgeAttentionTables } from './attention-sums.js';
import { addEdgeAttentionTableSums, addMDashAttentionTableSums, type AttentionRowTables, type EdgeRowTables } from './attention-table-sums.js';
import {
  actSectionFinish,
  actSectionForward,
  attentionTableForward,
  mulRowsF64,
  tableRowsTimes,
  type ActSectionMaps,
  type AttentionForwardTables,
  type MappedRowTables,
  type TableForwardRows,
} from './transformer-forward.js';
import { accumulateSquaredEdges, type SquaredEdgeSection } from './edges-squared.js';
import { squaredEdgeRowKernel } from './edges-squared-wasm.js';
import { wasmActSectionFinish, wasmMulRows, wasmTableRowsTimes } from './rows-times-wasm.js';
import { wasmEdgeSampleKernel } from './attention-edges-wasm.js';
import { reluCofireCounts, rowMomentsF64, type RowMoments } from './node-moments.js';
import { edgeInputRows, type EdgeInputPass, type EdgeInputRows } from './edge-inputs.js';
import { wasmEdgeInputs } from './edge-inputs-wasm.js';
import { HostDegeneracyAccumulator } from './degeneracy.js';
import type { HostForward } from './mlp-forward.js';
import type { MlpModel } from '../model/mlp.js';
import type { DegeneracyStats } from '../report/degeneracy.js';
import { symEigHost, symEigReduceHost } from './eigh-wasm.js';
import { hostSparseGram } from './sparse-gram.js';
import { symEigAccumulate, symEigReduce, symEigRotate, type ReducedEig, type RotationLog, type SymEigResult } from '../cpu/eigh.js';

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

/** A chunk of samples of the table form (attention-table-sums.ts): the row tables are shared by all chunks. */
export interface MDashAttentionTableChunk {
  shape: AttentionShape;
  rows: AttentionRowTables;
  n0: number;
  n1: number;
  /** The chunk's partial: a zeroed region of Σ mDashSumLengths values. */
  out: Float64Array;
}

export interface EdgeAttentionTableChunk {
  shape: AttentionShape;
  rows: AttentionRowTables;
  tables: EdgeAttentionTables;
  edgeRows: EdgeRowTables;
  n0: number;
  n1: number;
  /** The chunk's partial E (K × r), zeroed. */
  out: Float64Array;
}

/** One run of rows of one section of the host edge pass: order[from..to) of a block, added into E. */
export interface EdgeRun {
  section: number;
  /** A shared ro × r partial of E. */
  E: Float64Array;
  fhat: Float64Array;
  gates: Float64Array;
  order: Uint32Array;
  from: number;
  to: number;
}

/** One slice (`part` of `parts`) of a phase of src/cpu/eigh.ts's phased solver, on a shared Zᵀ. */
export interface EigPhaseSlice<R> {
  reduced: R;
  zt: Float64Array;
  part: number;
  parts: number;
}

export const HOST_TASKS = {
  'attention-mdash': (a: MDashAttentionChunk): void => addMDashAttentionSums(a.shape, a.DZ, a.alpha, a.xj, a.n0, a.n1, mDashSumsView(a.shape, a.out)),
  'attention-edges': (a: EdgeAttentionChunk): void => addEdgeAttentionSums(a.shape, a.DZ, a.alpha, a.tables, a.xj, a.u, a.n0, a.n1, a.out),
  'attention-mdash-table': (a: MDashAttentionTableChunk): void => addMDashAttentionTableSums(a.shape, a.rows, a.n0, a.n1, mDashSumsView(a.shape, a.out)),
  'attention-edges-table': (a: EdgeAttentionTableChunk): void => {
    const { K } = a.shape;
    const NJ = a.shape.heads * a.shape.P;
    const { u, at, bt } = a.edgeRows;
    const kernel = wasmEdgeSampleKernel(K, a.shape.heads + 1, NJ, a.tables.r, a.tables.Yt, { H: a.shape.heads, P: a.shape.P, u, at, bt });
    addEdgeAttentionTableSums(a.shape, a.rows, a.tables, a.edgeRows, a.n0, a.n1, a.out, kernel);
  },
  /** Output rows [n0, n1) of a last-position attention section from its row tables (transformer-forward.ts). */
  'attention-table-forward': (a: {
    shape: AttentionShape;
    tables: AttentionForwardTables;
    n0: number;
    n1: number;
    out: Float64Array;
    probs: Float64Array;
  }): void => attentionTableForward(a.shape, a.tables, a.n0, a.n1, a.out, a.probs),
  /** Rows [n0, n1) of f·M for the rows f of an attention table forward, from the mapped tables (transformer-forward.ts; WebAssembly SIMD where it runs, the same bits). */
  'table-rows-times': (a: TableForwardRows & { maps: (MappedRowTables & { out: Float64Array })[]; n0: number; n1: number }): void => {
    for (const m of a.maps) if (!wasmTableRowsTimes(a, m, a.n0, a.n1, m.out)) tableRowsTimes(a, m, a.n0, a.n1, m.out);
  },
  /** Rows [r0, r1) of X·M (transformer-forward.ts; in WebAssembly SIMD where it runs, the same bits). */
  'mul-rows': (a: { X: Float64Array; k: number; M: Float64Array; n: number; r0: number; r1: number; out: Float64Array }): void => {
    if (!wasmMulRows(a.X, a.k, a.M, a.n, a.r0, a.r1, a.out)) mulRowsF64(a.X, a.k, a.M, a.n, a.r0, a.r1, a.out);
  },
  /** Rows [n0, n1) of a one-activation section whose x and f·S are in place: out += act(x)·R (WebAssembly SIMD where it runs). */
  'act-section-finish': (a: { maps: ActSectionMaps; n0: number; n1: number; x: Float64Array; out: Float64Array }): void => {
    if (!wasmActSectionFinish(a.maps, a.n0, a.n1, a.x, a.out)) actSectionFinish(a.maps, a.n0, a.n1, a.x, a.out);
  },
  /** Rows [n0, n1) of a one-activation section: its act inputs x and outputs (transformer-forward.ts). */
  'act-section-rows': (a: { maps: ActSectionMaps; f: Float64Array; n0: number; n1: number; x: Float64Array; out: Float64Array }): void =>
    actSectionForward(a.maps, a.f, a.n0, a.n1, a.x, a.out),
  /** Means and Gram of a node layer's rows (node-moments.ts). */
  'row-moments': (a: { x: Float64Array; n: number; w: number; centred: boolean }): RowMoments => rowMomentsF64(a.x, a.n, a.w, a.centred),
  /** ReLU co-firing counts of rows [r0, r1) of act inputs (node-moments.ts). */
  'relu-cofire': (a: { pre: Float64Array; h: number; r0: number; r1: number }): Float64Array => reluCofireCounts(a.pre, a.h, a.r0, a.r1),
  /** One run of visited rows of the squared-edge sums into its own zeroed partial E (edges-squared.ts). */
  'squared-edges-run': (a: Omit<EdgeRun, 'section'> & { section: SquaredEdgeSection }): number =>
    accumulateSquaredEdges(a.section, a.E, squaredEdgeRowKernel(a.section), a.fhat, a.gates, a.order, a.from, a.to),
  /** A whole eigendecomposition (the input's buffer may be moved here: it is copied first anyway). */
  eig: (a: { a: Float64Array; n: number }): SymEigResult => symEigHost(a.a, a.n),
  'eig-reduce': (a: { a: Float64Array; n: number }): ReturnType<typeof symEigReduce> => symEigReduceHost(a.a, a.n),
  'eig-accumulate': (a: EigPhaseSlice<Pick<ReducedEig, 'n' | 'w' | 'beta'>>): void => symEigAccumulate(a.reduced as ReducedEig, a.zt, a.part, a.parts),
  'eig-rotate': (a: EigPhaseSlice<{ n: number; rotations: RotationLog }>): void => symEigRotate(a.reduced as ReducedEig, a.zt, a.part, a.parts),
} as const;

export const HOST_STATES = {
  /**
   * One host edge pass's sections (their arrays shared), each with the worker's own row kernel
   * (WebAssembly SIMD where it runs, else JS; its carried Jacobian is the worker's own), and the
   * pass's block-input operands (float64 weights, C, Q: edge-inputs.ts, in WebAssembly where it
   * runs: edge-inputs-wasm.ts); `inputs` writes f̂ and gates of a range of a block's rows into the shared block buffers;
   * `run` adds one run of rows into its shared partial E and answers the number of rank-1 updates.
   */
  'edge-sections': (a: { sections: SquaredEdgeSection[]; inputs: EdgeInputPass }) => {
    const secs = a.sections.map((sec) => ({ sec, kernel: squaredEdgeRowKernel(sec) }));
    const scratch = { bufs: [] };
    const prep = wasmEdgeInputs(a.inputs);
    return {
      inputs: (job: EdgeInputRows): void => (prep ? prep(job) : edgeInputRows(a.inputs, job, scratch)),
      run: (r: EdgeRun): number => {
        const s = secs[r.section]!;
        return accumulateSquaredEdges(s.sec, r.E, s.kernel, r.fhat, r.gates, r.order, r.from, r.to);
      },
    };
  },
  /** The input layer's sparse Gram of one statistics pass (sparse-gram.ts), fed its batches of rows (moved). */
  'sparse-gram': (a: { d: number }) => {
    const acc = hostSparseGram(a.d);
    return {
      add: (b: { x: Float32Array; rows: number }): void => acc.add(b.x, b.rows),
      result: (b: { shift: Float64Array }): { n: number; sum: Float64Array; gram: Float64Array } => ({ n: acc.rows, sum: acc.sums(), gram: acc.gram(b.shift) }),
    };
  },
  /** The host degeneracy observer of one build, fed each batch's pre-activations (moved, not shared). */
  degeneracy: (a: { model: MlpModel; layers: number[] }) => {
    const acc = new HostDegeneracyAccumulator(a.model, a.layers);
    return {
      add: (b: { rows: number; pres: (Float64Array | undefined)[]; acts: (Float64Array | undefined)[] }): void =>
        acc.addBatch({ rows: b.rows, pres: b.pres, acts: b.acts } as HostForward, b.rows),
      result: (): DegeneracyStats => acc.result(),
    };
  },
} as const;

export type HostTaskName = keyof typeof HOST_TASKS;
export type HostTaskArgs<T extends HostTaskName> = Parameters<(typeof HOST_TASKS)[T]>[0];
export type HostTaskResult<T extends HostTaskName> = ReturnType<(typeof HOST_TASKS)[T]>;

export type HostStateName = keyof typeof HOST_STATES;
export type HostStateArgs<K extends HostStateName> = Parameters<(typeof HOST_STATES)[K]>[0];
export type HostState<K extends HostStateName> = ReturnType<(typeof HOST_STATES)[K]>;
