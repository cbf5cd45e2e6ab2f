// The pipeline's section kernels against float64 references, on random inputs of odd and prime
// sizes: the bias/activation epilogue with its integrated derivative (bias_act.wgsl) and the
// per-chunk squared-edge partials (edges_squared.wgsl) and their carried-Jacobian variant for
// ReLU sections (edges_squared_delta.wgsl, with the host's visiting orders and change lists).
//
// Tolerances (u = 2^-24):
// - bias_act: out = σ(x + b) and gate = Σ_k w_k σ'(α_k (x + b)). One rounding for the sum, a few
//   for σ; erf in the kernel is Abramowitz–Stegun 7.1.26 (|err| < 1.5e-7) and tanh/exp are the
//   platform's f32 versions. We allow 4e-6 · (1 + |p|) for gelu variants (about 30 ulp of the
//   result, still three orders below the size of any indexing error) and 4u · |ref| otherwise.
// - edges: J = Σ_h A_ih g_h B_jh has |err| ≤ h·u·Σ_h |A_ih g_h B_jh| (γ_h), squaring and the chunk
//   sum add (2 + chunk)·u relative to the non-negative terms. We allow
//   4·(h + chunk + 4)·u · Σ_n (Σ_h |A_ih g_h B_jh| |f_j|)², twice the worst case; a wrong index or
//   mask is an error of the order of the entry itself.
// - edges, carried Jacobian: after s gate changes since its last fresh row the running J is a
//   recursive sum of s terms, |err| ≤ s·u·T with T = Σ of those terms' magnitudes |A_ih Δg_h B_jh|
//   (removed and added ones alike). We allow 4·(s_max + chunk + 4)·u · Σ_n (T_n |f_j|)², the same
//   form with s and T over the window since the last rebuild.

import { describe, expect, it } from 'vitest';
import { act, actGrad, type Activation } from '../src/model/activations.js';
import { integrationPoints } from '../src/ib/integration.js';
import { uploadPoints } from '../src/ib/legacy.js';
import { biasAct } from '../src/kernels/bias-act.js';
import {
  edgeChunkRows,
  edgeOperandLayouts,
  plantedFiringGates,
  recordEdgesSquared,
  recordEdgesSquaredDelta,
  selfCheck as edgesSelfCheck,
} from '../src/kernels/edges.js';
import { squaredEdgesF64 } from '../src/cpu/edges.js';
import { gateChanges, signPatternOrder } from '../src/cpu/gate-order.js';
import { useEngine } from './helpers/gpu.js';
import { randomF32, rng } from './helpers/random.js';

const U = 2 ** -24;

describe('bias_act (section epilogue)', () => {
  const engine = useEngine();
  const cases: [number, number, Activation, 'gradient' | 'gauss-legendre' | 'trapezoidal' | 'none'][] = [
    [1, 1, 'relu', 'gradient'],
    [37, 13, 'relu', 'none'],
    [61, 29, 'identity', 'gradient'],
    [17, 101, 'gelu', 'gauss-legendre'],
    [23, 7, 'gelu_tanh', 'trapezoidal'],
    [300, 263, 'gelu', 'none'],
  ];
  it.each(cases)('%i×%i %s, gate by %s', async (rows, cols, activation, rule) => {
    const e = await engine();
    const x = randomF32(rows * cols, rows * 7 + cols, 2);
    // Some exact zeros: relu'(0) = 0 must hold for x + b = 0 as well.
    for (let i = 0; i < x.length; i += 11) x[i] = 0;
    const b = randomF32(cols, cols + 1, 0.5);
    for (let c = 0; c < cols; c += 5) b[c] = 0;
    const pts = rule === 'none' ? undefined : integrationPoints(rule, rule === 'gradient' ? 0 : 4);
    const xb = e.upload(x);
    const bb = e.upload(b);
    const out = e.alloc(rows * cols * 4);
    const gate = pts ? e.alloc(rows * cols * 4) : undefined;
    const points = pts ? uploadPoints(e, pts) : undefined;
    biasAct(e, { x: xb, bias: bb, out, rows, cols, activation, ...(pts ? { gate, points, npts: pts.alphas.length } : {}) });
    const got = await e.readF32(out, rows * cols);
    const gotGate = gate ? await e.readF32(gate, rows * cols) : undefined;
    let worst = 0;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) {
        const i = r * cols + c;
        const p = Math.fround(x[i]! + b[c]!);
        const smooth = activation === 'gelu' || activation === 'gelu_tanh';
        const tol = (v: number) => (smooth ? 4e-6 * (1 + Math.abs(p)) : 4 * U * Math.abs(v)) + 1e-30;
        const want = act(activation, p);
        worst = Math.max(worst, Math.abs(got[i]! - want) / tol(want));
        if (pts && gotGate) {
          let g = 0;
          pts.alphas.forEach((a, k) => {
            g += pts.weights[k]! * actGrad(activation, a * p);
          });
          // The kernel forms α_k·p in f32: for relu at p ≠ 0 the sign is exact, for gelu the
          // perturbation is within the tolerance.
          worst = Math.max(worst, Math.abs(gotGate[i]! - g) / (tol(g) + 8 * U * pts.alphas.length));
        }
      }
    }
    e.release(xb, bb, out, gate, points);
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('refuses aliased or undersized buffers', async () => {
    const e = await engine();
    // (Pooled buffers are rounded up in size: the shapes are large enough to exceed them.)
    const x = e.alloc(100 * 100 * 4);
    const bias = e.alloc(100 * 4);
    expect(() => biasAct(e, { x, bias, out: x, rows: 100, cols: 100, activation: 'relu' })).toThrow(/must not alias/);
    const out = e.alloc(8);
    expect(() => biasAct(e, { x, bias, out, rows: 100, cols: 100, activation: 'relu' })).toThrow(/fewer than 100x100/);
    e.release(x, bias, out);
  });
});

