// `ibgpu train-mlp`: the training kernels against float64 references, the whole backward pass
// against an f64 backprop (itself checked by finite differences), one Adam step end to end,
// learning on a small problem, bit-for-bit determinism, the written files, and argument errors.
//
// Tolerances: u = 2^-24 (f32 unit roundoff). Each bound is derived next to its check from the
// operation's error (summation length, WGSL's exp/log/sqrt accuracy) with a safety factor of
// about 2; random data sits far below them, while an indexing or formula bug gives errors of the
// order of the values themselves.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel } from '../src/build/load.js';
import { runCli } from '../src/cli/main.js';
import { parseTrainArgs, trainCommand } from '../src/cli/train.js';
import { columnSumsF64 } from '../src/cpu/gram.js';
import { actBackwardF64, adamStepF64, mlpBackpropF64, mlpLossF64, softmaxXentF64, type LayerF64 } from '../src/cpu/train.js';
import { loadMnistDigits } from '../src/data/mnist.js';
import { ACTIVATIONS, type Activation } from '../src/model/activations.js';
import { parseConfig } from '../src/ib/config.js';
import { actBackward } from '../src/kernels/act-backward.js';
import { adamUpdate, type AdamHyper } from '../src/kernels/adam.js';
import { columnSums } from '../src/kernels/column-sums.js';
import { softmaxXent } from '../src/kernels/softmax-xent.js';
import { kaimingUniform, makeRng, permutation } from '../src/train/random.js';
import { saveTrainedMlp } from '../src/train/save.js';
import { epochOrder, initialLayers, trainMlp, type TrainMlpOptions } from '../src/train/train-mlp.js';
import { MlpTrainer, type TrainerLayerInit } from '../src/train/trainer.js';
import { expectError } from './helpers/errors.js';
import { useEngine } from './helpers/gpu.js';
import { randomF32, rng } from './helpers/random.js';

const U = 2 ** -24;
const getEngine = useEngine();

const tmpDirs: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'ibgpu-train-'));
  tmpDirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

function labelsFor(rows: number, classes: number, seed: number): Uint32Array {
  const r = rng(seed);
  return Uint32Array.from({ length: rows }, () => Math.floor(r() * classes));
}

/** Largest |out − ref| / tol over all elements (must be <= 1). */
function worst(out: ArrayLike<number>, ref: ArrayLike<number>, tol: (i: number) => number): number {
  expect(out.length).toBe(ref.length);
  let w = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = Math.abs(out[i]! - ref[i]!) / tol(i);
    if (!(r <= w)) w = Number.isNaN(r) ? Infinity : r;
  }
  return w;
}

// ------------------------------------------------------------------------------------ kernels

