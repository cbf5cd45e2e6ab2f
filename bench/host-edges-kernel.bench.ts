// The host squared-edge row kernel alone, JS (edges-squared.ts) against WebAssembly SIMD
// (edges-squared-wasm.ts), on one thread, at the shapes of rib's MNIST MLP sections
// (784-100-100-10, jacobian basis: r 96 / 96 / 11, ro 96 / 11 / identity 10). Gates are ReLU sign
// patterns of a correlated random pre-activation (a rank-24 product, so that the sign-pattern
// order finds neighbours as on real data), visited in sign-pattern order in runs of 1024 rows as
// the pass runs them. Per case: milliseconds per run (median), GFLOP/s counting 2 flops per
// rank-1 term and 3 per entry for the squared sum, the JS/wasm speed-up, and whether the two
// kernels' E agree bit for bit. For the wasm kernel also an upper bound on the share of a run its
// copies take (E in and out per run, f̂ per row): a run over the same rows with every gate 0, i.e.
// the copies plus the squared-sum sweep, without rank-1 terms. Interleaved JS/wasm repetitions, so that a busy host slows both alike. Prints only.
//   npx tsx bench/host-edges-kernel.bench.ts [--reps 7]

import { loadavg } from 'node:os';
import { accumulateSquaredEdges, jsRowKernel, type SquaredEdgeRowKernel, type SquaredEdgeSection } from '../src/host/edges-squared.js';
import { wasmRowKernel } from '../src/host/edges-squared-wasm.js';
import { signPatternOrder } from '../src/cpu/gate-order.js';

const reps = Number(process.argv[process.argv.indexOf('--reps') + 1]) || 7;

let seed = 12345;
function uniform(): number {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
}
function randn(n: number): Float64Array {
  return Float64Array.from({ length: n }, () => {
    const u = Math.max(uniform(), 1e-300);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * uniform());
  });
}

/** ReLU gates of rows × h from a rank-24 random pre-activation with a per-unit offset. */
function reluGates(rows: number, h: number): Float64Array {
  const k = 24;
  const Z = randn(rows * k);
  const W = randn(k * h);
  const off = randn(h);
  const g = new Float64Array(rows * h);
  for (let n = 0; n < rows; n++) {
    for (let o = 0; o < h; o++) {
      let p = 0.5 * off[o]!;
      for (let t = 0; t < k; t++) p += Z[n * k + t]! * W[t * h + o]!;
      g[n * h + o] = p > 0 ? 1 : 0;
    }
  }
  return g;
}

interface Case {
  label: string;
  sec: SquaredEdgeSection;
  rows: number;
}

const RUN = 1024;
const cases: Case[] = [
  { label: 'layers.0->layers.1 (h 100, ro 96, r 96)', sec: { h: 100, ro: 96, r: 96, A: randn(100 * 96), B: randn(100 * 96) }, rows: RUN },
  { label: 'layers.1->layers.2 (h 100, ro 11, r 96)', sec: { h: 100, ro: 11, r: 96, A: randn(100 * 11), B: randn(100 * 96) }, rows: RUN },
  { label: 'layers.2->output (h 10, identity, r 11)', sec: { h: 10, ro: 10, r: 11, A: undefined, B: randn(10 * 11) }, rows: RUN },
  { label: 'wide (h 256, ro 128, r 785)', sec: { h: 256, ro: 128, r: 785, A: randn(256 * 128), B: randn(256 * 785) }, rows: 64 },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

console.log(
  `host edge row kernel, one thread, ${reps} interleaved reps; load average ${loadavg()
    .map((v) => v.toFixed(2))
    .join(' ')}`,
);
for (const c of cases) {
  const { sec, rows } = c;
  const { h, ro, r } = sec;
  const gates = reluGates(rows, h);
  const fhat = randn(rows * r);
  const order = signPatternOrder(gates, rows, h);
  const none = new Float64Array(rows * h); // all gates 0: the copies and loops without arithmetic
  const js = jsRowKernel(sec);
  const wasm = wasmRowKernel(sec);
  if (!wasm) throw new Error('WebAssembly SIMD is not available here');
  const time = (k: SquaredEdgeRowKernel, E: Float64Array, g: Float64Array): { ms: number; updates: number } => {
    const t0 = performance.now();
    const updates = accumulateSquaredEdges(sec, E, k, fhat, g, order, 0, rows);
    return { ms: performance.now() - t0, updates };
  };
  const Ejs = new Float64Array(ro * r);
  const Ew = new Float64Array(ro * r);
  // Warm-up (tier-up of both kernels), then interleaved timed runs into fresh sums.
  time(js, Ejs, gates);
  time(wasm, Ew, gates);
  const tj: number[] = [];
  const tw: number[] = [];
  const tc: number[] = [];
  let updates = 0;
  for (let i = 0; i < reps; i++) {
    Ejs.fill(0);
    Ew.fill(0);
    tj.push(time(js, Ejs, gates).ms);
    const w = time(wasm, Ew, gates);
    tw.push(w.ms);
    updates = w.updates;
    tc.push(time(wasm, new Float64Array(ro * r), none).ms);
  }
  let same = true;
  for (let t = 0; t < Ejs.length; t++) same &&= Object.is(Ejs[t], Ew[t]);
  const flops = 2 * updates * (sec.A ? ro : 1) * r + 3 * rows * ro * r;
  const mj = median(tj);
  const mw = median(tw);
  console.log(
    `${c.label.padEnd(42)} ${(updates / rows).toFixed(1).padStart(5)} updates/row | JS ${mj.toFixed(2).padStart(7)} ms ${(flops / mj / 1e6).toFixed(2).padStart(6)} GFLOP/s | wasm ${mw.toFixed(2).padStart(7)} ms ${(flops / mw / 1e6).toFixed(2).padStart(6)} GFLOP/s | ${(mj / mw).toFixed(2)}x | copies+loops ${((100 * median(tc)) / mw).toFixed(1)} % of wasm | bit-identical ${same}`,
  );
}
console.log(
  `load average after: ${loadavg()
    .map((v) => v.toFixed(2))
    .join(' ')}`,
);
