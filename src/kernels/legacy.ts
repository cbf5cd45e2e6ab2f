// Kernels for rib's legacy formulas (SPEC §4.4, §5.3): the elementwise terms of the integrated
// gradients (shaders/legacy_terms.wgsl) and the per-point partial sums of functional edges
// (shaders/edges_functional.wgsl). The products with the next layer's basis between them are
// ordinary matmuls (kernels/matmul.ts).

import { checkShape } from '../errors.js';
import { ACTIVATION_ID, act, actGrad, type Activation } from '../model/activations.js';
import type { Engine } from '../runtime/engine.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { edgeGrid, pad4, pad8, type EdgesArgs } from './edges.js';
import type { SelfCheckResult } from './self-check.js';
import { packParams } from '../runtime/params.js';
import { mulberry32 } from '../util/mulberry32.js';
import { shaderKernel } from './shader-kernel.js';

export const legacyTermsKernel = shaderKernel('legacy_terms', { MODE: 0, ACT: 1, WG: 256 });

export const edgesFunctionalKernel = shaderKernel('edges_functional', { WG: 64 });

/** The folded pre-activation p̄ (rows × cols): x + bias in the first xcols columns, rho after. */
export interface PreactArgs {
  /** rows × xcols pre-activations without bias. */
  x: GPUBuffer;
  /** xcols biases (zeros when x already holds the full pre-activation). */
  bias: GPUBuffer;
  rows: number;
  /** Columns of p̄: xcols, or xcols + 1 with the folded constant unit. */
  cols: number;
  xcols: number;
  /** Pre-activation of the constant unit (ρ); unused when cols == xcols. */
  rho: number;
  activation: Activation;
  /** α_0..α_{m-1}, w_0..w_{m-1} (f32). */
  points: GPUBuffer;
  npts: number;
}

function params(
  a: PreactArgs,
  extra: { stride?: number; off?: number; k0?: number; k1?: number; accumulate?: boolean; hasQ?: boolean; beta?: number; scale?: number },
): Uint8Array {
  return packParams(legacyTermsKernel, {
    rows: a.rows,
    cols: a.cols,
    xcols: a.xcols,
    stride: extra.stride ?? a.cols,
    off: extra.off ?? 0,
    k0: extra.k0 ?? 0,
    k1: extra.k1 ?? 0,
    npts: a.npts,
    accumulate: extra.accumulate ? 1 : 0,
    has_q: extra.hasQ ? 1 : 0,
    rho: a.rho,
    beta: extra.beta ?? 0,
    scale: extra.scale ?? 1,
  });
}

function checkPreact(what: string, a: PreactArgs): void {
  checkShape(Number.isInteger(a.rows) && a.rows >= 0 && Number.isInteger(a.xcols) && a.xcols >= 1, `${what}: bad shape ${a.rows}x${a.xcols}`);
  checkShape(a.cols === a.xcols || a.cols === a.xcols + 1, `${what}: cols must be xcols or xcols + 1 (got ${a.cols}, ${a.xcols})`);
  checkShape(a.x.size >= a.rows * a.xcols * 4, `${what}: x holds fewer than ${a.rows}x${a.xcols} floats`);
  checkShape(a.bias.size >= a.xcols * 4, `${what}: bias holds fewer than ${a.xcols} floats`);
  checkShape(a.npts >= 1 && a.points.size >= 2 * a.npts * 4, `${what}: points hold fewer than 2x${a.npts} floats`);
}

/** out (rows × cols) = σ(p̄) − beta·σ(α_k p̄). beta = 0 gives σ(p̄), the section output with its constant. */
export function legacyDifference(engine: Engine, a: PreactArgs, out: GPUBuffer, k: number, beta: number): void {
  checkPreact('legacy difference', a);
  checkShape(k >= 0 && k < a.npts, `legacy difference: point ${k} out of range (npts ${a.npts})`);
  checkShape(out.size >= a.rows * a.cols * 4 && out !== a.x, `legacy difference: out must be a separate rows×cols buffer`);
  engine.dispatch(legacyTermsKernel, {
    bindings: { x: a.x, bias: a.bias, q: a.x, points: a.points, out, params: params(a, { k0: k, beta }) },
    workgroups: ceilDiv(a.rows * a.cols, 256),
    overrides: { MODE: 0, ACT: ACTIVATION_ID[a.activation] },
  });
}

/**
 * out[r*stride + off + c] (+)= scale · (Σ_{k0<=k<k1} w_k σ'(α_k p̄)) · q[r*cols + c] (q omitted: 1).
 */
