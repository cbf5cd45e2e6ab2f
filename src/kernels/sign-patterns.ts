// Sign-pattern hashing (SPEC §6.5 (c) synchronised nonlinearities, §10.3 co-firing matrix).
//
// For every neuron a of a layer, its firing pattern over the datapoints n = 0 .. N−1 is the bit
// vector s_a(n) = [pre[n, a] > 0]. SignPatternAccumulator streams row batches of
// pre-activations (rows × d, datapoint-major, f32 on the GPU) and per row window records
//   1. sign_pack (or sign_pack_atomic): the window's bits packed into u32 words, word-major
//      (nw × d), continuing the partial last word of the previous window (`carry`), so batches
//      may have any row count;
//   2. sign_hash: each neuron's two 32-bit hash chains advance over its newly completed words
//      (MurmurHash3 block step / xxHash32 round, different seeds), its firing count grows, and
//      its partial last word is saved to `carry`;
//   3. cofire_reg (unless cofire: false): A_ab += Σ_w popcount(B_a[w] & B_b[w]) for a ≤ b, a
//      tiled kernel over the upper triangle of neuron-pair tiles, into a resident u32 buffer.
// result() mixes in the pending partial word and finalises the hashes with N (sign_hash_final),
// reads everything back and returns exact integer counts in float64.
//
// Exactness: the counts are u32 on the GPU and drained into Float64Array on the host before
// 2^32 datapoints can accumulate (a drain = readback + clear; at result() and whenever the rows
// since the last drain would pass `maxRowsPerReadback`). The hash is a function of the packed
// words of the whole stream (order-dependent, deterministic, independent of the batch cuts) and
// is bit-identical to hashPatternsCpu in src/cpu/sign-patterns.ts.
//
// Packing variants: 'loop' (one invocation per (neuron, word) looping over 32 datapoints; no
// barriers or atomics) is chosen on software adapters, where barriers are expensive; 'ballot'
// (subgroup ballots, one atomic per ballot segment) on hardware adapters with the `subgroups`
// feature; 'atomic' (workgroup atomics, one invocation per bit) on hardware adapters without it.
// 'loop' and 'atomic' are tested on llvmpipe (hash-only 60000×1024 there: loop 55 ms, atomic
// 499 ms), all three on SwiftShader Vulkan, which has subgroups (test/sign-patterns.test.ts);
// the choice for hardware GPUs has not been measured.
//
// llvmpipe caps each invocation at 65535 loop iterations: sign_hash runs nw iterations and
// cofire_reg (nw per dispatch) iterations of a loop whose inner loop has a constant trip count;
// windows are capped so that nw * (RI + 2) stays below engine.loopBudget (test/sign-patterns
// checks 60000-, 200000- and 2.2M-row batches against the CPU reference).

import { checkFinite, checkShape, IbgpuError } from '../errors.js';
import { signPatternsCpu, SIGN_HASH_SEED1, SIGN_HASH_SEED2, type SignPatternResult } from '../cpu/sign-patterns.js';
import type { BufferScope } from '../runtime/buffer-scope.js';
import type { Engine } from '../runtime/engine.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { rowWindows, type RowWindow } from './gram.js';
import type { SelfCheckResult } from './self-check.js';
import { packParams } from '../runtime/params.js';
import { mulberry32 } from '../util/mulberry32.js';
import { shaderKernel } from './shader-kernel.js';

export type { SignPatternResult } from '../cpu/sign-patterns.js';

export interface PatternGroups {
  /** Groups (size >= 2) of live neurons with identical patterns, each sorted, by first member. */
  groups: number[][];
  /** Neurons that never fire. */
  dead: number[];
  /** Neurons that fire on every datapoint (n > 0). */
  alwaysOn: number[];
  /** Pairs with equal 64-bit hash whose patterns differ (expected 0). */
  hashCollisions: number;
}

/**
 * 'loop': per-word loop, barrier-free (CPU adapters). 'atomic': workgroup atomics (GPUs).
 * 'ballot': subgroup ballots (GPUs with the `subgroups` feature).
 */
export type SignPackVariant = 'loop' | 'atomic' | 'ballot';

