// Squared interaction edges for one section, per batch (shaders/edges_squared.wgsl):
// part[c, i, j] = Σ_{n in chunk c} (Σ_h A_ih g_h(n) B_jh · f̂_j(n))². The host sums chunks in f64.
// ReLU sections use shaders/edges_squared_delta.wgsl instead: the same partials, with the rows of
// each chunk visited in a host-chosen order and only the changed gates paid for.

import { checkShape } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { gateChanges, signPatternOrder } from '../cpu/gate-order.js';
import type { SelfCheckResult } from './self-check.js';
import { squaredEdgesF64 } from '../cpu/edges.js';
import { packParams } from '../runtime/params.js';
import { mulberry32 } from '../util/mulberry32.js';
import { shaderKernel } from './shader-kernel.js';

export const edgesSquaredKernel = shaderKernel('edges_squared', { WG: 64 });

export const edgesSquaredDeltaKernel = shaderKernel('edges_squared_delta', { WG: 64 });

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
 * Rows per invocation of the edge kernels (squared, carried-Jacobian and functional): few on
 * GPUs (chunks are the parallelism); on CPU adapters larger chunks are cheaper, but the loop
 * budget (rows × (h + 1) iterations at most) must not be exceeded.
 */
export function edgeChunkRows(engine: Engine, h: number, asked?: number): number {
  const budgetRows = Math.max(1, Math.floor((engine.loopBudget - 16) / (h + 1)));
  return Math.min(asked ?? (engine.info.isSoftware ? 256 : 32), budgetRows);
}

/** The launch grid of the edge kernels (shaders/include/edge_block.wgsl: one 8×4 block and one chunk of rows per invocation). */
export interface EdgeGrid {
  r4: number;
  ro8: number;
  chunkRows: number;
  chunks: number;
  /** Blocks along j: R4/4 (the kernels' params.blocks_j). */
  blocksJ: number;
  /** x: blocks over the kernels' WG = 64 invocations, y: chunks. */
  workgroups: [number, number, number];
}

/**
 * Checks the operands every edge kernel reads (f̂, Aᵀ, Bᵀ) and lays out its grid; `what` names
 * the caller in the messages. Kernel-specific operands are checked by the caller.
 */
export function edgeGrid(
  engine: Engine,
  what: string,
  a: { fhat: GPUBuffer; at: GPUBuffer; bt: GPUBuffer; rows: number; r: number; ro: number; h: number; chunkRows?: number },
): EdgeGrid {
  const r4 = pad4(a.r);
  const ro8 = pad8(a.ro);
  checkShape(a.fhat.size >= a.rows * r4 * 4, `${what}: fhat holds fewer than ${a.rows}x${r4} floats`);
  checkShape(a.at.size >= a.h * ro8 * 4 && a.bt.size >= a.h * r4 * 4, `${what}: basis factors are too small`);
  const chunkRows = edgeChunkRows(engine, a.h, a.chunkRows);
  const chunks = Math.max(1, ceilDiv(a.rows, chunkRows));
  const blocksJ = r4 / 4;
  return { r4, ro8, chunkRows, chunks, blocksJ, workgroups: [ceilDiv((ro8 / 8) * blocksJ, 64), chunks, 1] };
}

/** Records the kernel into a fresh partial buffer; returns it and the chunk count. */
export function recordEdgesSquared(engine: Engine, a: EdgesArgs): { part: GPUBuffer; chunks: number } {
  const grid = edgeGrid(engine, 'edges', a);
  checkShape(a.gates.size >= a.rows * a.h * 4, `edges: gates hold fewer than ${a.rows}x${a.h} floats`);
  const { r4, ro8, chunkRows, chunks, blocksJ } = grid;
  const params = packParams(edgesSquaredKernel, { rows: a.rows, r: a.r, ro: a.ro, h: a.h, r4, ro8, chunk_rows: chunkRows, blocks_j: blocksJ });
  // The partials are the caller's once recorded (kept out of the scope); released if recording throws.
  return engine.withScope((s) => {
    const part = s.alloc(chunks * a.ro * a.r * 4, 'edges.partial');
    engine.dispatch(edgesSquaredKernel, {
      bindings: { fhat: a.fhat, gates: a.gates, at: a.at, bt: a.bt, part, params },
      workgroups: grid.workgroups,
    });
    return { part: s.keep(part), chunks };
  });
}