export function legacyGated(
  engine: Engine,
  a: PreactArgs,
  out: GPUBuffer,
  o: { k0: number; k1: number; scale: number; q?: GPUBuffer; stride?: number; off?: number; accumulate?: boolean },
): void {
  checkPreact('legacy gated', a);
  const stride = o.stride ?? a.cols;
  const off = o.off ?? 0;
  checkShape(o.k0 >= 0 && o.k1 <= a.npts && o.k0 < o.k1, `legacy gated: point range [${o.k0}, ${o.k1}) out of range (npts ${a.npts})`);
  checkShape(off + a.cols <= stride, `legacy gated: columns ${off}..${off + a.cols} exceed the row stride ${stride}`);
  checkShape(out.size >= a.rows * stride * 4, `legacy gated: out holds fewer than ${a.rows}x${stride} floats`);
  if (o.q) checkShape(o.q.size >= a.rows * a.cols * 4 && o.q !== out, 'legacy gated: q must be a separate rows×cols buffer');
  checkShape(out !== a.x && out !== a.bias, 'legacy gated: out must not alias x or bias');
  engine.dispatch(legacyTermsKernel, {
    bindings: {
      x: a.x,
      bias: a.bias,
      q: o.q ?? a.x,
      points: a.points,
      out,
      params: params(a, { stride, off, k0: o.k0, k1: o.k1, accumulate: o.accumulate, hasQ: o.q !== undefined, scale: o.scale }),
    },
    workgroups: ceilDiv(a.rows * a.cols, 256),
    overrides: { MODE: 1, ACT: ACTIVATION_ID[a.activation] },
  });
}

/** out[r*stride + off + c] = x[r*cols + c]: packs a rows×cols block into a wider matrix. */
export function copyColumns(engine: Engine, x: GPUBuffer, out: GPUBuffer, rows: number, cols: number, stride: number, off: number): void {
  checkShape(off + cols <= stride, `copy columns: columns ${off}..${off + cols} exceed the row stride ${stride}`);
  checkShape(
    x.size >= rows * cols * 4 && out.size >= rows * stride * 4 && x !== out,
    `copy columns: buffers too small for ${rows}x${cols} into stride ${stride}`,
  );
  // MODE 2 reads only the copy's shape; the point fields stay 0.
  const params = packParams(legacyTermsKernel, {
    rows,
    cols,
    xcols: cols,
    stride,
    off,
    k0: 0,
    k1: 0,
    npts: 0,
    accumulate: 0,
    has_q: 0,
    rho: 0,
    beta: 0,
    scale: 0,
  });
  engine.dispatch(legacyTermsKernel, {
    bindings: { x, bias: x, q: x, points: x, out, params },
    workgroups: ceilDiv(rows * cols, 256),
    overrides: { MODE: 2, ACT: 0 },
  });
}

/** The squared-edge kernels' inputs (same layouts), with this point's gates and differences. */
export interface FunctionalEdgesArgs extends EdgesArgs {
  /** rows × h gates of this point, w_k σ'(α_k p'). */
  gates: GPUBuffer;
  /** rows × pad8(ro): F̂(u) − F̂(α_k u) (zero-padded columns). */
  s: GPUBuffer;
}

/**
 * Records one point's partial sums into `part` (chunks × ro × r), overwriting it or, with
 * `accumulate`, adding to it. Allocate `part` with functionalChunks(...) chunks.
 */
export function recordEdgesFunctional(engine: Engine, a: FunctionalEdgesArgs, part: GPUBuffer, accumulate: boolean): number {
  const grid = edgeGrid(engine, 'functional edges', a);
  const { r4, ro8, chunkRows, chunks, blocksJ } = grid;
  checkShape(a.gates.size >= a.rows * a.h * 4, `functional edges: gates hold fewer than ${a.rows}x${a.h} floats`);
  checkShape(a.s.size >= a.rows * ro8 * 4, `functional edges: s holds fewer than ${a.rows}x${ro8} floats`);
  checkShape(part.size >= chunks * a.ro * a.r * 4, `functional edges: part holds fewer than ${chunks}x${a.ro}x${a.r} floats`);
  const p = packParams(edgesFunctionalKernel, {
    rows: a.rows,
    r: a.r,
    ro: a.ro,
    h: a.h,
    r4,
    ro8,
    chunk_rows: chunkRows,
    blocks_j: blocksJ,
    accumulate: accumulate ? 1 : 0,
  });
  engine.dispatch(edgesFunctionalKernel, {
    bindings: { fhat: a.fhat, gates: a.gates, s: a.s, at: a.at, bt: a.bt, part, params: p },
    workgroups: grid.workgroups,
  });
  return chunks;
}

// ------------------------------------------------------------------------------------ self-check

