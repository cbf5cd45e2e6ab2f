// The edge pass (SPEC §5.2, squared edges): a second streamed forward pass. For each pair of
// adjacent node layers (ℓ → ℓ+1) and each batch:
//   f̂ = C_realᵀ (x − μ̃) + c₀             (centred first, so f32 cancellation stays small)
//   p' = (C⁺W̄)ᵀ f̂                         (the section's pre-activation at the projected point)
//   g  = Σ_k w_k σ'(α_k p')                (integrated derivative)
//   E_ij += Σ_n (Σ_h C^{ℓ+1}_{hi} g_h (C⁺W̄)_{jh} f̂_j)²
// Per-batch partials are summed on the host in f64 and divided by N.
// ReLU sections take the delta kernel: the host reads the batch's gates back, sorts the rows by
// firing pattern and lists the gates that change between neighbours (gate-order.ts). The pass
// keeps one batch staged ahead so the GPU runs the next batch's forward pass meanwhile.

import { matmul } from '../kernels/matmul.js';
import { biasAct } from '../kernels/bias-act.js';
import { CARRY_RESET_ROWS, edgeChunkRows, pad4, pad8, recordEdgesSquared, recordEdgesSquaredDelta } from '../kernels/edges.js';
import { matmulHost } from '../host/matmul.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';
import type { LayerBasis } from './basis.js';
import type { DataSource } from './data.js';
import type { GpuMlp } from './gpu-model.js';
import { sectionInputs, type ActivationCache } from './activation-cache.js';
import { signPatternOrder } from '../cpu/gate-order.js';
import type { Progress } from './stats.js';
import type { BasisFormula } from './config.js';

export interface EdgePair {
  /** Model layer index of the section (input node layer = layers[i]). */
  layer: number;
  inName: string;
  outName: string;
  basis: LayerBasis;
  formula: BasisFormula;
  /** Folded weight (f64), dim × dimOut. */
  Wbar: Float64Array;
  dimOut: number;
  /** Next node layer's C (dimOut × ro), or undefined for raw coordinates. */
  nextC: Float64Array | undefined;
  ro: number;
}

/** One section's operands on the GPU, shared by the squared and the functional edge passes. */
export interface SectionOperands {
  p: EdgePair;
  r: number;
  negMu: GPUBuffer | undefined;
  creal: GPUBuffer; // d × r4: rows of C for the real units
  cbias: GPUBuffer; // r4: C[d,:] + μ̃ᵀ C_real (the constant slot, after centring)
  qpad: GPUBuffer; // r4 × dimOut
  at: GPUBuffer; // dimOut × ro8
  bt: GPUBuffer; // dimOut × r4
  zeroBias: GPUBuffer; // max(dimOut, r4)
  sum: Float64Array; // ro × r
}

function f32(a: ArrayLike<number>): Float32Array {
  return Float32Array.from(a);
}

/** Uploads a section's operands into buffers of `scope` (they live for the whole pass). */
export function uploadSectionOperands(scope: BufferScope, p: EdgePair): SectionOperands {
  const b = p.basis;
  const dim = b.dim;
  const d = dim - 1; // real units (input node layers are always folded)
  const r = b.r;
  const r4 = pad4(r);
  // f̂ = Cᵀ f with f = [x; 1]. Centring first keeps the f32 cancellation small:
  //   f̂ = C_realᵀ (x − μ̃) + (C[d,:] + C_realᵀ μ̃).
  // (A factored product (x − μ̃)·U·(D^{-1/2}VΛ^{1/2}) has the same f32 error — ‖C_{:,j}‖ equals
  // ‖(D^{-1/2}VΛ^{1/2})_{:,j}‖ because U is orthonormal — at several times the cost.)
  const creal = new Float32Array(d * r4);
  const cbias = new Float64Array(r4);
  for (let j = 0; j < r; j++) cbias[j] = b.C[d * r + j]!;
  for (let i = 0; i < d; i++) {
    const mu = b.centred ? b.mean[i]! : 0;
    for (let j = 0; j < r; j++) {
      const c = b.C[i * r + j]!;
      creal[i * r4 + j] = c;
      cbias[j]! += mu * c;
    }
  }
  let negMu: GPUBuffer | undefined;
  if (b.centred) negMu = scope.upload(f32(b.mean.subarray(0, d).map((v) => -v)), 'edges.negmu');
  // Q = C⁺ W̄ (r × dimOut), padded to r4 rows; Bt = Qᵀ padded to r4 columns.
  const Q = matmulHost(b.Cpinv, p.Wbar, { m: r, n: p.dimOut, k: dim });
  const qpad = new Float32Array(r4 * p.dimOut);
  qpad.set(f32(Q));
  const bt = new Float32Array(p.dimOut * r4);
  for (let j = 0; j < r; j++) for (let h = 0; h < p.dimOut; h++) bt[h * r4 + j] = Q[j * p.dimOut + h]!;
  const ro8 = pad8(p.ro);
  const at = new Float32Array(p.dimOut * ro8);
  for (let h = 0; h < p.dimOut; h++) {
    for (let i = 0; i < p.ro; i++) at[h * ro8 + i] = p.nextC ? p.nextC[h * p.ro + i]! : h === i ? 1 : 0;
  }
  return {
    p,
    r,
    negMu,
    creal: scope.upload(creal, 'edges.C'),
    cbias: scope.upload(f32(cbias), 'edges.cbias'),
    qpad: scope.upload(qpad, 'edges.Q'),
    at: scope.upload(at, 'edges.at'),
    bt: scope.upload(bt, 'edges.bt'),
    zeroBias: scope.upload(new Float32Array(Math.max(p.dimOut, r4)), 'edges.zero'),
    sum: new Float64Array(p.ro * r),
  };
}

