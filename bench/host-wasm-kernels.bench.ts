// The host's WebAssembly SIMD kernels against the float64 JS references they reproduce bit for bit,
// at rib's MNIST MLP sizes (784-100-100-10, 10k digits): the eigensolver (n = 785, the input
// layer's stage-1 Gram), the input layer's sparse Gram, the statistics pass's forward pass, the
// hidden layers' dense Grams and the bases stage's products. Each pair runs interleaved (JS, wasm,
// JS, wasm, …) in one process; rows give the median wall and CPU milliseconds and the load average
// before the run, because this host is shared (compare only rows of one run). Every pair is also
// checked for identical bits. The rows are printed; --save also writes bench/results/.
//   npx tsx bench/host-wasm-kernels.bench.ts [--quick] [--save]

import os from 'node:os';
import { symEig } from '../src/cpu/eigh.js';
import { gramF64 } from '../src/cpu/gram.js';
import { matmulF64 } from '../src/cpu/matmul.js';
import { SparseGramF64 } from '../src/cpu/sparse-gram.js';
import { symEigHost } from '../src/host/eigh-wasm.js';
import { gramHost } from '../src/host/gram.js';
import { matmulHost } from '../src/host/matmul.js';
import { forwardRowsHost } from '../src/host/mlp-forward.js';
import { wasmForwardRows } from '../src/host/mlp-forward-wasm.js';
import { hostSparseGram } from '../src/host/sparse-gram.js';
import type { Activation } from '../src/model/activations.js';
import { mulberry32 } from '../src/util/mulberry32.js';
import { printRows, saveRecord, type BenchRow } from './common.js';

interface Pair {
  name: string;
  js: () => ArrayLike<number>;
  wasm: () => ArrayLike<number>;
}

function uniform(n: number, seed: number, scale = 1): Float64Array {
  const r = mulberry32(seed);
  return Float64Array.from({ length: n }, () => scale * (r() - 0.5));
}

function symmetric(n: number, seed: number): Float64Array {
  const a = uniform(n * n, seed);
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) a[i * n + j] = a[j * n + i]!;
  return a;
}

/** MNIST-like rows: ~19 % non-zero pixels k/255. */
function digits(rows: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: rows * 784 }, () => (r() < 0.19 ? Math.ceil(r() * 255) / 255 : 0));
}

function same(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

function pairs(quick: boolean): Pair[] {
  const N = quick ? 2000 : 10000;
  const x = digits(N, 1);
  const widths = [784, 100, 100, 10];
  const acts: Activation[] = ['relu', 'relu', 'identity'];
  const model = {
    layers: widths
      .slice(1)
      .map((dOut, i) => ({ dIn: widths[i]!, dOut, W: uniform(widths[i]! * dOut, 10 + i, 0.2), b: uniform(dOut, 20 + i, 0.2), activation: acts[i]! })),
  };
  const fw = wasmForwardRows(model);
  if (!fw) throw new Error('the WebAssembly kernels do not run here');
  const batches = (f: (s: number) => Float64Array[]): Float64Array => {
    const parts: Float64Array[] = [];
    for (let s = 0; s < N; s += 1000) parts.push(...f(s));
    const out = new Float64Array(parts.reduce((t, p) => t + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  };
  const hidden = forwardRowsHost(model, x, N, 1).acts[1]!;
  const n = 785;
  const a = symmetric(n, 2);
  const W = uniform(n * 101, 3);
  const X = uniform(101 * 101, 4);
  return [
    { name: `symEig n=${n} (values and vectors)`, js: () => symEig(a, n).vectors, wasm: () => symEigHost(a, n).vectors },
    {
      name: `input sparse Gram ${N}×784 (19 % non-zero)`,
      js: () => {
        const g = new SparseGramF64(784);
        g.add(x, N);
        return g.gram();
      },
      wasm: () => {
        const g = hostSparseGram(784);
        g.add(x, N);
        return g.gram();
      },
    },
    {
      name: `forward 784-100-100-10, ${N} rows in batches of 1000`,
      js: () => batches((s) => forwardRowsHost(model, x.subarray(s * 784, (s + 1000) * 784), 1000, 3).pres),
      // The forwarder reuses its buffers: copies, as a caller keeping several batches would take.
      wasm: () => batches((s) => fw(x.subarray(s * 784, (s + 1000) * 784), 1000, 3).pres.map((p) => p.slice())),
    },
    {
      name: `hidden dense Gram ${N}×100 in batches of 1000`,
      js: () => batches((s) => [gramF64(hidden.subarray(s * 100, (s + 1000) * 100), 1000, 100)]),
      wasm: () => batches((s) => [gramHost(hidden.subarray(s * 100, (s + 1000) * 100), 1000, 100)]),
    },
    {
      name: `products W̄XW̄ᵀ 785×101×101 then 785×785×101`,
      js: () => matmulF64(matmulF64(W, X, { m: n, n: 101, k: 101 }), W, { m: n, n, k: 101, transB: true }),
      wasm: () => matmulHost(matmulHost(W, X, { m: n, n: 101, k: 101 }), W, { m: n, n, k: 101, transB: true }),
    },
  ];
}

function timed(fn: () => ArrayLike<number>): { ms: number; cpuMs: number; out: ArrayLike<number> } {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const out = fn();
  const ms = performance.now() - t0;
  const c = process.cpuUsage(c0);
  return { ms, cpuMs: (c.user + c.system) / 1000, out };
}

const median = (v: number[]): number => [...v].sort((p, q) => p - q)[Math.floor((v.length - 1) / 2)]!;

export function runHostWasmKernelsBench(opts: { quick?: boolean; rounds?: number } = {}): BenchRow[] {
  const rounds = opts.rounds ?? (opts.quick ? 2 : 5);
  const rows: BenchRow[] = [];
  for (const p of pairs(opts.quick ?? false)) {
    const load = os.loadavg()[0]!.toFixed(2);
    const t = { js: [] as number[], wasm: [] as number[], jsCpu: [] as number[], wasmCpu: [] as number[] };
    let identical = true;
    for (let r = 0; r < rounds; r++) {
      const j = timed(p.js);
      const w = timed(p.wasm);
      identical &&= same(j.out, w.out);
      t.js.push(j.ms);
      t.jsCpu.push(j.cpuMs);
      t.wasm.push(w.ms);
      t.wasmCpu.push(w.cpuMs);
    }
    const js = median(t.js);
    const wasm = median(t.wasm);
    rows.push({ case: `${p.name}: JS reference`, ms: js, note: `cpu ${median(t.jsCpu).toFixed(1)} ms; load before ${load}` });
    rows.push({
      case: `${p.name}: WebAssembly`,
      ms: wasm,
      speedupVsCpu: js / wasm,
      note: `cpu ${median(t.wasmCpu).toFixed(1)} ms; ${identical ? 'identical bits' : 'BITS DIFFER'}; ${rounds} interleaved rounds`,
    });
  }
  return rows;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  const rows = runHostWasmKernelsBench({ quick });
  printRows('host WebAssembly kernels vs their JS references (x = JS time / wasm time)', rows);
  if (process.argv.includes('--save')) console.log(`saved ${saveRecord(quick ? 'host-wasm-kernels-quick' : 'host-wasm-kernels', undefined, rows)}`);
}