/** Quick GPU-vs-f64 check of every mode of both kernels on small random data (`ibgpu doctor`). */
export async function selfCheck(engine: Engine): Promise<SelfCheckResult> {
  const t0 = performance.now();
  const uniform = mulberry32(12345);
  const rnd = (): number => uniform() - 0.5;
  const rows = 37;
  const xcols = 5;
  const cols = 6;
  const alphas = [0.1127016653792583, 0.5, 0.8872983346207417];
  const weights = [5 / 18, 8 / 18, 5 / 18];
  const rho = 1.1444;
  const x = Float32Array.from({ length: rows * xcols }, () => 4 * rnd());
  const bias = Float32Array.from({ length: xcols }, () => rnd());
  const q = Float32Array.from({ length: rows * cols }, () => 2 * rnd());
  const pre = (r: number, c: number): number => (c < xcols ? x[r * xcols + c]! + bias[c]! : Math.fround(rho));
  return engine.withScope(async (s) => {
    const bufs = {
      x: s.upload(x, 'sc.x'),
      bias: s.upload(bias, 'sc.bias'),
      q: s.upload(q, 'sc.q'),
      points: s.upload(Float32Array.from([...alphas, ...weights]), 'sc.points'),
    };
    const stride = cols + xcols + 1;
    const d0 = s.alloc(rows * cols * 4, 'sc.d');
    const z = s.alloc(rows * stride * 4, 'sc.z');
    engine.clear(z);
    const a: PreactArgs = { x: bufs.x, bias: bufs.bias, rows, cols, xcols, rho, activation: 'gelu', points: bufs.points, npts: 3 };
    legacyDifference(engine, a, d0, 1, 1);
    legacyGated(engine, a, z, { k0: 0, k1: 3, scale: 2, q: bufs.q, stride, off: 0 });
    legacyGated(engine, a, z, { k0: 2, k1: 3, scale: 1, stride, off: 0, accumulate: true });
    copyColumns(engine, bufs.x, z, rows, xcols, stride, cols + 1);
    const [gd, gz] = await Promise.all([engine.readF32(d0, rows * cols), engine.readF32(z, rows * stride)]);
    let err = 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const p = pre(r, c);
        err = Math.max(err, Math.abs(gd[r * cols + c]! - (act('gelu', p) - act('gelu', alphas[1]! * p))) / (1 + Math.abs(p)));
        let g = 0;
        for (let k = 0; k < 3; k++) g += weights[k]! * actGrad('gelu', alphas[k]! * p);
        const want = 2 * g * q[r * cols + c]! + weights[2]! * actGrad('gelu', alphas[2]! * p);
        err = Math.max(err, Math.abs(gz[r * stride + c]! - want) / (1 + Math.abs(want)));
      }
      for (let c = 0; c < xcols; c++) err = Math.max(err, Math.abs(gz[r * stride + cols + 1 + c]! - x[r * xcols + c]!));
      err = Math.max(err, Math.abs(gz[r * stride + cols]!)); // untouched column stays 0
    }
    // Functional edges: part_ij = Σ_n s_i (Σ_h A_ih g_h B_jh) f̂_j, twice with accumulate.
    const r = 5;
    const ro = 3;
    const h = 6;
    const r4 = pad4(r);
    const ro8 = pad8(ro);
    const fh = new Float32Array(rows * r4);
    const gg = Float32Array.from({ length: rows * h }, () => (rnd() > 0 ? rnd() : 0));
    const sv = new Float32Array(rows * ro8);
    const at = new Float32Array(h * ro8);
    const bt = new Float32Array(h * r4);
    for (let n = 0; n < rows; n++) {
      for (let j = 0; j < r; j++) fh[n * r4 + j] = rnd();
      for (let i = 0; i < ro; i++) sv[n * ro8 + i] = rnd();
    }
    for (let hh = 0; hh < h; hh++) {
      for (let i = 0; i < ro; i++) at[hh * ro8 + i] = rnd();
      for (let j = 0; j < r; j++) bt[hh * r4 + j] = rnd();
    }
    const eb = {
      fhat: s.upload(fh, 'sc.fhat'),
      gates: s.upload(gg, 'sc.g'),
      s: s.upload(sv, 'sc.s'),
      at: s.upload(at, 'sc.at'),
      bt: s.upload(bt, 'sc.bt'),
    };
    const chunkRows = 8;
    const chunks = ceilDiv(rows, chunkRows);
    const part = s.alloc(chunks * ro * r * 4, 'sc.part');
    recordEdgesFunctional(engine, { ...eb, rows, r, ro, h, chunkRows }, part, false);
    recordEdgesFunctional(engine, { ...eb, rows, r, ro, h, chunkRows }, part, true);
    const gp = await engine.readF32(part, chunks * ro * r);
    let eerr = 0;
    let scale = 0;
    const E = new Float64Array(ro * r);
    for (let n = 0; n < rows; n++) {
      for (let i = 0; i < ro; i++) {
        for (let j = 0; j < r; j++) {
          let J = 0;
          for (let hh = 0; hh < h; hh++) J += at[hh * ro8 + i]! * gg[n * h + hh]! * bt[hh * r4 + j]!;
          E[i * r + j]! += 2 * sv[n * ro8 + i]! * J * fh[n * r4 + j]!;
        }
      }
    }
    const sum = new Float64Array(ro * r);
    for (let c = 0; c < chunks; c++) for (let t = 0; t < ro * r; t++) sum[t]! += gp[c * ro * r + t]!;
    for (let t = 0; t < ro * r; t++) {
      scale = Math.max(scale, Math.abs(E[t]!));
      eerr = Math.max(eerr, Math.abs(sum[t]! - E[t]!));
    }
    eerr /= scale || 1;
    const ok = err < 1e-5 && eerr < 1e-5;
    return {
      name: 'legacy-terms+functional-edges',
      ok,
      detail: `terms max err ${err.toExponential(1)}, functional edges rel err ${eerr.toExponential(1)} (< 1e-5)`,
      ms: performance.now() - t0,
    };
  });
}