describe('softmax_xent kernel', () => {
  // Per row: x_j = z_j − m ≤ 0, X = max |x_j|. WGSL's exp is within (3 + 2|x|) ulp, the rounding
  // of z_j − m adds u|x_j|, so s = Σ exp(x_j) has relative error ≤ e_s = 2u (cols + 3 + 2X) (crude,
  // summation included). log is within 2^-21 absolute on [0.5, 2] and 3 ulp elsewhere; the final
  // m + log s − z_y rounds twice. Gradient entries p_j − [j = y] with p_j ≤ 1 inherit e_s plus the
  // exp error of their own term and two roundings.
  const cases: [number, number, number][] = [
    [1, 1, 0],
    [1, 2, 0],
    [7, 10, 3],
    [33, 3, 0],
    [130, 17, 5],
    [257, 10, 1],
  ];
  for (const [rows, cols, base] of cases) {
    it(`matches the f64 reference: ${rows} rows x ${cols} classes, stats at row ${base}`, async () => {
      const e = await getEngine();
      const z = randomF32(rows * cols, 1000 + rows * cols, 4);
      // Shift some rows far up: a naive exp would overflow f32 there.
      for (let r = 0; r < rows; r += 3) for (let j = 0; j < cols; j++) z[r * cols + j]! += 90;
      const y = labelsFor(rows, cols, rows + cols);
      const scale = 1 / rows;
      const zb = e.upload(z, 'test-logits');
      const yb = e.upload(y, 'test-labels');
      const grad = e.alloc(rows * cols * 4, 'test-grad');
      const stats = e.alloc(2 * (base + rows) * 4, 'test-stats');
      const stats2 = e.alloc(2 * rows * 4, 'test-stats2');
      softmaxXent(e, { logits: zb, labels: yb, rows, cols, stats, statsBase: base, grad });
      softmaxXent(e, { logits: zb, labels: yb, rows, cols, stats: stats2 }); // forward only
      const g = await e.readF32(grad, rows * cols);
      const s = (await e.readF32(stats, 2 * (base + rows))).subarray(2 * base);
      const s2 = await e.readF32(stats2, 2 * rows);
      e.release(zb, yb, grad, stats, stats2);

      const ref = softmaxXentF64(z, y, rows, cols, scale);
      const es: number[] = [];
      const mag: number[] = [];
      for (let r = 0; r < rows; r++) {
        let m = -Infinity;
        let mn = Infinity;
        for (let j = 0; j < cols; j++) {
          m = Math.max(m, z[r * cols + j]!);
          mn = Math.min(mn, z[r * cols + j]!);
        }
        es.push(2 * U * (cols + 3 + 2 * (m - mn)));
        mag.push(Math.abs(m) + Math.abs(z[r * cols + y[r]!]!) + Math.log(cols) + 1);
      }
      const lossTol = (r: number) => 2 * (es[r]! + 2 ** -21 + 3 * U * Math.log(cols) + 4 * U * mag[r]!) + 1e-30;
      const loss = Float64Array.from({ length: rows }, (_, r) => s[2 * r]!);
      expect(worst(loss, ref.loss, lossTol)).toBeLessThanOrEqual(1);
      expect(
        worst(
          Float64Array.from({ length: rows }, (_, r) => s2[2 * r]!),
          ref.loss,
          lossTol,
        ),
      ).toBeLessThanOrEqual(1);
      for (let r = 0; r < rows; r++) {
        expect(s[2 * r + 1]).toBe(ref.correct[r]);
        expect(s2[2 * r + 1]).toBe(ref.correct[r]);
      }
      const gradTol = (i: number) => {
        const r = Math.floor(i / cols);
        const p = Math.abs(ref.grad[i]! / scale + (i % cols === y[r]! ? 1 : 0));
        let m = -Infinity;
        for (let j = 0; j < cols; j++) m = Math.max(m, z[r * cols + j]!);
        const x = m - z[i]!;
        return 2 * scale * (p * (es[r]! + 2 * U * (3 + 3 * x) + 4 * U) + 2 * U) + 1e-30;
      };
      expect(worst(g, ref.grad, gradTol)).toBeLessThanOrEqual(1);
    });
  }

  it('rejects short buffers and aliasing with SHAPE errors', async () => {
    const e = await getEngine();
    const a = e.alloc(40 * 4, 'a');
    const b = e.alloc(4 * 4, 'b');
    await expectError(() => softmaxXent(e, { logits: a, labels: b, rows: 4, cols: 20, stats: b }), 'SHAPE', /logits/);
    await expectError(() => softmaxXent(e, { logits: a, labels: b, rows: 4, cols: 10, stats: a, grad: a }), 'SHAPE', /alias/);
    e.release(a, b);
  });
});

describe('act_backward kernel', () => {
  // p = x + b is one correctly rounded f32 add, so relu's and identity's gates match the
  // reference exactly and the result (g·1 or g·0) is exact. gelu: erf by A&S 7.1.26 (|err| <
  // 1.5e-7) inside cdf, exp within (3 + 2·p²/2) ulp in the pdf term, plus the rounding of p
  // (derivative slope |σ''| < 0.5): |err| ≤ |g| (2e-7 + 8u (2 + p²) |p| + 4u).
  // gelu_tanh: WGSL's tanh has no stated ulp bound; we allow |g| · 2e-6 (observed ~1e-7).
  const shapes: [number, number][] = [
    [1, 1],
    [5, 7],
    [64, 100],
    [257, 13],
  ];
  for (const act of ACTIVATIONS) {
    it(`${act}: grad_out * act'(x + b) for ${shapes.map((s) => s.join('x')).join(', ')}`, async () => {
      const e = await getEngine();
      for (const [rows, cols] of shapes) {
        const x = randomF32(rows * cols, rows * 7 + cols, 2);
        const b = randomF32(cols, cols + 99, 1);
        const g = randomF32(rows * cols, rows + cols * 3, 1.5);
        const xb = e.upload(x, 'x');
        const bb = e.upload(b, 'b');
        const gb = e.upload(g, 'g');
        const out = e.alloc(rows * cols * 4, 'out');
        actBackward(e, { x: xb, bias: bb, gradOut: gb, gradIn: out, rows, cols, activation: act });
        const got = await e.readF32(out, rows * cols);
        e.release(xb, bb, gb, out);
        const ref = actBackwardF64(x, b, g, rows, cols, act);
        if (act === 'relu' || act === 'identity') {
          for (let i = 0; i < ref.length; i++) expect(got[i]).toBe(Math.fround(ref[i]!));
        } else {
          const tol = (i: number) => {
            const p = Math.abs(x[i]! + b[i % cols]!);
            const gi = Math.abs(g[i]!);
            return act === 'gelu' ? 2 * gi * (2e-7 + 8 * U * (2 + p * p) * p + 4 * U) + 1e-30 : gi * 2e-6 + 1e-30;
          };
          expect(worst(got, ref, tol), `${act} ${rows}x${cols}`).toBeLessThanOrEqual(1);
        }
      }
    });
  }
});

