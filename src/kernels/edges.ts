// Squared interaction edges for one section, per batch (shaders/edges_squared.wgsl):
// part[c, i, j] = Σ_{n in chunk c} (Σ_h A_ih g_h(n) B_jh · f̂_j(n))². The host sums chunks in f64.
// ReLU sections use shaders/edges_squared_delta.wgsl instead: the same partials, with the rows of
// each chunk visited in a host-chosen order and only the changed gates paid for.

import { checkShape } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { defineKernel } from '../runtime/kernel-spec.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { SHADERS } from '../shaders/index.generated.js';
import { gateChanges } from '../ib/gate-order.js';

export const edgesSquaredKernel = defineKernel({
  name: 'edges_squared',
  shader: SHADERS.edges_squared,
  bindings: [
    { name: 'fhat', kind: 'read-only-storage' },
    { name: 'gates', kind: 'read-only-storage' },
    { name: 'at', kind: 'read-only-storage' },
    { name: 'bt', kind: 'read-only-storage' },
    { name: 'part', kind: 'storage' },
    { name: 'params', kind: 'uniform' },
  ],
  overrides: { WG: 64 },
});

export const edgesSquaredDeltaKernel = defineKernel({
  name: 'edges_squared_delta',
  shader: SHADERS.edges_squared_delta,
  bindings: [
    { name: 'fhat', kind: 'read-only-storage' },
    { name: 'at', kind: 'read-only-storage' },
    { name: 'bt', kind: 'read-only-storage' },
    { name: 'part', kind: 'storage' },
    { name: 'params', kind: 'uniform' },
    { name: 'visits', kind: 'read-only-storage' },
    { name: 'changes', kind: 'read-only-storage' },
  ],
  overrides: { WG: 64 },
});

export const pad4 = (n: number): number => Math.ceil(n / 4) * 4;
export const pad8 = (n: number): number => Math.ceil(n / 8) * 8;

export interface EdgesArgs {
  /** rows × pad4(r) f̂ (zero-padded columns). */
  fhat: GPUBuffer;
  /** rows × h gates. */
  gates: GPUBuffer;
  /** h × pad8(ro): Aᵀ = C^{ℓ+1} (padded). */
  at: GPUBuffer;
  /** h × pad4(r): Bᵀ = (C⁺W̄)ᵀ (padded). */
  bt: GPUBuffer;
  rows: number;
  r: number;
  ro: number;
  h: number;
  chunkRows?: number;
}

/**
 * Rows per invocation: few on GPUs (chunks are the parallelism); on CPU adapters larger chunks
 * are cheaper, but the loop budget (rows × (h + 1) iterations at most) must not be exceeded.
 */
export function edgeChunkRows(engine: Engine, h: number, asked?: number): number {
  const budgetRows = Math.max(1, Math.floor((engine.loopBudget - 16) / (h + 1)));
  return Math.min(asked ?? (engine.info.isSoftware ? 256 : 32), budgetRows);
}

/** Records the kernel into a fresh partial buffer; returns it and the chunk count. */
export function recordEdgesSquared(engine: Engine, a: EdgesArgs): { part: GPUBuffer; chunks: number } {
  const r4 = pad4(a.r);
  const ro8 = pad8(a.ro);
  checkShape(a.fhat.size >= a.rows * r4 * 4, `edges: fhat holds fewer than ${a.rows}x${r4} floats`);
  checkShape(a.gates.size >= a.rows * a.h * 4, `edges: gates hold fewer than ${a.rows}x${a.h} floats`);
  checkShape(a.at.size >= a.h * ro8 * 4 && a.bt.size >= a.h * r4 * 4, 'edges: basis factors are too small');
  const chunkRows = edgeChunkRows(engine, a.h, a.chunkRows);
  const chunks = Math.max(1, ceilDiv(a.rows, chunkRows));
  const part = engine.alloc(chunks * a.ro * a.r * 4, 'edges.partial');
  const blocksJ = r4 / 4;
  const blocks = (ro8 / 8) * blocksJ;
  const params = new Uint32Array([a.rows, a.r, a.ro, a.h, r4, ro8, chunkRows, blocksJ]);
  engine.dispatch(edgesSquaredKernel, {
    bindings: { fhat: a.fhat, gates: a.gates, at: a.at, bt: a.bt, part, params },
    workgroups: [ceilDiv(blocks, 64), chunks, 1],
  });
  return { part, chunks };
}

export interface EdgesDeltaArgs extends Omit<EdgesArgs, 'gates'> {
  /** rows × h gates, on the host (the change lists are built from them). */
  gates: Float32Array;
  /** Visiting order: a permutation of 0..rows−1. */
  order: Uint32Array;
  /** Visited rows between rebuilds of the carried Jacobian (≥ 1). */
  reset: number;
}

/**
 * The same partials as recordEdgesSquared, computed by carrying the Jacobian between rows
 * visited in `order` (edges_squared_delta.wgsl); pays per changed gate instead of per nonzero one.
 */
export function recordEdgesSquaredDelta(engine: Engine, a: EdgesDeltaArgs): { part: GPUBuffer; chunks: number; changes: number } {
  const r4 = pad4(a.r);
  const ro8 = pad8(a.ro);
  checkShape(a.fhat.size >= a.rows * r4 * 4, `edges: fhat holds fewer than ${a.rows}x${r4} floats`);
  checkShape(a.gates.length >= a.rows * a.h, `edges: gates hold fewer than ${a.rows}x${a.h} floats`);
  checkShape(a.order.length === a.rows, `edges: the visiting order has ${a.order.length} rows, expected ${a.rows}`);
  checkShape(a.at.size >= a.h * ro8 * 4 && a.bt.size >= a.h * r4 * 4, 'edges: basis factors are too small');
  checkShape(Number.isInteger(a.reset) && a.reset >= 1, `edges: reset must be a positive integer (got ${a.reset})`);
  const chunkRows = edgeChunkRows(engine, a.h, a.chunkRows);
  const chunks = Math.max(1, ceilDiv(a.rows, chunkRows));
  const lists = gateChanges(a.gates, a.rows, a.h, a.order, chunkRows, a.reset);
  const visits = engine.upload(lists.visits, 'edges.visits');
  // The list length varies from batch to batch; a power-of-two buffer keeps the pool reusing a
  // few sizes instead of keeping one buffer per size class seen.
  const changes = engine.alloc(2 ** Math.ceil(Math.log2(lists.changes.byteLength)), 'edges.changes');
  engine.write(changes, lists.changes);
  const part = engine.alloc(chunks * a.ro * a.r * 4, 'edges.partial');
  const blocksJ = r4 / 4;
  const blocks = (ro8 / 8) * blocksJ;
  engine.dispatch(edgesSquaredDeltaKernel, {
    bindings: { fhat: a.fhat, at: a.at, bt: a.bt, part, params: new Uint32Array([a.rows, a.r, a.ro, r4, ro8, chunkRows, blocksJ]), visits, changes },
    workgroups: [ceilDiv(blocks, 64), chunks, 1],
  });
  engine.release(visits, changes);
  return { part, chunks, changes: lists.count };
}