export interface SignPatternOptions {
  /** Keep the packed words and return them in result().words (host memory d × N/32 × 4 B). */
  keepWords?: boolean;
  /** Accumulate the co-firing matrix (default true); needs d*d*4 bytes within one binding. */
  cofire?: boolean;
  /** Packing kernel; default chooseSignPackVariant(engine). */
  variant?: SignPackVariant;
  /** Upper bound on rows per window (tests use it to force many windows). */
  windowRows?: number;
  /** Drain the u32 counts after at most this many rows (default 2^32 − 1; tests lower it). */
  maxRowsPerReadback?: number;
  /** Words per cofire_reg dispatch (default: a cache-sized block on software adapters). */
  cofireBlockWords?: number;
}

export const signPackKernel = shaderKernel('sign_pack', { WG: 64 });

export const signPackAtomicKernel = shaderKernel('sign_pack_atomic');

export const signPackBallotKernel = shaderKernel('sign_pack_ballot');

export const signHashKernel = shaderKernel('sign_hash', { WG: 64 });

export const signHashFinalKernel = shaderKernel('sign_hash_final', { WG: 64 });

export const cofireRegKernel = shaderKernel('cofire_reg', { WG: 8 });

const PACK_WG = 64;
const PACK_ATOMIC_NX = 8;
const HASH_WG = 64;
/** Output rows per cofire_reg workgroup (RI in the shader). */
const COFIRE_RI = 16;
/**
 * Loop iterations per packed word that one cofire_reg invocation may spend, counted
 * conservatively: one for the word loop, RI for its inner loop (a constant trip count, which
 * llvmpipe unrolls in practice, measured: such inner loops do not count), one spare. sign_hash
 * spends one per word, so this bound covers it too.
 */
export const COFIRE_LOOP_ITERATIONS_PER_WORD = COFIRE_RI + 2;
/** Rows of pre-activations uploaded per chunk by addHost. */
const HOST_CHUNK_BYTES = 64 * 2 ** 20;
const U32_MAX = 2 ** 32 - 1;

export function chooseSignPackVariant(engine: Pick<Engine, 'info' | 'features'>): SignPackVariant {
  if (engine.info.isSoftware) return 'loop';
  return engine.features.has('subgroups') ? 'ballot' : 'atomic';
}

/** cofire_reg invocations per workgroup (tile T = 4 * WG columns). */
function cofireWorkgroup(d: number): number {
  return d <= 512 ? 8 : 16;
}

/**
 * Most words one window may have: the pack dispatch has nw workgroups in y, and sign_hash /
 * cofire_reg loop nw times per invocation (cofire's inner loop of RI is counted as well, in case
 * the compiler does not unroll it).
 */
export function maxWindowWords(engine: Engine): number {
  const cap = engine.limits.maxComputeWorkgroupsPerDimension;
  const budget = engine.loopBudget;
  const byBudget = Number.isFinite(budget) ? Math.floor((budget - 64) / COFIRE_LOOP_ITERATIONS_PER_WORD) : Infinity;
  return Math.min(cap, byBudget);
}

/**
 * Words per cofire_reg dispatch. On CPU adapters every workgroup streams all words of its
 * dispatch, so blocks of about 1 MiB of words stay in the CPU caches while all workgroups pass
 * over them. GPUs take the whole window.
 */
export function cofireBlockWords(engine: Engine, d: number): number {
  if (!engine.info.isSoftware) return Infinity;
  return Math.max(32, Math.floor(2 ** 20 / (4 * d)));
}

function firstMaskFor(offset: number): number {
  return offset === 0 ? 0xffffffff : ~((1 << offset) - 1) >>> 0;
}

/**
 * Streams batches of pre-activations into firing-pattern hashes, firing counts, the co-firing
 * matrix and (optionally) the packed words. addBatch only records GPU work; result() reads back.
 */
export class SignPatternAccumulator {
  readonly d: number;
  readonly keepWords: boolean;
  readonly cofireEnabled: boolean;
  readonly variant: SignPackVariant;
  private readonly engine: Engine;
  private readonly buffers: BufferScope; // carry, state and the resident co-firing counts, released by dispose()
  private readonly windowRows: number;
  private readonly maxRowsPerReadback: number;
  private readonly blockWords: number;
  private readonly carry: GPUBuffer;
  private readonly state: GPUBuffer; // [h1 (d) | h2 (d) | count (d)] u32
  private readonly resident: GPUBuffer | undefined; // d×d u32, upper triangle used
  private readonly countSum: Float64Array;
  private readonly cofireSum: Float64Array | undefined; // upper triangle used
  private wordStore: Uint32Array; // word-major (W × d), host side, keepWords only
  private wordChain: Promise<void> = Promise.resolve();
  private pending: Promise<void>[] = [];
  private seen = 0;
  private sinceDrain = 0;
  private disposed = false;