/**
 * One batch projected into the section's input basis: f̂ (rows × r4) and the section's folded
 * pre-activation at the projected point, p' = Qᵀ f̂ (rows × dimOut). `xin` is the batch's
 * activations at the input node layer (rows × d). Both buffers belong to `scope`.
 */
export function projectBatch(engine: Engine, scope: BufferScope, g: SectionOperands, xin: GPUBuffer, rows: number): { fhat: GPUBuffer; pre: GPUBuffer } {
  const p = g.p;
  const d = p.basis.dim - 1;
  const r4 = pad4(g.r);
  return engine.withScope((temps) => {
    let xc = xin;
    if (g.negMu) {
      xc = temps.alloc(rows * d * 4, 'edges.xc');
      biasAct(engine, { x: xin, bias: g.negMu, out: xc, rows, cols: d, activation: 'identity' });
    }
    const z = temps.alloc(rows * r4 * 4, 'edges.z');
    matmul(engine, xc, g.creal, z, { m: rows, n: r4, k: d });
    const fhat = scope.alloc(rows * r4 * 4, 'edges.fhat');
    biasAct(engine, { x: z, bias: g.cbias, out: fhat, rows, cols: r4, activation: 'identity' });
    const pre = scope.alloc(rows * p.dimOut * 4, 'edges.pre');
    matmul(engine, fhat, g.qpad, pre, { m: rows, n: p.dimOut, k: r4 });
    return { fhat, pre };
  });
}

/** Adds a batch's per-chunk partials (chunks × ro × r, read back) into the section's f64 sums. */
export function addPartials(engine: Engine, g: SectionOperands, part: GPUBuffer, chunks: number): Promise<void> {
  const n = g.p.ro * g.r;
  return engine.readF32(part, chunks * n).then((v) => {
    for (let c = 0; c < chunks; c++) for (let t = 0; t < n; t++) g.sum[t]! += v[c * n + t]!;
  });
}

/** Where an edge pass reads its rows and activations from (all rows, forward pass per batch, by default). */
export interface EdgePassOptions {
  /**
   * A shard: rows [start, end) only, and the sums divided by `divisor` (default: the full N;
   * 1 gives the raw partial sums that `ibgpu combine` adds up).
   */
  shard?: { start: number; end: number; divisor?: number };
  /** Hidden activations kept from the statistics pass (activation-cache.ts). */
  cache?: ActivationCache;
}

export async function computeEdges(
  engine: Engine,
  mlp: GpuMlp,
  data: DataSource,
  pairs: EdgePair[],
  batchSize: number,
  progress: Progress = () => {},
  { shard, cache }: EdgePassOptions = {},
): Promise<Map<string, Float64Array>> {
  return engine.withScope((pass) => squaredEdgePass(engine, pass, mlp, data, pairs, batchSize, progress, { shard, cache }));
}