/**
 * Visited rows between rebuilds of the carried Jacobian for ReLU sections: with two-valued gates
 * few change between neighbouring rows in sign-pattern order, and a rebuild every 64 rows keeps
 * the running sum's f32 drift at the level of a short sum (the kernel test states the bound).
 */
export const CARRY_RESET_ROWS = 64;

/**
 * Device bytes for a change list of `bytes`: the length varies from batch to batch, and a
 * power-of-two buffer keeps the pool reusing a few sizes instead of one per size class seen.
 */
export function changeBufferBytes(bytes: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(8, bytes)));
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
  checkShape(a.gates.length >= a.rows * a.h, `edges: gates hold fewer than ${a.rows}x${a.h} floats`);
  checkShape(
    a.order.length === a.rows,
    `edges: the visiting order has ${a.order.length} rows, expected ${a.rows}`,
    'pass a permutation of the batch rows (signPatternOrder)',
  );
  checkShape(
    Number.isInteger(a.reset) && a.reset >= 1,
    `edges: reset must be a positive integer (got ${a.reset})`,
    `use CARRY_RESET_ROWS (${CARRY_RESET_ROWS}), or 1 to rebuild on every row`,
  );
  const grid = edgeGrid(engine, 'edges', a);
  const { r4, ro8, chunkRows, chunks, blocksJ } = grid;
  const lists = gateChanges(a.gates, a.rows, a.h, a.order, chunkRows, a.reset);
  return engine.withScope((s) => {
    const visits = s.upload(lists.visits, 'edges.visits');
    const changes = s.alloc(changeBufferBytes(lists.changes.byteLength), 'edges.changes');
    engine.write(changes, lists.changes);
    const part = s.alloc(chunks * a.ro * a.r * 4, 'edges.partial');
    engine.dispatch(edgesSquaredDeltaKernel, {
      bindings: {
        fhat: a.fhat,
        at: a.at,
        bt: a.bt,
        part,
        params: packParams(edgesSquaredDeltaKernel, { rows: a.rows, r: a.r, ro: a.ro, r4, ro8, chunk_rows: chunkRows, blocks_j: blocksJ }),
        visits,
        changes,
      },
      workgroups: grid.workgroups,
    });
    return { part: s.keep(part), chunks, changes: lists.count };
  });
}

/**
 * Device layouts of a section's edge operands from row-major A (ro × h), B (r × h) and f
 * (rows × r): f̂ rows × pad4(r), Aᵀ h × pad8(ro), Bᵀ h × pad4(r), padding zero.
 */
export function edgeOperandLayouts(
  A: ArrayLike<number>,
  B: ArrayLike<number>,
  f: ArrayLike<number>,
  rows: number,
  h: number,
  ro: number,
  r: number,
): { fh: Float32Array; at: Float32Array; bt: Float32Array } {
  const r4 = pad4(r);
  const ro8 = pad8(ro);
  const fh = new Float32Array(rows * r4);
  for (let n = 0; n < rows; n++) for (let j = 0; j < r; j++) fh[n * r4 + j] = f[n * r + j]!;
  const at = new Float32Array(h * ro8);
  for (let k = 0; k < h; k++) for (let i = 0; i < ro; i++) at[k * ro8 + i] = A[i * h + k]!;
  const bt = new Float32Array(h * r4);
  for (let k = 0; k < h; k++) for (let j = 0; j < r; j++) bt[k * r4 + j] = B[j * h + k]!;
  return { fh, at, bt };
}

