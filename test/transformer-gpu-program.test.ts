// The GPU interpreter of SectionPrograms (src/transformer/gpu-program.ts) against the float64
// interpreter (src/cpu/program-f64.ts) on random programs using every op: forward outputs at an
// integration point α and VJPs for K random cotangents per sample.
//
// Tolerance: |gpu − f64| ≤ 1e-4 · (|ref| + mean|ref|) per element. The programs chain up to ~15
// f32 ops of O(width) terms each, inputs of order 1 (LayerNorm divides by σ ~ 1, softmax is
// bounded), so the accumulated f32 error is ~1e-6 relative; any wrong index, mask, broadcast or
// missing fan-out sum is an O(1) relative error.

import { describe, expect, it } from 'vitest';
import { forwardF64, vjpF64 } from '../src/cpu/program-f64.js';
import type { SectionProgram } from '../src/model/program.js';
import { GpuLinear } from '../src/transformer/gpu-linear.js';
import { GpuSectionProgram } from '../src/transformer/gpu-program.js';
import { expectClose as expectCloseTo } from './helpers/close.js';
import { useEngine } from './helpers/gpu.js';
import { randomF32 } from './helpers/random.js';
import { attentionProgram, mlpProgram } from './helpers/tf-programs.js';

const TOL = 1e-4;

function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, what: string, tol = TOL): void {
  expectCloseTo(got, ref, what, tol);
}

const cases: [string, SectionProgram][] = [
  ['attention P=4', attentionProgram(1, { P: 4 })],
  ['attention P=5 rotary window 2, last position', attentionProgram(2, { P: 5, rotary: true, window: 2, last: true })],
  ['attention P=1', attentionProgram(3, { P: 1, heads: 1, dHead: 2 })],
  ['mlp gelu P=3', mlpProgram(4, 3, 'gelu')],
  ['mlp relu P=1', mlpProgram(5, 1, 'relu', 13, 29)],
];