  constructor(engine: Engine, d: number, opts: SignPatternOptions = {}) {
    checkShape(Number.isInteger(d) && d >= 1, `SignPatternAccumulator: d must be a positive integer, got ${d}`);
    this.engine = engine;
    this.buffers = engine.scope();
    this.d = d;
    this.keepWords = opts.keepWords ?? false;
    this.cofireEnabled = opts.cofire ?? true;
    this.variant = opts.variant ?? chooseSignPackVariant(engine);
    checkShape(
      ['loop', 'atomic', 'ballot'].includes(this.variant),
      `SignPatternAccumulator: unknown variant '${String(this.variant)}'`,
      "use 'loop', 'atomic' or 'ballot'",
    );
    if (this.variant === 'ballot' && !engine.features.has('subgroups')) {
      throw new IbgpuError(
        'LIMIT_EXCEEDED',
        `SignPatternAccumulator: the 'ballot' variant needs the adapter feature 'subgroups', which ${engine.adapterName} does not have`,
        "use variant 'atomic' or 'loop' (or leave it to chooseSignPackVariant)",
      );
    }
    const maxD = PACK_ATOMIC_NX * engine.limits.maxComputeWorkgroupsPerDimension;
    if (d > maxD) {
      throw new IbgpuError(
        'LIMIT_EXCEEDED',
        `SignPatternAccumulator: d = ${d} neurons exceed the ${maxD} that one dispatch row of workgroups covers`,
        'split the layer into neuron blocks',
      );
    }
    const bytes = d * d * 4;
    if (this.cofireEnabled && bytes > engine.maxBindingBytes) {
      throw new IbgpuError(
        'LIMIT_EXCEEDED',
        `SignPatternAccumulator: a ${d}×${d} u32 co-firing matrix (${bytes} bytes) exceeds the adapter's storage binding limit (${engine.maxBindingBytes} bytes)`,
        `pass { cofire: false } (hashes and firing counts only), or use a layer narrower than ${Math.floor(Math.sqrt(engine.maxBindingBytes / 4))}`,
      );
    }
    const wr = opts.windowRows ?? Infinity;
    checkShape(wr >= 1, `SignPatternAccumulator: windowRows must be >= 1, got ${wr}`);
    this.windowRows = Math.min(Math.floor(wr), 32 * (maxWindowWords(engine) - 1));
    const mr = opts.maxRowsPerReadback ?? U32_MAX;
    checkShape(mr >= 1 && mr <= U32_MAX, `SignPatternAccumulator: maxRowsPerReadback must be in 1 ..= 2^32−1, got ${mr}`);
    this.maxRowsPerReadback = Math.floor(mr);
    const bw = opts.cofireBlockWords ?? cofireBlockWords(engine, d);
    checkShape(bw >= 1, `SignPatternAccumulator: cofireBlockWords must be >= 1, got ${bw}`);
    this.blockWords = bw;

    this.carry = this.buffers.alloc(d * 4, 'sign.carry');
    engine.clear(this.carry, 0, d * 4);
    const init = new Uint32Array(3 * d);
    init.fill(SIGN_HASH_SEED1, 0, d);
    init.fill(SIGN_HASH_SEED2, d, 2 * d);
    this.state = this.buffers.upload(init, 'sign.state');
    this.countSum = new Float64Array(d);
    if (this.cofireEnabled) {
      this.resident = this.buffers.alloc(bytes, 'sign.cofire');
      engine.clear(this.resident, 0, bytes);
      this.cofireSum = new Float64Array(d * d);
    }
    this.wordStore = new Uint32Array(0);
  }

  /** Datapoints added so far. */
  get rows(): number {
    return this.seen;
  }