describe('adam_update kernel', () => {
  // Per step: m and v are two f32 multiply-adds with coefficients rounded to f32, error
  // ≤ 3u (β|m| + (1−β)|g|) (m can cancel, hence the absolute form); the update step·m/(√v/√bc2 + ε)
  // has a few roundings plus WGSL's sqrt and division (2.5 ulp each): ≤ 16u |Δ|; p − Δ rounds
  // once. Errors add up over the steps: we allow t · 2 (16u |Δ_max| + 2u |p|) for p and
  // t · 8u (|m| + max|g|) for m (likewise v with g²).
  const runs: [number, AdamHyper][] = [
    [1, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 }],
    [1001, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 }],
    [4099, { lr: 0.05, beta1: 0.5, beta2: 0.9, eps: 1e-3 }],
  ];
  for (const [n, h] of runs) {
    it(`matches torch's formula in f64 over 4 steps: n = ${n}, lr ${h.lr}, betas ${h.beta1}/${h.beta2}, eps ${h.eps}`, async () => {
      const e = await getEngine();
      const p0 = randomF32(n, n + 5, 1);
      const pb = e.upload(p0, 'p');
      const mb = e.upload(new Float32Array(n), 'm');
      const vb = e.upload(new Float32Array(n), 'v');
      const p = Float64Array.from(p0);
      const m = new Float64Array(n);
      const v = new Float64Array(n);
      let gMax = 0;
      for (let t = 1; t <= 4; t++) {
        const g = randomF32(n, n * 10 + t, t === 3 ? 1e-3 : 1); // one step of small gradients
        for (const gi of g) gMax = Math.max(gMax, Math.abs(gi));
        const gbuf = e.upload(g, 'g');
        adamUpdate(e, { param: pb, grad: gbuf, m: mb, v: vb, n, step: t, hyper: h });
        e.release(gbuf);
        const before = Float64Array.from(p);
        adamStepF64(p, g, m, v, t, h);
        let dMax = 0;
        for (let i = 0; i < n; i++) dMax = Math.max(dMax, Math.abs(p[i]! - before[i]!));
        const gp = await e.readF32(pb, n);
        const gm = await e.readF32(mb, n);
        const gv = await e.readF32(vb, n);
        expect(
          worst(gp, p, (i) => t * 2 * (16 * U * dMax + 2 * U * Math.abs(p[i]!)) + 1e-30),
          `p after step ${t}`,
        ).toBeLessThanOrEqual(1);
        expect(
          worst(gm, m, (i) => t * 8 * U * (Math.abs(m[i]!) + gMax) + 1e-30),
          `m after step ${t}`,
        ).toBeLessThanOrEqual(1);
        expect(
          worst(gv, v, (i) => t * 8 * U * (Math.abs(v[i]!) + gMax * gMax) + 1e-30),
          `v after step ${t}`,
        ).toBeLessThanOrEqual(1);
      }
      e.release(pb, mb, vb);
    });
  }

  it('rejects a bad step count and bad hyper-parameters', async () => {
    const e = await getEngine();
    const [a, b, c, d] = [e.alloc(64, 'a'), e.alloc(64, 'b'), e.alloc(64, 'c'), e.alloc(64, 'd')];
    const h = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
    await expectError(() => adamUpdate(e, { param: a, grad: b, m: c, v: d, n: 4, step: 0, hyper: h }), 'SHAPE', /step/);
    await expectError(() => adamUpdate(e, { param: a, grad: b, m: c, v: d, n: 4, step: 1, hyper: { ...h, beta2: 1 } }), 'BAD_CONFIG', /beta2/);
    await expectError(() => adamUpdate(e, { param: a, grad: b, m: a, v: d, n: 4, step: 1, hyper: h }), 'SHAPE', /different/);
    e.release(a, b, c, d);
  });
});