describe('GPU SectionProgram interpreter vs float64', () => {
  const getEngine = useEngine();
  it.each(cases)('%s: forward at α and K-block VJP', async (_name, prog) => {
    const engine = await getEngine();
    const B = 3;
    const K = 4;
    const alpha = 0.7;
    const ins = prog.inputs.map((id, j) => {
      const v = prog.values[id]!;
      const x = randomF32(B * v.positions * v.width, 100 + j);
      for (let r = 0; r < B * v.positions; r++) x[r * v.width + v.width - 1] = j === 0 ? 1 : 0; // 1-slot / 0-slot
      return x;
    });
    const gp = new GpuSectionProgram(engine, prog);
    const bufs = ins.map((x) => engine.upload(x));
    const st = gp.forward(bufs, B, { alpha });
    const ref = forwardF64(
      prog,
      ins.map((x) => Float64Array.from(x)),
      B,
      alpha,
    );
    const outs = gp.outputBuffers(st);
    for (const [j, id] of prog.outputs.entries()) {
      const v = prog.values[id]!;
      expectClose(await engine.readF32(outs[j]!, B * v.positions * v.width), ref[id]!, `output ${v.label}`);
    }
    const cots = prog.outputs.map((id, j) => {
      const v = prog.values[id]!;
      return randomF32(B * K * v.positions * v.width, 200 + j);
    });
    const cb = cots.map((c) => engine.upload(c));
    const grads = gp.vjp(st, cb, K);
    const gref = vjpF64(
      prog,
      ref,
      cots.map((c) => Float64Array.from(c)),
      B,
      K,
    );
    for (const [j, id] of prog.inputs.entries()) {
      const v = prog.values[id]!;
      // program-f64's VJP is d/d(α·f); the GPU's is the same (cotangent on the scaled inputs).
      expectClose(await engine.readF32(grads[j]!, B * K * v.positions * v.width), gref[j]!, `grad ${v.label}`);
    }
    // One cotangent block for all samples (shared): kept shared through sample-independent ops,
    // broadcast at the first sample-dependent one; must equal the per-sample VJP of its copies.
    const one = prog.outputs.map((id, j) => randomF32(K * prog.values[id]!.positions * prog.values[id]!.width, 300 + j));
    const ob = one.map((c) => engine.upload(c));
    for (const keepShared of [false, true]) {
      const sharedOut: boolean[] = [];
      const sg = gp.vjp(st, ob, K, { shared: true, keepShared, sharedOut });
      const rep = one.map((c) => {
        const r = new Float64Array(B * c.length);
        for (let b = 0; b < B; b++) r.set(c, b * c.length);
        return r;
      });
      const sref = vjpF64(prog, ref, rep, B, K);
      for (const [j, id] of prog.inputs.entries()) {
        const v = prog.values[id]!;
        const per = K * v.positions * v.width;
        const got = await engine.readF32(sg[j]!, (sharedOut[j] ? 1 : B) * per);
        expectClose(sharedOut[j] ? Array.from({ length: B * per }, (_, i) => got[i % per]!) : got, sref[j]!, `shared-cotangent grad ${v.label}`);
      }
      engine.release(...sg);
    }
    gp.releaseState(st);
    engine.release(...bufs, ...cb, ...ob, ...grads);
    gp.dispose();
  });

  it('a linear-only section keeps shared cotangents shared to its inputs', async () => {
    const engine = await getEngine();
    const W = Float64Array.from({ length: 5 * 3 }, (_, i) => Math.sin(i + 1));
    const prog: SectionProgram = {
      from: 'a',
      to: 'b',
      inputs: [0],
      outputs: [2],
      values: [
        { width: 5, positions: 2, label: 'x' },
        { width: 3, positions: 2, label: 'y' },
        { width: 3, positions: 1, label: 'last' },
      ],
      ops: [
        { kind: 'linear', x: 0, y: 1, W, wIn: 5, wOut: 3 },
        { kind: 'lastPos', x: 1, y: 2 },
      ],
    };
    const gp = new GpuSectionProgram(engine, prog);
    const x = engine.upload(randomF32(4 * 2 * 5, 9));
    const st = gp.forward([x], 4);
    const cot = engine.upload(Float32Array.of(1, 0, 0, 0, 1, 0)); // K = 2 unit cotangents
    const sharedOut: boolean[] = [];
    const [g] = gp.vjp(st, [cot], 2, { shared: true, keepShared: true, sharedOut });
    expect(sharedOut).toEqual([true]);
    const got = await engine.readF32(g!, 2 * 2 * 5);
    const want = new Float64Array(20);
    for (let k = 0; k < 2; k++) for (let c = 0; c < 5; c++) want[(k * 2 + 1) * 5 + c] = W[c * 3 + k]!; // only the last position
    expectClose(got, want, 'shared gradient');
    gp.releaseState(st);
    engine.release(x, cot, g);
    gp.dispose();
  });

  it.each([
    [133, 129],
    [129, 261],
    [7, 130],
    [128, 128],
  ])('linear %i → %i with column-tile tails split off: forward and VJP, written and accumulated', async (wIn, wOut) => {
    const engine = await getEngine();
    const rows = 37;
    const W = Float64Array.from(randomF32(wIn * wOut, 401));
    const x = randomF32(rows * wIn, 402);
    const dy = randomF32(rows * wOut, 403);
    const prior = randomF32(rows * Math.max(wIn, wOut), 404);
    const lin = new GpuLinear(engine, W, wIn, wOut, 'W');
    const [bx, bdy] = [engine.upload(x), engine.upload(dy)];
    const y = engine.upload(prior.subarray(0, rows * wOut));
    const dx = engine.upload(prior.subarray(0, rows * wIn));
    lin.forward(bx, y, rows, true);
    lin.vjp(bdy, dx, rows, true);
    const yRef = new Float64Array(rows * wOut);
    const dxRef = new Float64Array(rows * wIn);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < wOut; c++) {
        let acc = prior[r * wOut + c]!;
        for (let k = 0; k < wIn; k++) acc += x[r * wIn + k]! * W[k * wOut + c]!;
        yRef[r * wOut + c] = acc;
      }
      for (let c = 0; c < wIn; c++) {
        let acc = prior[r * wIn + c]!;
        for (let k = 0; k < wOut; k++) acc += dy[r * wOut + k]! * W[c * wOut + k]!;
        dxRef[r * wIn + c] = acc;
      }
    }
    // One f32 dot product of length ≤ 261 per entry plus one add: ≤ 1e-5 of the entry scale.
    expectClose(await engine.readF32(y, rows * wOut), yRef, 'forward', 1e-5);
    expectClose(await engine.readF32(dx, rows * wIn), dxRef, 'VJP', 1e-5);
    const y2 = engine.alloc(rows * wOut * 4);
    lin.forward(bx, y2, rows);
    const fresh = await engine.readF32(y2, rows * wOut);
    expectClose(
      fresh,
      yRef.map((v, i) => v - prior[i]!),
      'forward, written',
      1e-5,
    );
    lin.dispose();
    engine.release(bx, bdy, y, dx, y2);
  });
});