async function squaredEdgePass(
  engine: Engine,
  pass: BufferScope,
  mlp: GpuMlp,
  data: DataSource,
  pairs: EdgePair[],
  batchSize: number,
  progress: Progress,
  { shard, cache }: EdgePassOptions,
): Promise<Map<string, Float64Array>> {
  const gp = pairs.map((p) => uploadSectionOperands(pass, p));
  const layers = pairs.map((p) => p.layer);
  const reads: Promise<void>[] = [];
  const r0 = shard?.start ?? 0;
  const r1 = shard?.end ?? data.n;
  const divisor = shard?.divisor ?? data.n;
  // The per-chunk partials (chunks × ro × r f32) must fit one storage binding: wide layers on
  // adapters with a small loop budget (llvmpipe: few rows per chunk) take each batch in row
  // blocks. Blocks subdivide batches from their start, so shard boundaries (whole batches) stay
  // block boundaries. Unchanged (one block per batch) whenever the partials fit.
  let step = batchSize;
  for (const p of pairs) {
    const chunkRows = edgeChunkRows(engine, p.dimOut);
    const maxChunks = Math.max(1, Math.floor(engine.maxBindingBytes / (p.ro * p.basis.r * 4)));
    step = Math.min(step, maxChunks * chunkRows);
  }
  const blocks: { start: number; rows: number }[] = [];
  for (let b = r0; b < r1; b += batchSize) {
    const end = Math.min(b + batchSize, r1);
    for (let s = b; s < end; s += step) blocks.push({ start: s, rows: Math.min(step, end - s) });
  }
  // ReLU gates are two-valued, so few change between rows in sign-pattern order.
  // (The change list of a block holds at most rows × dimOut (h, Δg) pairs; it must fit a binding.)
  const delta = pairs.map((p) => mlp.model.layers[p.layer]!.activation === 'relu' && step * p.dimOut * 8 <= engine.maxBindingBytes);
  interface StagedSection {
    g: SectionOperands;
    fhat: GPUBuffer;
    gate?: GPUBuffer;
    host?: Promise<{ gates: Float32Array; order: Uint32Array }>;
  }
  interface StagedBlock {
    start: number;
    rows: number;
    secs: StagedSection[];
    /** Owns the block's f̂ and gates until its edge kernels are recorded. */
    bufs: BufferScope;
  }
  // Records a block's projections and gates, and starts the readbacks its orders need. Only f̂
  // and (dense sections) the gates stay on the GPU until the edge kernels run: a staged block
  // costs rows × (r4 + dimOut) floats per section.
  const stage = async ({ start, rows }: { start: number; rows: number }): Promise<StagedBlock> => {
    const bufs = pass.scope();
    const temps = bufs.scope(); // the block's inputs and pre-activations, closed once it is staged
    const inputs = await sectionInputs(temps, mlp, data, layers, start, rows, cache);
    const secs = gp.map((g, k): StagedSection => {
      const p = g.p;
      const { fhat, pre } = projectBatch(engine, bufs, g, inputs.at(p.layer), rows);
      const { gate, out } = mlp.gateOf(bufs, p.layer, pre, g.zeroBias, rows, p.dimOut);
      bufs.release(pre, out);
      if (!delta[k]) return { g, fhat, gate };
      const host = engine.readF32(gate, rows * p.dimOut).then((gates) => ({ gates, order: signPatternOrder(gates, rows, p.dimOut) }));
      bufs.release(gate); // the readback's copy is recorded: the pool reuses it only after submission
      host.catch(() => {}); // awaited when the block's kernels are recorded; never unhandled meanwhile
      return { g, fhat, host };
    });
    temps.close();
    return { start, rows, secs, bufs };
  };
  let next = blocks.length > 0 ? await stage(blocks[0]!) : undefined;
  for (let b = 0; b < blocks.length; b++) {
    const cur = next!;
    next = b + 1 < blocks.length ? await stage(blocks[b + 1]!) : undefined;
    for (const { g, fhat, gate, host } of cur.secs) {
      const shape = { fhat, at: g.at, bt: g.bt, rows: cur.rows, r: g.r, ro: g.p.ro, h: g.p.dimOut };
      const { part, chunks } = host
        ? recordEdgesSquaredDelta(engine, { ...shape, ...(await host), reset: CARRY_RESET_ROWS })
        : recordEdgesSquared(engine, { ...shape, gates: gate! });
      reads.push(addPartials(engine, g, cur.bufs.adopt(part), chunks));
    }
    cur.bufs.close();
    if (reads.length > 2 * gp.length) await Promise.all(reads.splice(0, reads.length - gp.length));
    progress('edges', cur.start + cur.rows - r0, r1 - r0);
  }
  await Promise.all(reads);
  const out = new Map<string, Float64Array>();
  for (const g of gp) {
    out.set(
      `${g.p.inName}->${g.p.outName}`,
      g.sum.map((v) => v / divisor),
    );
  }
  return out;
}