describe('column sums (bias gradient)', () => {
  // Any summation order of R terms has |err| ≤ (R − 1) u Σ|x| (Higham); we allow 2 (R + 2) u Σ|x|.
  // 10,000 and 70,001 rows exceed one segment (1024 rows), so they take two levels; segmentRows 8
  // forces four levels on 3001 rows. Every invocation stays below llvmpipe's 65535-iteration cap.
  const cases: [number, number, number | undefined][] = [
    [1, 1, undefined],
    [64, 100, undefined],
    [10000, 10, undefined],
    [70001, 3, undefined],
    [3001, 7, 8],
  ];
  for (const [rows, d, seg] of cases) {
    it(`sums ${rows} rows x ${d} columns${seg ? ` in segments of ${seg}` : ''}`, async () => {
      const e = await getEngine();
      const x = randomF32(rows * d, rows + d, 1);
      for (let i = 0; i < x.length; i += 5) x[i]! += 0.75; // non-zero mean
      const xb = e.upload(x, 'x');
      const out = e.alloc(d * 4, 'out');
      columnSums(e, xb, rows, d, out, seg ? { segmentRows: seg } : {});
      const got = await e.readF32(out, d);
      e.release(xb, out);
      const ref = columnSumsF64(x, rows, d);
      const abs = new Float64Array(d);
      for (let i = 0; i < x.length; i++) abs[i % d]! += Math.abs(x[i]!);
      expect(worst(got, ref, (j) => 2 * (rows + 2) * U * abs[j]! + 1e-30)).toBeLessThanOrEqual(1);
    });
  }

  it('is bit-reproducible (fixed reduction order)', async () => {
    const e = await getEngine();
    const x = randomF32(5000 * 9, 77, 1);
    const xb = e.upload(x, 'x');
    const o1 = e.alloc(9 * 4, 'o1');
    const o2 = e.alloc(9 * 4, 'o2');
    columnSums(e, xb, 5000, 9, o1);
    columnSums(e, xb, 5000, 9, o2);
    const a = await e.readU32(o1, 9);
    const b = await e.readU32(o2, 9);
    e.release(xb, o1, o2);
    expect([...a]).toEqual([...b]);
  });
});

// ------------------------------------------------------------------------------ backward pass

function randomLayers(sizes: number[], activation: Activation, seed: number): TrainerLayerInit[] {
  const r = makeRng(seed);
  return sizes.slice(1).map((dOut, i) => {
    const dIn = sizes[i]!;
    const { W, b } = kaimingUniform(dIn, dOut, r);
    for (let k = 0; k < W.length; k++) W[k] = Math.fround(W[k]! * 2.5); // larger than init: non-trivial activations
    for (let k = 0; k < b.length; k++) b[k] = Math.fround(b[k]! * 2);
    return { dIn, dOut, W, b, activation: i === sizes.length - 2 ? 'identity' : activation };
  });
}