describe('edges_squared (per-chunk squared-edge partials)', () => {
  const engine = useEngine();
  // rows, h, ro, r, chunkRows, fraction of zero gates, binary gates?
  const cases: [number, number, number, number, number, number, boolean][] = [
    [1, 1, 1, 1, 8, 0, true],
    [37, 7, 3, 5, 8, 0.5, true],
    [131, 23, 9, 13, 32, 0.6, false],
    [300, 31, 17, 11, 64, 0.3, true],
    [257, 101, 10, 79, 256, 0.43, true],
  ];
  it.each(cases)('rows %i, h %i, ro %i, r %i, chunks of %i rows (%f zero gates, binary %s)', async (rows, h, ro, r, chunkRows, zeros, binary) => {
    const e = await engine();
    const rand = rng(rows * 31 + h * 7 + r);
    const A = randomF32(ro * h, h + 3); // A[i, h]
    const B = randomF32(r * h, h + 4); // B[j, h]
    const f = randomF32(rows * r, rows + 5);
    const g = new Float32Array(rows * h);
    for (let i = 0; i < g.length; i++) g[i] = rand() < zeros ? 0 : binary ? 1 : Math.fround(0.25 + rand());
    const { fh, at, bt } = edgeOperandLayouts(A, B, f, rows, h, ro, r);
    const bufs = { fhat: e.upload(fh), gates: e.upload(g), at: e.upload(at), bt: e.upload(bt) };
    const { part, chunks } = recordEdgesSquared(e, { ...bufs, rows, r, ro, h, chunkRows });
    // Rows per chunk: as asked, unless the adapter's loop budget (rows × h iterations) caps it.
    const per = Math.min(chunkRows, Math.floor((e.loopBudget - 16) / (h + 1)));
    expect(chunks).toBe(Math.ceil(rows / per));
    const got = await e.readF32(part, chunks * ro * r);
    e.release(part, bufs.fhat, bufs.gates, bufs.at, bufs.bt);

    let worst = 0;
    let nonzero = 0;
    for (let c = 0; c < chunks; c++) {
      const chunkRowsList = Array.from({ length: Math.min(rows, (c + 1) * per) - c * per }, (_, t) => c * per + t);
      const { sum: want, abs: bound } = squaredEdgesF64(A, B, f, g, h, ro, r, chunkRowsList);
      for (let t = 0; t < ro * r; t++) {
        const v = got[c * ro * r + t]!;
        if (v !== 0) nonzero++;
        worst = Math.max(worst, Math.abs(v - want[t]!) / (4 * (h + per + 4) * U * bound[t]! + 1e-30));
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
    if (zeros < 1) expect(nonzero).toBeGreaterThan(0);
  });

  it('refuses undersized operands', async () => {
    const e = await engine();
    const small = e.alloc(16);
    expect(() => recordEdgesSquared(e, { fhat: small, gates: small, at: small, bt: small, rows: 1000, r: 3, ro: 2, h: 4 })).toThrow(
      /fhat holds fewer than 1000x4/,
    );
    e.release(small);
  });
});

/** Two-valued gates (0 or w) from five planted firing patterns with flipped units. */
function reluLikeGates(rows: number, h: number, seed: number, w = 1): Float32Array {
  return plantedFiringGates(rows, h, rng(seed), { patterns: 5, w });
}

describe('gate orders and change lists (host side of edges_squared_delta)', () => {
  it('signPatternOrder is a permutation that keeps neighbouring firing patterns close', () => {
    const rows = 300;
    const h = 70; // three key words, the last partly used
    const g = reluLikeGates(rows, h, 3);
    const order = signPatternOrder(g, rows, h);
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: rows }, (_, i) => i));
    // Against the plain lexicographic sort by pattern, which the chain starts from and improves on.
    const key = (n: number): string => Array.from({ length: h }, (_, k) => (g[n * h + k]! > 0 ? '1' : '0')).join('');
    const lex = Array.from({ length: rows }, (_, i) => i).sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : a - b));
    const hamming = (o: ArrayLike<number>): number => {
      let s = 0;
      for (let t = 1; t < rows; t++) for (let k = 0; k < h; k++) s += +(g[o[t]! * h + k]! > 0) ^ +(g[o[t - 1]! * h + k]! > 0);
      return s;
    };
    expect(order[0]).toBe(lex[0]); // the chain starts at the first row in sorted order
    expect(hamming(order)).toBeLessThan(hamming(lex));
    // Identical patterns are adjacent: a batch of two repeated patterns changes once.
    const two = new Float32Array(40 * h);
    for (let n = 0; n < 40; n++) for (let k = 0; k < h; k++) two[n * h + k] = (n * 7) % 3 === 0 ? k % 2 : 1 - (k % 2);
    const o2 = signPatternOrder(two, 40, h);
    let switches = 0;
    for (let t = 1; t < 40; t++) if (two[o2[t]! * h] !== two[o2[t - 1]! * h]) switches++;
    expect(switches).toBe(1);
  });

  it('change lists rebuild every gate exactly, fresh rows list all nonzero gates, others only the changed ones', () => {
    const rows = 211;
    const h = 37;
    const g = reluLikeGates(rows, h, 5, 0.75);
    const order = signPatternOrder(g, rows, h);
    const chunk = 50;
    const reset = 16;
    const { visits, changes, count } = gateChanges(g, rows, h, order, chunk, reset);
    const hs = changes;
    const dgs = new Float32Array(changes.buffer, changes.byteOffset, changes.length);
    const cur = new Float64Array(h);
    let next = 0;
    for (let n = 0; n < rows; n++) {
      const [row, first, cnt, fresh] = visits.subarray(4 * n, 4 * n + 4) as unknown as number[];
      expect(row).toBe(order[n]);
      expect(first).toBe(next);
      expect(fresh).toBe((n % chunk) % reset === 0 ? 1 : 0);
      if (fresh) cur.fill(0);
      const prev = n > 0 ? order[n - 1]! : 0;
      let want = 0;
      for (let k = 0; k < h; k++) if (fresh ? g[row! * h + k] !== 0 : g[row! * h + k] !== g[prev * h + k]) want++;
      expect(cnt).toBe(want);
      for (let t = first!; t < first! + cnt!; t++) cur[hs[2 * t]!]! += dgs[2 * t + 1]!;
      for (let k = 0; k < h; k++) expect(cur[k]).toBe(g[row! * h + k]);
      next = first! + cnt!;
    }
    expect(count).toBe(next);
  });

  it('the sign-pattern order needs far fewer changes than the data order on clustered patterns', () => {
    const rows = 512;
    const h = 64;
    const g = reluLikeGates(rows, h, 11);
    const plain = gateChanges(
      g,
      rows,
      h,
      Uint32Array.from({ length: rows }, (_, i) => i),
      rows,
      rows,
    ).count;
    const sorted = gateChanges(g, rows, h, signPatternOrder(g, rows, h), rows, rows).count;
    expect(sorted).toBeLessThan(0.6 * plain); // measured 0.51 (MNIST: 15.7 vs 33.6 changes per row)
  });
});