  /**
   * Adds rows [rowOffset, rowOffset + rows) of `pre`, a row-major rows×d f32 buffer on the GPU
   * (datapoint-major). Records work into the engine's pending encoder (with keepWords, or when
   * the counts are drained, a readback is started and the encoder is submitted).
   */
  addBatch(pre: GPUBuffer, rows: number, rowOffset = 0): void {
    this.assertLive();
    const d = this.d;
    checkShape(Number.isInteger(rows) && rows >= 0, `SignPatternAccumulator.addBatch: rows must be a non-negative integer, got ${rows}`);
    checkShape(Number.isInteger(rowOffset) && rowOffset >= 0, `SignPatternAccumulator.addBatch: rowOffset must be a non-negative integer, got ${rowOffset}`);
    const need = (rowOffset + rows) * d * 4;
    checkShape(
      pre.size >= need,
      `SignPatternAccumulator.addBatch: buffer '${pre.label}' holds ${pre.size} bytes, but rows ${rowOffset}..${rowOffset + rows} of width d=${d} need ${need}`,
      'pass the row count of this batch and the layer width the accumulator was created with',
    );
    if (rows === 0) return;
    for (const w of rowWindows(this.engine, pre, d, rows, rowOffset, this.windowRows)) this.recordWindow(w);
  }

  /**
   * Checks (rows×d, finite), uploads and adds a host batch. Float64 input is reduced to its sign
   * (1 where > 0, else 0) before the f32 upload, so that no tiny positive value rounds to 0.
   */
  addHost(pre: Float32Array | Float64Array, rows: number): void {
    this.assertLive();
    const d = this.d;
    checkShape(Number.isInteger(rows) && rows >= 0, `SignPatternAccumulator.addHost: rows must be a non-negative integer, got ${rows}`);
    checkShape(
      pre.length === rows * d,
      `SignPatternAccumulator.addHost: pre has ${pre.length} values, expected rows*d = ${rows}*${d} = ${rows * d}`,
      "pass a row-major rows×d array of this accumulator's width",
    );
    checkFinite('SignPatternAccumulator.addHost pre', pre, [rows, d]);
    const chunk = Math.max(1, Math.floor(HOST_CHUNK_BYTES / (4 * d)));
    for (let r = 0; r < rows; r += chunk) {
      const nr = Math.min(chunk, rows - r);
      const part = pre.subarray(r * d, (r + nr) * d);
      const f32 = part instanceof Float32Array ? part : Float32Array.from(part, (v) => (v > 0 ? 1 : 0));
      this.engine.withScope((s) => this.addBatch(s.upload(f32, 'sign.host-batch'), nr));
    }
  }

  private recordWindow(win: RowWindow): void {
    const e = this.engine;
    const d = this.d;
    if (this.sinceDrain + win.rows > this.maxRowsPerReadback) this.drain();
    const o = this.seen % 32;
    const nw = ceilDiv(o + win.rows, 32);
    const complete = Math.floor((o + win.rows) / 32);
    const firstMask = firstMaskFor(o);
    const packedBytes = nw * d * 4;
    // The packed words live until this window's work is recorded (and its readback started).
    const scope = e.scope();
    try {
      const packed = scope.alloc(packedBytes, 'sign.packed');
      const packedWin = { buffer: packed, size: packedBytes };
      const carry = { buffer: this.carry, size: d * 4 };
      const state = { buffer: this.state, size: 3 * d * 4 };

      const perWorkgroup = this.variant === 'loop' ? PACK_WG : PACK_ATOMIC_NX; // ballot: NY = NX = 8 neurons
      const packKernel = this.variant === 'ballot' ? signPackBallotKernel : this.variant === 'atomic' ? signPackAtomicKernel : signPackKernel;
      e.dispatch(packKernel, {
        bindings: {
          pre: { buffer: win.buffer, offset: win.offset, size: win.size },
          carry,
          packed: packedWin,
          params: packParams(packKernel, { rows: win.rows, d, base: win.base, offset: o, nw }),
        },
        workgroups: [ceilDiv(d, perWorkgroup), nw],
      });
      e.dispatch(signHashKernel, {
        bindings: { packed: packedWin, state, carry, params: packParams(signHashKernel, { d, nw, complete, first_mask: firstMask }) },
        workgroups: ceilDiv(d, HASH_WG),
      });
      if (this.resident) {
        const wg = cofireWorkgroup(d);
        const ntiles = ceilDiv(d, 4 * wg);
        const npairs = (ntiles * (ntiles + 1)) / 2;
        const groups = npairs * ((4 * wg) / COFIRE_RI);
        const out = { buffer: this.resident, size: d * d * 4 };
        for (let w0 = 0; w0 < nw; w0 += this.blockWords) {
          const w1 = Math.min(nw, w0 + this.blockWords);
          e.dispatch(cofireRegKernel, {
            bindings: {
              words: packedWin,
              out,
              params: packParams(cofireRegKernel, { w0, w1, d, ntiles, npairs, first_mask: w0 === 0 ? firstMask : 0xffffffff }),
            },
            workgroups: groups,
            overrides: { WG: wg },
          });
        }
      }
      if (this.keepWords) {
        const W0 = Math.floor(this.seen / 32);
        const read = e.readU32(packed, nw * d);
        // Stored in stream order: the first word of a window completes the previous window's last.
        const stored = this.wordChain.then(() => read).then((chunk) => this.storeWords(W0, chunk));
        this.wordChain = stored.catch(() => undefined);
        this.track(stored);
      }
    } finally {
      scope.close();
    }
    this.seen += win.rows;
    this.sinceDrain += win.rows;
  }