/**
 * Two-valued gates (0 or w, rows × h) as ReLU layers give them: each row takes one of `patterns`
 * random firing patterns (60 % firing) with 10 % of its units flipped. Test and check data.
 */
export function plantedFiringGates(rows: number, h: number, rand: () => number, opts: { patterns?: number; w?: number } = {}): Float32Array {
  const w = opts.w ?? 1;
  const protos = Array.from({ length: opts.patterns ?? 5 }, () => Array.from({ length: h }, () => rand() < 0.6));
  const g = new Float32Array(rows * h);
  for (let n = 0; n < rows; n++) {
    const p = protos[Math.floor(rand() * protos.length)]!;
    for (let k = 0; k < h; k++) g[n * h + k] = (rand() < 0.1 ? !p[k] : p[k]) ? w : 0;
  }
  return g;
}

/**
 * `ibgpu doctor`: both squared-edge kernels on a small random section with ReLU-like gates,
 * summed over chunks and compared with the float64 sums Σ_n (Σ_h A_ih g_h B_jh f_j)²
 * (src/cpu/edges.ts), relative to Σ_n (Σ_h |A_ih g_h B_jh| |f_j|)².
 */
export async function selfCheck(engine: Engine): Promise<SelfCheckResult> {
  const t0 = performance.now();
  const rows = 300;
  const h = 40;
  const ro = 9;
  const r = 13;
  const rand = mulberry32(2024);
  const A = Float32Array.from({ length: ro * h }, () => rand() - 0.5);
  const B = Float32Array.from({ length: r * h }, () => rand() - 0.5);
  const f = Float32Array.from({ length: rows * r }, () => 2 * rand() - 1);
  const g = plantedFiringGates(rows, h, rand, { patterns: 4 });
  const { fh, at, bt } = edgeOperandLayouts(A, B, f, rows, h, ro, r);
  const { sum: want, abs: scale } = squaredEdgesF64(
    A,
    B,
    f,
    g,
    h,
    ro,
    r,
    Uint32Array.from({ length: rows }, (_, i) => i),
  );
  return engine.withScope(async (s) => {
    const bufs = { fhat: s.upload(fh, 'check.fhat'), at: s.upload(at, 'check.at'), bt: s.upload(bt, 'check.bt'), gates: s.upload(g, 'check.gates') };
    const worst = async (run: { part: GPUBuffer; chunks: number }): Promise<number> => {
      const v = await engine.readF32(s.adopt(run.part), run.chunks * ro * r);
      s.release(run.part);
      let w = 0;
      for (let t = 0; t < ro * r; t++) {
        let got = 0;
        for (let c = 0; c < run.chunks; c++) got += v[c * ro * r + t]!;
        w = Math.max(w, Math.abs(got - want[t]!) / scale[t]!);
      }
      return w;
    };
    const shape = { fhat: bufs.fhat, at: bufs.at, bt: bufs.bt, rows, r, ro, h };
    const dense = await worst(recordEdgesSquared(engine, { ...shape, gates: bufs.gates }));
    const carried = await worst(recordEdgesSquaredDelta(engine, { ...shape, gates: g, order: signPatternOrder(g, rows, h), reset: CARRY_RESET_ROWS }));
    // Bound: (terms per running sum + rows per chunk + a few) · 2⁻²⁴ with margin, ~1e-4 here.
    const limit = 4 * (2 * h + rows + 4) * 2 ** -24;
    return {
      name: 'edges',
      ok: dense <= limit && carried <= limit,
      ms: performance.now() - t0,
      detail: `squared edges ${rows}x${h}x${ro}x${r}: per-row kernel ${dense.toExponential(1)}, carried-Jacobian kernel ${carried.toExponential(1)} of Σ(|J| f)² (limit ${limit.toExponential(1)})`,
    };
  });
}