describe('edges_squared_delta (carried Jacobian, visiting order)', () => {
  const engine = useEngine();
  // rows, h, ro, r, chunkRows, reset, gates: relu-like two-valued, or generic values; order: sorted or random
  const cases: [number, number, number, number, number, number, 'relu' | 'generic', 'sorted' | 'random'][] = [
    [1, 1, 1, 1, 8, 1, 'relu', 'sorted'],
    [37, 7, 3, 5, 8, 3, 'relu', 'random'],
    [131, 23, 9, 13, 32, 1, 'generic', 'random'],
    [131, 23, 9, 13, 32, 64, 'generic', 'sorted'],
    [300, 31, 17, 11, 64, 16, 'relu', 'sorted'],
    [257, 101, 10, 79, 256, 64, 'relu', 'sorted'],
    [513, 57, 12, 9, 256, 1000, 'relu', 'random'],
  ];
  it.each(cases)('rows %i, h %i, ro %i, r %i, chunks of %i rows, rebuilt every %i, %s gates, %s order', async (rows, h, ro, r, chunkRows, reset, kind, ord) => {
    const e = await engine();
    const rand = rng(rows * 17 + h * 5 + r + reset);
    const A = randomF32(ro * h, h + 13);
    const B = randomF32(r * h, h + 14);
    const f = randomF32(rows * r, rows + 15);
    let g: Float32Array;
    if (kind === 'relu') g = reluLikeGates(rows, h, rows + h, 0.875);
    else {
      g = new Float32Array(rows * h);
      for (let i = 0; i < g.length; i++) g[i] = rand() < 0.4 ? 0 : Math.fround(0.25 + rand());
    }
    let order: Uint32Array;
    if (ord === 'sorted') order = signPatternOrder(g, rows, h);
    else {
      order = Uint32Array.from({ length: rows }, (_, i) => i);
      for (let i = rows - 1; i > 0; i--) {
        const t = Math.floor(rand() * (i + 1));
        [order[i], order[t]] = [order[t]!, order[i]!];
      }
    }
    const { fh, at, bt } = edgeOperandLayouts(A, B, f, rows, h, ro, r);
    const bufs = { fhat: e.upload(fh), at: e.upload(at), bt: e.upload(bt) };
    const { part, chunks } = recordEdgesSquaredDelta(e, { ...bufs, gates: g, order, rows, r, ro, h, chunkRows, reset });
    const per = edgeChunkRows(e, h, chunkRows);
    expect(chunks).toBe(Math.ceil(rows / per));
    const got = await e.readF32(part, chunks * ro * r);
    e.release(part, bufs.fhat, bufs.at, bufs.bt);

    let worst = 0;
    let nonzero = 0;
    for (let c = 0; c < chunks; c++) {
      const { sum: want } = squaredEdgesF64(A, B, f, g, h, ro, r, order.subarray(c * per, Math.min(rows, (c + 1) * per)));
      for (let i = 0; i < ro; i++) {
        for (let j = 0; j < r; j++) {
          let bound = 0;
          let T = 0; // magnitudes of the terms in the running J since its last rebuild
          let s = 0;
          let sMax = 0;
          for (let t = c * per; t < Math.min(rows, (c + 1) * per); t++) {
            const n = order[t]!;
            const fresh = (t - c * per) % reset === 0;
            if (fresh) {
              T = 0;
              s = 0;
            }
            const prev = fresh ? -1 : order[t - 1]!;
            for (let k = 0; k < h; k++) {
              const dg = g[n * h + k]! - (prev < 0 ? 0 : g[prev * h + k]!);
              if (dg !== 0) {
                T += Math.abs(A[i * h + k]! * dg * B[j * h + k]!);
                s++;
              }
            }
            sMax = Math.max(sMax, s);
            bound += (T * f[n * r + j]!) ** 2;
          }
          const v = got[(c * ro + i) * r + j]!;
          if (v !== 0) nonzero++;
          worst = Math.max(worst, Math.abs(v - want[i * r + j]!) / (4 * (sMax + per + 4) * U * bound + 1e-30));
        }
      }
    }
    expect(worst).toBeLessThanOrEqual(1);
    expect(nonzero).toBeGreaterThan(0);
  });

  it('the doctor self-check (both kernels against float64) passes', async () => {
    const r = await edgesSelfCheck(await engine());
    expect(r.ok, r.detail).toBe(true);
    expect(r.detail).toMatch(/carried-Jacobian kernel/);
  });

  it('refuses a visiting order of the wrong length and a non-positive reset', async () => {
    const e = await engine();
    const b = e.alloc(4096);
    const args = { fhat: b, at: b, bt: b, gates: new Float32Array(40), rows: 10, r: 3, ro: 2, h: 4 };
    expect(() => recordEdgesSquaredDelta(e, { ...args, order: new Uint32Array(9), reset: 4 })).toThrow(/visiting order has 9 rows, expected 10/);
    expect(() => recordEdgesSquaredDelta(e, { ...args, order: new Uint32Array(10), reset: 0 })).toThrow(/reset must be a positive integer/);
    e.release(b);
  });
});