  private storeWords(W0: number, chunk: Uint32Array): void {
    const need = W0 * this.d + chunk.length;
    if (need > this.wordStore.length) {
      const grown = new Uint32Array(Math.max(need, 2 * this.wordStore.length));
      grown.set(this.wordStore);
      this.wordStore = grown;
    }
    this.wordStore.set(chunk, W0 * this.d);
  }

  private track(p: Promise<void>): void {
    p.catch(() => undefined); // surfaced by result(); avoids an unhandled rejection meanwhile
    this.pending.push(p);
  }

  /** Reads the u32 counts back into the float64 sums and zeroes them on the GPU. */
  private drain(): void {
    if (this.sinceDrain === 0) return;
    const e = this.engine;
    const d = this.d;
    const counts = e.readU32(this.state, d, 2 * d);
    e.clear(this.state, 8 * d, 4 * d);
    const parts: Promise<void>[] = [
      counts.then((c) => {
        for (let a = 0; a < d; a++) this.countSum[a]! += c[a]!;
      }),
    ];
    if (this.resident) {
      const m = e.readU32(this.resident, d * d);
      e.clear(this.resident, 0, d * d * 4);
      parts.push(
        m.then((c) => {
          const s = this.cofireSum!;
          for (let i = 0; i < d; i++) {
            for (let k = i * d + i; k < (i + 1) * d; k++) s[k]! += c[k]!;
          }
        }),
      );
    }
    this.sinceDrain = 0;
    this.track(Promise.all(parts).then(() => undefined));
  }

  /** Everything accumulated so far. The stream may go on afterwards. */
  async result(): Promise<SignPatternResult> {
    this.assertLive();
    const e = this.engine;
    const d = this.d;
    const n = this.seen;
    this.drain();
    const scope = e.scope();
    let hashes: Promise<Uint32Array>;
    try {
      const out = scope.alloc(2 * d * 4, 'sign.hash');
      e.dispatch(signHashFinalKernel, {
        bindings: {
          state: { buffer: this.state, size: 3 * d * 4 },
          carry: { buffer: this.carry, size: d * 4 },
          out: { buffer: out, size: 2 * d * 4 },
          params: packParams(signHashFinalKernel, { d, partial: n % 32 === 0 ? 0 : 1, n_lo: n >>> 0, n_hi: Math.floor(n / 2 ** 32) >>> 0 }),
        },
        workgroups: ceilDiv(d, HASH_WG),
      });
      hashes = e.readU32(out, 2 * d); // the copy is submitted here: `out` may be recycled at once
    } finally {
      scope.close();
    }
    const pending = this.pending;
    this.pending = [];
    const [h] = await Promise.all([hashes, ...pending]);
    const res: SignPatternResult = {
      n,
      d,
      hashLo: h.slice(0, d),
      hashHi: h.slice(d, 2 * d),
      fireCount: Float64Array.from(this.countSum),
      cofire: new Float64Array(0),
    };
    if (this.cofireSum) {
      const s = this.cofireSum;
      const A = new Float64Array(d * d);
      for (let i = 0; i < d; i++) {
        for (let j = i; j < d; j++) {
          const v = s[i * d + j]!;
          A[i * d + j] = v;
          A[j * d + i] = v;
        }
      }
      res.cofire = A;
    }
    if (this.keepWords) {
      const W = Math.ceil(n / 32);
      const words = new Uint32Array(d * W);
      const st = this.wordStore;
      for (let w = 0; w < W; w++) {
        const o = w * d;
        for (let a = 0; a < d; a++) words[a * W + w] = st[o + a]!;
      }
      res.words = words;
    }
    return res;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pending = [];
    this.buffers.close();
  }