describe('backward pass of the whole MLP', () => {
  it('the f64 backprop reference agrees with central finite differences (gelu, gelu_tanh, identity)', () => {
    for (const act of ['gelu', 'gelu_tanh', 'identity'] as const) {
      const sizes = [6, 5, 4, 3];
      const layers: LayerF64[] = randomLayers(sizes, act, 3).map((l) => ({ ...l, W: Float64Array.from(l.W), b: Float64Array.from(l.b) }));
      const rows = 9;
      const x = Float64Array.from(randomF32(rows * 6, 4, 1));
      const y = labelsFor(rows, 3, 5);
      const bp = mlpBackpropF64(layers, x, y, rows);
      expect(bp.loss).toBeCloseTo(mlpLossF64(layers, x, y, rows), 14);
      const h = 1e-5;
      let maxErr = 0;
      let maxG = 0;
      for (let li = 0; li < layers.length; li++) {
        for (const [arr, grad] of [
          [layers[li]!.W, bp.gW[li]!],
          [layers[li]!.b, bp.gb[li]!],
        ] as [Float64Array, Float64Array][]) {
          for (let k = 0; k < arr.length; k++) {
            const v = arr[k]!;
            arr[k] = v + h;
            const lp = mlpLossF64(layers, x, y, rows);
            arr[k] = v - h;
            const lm = mlpLossF64(layers, x, y, rows);
            arr[k] = v;
            maxErr = Math.max(maxErr, Math.abs((lp - lm) / (2 * h) - grad[k]!));
            maxG = Math.max(maxG, Math.abs(grad[k]!));
          }
        }
      }
      // Central differences: truncation O(h²·|L'''|) ~ 1e-10, cancellation ~ 1e-16 / h ~ 1e-11.
      expect(maxG, act).toBeGreaterThan(1e-2);
      expect(maxErr, act).toBeLessThan(1e-8);
    }
  });

  // GPU vs f64 on the same f32 parameters and inputs. The forward products have k ≤ 13 terms
  // and the backward ones ≤ 37 (the batch), each with error ≤ k u Σ|terms|; through three layers
  // this stays below ~1e-5 relative to the layer's largest gradient (gelu adds its 1.5e-7 erf
  // error). We allow 1e-4 · max|g| + 1e-4 |g| per element; a wrong transpose, scale or missing
  // activation derivative is off by O(max|g|).
  for (const act of ACTIVATIONS) {
    it(`GPU gradients match the f64 backprop: 13-11-7-5 MLP, ${act}, 37 rows`, async () => {
      const e = await getEngine();
      const sizes = [13, 11, 7, 5];
      const init = randomLayers(sizes, act, 11);
      const rows = 37;
      const x = randomF32(rows * 13, 12, 1);
      const y = labelsFor(rows, 5, 13);
      const trainer = new MlpTrainer(e, init, { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
      try {
        const got = await trainer.gradients(x, y, rows);
        const ref = mlpBackpropF64(init, x, y, rows);
        expect(worst(got.rowLoss, ref.rowLoss, (r) => 1e-5 * (1 + Math.abs(ref.rowLoss[r]!)))).toBeLessThanOrEqual(1);
        for (let li = 0; li < init.length; li++) {
          for (const [g, r, what] of [
            [got.gW[li]!, ref.gW[li]!, 'W'],
            [got.gb[li]!, ref.gb[li]!, 'b'],
          ] as const) {
            let gmax = 0;
            for (const v of r) gmax = Math.max(gmax, Math.abs(v));
            expect(gmax, `layer ${li} ${what} gradient is not trivially zero`).toBeGreaterThan(1e-4);
            expect(
              worst(g, r, (k) => 1e-4 * (gmax + Math.abs(r[k]!))),
              `${act} layer ${li} d${what}`,
            ).toBeLessThanOrEqual(1);
          }
        }
      } finally {
        trainer.dispose();
      }
    });
  }

  it('one training step equals f64 backprop + Adam on the batch (relu, 20 rows)', async () => {
    // eps = 1e-3 keeps Adam's first step g/(|g| + eps) well-conditioned in g, so the step's
    // error is lr · δg / eps ≤ lr · 1e-3 (δg ≲ 1e-6 from the gradient check above).
    const e = await getEngine();
    const sizes = [9, 8, 4];
    const init = randomLayers(sizes, 'relu', 21);
    const hyper = { lr: 0.01, beta1: 0.9, beta2: 0.999, eps: 1e-3 };
    const rows = 20;
    const x = randomF32(rows * 9, 22, 1);
    const y = labelsFor(rows, 4, 23);
    const trainer = new MlpTrainer(e, init, hyper);
    const xb = e.upload(x, 'x');
    const yb = e.upload(y, 'y');
    const stats = e.alloc(2 * rows * 4, 'stats');
    try {
      trainer.step(xb, yb, rows, { buffer: stats, base: 0 });
      const after = await trainer.readParameters();
      const ref = mlpBackpropF64(init, x, y, rows);
      for (let li = 0; li < init.length; li++) {
        for (const [p0, g, got, what] of [
          [init[li]!.W, ref.gW[li]!, after[li]!.W, 'W'],
          [init[li]!.b, ref.gb[li]!, after[li]!.b, 'b'],
        ] as const) {
          const p = Float64Array.from(p0);
          adamStepF64(p, g, new Float64Array(p.length), new Float64Array(p.length), 1, hyper);
          let moved = 0;
          for (let k = 0; k < p.length; k++) moved = Math.max(moved, Math.abs(p[k]! - p0[k]!));
          expect(moved, `layer ${li} ${what} moved`).toBeGreaterThan(hyper.lr / 2);
          expect(
            worst(got, p, (k) => hyper.lr * 2e-3 + 4 * U * Math.abs(p[k]!)),
            `layer ${li} ${what}`,
          ).toBeLessThanOrEqual(1);
        }
      }
      const s = await e.readF32(stats, 2 * rows);
      for (let r = 0; r < rows; r++) expect(Math.abs(s[2 * r]! - ref.rowLoss[r]!)).toBeLessThan(1e-5 * (1 + ref.rowLoss[r]!));
    } finally {
      trainer.dispose();
      e.release(xb, yb, stats);
    }
  });
});

// ------------------------------------------------------------------------------------ training

/** Three Gaussian blobs in 8 dimensions: learnable, not trivially separable at initialisation. */
function blobs(n: number, seed: number): { x: Float32Array; labels: Uint8Array } {
  const r = rng(seed);
  const g = () => Math.sqrt(-2 * Math.log(Math.max(r(), 1e-300))) * Math.cos(2 * Math.PI * r());
  const centres = [0, 1, 2].map(() => Array.from({ length: 8 }, () => 1.5 * g()));
  const x = new Float32Array(n * 8);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(r() * 3);
    labels[i] = c;
    for (let j = 0; j < 8; j++) x[i * 8 + j] = centres[c]![j]! + 0.8 * g();
  }
  return { x, labels };
}

const BLOBS = blobs(300, 42);
const SMALL: TrainMlpOptions = {
  sizes: [8, 16, 3],
  activation: 'relu',
  seed: 7,
  epochs: 6,
  batchSize: 17,
  lr: 0.01,
  data: { x: BLOBS.x, labels: BLOBS.labels },
  trainCount: 240,
};

describe('trainMlp', () => {
  it('learns a small problem: the loss falls and held-out accuracy rises', async () => {
    const e = await getEngine();
    const res = await trainMlp(e, SMALL);
    expect(res.history).toHaveLength(6);
    expect(res.steps).toBe(6 * Math.ceil(240 / 17)); // includes the partial last batch
    const first = res.history[0]!;
    const last = res.history[5]!;
    expect(res.initial.testLoss).toBeGreaterThan(0.6);
    expect(last.trainLoss).toBeLessThan(0.5 * first.trainLoss);
    expect(last.testLoss!).toBeLessThan(0.5 * res.initial.testLoss!);
    expect(last.testAccuracy!).toBeGreaterThanOrEqual(0.9);
    expect(last.trainAccuracy).toBeGreaterThanOrEqual(0.9);
    expect(res.model.layers.map((l) => [l.name, l.dIn, l.dOut, l.activation])).toEqual([
      ['layers.0', 8, 16, 'relu'],
      ['layers.1', 16, 3, 'identity'],
    ]);
  });

  it('is deterministic: the same seed gives bit-identical weights and history, another seed does not', async () => {
    const e = await getEngine();
    const a = await trainMlp(e, SMALL);
    const b = await trainMlp(e, SMALL);
    const c = await trainMlp(e, { ...SMALL, seed: 8 });
    const bits = (r: typeof a) =>
      r.model.layers.flatMap((l) => [...new Uint32Array(l.W.buffer, l.W.byteOffset, l.W.length), ...new Uint32Array(l.b.buffer, l.b.byteOffset, l.b.length)]);
    expect(bits(a)).toEqual(bits(b));
    expect(a.history.map((h) => [h.trainLoss, h.testLoss])).toEqual(b.history.map((h) => [h.trainLoss, h.testLoss]));
    expect(bits(a)).not.toEqual(bits(c));
  });

  it('initialises like torch nn.Linear and shuffles with a seeded permutation', () => {
    const layers = initialLayers({ sizes: [784, 100, 10], activation: 'relu', seed: 3 });
    const bound = 1 / Math.sqrt(784);
    let maxAbs = 0;
    let sumSq = 0;
    for (const w of layers[0]!.W) {
      maxAbs = Math.max(maxAbs, Math.abs(w));
      sumSq += w * w;
    }
    expect(maxAbs).toBeLessThanOrEqual(bound);
    expect(maxAbs).toBeGreaterThan(0.99 * bound);
    expect(Math.sqrt(sumSq / layers[0]!.W.length)).toBeCloseTo(bound / Math.sqrt(3), 3); // std of U(−a, a)
    expect(layers[1]!.activation).toBe('identity');
    expect([...initialLayers({ sizes: [784, 100, 10], activation: 'relu', seed: 3 })[1]!.W]).toEqual([...layers[1]!.W]);
    const p = epochOrder(1, 0, 1000);
    expect([...p].sort((u, v) => u - v)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect([...epochOrder(1, 0, 1000)]).toEqual([...p]);
    expect([...epochOrder(1, 1, 1000)]).not.toEqual([...p]);
    expect([...permutation(5, makeRng(9, 4))]).toEqual([...permutation(5, makeRng(9, 4))]);
  });

  it('rejects inconsistent options and data with IbgpuErrors', async () => {
    const e = await getEngine();
    await expectError(() => trainMlp(e, { ...SMALL, sizes: [7, 16, 3] }), 'SHAPE', /sizes\[0\]|n × sizes/);
    await expectError(() => trainMlp(e, { ...SMALL, sizes: [8] }), 'BAD_CONFIG', /sizes/);
    await expectError(() => trainMlp(e, { ...SMALL, sizes: [8, 16, 2] }), 'BAD_CONFIG', /label 2 of row/);
    await expectError(() => trainMlp(e, { ...SMALL, lr: 0 }), 'BAD_CONFIG', /lr/);
    await expectError(() => trainMlp(e, { ...SMALL, epochs: 0 }), 'BAD_CONFIG', /epochs/);
    await expectError(() => trainMlp(e, { ...SMALL, batchSize: 241 }), 'BAD_CONFIG', /exceeds the 240 training rows/);
    await expectError(() => trainMlp(e, { ...SMALL, trainCount: 301 }), 'BAD_CONFIG', /trainCount/);
    await expectError(() => trainMlp(e, { ...SMALL, seed: -1 }), 'BAD_CONFIG', /seed/);
    await expectError(() => trainMlp(e, { ...SMALL, activation: 'tanh' as Activation }), 'BAD_CONFIG', /tanh/);
    const x = Float32Array.from(BLOBS.x);
    x[17] = NaN;
    await expectError(() => trainMlp(e, { ...SMALL, data: { x, labels: BLOBS.labels } }), 'NON_FINITE', /training inputs/);
  });
});

// --------------------------------------------------------------------------- files and the CLI

describe('written files and `ibgpu train-mlp`', () => {
  it("saveTrainedMlp output loads with the build command's loadModel, bit for bit", async () => {
    const e = await getEngine();
    const res = await trainMlp(e, { ...SMALL, epochs: 1 });
    const dir = await tempDir();
    const files = await saveTrainedMlp(dir, res, { data: 'blobs' });
    const config = parseConfig({ node_layers: ['layers.0', 'layers.1', 'output'], model: 'model.safetensors', arch: 'arch.json' });
    const model = await loadModel(config, dir);
    expect(model.layers.length).toBe(2);
    for (let i = 0; i < 2; i++) {
      const [a, b] = [model.layers[i]!, res.model.layers[i]!];
      expect([a.name, a.dIn, a.dOut, a.activation]).toEqual([b.name, b.dIn, b.dOut, b.activation]);
      expect(Buffer.from(a.W.buffer, a.W.byteOffset, a.W.byteLength).equals(Buffer.from(b.W.buffer, b.W.byteOffset, b.W.byteLength))).toBe(true);
      expect([...a.b]).toEqual([...b.b]);
    }
    const arch = JSON.parse(await readFile(files.arch, 'utf8'));
    expect(arch).toMatchObject({
      type: 'mlp',
      weight_layout: 'in_out',
      layers: [
        { name: 'layers.0', in: 8, out: 16, activation: 'relu', weight: 'layers.0.W', bias: 'layers.0.b' },
        { name: 'layers.1', activation: 'identity' },
      ],
    });
    const log = JSON.parse(await readFile(files.train, 'utf8'));
    expect(log.files['model.safetensors'].sha256).toBe(
      createHash('sha256')
        .update(await readFile(files.model))
        .digest('hex'),
    );
  });

  it('`train-mlp` trains on the MNIST digits, writes loadable files and matches trainMlp bit for bit', async () => {
    const e = await getEngine();
    const dir = join(await tempDir(), 'nested', 'out');
    const code = await trainCommand(
      { out: dir, sizes: '784,12,10', epochs: '2', batchSize: '25', lr: '0.005', seed: '5', trainCount: '300', quiet: true },
      { engine: e },
    );
    expect(code).toBe(0);
    const model = await loadModel(parseConfig({ node_layers: ['layers.0', 'layers.1', 'output'], model: 'model.safetensors', arch: 'arch.json' }), dir);
    const log = JSON.parse(await readFile(join(dir, 'train.json'), 'utf8'));
    expect(log.hyperparameters).toMatchObject({ sizes: [784, 12, 10], activation: 'relu', epochs: 2, batch_size: 25, lr: 0.005, seed: 5 });
    expect(log.split).toEqual({ rows: 10000, train_rows: [0, 300], test_rows: [300, 10000] });
    expect(log.epochs).toHaveLength(2);
    expect(log.final.test_accuracy).toBeGreaterThan(0.5); // 300 digits, 24 steps: far above chance (0.1)
    expect(log.adapter).toBe(e.adapterName);
    expect(log.ibgpu_version).toMatch(/^\d+\.\d+\.\d+/);
    expect(log.command).toContain('--train-count 300');
    const m = await loadMnistDigits();
    const res = await trainMlp(e, {
      sizes: [784, 12, 10],
      epochs: 2,
      batchSize: 25,
      lr: 0.005,
      seed: 5,
      trainCount: 300,
      data: { x: m.images, labels: m.labels },
    });
    for (let i = 0; i < 2; i++) {
      expect([...new Uint32Array(model.layers[i]!.W.buffer)]).toEqual([...new Uint32Array(res.model.layers[i]!.W.buffer)]);
      expect([...model.layers[i]!.b]).toEqual([...res.model.layers[i]!.b]);
    }
    expect(log.final.test_accuracy).toBe(res.history[1]!.testAccuracy);
  });

  it('bad arguments give BAD_CONFIG errors naming the flag, before any GPU work', async () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ sizes: '784,abc,10' }, /--sizes/],
      [{ sizes: '784' }, /--sizes.*at least/],
      [{ sizes: '100,10' }, /--sizes.*784/],
      [{ sizes: '784,100,5' }, /--sizes.*10/],
      [{ sizes: '784,0,10' }, /--sizes/],
      [{ epochs: '0' }, /--epochs/],
      [{ epochs: '1.5' }, /--epochs/],
      [{ batchSize: 'x' }, /--batch-size/],
      [{ batchSize: '0' }, /--batch-size/],
      [{ batchSize: '9000', trainCount: '8000' }, /--batch-size.*--train-count/],
      [{ lr: '-1' }, /--lr/],
      [{ lr: 'fast' }, /--lr/],
      [{ lr: '0' }, /--lr/],
      [{ seed: '-1' }, /--seed/],
      [{ seed: '4294967296' }, /--seed/],
      [{ activation: 'tanh' }, /--activation.*tanh/],
      [{ trainCount: '0' }, /--train-count/],
      [{ trainCount: '10001' }, /--train-count/],
      [{ out: ' ' }, /--out/],
    ];
    for (const [o, re] of bad) {
      await expectError(() => parseTrainArgs(o, 10000, 784), 'BAD_CONFIG', re);
      await expectError(() => trainCommand({ ...o, quiet: true }), 'BAD_CONFIG', re);
    }
    expect(parseTrainArgs({}, 10000, 784)).toMatchObject({
      sizes: [784, 100, 100, 10],
      activation: 'relu',
      trainCount: 8000,
      batchSize: 64,
      lr: 0.001,
      seed: 0,
    });
    // Through the command line: exit code 2 and the message on stderr.
    const errs: string[] = [];
    const orig = console.error;
    console.error = (...a: unknown[]) => void errs.push(a.join(' '));
    try {
      expect(await runCli(['node', 'ibgpu', 'train-mlp', '--epochs', 'many'])).toBe(2);
    } finally {
      console.error = orig;
    }
    expect(errs.join('\n')).toMatch(/--epochs "many"/);
  });
});