  private assertLive(): void {
    if (this.disposed) throw new IbgpuError('DISPOSED', 'SignPatternAccumulator was disposed', 'create a new accumulator');
  }
}

// ------------------------------------------------------------------------------- grouping

function checkResult(fn: string, r: SignPatternResult): void {
  const { n, d } = r;
  checkShape(Number.isInteger(d) && d >= 1, `${fn}: d must be a positive integer, got ${d}`);
  checkShape(Number.isInteger(n) && n >= 0, `${fn}: n must be a non-negative integer, got ${n}`);
  checkShape(r.hashLo.length === d && r.hashHi.length === d, `${fn}: hashLo/hashHi have lengths ${r.hashLo.length}/${r.hashHi.length}, expected d = ${d}`);
  checkShape(r.fireCount.length === d, `${fn}: fireCount has length ${r.fireCount.length}, expected d = ${d}`);
  checkShape(
    r.cofire.length === d * d || r.cofire.length === 0,
    `${fn}: cofire has length ${r.cofire.length}, expected d*d = ${d * d} (or 0 when not accumulated)`,
  );
  if (r.words) {
    const W = Math.ceil(n / 32);
    checkShape(r.words.length === d * W, `${fn}: words has length ${r.words.length}, expected d*ceil(n/32) = ${d}*${W} = ${d * W}`);
  }
}

/**
 * Groups neurons with identical firing patterns. Candidates are neurons with equal 64-bit hash
 * (hashHi, hashLo); each candidate pair is confirmed exactly, by comparing the packed words when
 * the result has them, otherwise by the co-firing counts (a and b are identical iff
 * fireCount[a] = fireCount[b] = cofire[a, b]). Dead (never firing) and always-on neurons are
 * reported separately and left out of `groups`. With n = 0 every neuron is dead.
 */
export function groupPatterns(r: SignPatternResult): PatternGroups {
  checkResult('groupPatterns', r);
  const { d, n, fireCount: fc } = r;
  let same: (a: number, b: number) => boolean;
  if (r.words) {
    const W = Math.ceil(n / 32);
    const words = r.words;
    same = (a, b) => {
      for (let w = 0; w < W; w++) if (words[a * W + w] !== words[b * W + w]) return false;
      return true;
    };
  } else if (r.cofire.length === d * d) {
    const A = r.cofire;
    same = (a, b) => fc[a] === fc[b] && A[a * d + b] === fc[a];
  } else {
    throw new IbgpuError(
      'BAD_CONFIG',
      'groupPatterns: the result has neither packed words nor a co-firing matrix, so equal hashes cannot be confirmed exactly',
      'create the SignPatternAccumulator with keepWords: true or cofire: true (the default)',
    );
  }
  const dead: number[] = [];
  const alwaysOn: number[] = [];
  for (let a = 0; a < d; a++) {
    if (fc[a] === 0) dead.push(a);
    else if (fc[a] === n) alwaysOn.push(a);
  }
  const order = Array.from({ length: d }, (_, a) => a);
  const hi = r.hashHi;
  const lo = r.hashLo;
  order.sort((a, b) => hi[a]! - hi[b]! || lo[a]! - lo[b]! || a - b);
  const groups: number[][] = [];
  let hashCollisions = 0;
  for (let s = 0; s < d;) {
    let e = s + 1;
    while (e < d && hi[order[e]!] === hi[order[s]!] && lo[order[e]!] === lo[order[s]!]) e++;
    if (e - s >= 2) {
      const classes: number[][] = [];
      for (let k = s; k < e; k++) {
        const a = order[k]!;
        const cls = classes.find((c) => same(c[0]!, a));
        if (cls) cls.push(a);
        else classes.push([a]);
      }
      const m = e - s;
      hashCollisions += (m * (m - 1)) / 2 - classes.reduce((t, c) => t + (c.length * (c.length - 1)) / 2, 0);
      for (const c of classes) {
        const f = fc[c[0]!]!;
        if (c.length >= 2 && f !== 0 && f !== n) groups.push(c.sort((x, y) => x - y));
      }
    }
    s = e;
  }
  groups.sort((x, y) => x[0]! - y[0]!);
  return { groups, dead, alwaysOn, hashCollisions };
}

/** Hamming distance between the patterns of a and b: fireCount[a] + fireCount[b] − 2 cofire[a, b]. */
export function hammingFromCofire(r: SignPatternResult, a: number, b: number): number {
  const d = r.d;
  checkShape(
    r.cofire.length === d * d,
    `hammingFromCofire: the result has no co-firing matrix (length ${r.cofire.length}, expected ${d * d})`,
    'create the SignPatternAccumulator with cofire: true (the default)',
  );
  for (const [name, v] of [
    ['a', a],
    ['b', b],
  ] as const) {
    checkShape(Number.isInteger(v) && v >= 0 && v < d, `hammingFromCofire: neuron ${name} = ${v} is not in 0 .. ${d - 1}`);
  }
  return r.fireCount[a]! + r.fireCount[b]! - 2 * r.cofire[a * d + b]!;
}

// ------------------------------------------------------------------------------- self-check

/** The first index where two arrays differ, or −1. */
function firstDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) return Math.min(x.length, y.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i;
  return -1;
}

/**
 * 150 datapoints × 37 neurons in batches of 61 and 89 rows (bit offsets that are not multiples
 * of 32), with planted patterns: a group of three (copies at different positive scales), a dead
 * and an always-on neuron, and a pair at Hamming distance 1. Everything is compared exactly
 * with the CPU reference, and the planted group must be the only one found.
 */
export async function selfCheck(engine: Engine): Promise<SelfCheckResult> {
  const t0 = performance.now();
  const rows = 150;
  const d = 37;
  const rand = mulberry32(2024);
  const x = new Float32Array(rows * d);
  for (let k = 0; k < x.length; k++) x[k] = rand() - 0.5;
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    x[o + 3] = 2.5 * x[o + 10]!;
    x[o + 20] = x[o + 10]! * 0.125;
    x[o + 5] = -1 - rand();
    x[o + 7] = 1 + rand();
    x[o + 30] = x[o + 12]!;
  }
  x[77 * d + 30] = x[77 * d + 12]! > 0 ? -1 : 1;
  let ok = true;
  let detail = '';
  const acc = new SignPatternAccumulator(engine, d, { keepWords: true });
  try {
    acc.addHost(x.subarray(0, 61 * d), 61);
    acc.addHost(x.subarray(61 * d), rows - 61);
    const got = await acc.result();
    const ref = signPatternsCpu(x, rows, d);
    const diffs: string[] = [];
    for (const k of ['hashLo', 'hashHi', 'fireCount', 'cofire', 'words'] as const) {
      const i = firstDiff(got[k]!, ref[k]!);
      if (i >= 0) diffs.push(`${k}[${i}]: ${got[k]![i]} vs ${ref[k]![i]}`);
    }
    const g = groupPatterns(got);
    const groupsOk =
      JSON.stringify(g.groups) === '[[3,10,20]]' &&
      JSON.stringify(g.dead) === '[5]' &&
      JSON.stringify(g.alwaysOn) === '[7]' &&
      g.hashCollisions === 0 &&
      hammingFromCofire(got, 12, 30) === 1;
    ok = diffs.length === 0 && got.n === rows && groupsOk;
    detail =
      `${rows}x${d} in 2 batches (${acc.variant} packing): ` +
      (diffs.length ? `differs from the CPU reference: ${diffs.join('; ')}` : 'hashes, counts, co-firing and words exact') +
      (groupsOk ? '; planted group/dead/always-on found' : `; grouping wrong: ${JSON.stringify(g)}`);
  } catch (e) {
    ok = false;
    detail = (e as Error).message;
  } finally {
    acc.dispose();
  }
  return { name: 'sign-patterns', ok, detail, ms: performance.now() - t0 };
}
