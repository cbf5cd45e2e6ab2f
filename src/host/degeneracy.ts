// Float64 collection of the degeneracy statistics on the host, riding the host statistics pass
// (the observer of src/ib/stats.ts's host path): the same DegeneracyStats as the GPU accumulator
// of src/ib/degeneracy-gpu.ts, from each batch's float64 forward pass (src/host/mlp-forward.ts).
//   - per section ℓ: (1/N) Σ_n J_p(x_n)ᵀ J_p(x_n), J_p = ∂f_out/∂p^ℓ. Per datapoint the Jacobian
//     is carried backwards, G_{L−1} = diag σ'(p^{L−1}), G_ℓ = (G_{ℓ+1} W^{ℓ+1}ᵀ) diag σ'(p^ℓ),
//     on the units whose derivative is non-zero only (a ReLU layer's inactive units contribute
//     exact zeros, so skipping them changes no value): with rib's MNIST MLP about two thirds of
//     each 100-wide layer, so ~(2/3)² of the dense work. The layer feeding a linear output layer
//     takes the closed form (W Wᵀ) ∘ Σ g gᵀ from the exact co-firing counts, as on the GPU; the
//     layer below it takes T = W D W_out carried from datapoint to datapoint (CarriedProduct,
//     rows visited in signPatternOrder's order), which on rib's MNIST MLP halved the observer's
//     time (0.85 s against 1.65 s of CPU for 10k digits, measured under a load average of ~11);
//     the Gram's pair sums and T's rank-1 updates run in WebAssembly SIMD where it runs
//     (src/host/jacobian-gram-wasm.ts, the same bits), ~3x the JS loops' speed on that MLP;
//   - per hidden ReLU layer: the firing bits packed 32 datapoints to a word as they arrive, then
//     hashes, firing counts and co-firing counts by the exact integer routines of
//     src/cpu/sign-patterns.ts; the raw Gram and column sums of the outputs h in float64.

import { actGrad } from '../model/activations.js';
import type { MlpModel } from '../model/mlp.js';
import { cofireCpu, fireCountCpu, hashPatternsCpu } from '../cpu/sign-patterns.js';
import { signPatternOrder } from '../cpu/gate-order.js';
import { addPanelGramUpper } from '../cpu/gram.js';
import type { DegeneracyStats, HiddenStats } from '../report/degeneracy.js';
import type { HostForward } from './mlp-forward.js';
import { HostGramF64 } from './stats.js';
import { jacobianGramInstance, type JacobianGramExports } from './jacobian-gram-wasm.js';
import { WasmLayout } from './wasm/load.js';

/**
 * Layers at least this wide get no co-firing matrix (its d²·N/32 popcounts and d² storage): their
 * near-synchronised pairs come from LSH on the packed words (src/report/lsh.ts).
 */
export const WIDE_LAYER = 4096;

/**
 * The layer whose Jacobian Gram has the closed form (W_{L−1} W_{L−1}ᵀ) ∘ Σ g gᵀ / N: the layer
 * L−2 feeding a linear output layer, when it is ReLU with a co-firing matrix or identity; −1 if none.
 */
export function closedFormLayer(model: MlpModel, layers: readonly number[], cofireFor: (h: number) => boolean): number {
  const L = model.layers.length;
  const pen = model.layers[L - 2];
  return L >= 2 &&
    layers.includes(L - 2) &&
    model.layers[L - 1]!.activation === 'identity' &&
    ((pen!.activation === 'relu' && cofireFor(pen!.dOut)) || pen!.activation === 'identity')
    ? L - 2
    : -1;
}

/** (1/n) (W Wᵀ) ∘ A for the closed-form layer i (W = W_{i+1}, h × nOut); A undefined means all n (identity). */
export function closedFormJacobianGram(model: MlpModel, i: number, cofire: Float64Array | undefined, n: number): Float64Array {
  const h = model.layers[i]!.dOut;
  const nOut = model.layers[i + 1]!.dOut;
  const W = model.layers[i + 1]!.W;
  const M = new Float64Array(h * h);
  for (let a = 0; a < h; a++) {
    for (let b = a; b < h; b++) {
      let t = 0;
      for (let o = 0; o < nOut; o++) t += W[a * nOut + o]! * W[b * nOut + o]!;
      const v = (t * (cofire ? cofire[a * h + b]! : n)) / n;
      M[a * h + b] = v;
      M[b * h + a] = v;
    }
  }
  return M;
}

/** Growing word-major store of firing bits: word w of neuron a at w·d + a. */
class FiringBits {
  private words: Uint32Array;
  private n = 0;

  constructor(private readonly d: number) {
    this.words = new Uint32Array(d * 64);
  }

  /** Appends the signs [p > 0] of `rows` rows of p (rows × d). */
  add(p: Float64Array, rows: number): void {
    const d = this.d;
    const need = Math.ceil((this.n + rows) / 32) * d;
    if (need > this.words.length) {
      const grown = new Uint32Array(Math.max(need, 2 * this.words.length));
      grown.set(this.words);
      this.words = grown;
    }
    const words = this.words;
    for (let r = 0; r < rows; r++) {
      const t = this.n + r;
      const bit = (1 << (t & 31)) >>> 0;
      const base = (t >>> 5) * d;
      const o = r * d;
      for (let a = 0; a < d; a++) if (p[o + a]! > 0) words[base + a]! |= bit;
    }
    this.n += rows;
  }

  /** Neuron-major words (d × ceil(n/32)), as SignPatternResult.words. */
  neuronMajor(): Uint32Array {
    const d = this.d;
    const W = Math.ceil(this.n / 32);
    const out = new Uint32Array(d * W);
    for (let w = 0; w < W; w++) for (let a = 0; a < d; a++) out[a * W + w] = this.words[w * d + a]!;
    return out;
  }
}

/**
 * T = W_a D W_b for a ReLU layer's derivative mask D (units with p > 0), carried from one
 * datapoint to the next: each unit that switched adds or removes its rank-1 term
 * W_a[:, b] ⊗ W_b[b, :], so a visit costs (changed units) × rows(W_a) × cols(W_b) instead of
 * (firing units) × rows × cols. With a linear output layer above a ReLU layer L−2, T is the
 * Jacobian of the outputs with respect to layer L−2's inputs, up to the mask of layer L−3: on
 * rib's MNIST MLP about 15 changed units per visit in signPatternOrder's order against 68 firing.
 * T is rebuilt from scratch every REFRESH visits, which bounds the rounding the updates carry.
 */
class CarriedProduct {
  static readonly REFRESH = 256;
  /** T[a, c] at a·stride + c (stride ≥ nb: the WebAssembly rows are padded to an even count). */
  readonly T: Float64Array;
  readonly stride: number;
  private readonly on: Uint8Array;
  /** The WebAssembly kernel and T's, Wa's and Wb's byte offsets in its memory, where it runs. */
  private readonly kernel: { ex: JacobianGramExports; oT: number; oWa: number; oWb: number } | undefined;

  /** T's, Wa's and Wb's regions in a WebAssembly layout (T and Wb rows padded to an even count). */
  static regions(lay: WasmLayout, ha: number, hm: number, nb: number): { oT: number; oWa: number; oWb: number } {
    const nbp = Math.ceil(nb / 2) * 2;
    return { oT: lay.region(ha * nbp * 8), oWa: lay.region(ha * hm * 8), oWb: lay.region(hm * nbp * 8) };
  }

  /**
   * Wa: ha × hm (row-major), Wb: hm × nb. With `wasm` (an instance whose memory holds the
   * regions() of these shapes) T and the updates live in WebAssembly. Each visit sequence starts
   * at step 0, which rebuilds T, so one product serves batch after batch.
   */
  constructor(
    private readonly Wa: Float64Array,
    private readonly Wb: Float64Array,
    private readonly ha: number,
    private readonly hm: number,
    private readonly nb: number,
    wasm?: { ex: JacobianGramExports; oT: number; oWa: number; oWb: number },
  ) {
    this.on = new Uint8Array(hm);
    if (wasm) {
      const { ex, oT, oWa, oWb } = wasm;
      const nbp = Math.ceil(nb / 2) * 2;
      const buf = ex.memory.buffer;
      new Float64Array(buf, oWa, ha * hm).set(Wa);
      const wb = new Float64Array(buf, oWb, hm * nbp);
      for (let b = 0; b < hm; b++) wb.set(Wb.subarray(b * nb, (b + 1) * nb), b * nbp);
      this.T = new Float64Array(buf, oT, ha * nbp);
      this.stride = nbp;
      this.kernel = wasm;
      return;
    }
    this.T = new Float64Array(ha * nb);
    this.stride = nb;
    this.kernel = undefined;
  }

  /** T for the mask of row r of `pre` (rows × hm); `step` counts visits, for the refresh. */
  at(pre: Float64Array, r: number, step: number): Float64Array {
    const { hm, on } = this;
    const o = r * hm;
    if (step % CarriedProduct.REFRESH === 0) {
      this.T.fill(0);
      for (let b = 0; b < hm; b++) {
        on[b] = pre[o + b]! > 0 ? 1 : 0;
        if (on[b]) this.update(b, 1);
      }
      return this.T;
    }
    for (let b = 0; b < hm; b++) {
      const now = pre[o + b]! > 0 ? 1 : 0;
      if (now !== on[b]) {
        on[b] = now;
        this.update(b, now ? 1 : -1);
      }
    }
    return this.T;
  }

  private update(b: number, sign: number): void {
    const { T, Wa, Wb, ha, hm, nb, kernel } = this;
    if (kernel) {
      const cb = this.stride * 8;
      kernel.ex.rank1_rows(kernel.oT, cb, kernel.oWa + b * 8, hm * 8, kernel.oWb + b * cb, cb, ha, sign);
      return;
    }
    const wb = b * nb;
    for (let a = 0; a < ha; a++) {
      const w = sign * Wa[a * hm + b]!;
      if (w === 0) continue;
      const t = a * nb;
      for (let c = 0; c < nb; c++) T[t + c]! += w * Wb[wb + c]!;
    }
  }
}

/** A compact Jacobian and its unit list; oG, oIdx: their byte offsets in the WebAssembly memory (−1 without). */
interface Jacobians {
  G: Float64Array;
  idx: Int32Array;
  oG: number;
  oIdx: number;
}

/**
 * What the host accumulator below and the GPU one (src/ib/degeneracy-gpu.ts) share: the layers they
 * derive from the model and the requested layers (cofireFor: which layers get a co-firing matrix),
 * the count of datapoints seen, and the result's closed-form layer.
 */
export abstract class DegeneracyAccumulatorBase {
  /** Layers the forward pass must run (all of them: J_p needs every downstream gate). */
  readonly upTo: number;
  protected readonly L: number;
  protected readonly nOut: number;
  protected readonly lo: number;
  /** Layer whose Jacobian Gram comes from the co-firing counts (closed form), or −1. */
  protected readonly closedForm: number;
  protected seen = 0;

  constructor(
    readonly model: MlpModel,
    readonly layers: number[],
    cofireFor: (h: number) => boolean,
  ) {
    const L = model.layers.length;
    this.L = L;
    this.upTo = L;
    this.nOut = model.layers[L - 1]!.dOut;
    this.lo = Math.min(...layers);
    this.closedForm = closedFormLayer(model, layers, cofireFor);
  }

  /** The statistics of the datapoints seen, from the other layers' Jacobian Grams and the hidden layers' statistics. */
  protected stats(jacobianGram: Map<number, Float64Array>, hidden: Map<number, HiddenStats>): DegeneracyStats {
    const n = this.seen;
    if (this.closedForm >= 0) {
      jacobianGram.set(this.closedForm, closedFormJacobianGram(this.model, this.closedForm, hidden.get(this.closedForm)?.patterns.cofire, n));
    }
    return { n, jacobianGram, hidden };
  }
}

/** The host accumulator's co-firing rule: every layer narrower than WIDE_LAYER. */
const hostCofire = (h: number): boolean => h < WIDE_LAYER;

export class HostDegeneracyAccumulator extends DegeneracyAccumulatorBase {
  /** Whether layer L−3's Jacobians come from the carried product T (see CarriedProduct). */
  private readonly carried: boolean;
  /** Model layer → Σ J_pᵀJ_p (upper triangle), for the layers not in closed form. */
  private readonly jac = new Map<number, Float64Array>();
  private readonly bits = new Map<number, { bits: FiringBits; cofire: boolean; gram: HostGramF64 }>();
  /** Float64 copies of the weights W^{i} (dIn × dOut row-major) for the backward products. */
  private readonly W: Float64Array[] = [];
  /** Row stride of the compact Jacobians: the widest layer from the lowest section up. */
  private readonly S: number;
  /**
   * The compact Jacobians (output-major, stride S; swapped per layer, see addJacobians) and their
   * unit lists, with their byte offsets where they live in the WebAssembly kernel's memory.
   */
  private cur: Jacobians;
  private next: Jacobians;
  private readonly U: Float64Array;
  private readonly wc: Float64Array;
  private readonly carry: CarriedProduct | undefined;
  /** The WebAssembly kernel (src/host/jacobian-gram-wasm.ts) and each jac layer's M offset, where it runs. */
  private readonly kernel: { ex: JacobianGramExports; oM: Map<number, number> } | undefined;

  constructor(model: MlpModel, layers: number[]) {
    super(model, layers, hostCofire);
    const L = this.L;
    for (let i = this.lo + 1; i < L; i++) this.W[i] = Float64Array.from(model.layers[i]!.W);
    // The product carried across datapoints (CarriedProduct) needs a linear output layer, a ReLU
    // layer below it whose Jacobian Gram is not wanted directly, and a section below that.
    this.carried =
      L >= 3 &&
      this.lo <= L - 3 &&
      model.layers[L - 1]!.activation === 'identity' &&
      model.layers[L - 2]!.activation === 'relu' &&
      (!layers.includes(L - 2) || this.closedForm === L - 2);
    const jacLayers = layers.filter((i) => i !== this.closedForm);
    const S = Math.max(...model.layers.slice(this.lo).map((l) => l.dOut));
    this.S = S;
    const nOut = this.nOut;
    // One WebAssembly memory for everything the per-datapoint loops touch (G is read 16 bytes
    // past its last row by gram_upper's discarded lane, hence the 2 spare values).
    const lay = new WasmLayout();
    const oM = new Map(jacLayers.map((i) => [i, lay.region(model.layers[i]!.dOut ** 2 * 8)]));
    const gLen = nOut * S + 2;
    const oG = [lay.region(gLen * 8), lay.region(gLen * 8)] as const;
    const oIdx = [lay.region(S * 4), lay.region(S * 4)] as const;
    const carryShape = this.carried ? ([model.layers[L - 3]!.dOut, model.layers[L - 2]!.dOut, nOut] as const) : undefined;
    const carryAt = carryShape ? CarriedProduct.regions(lay, ...carryShape) : undefined;
    const ex = jacLayers.length > 0 ? jacobianGramInstance(lay) : undefined;
    if (ex) {
      const buf = ex.memory.buffer;
      for (const [i, at] of oM) this.jac.set(i, new Float64Array(buf, at, model.layers[i]!.dOut ** 2));
      this.cur = { G: new Float64Array(buf, oG[0], gLen), idx: new Int32Array(buf, oIdx[0], S), oG: oG[0], oIdx: oIdx[0] };
      this.next = { G: new Float64Array(buf, oG[1], gLen), idx: new Int32Array(buf, oIdx[1], S), oG: oG[1], oIdx: oIdx[1] };
      this.kernel = { ex, oM };
    } else {
      for (const i of jacLayers) this.jac.set(i, new Float64Array(model.layers[i]!.dOut ** 2));
      this.cur = { G: new Float64Array(gLen), idx: new Int32Array(S), oG: -1, oIdx: -1 };
      this.next = { G: new Float64Array(gLen), idx: new Int32Array(S), oG: -1, oIdx: -1 };
      this.kernel = undefined;
    }
    this.U = new Float64Array(S * nOut);
    this.wc = new Float64Array(S);
    this.carry = carryShape ? new CarriedProduct(this.W[L - 2]!, this.W[L - 1]!, ...carryShape, ex && carryAt ? { ex, ...carryAt } : undefined) : undefined;
    for (const i of layers) {
      const l = model.layers[i]!;
      if (i < L - 1 && l.activation === 'relu') {
        this.bits.set(i, { bits: new FiringBits(l.dOut), cofire: hostCofire(l.dOut), gram: new HostGramF64(l.dOut) });
      }
    }
  }

  /** Adds a batch (the forward pass must cover all layers). */
  addBatch(f: HostForward, rows: number): void {
    for (const [i, s] of this.bits) {
      s.bits.add(f.pres[i]!, rows);
      s.gram.add(f.acts[i + 1]!, rows);
    }
    if (this.jac.size > 0) this.addJacobians(f, rows);
    this.seen += rows;
  }

  /** Σ J_pᵀJ_p of every datapoint of the batch, on the units with a non-zero derivative. */
  private addJacobians(f: HostForward, rows: number): void {
    const { L, nOut, lo, model, S, wc, carry } = this;
    // Output-major compact Jacobians: Gt[o * S + k] = ∂out_o/∂p_{idx[k]} (the backward's dot
    // products then run over contiguous k); swapped with Gn per layer.
    let Gt = this.cur.G;
    let Gn = this.next.G;
    let idx = this.cur.idx;
    let idxN = this.next.idx;
    const last = model.layers[L - 1]!;
    const pL = f.pres[L - 1]!;
    // With a carried product the rows are visited in an order that keeps consecutive firing
    // patterns of layer L−2 alike (each changed unit costs one rank-1 update of T).
    const order = carry ? signPatternOrder(f.pres[L - 2]!, rows, model.layers[L - 2]!.dOut) : undefined;
    for (let step = 0; step < rows; step++) {
      const r = order ? order[step]! : step;
      // Layer L−1: G = diag σ'(p) on the units with σ'(p) ≠ 0.
      let m = 0;
      for (let o = 0; o < nOut; o++) {
        const g = actGrad(last.activation, pL[r * nOut + o]!);
        if (g === 0) continue;
        idx[m++] = o;
      }
      for (let o = 0; o < nOut; o++) Gt.fill(0, o * S, o * S + m);
      for (let k = 0; k < m; k++) Gt[idx[k]! * S + k] = actGrad(last.activation, pL[r * nOut + idx[k]!]!);
      if (this.jac.has(L - 1)) this.addGram(L - 1, m);
      let from = L - 2;
      if (carry) {
        // Layer L−3 straight from T = W_{L−2} D_{L−2} W_{L−1}: G[o, a] = σ'(p_a) T[a, o].
        const i = L - 3;
        const l = model.layers[i]!;
        const h = l.dOut;
        const p = f.pres[i]!;
        const T = carry.at(f.pres[L - 2]!, r, step);
        const ts = carry.stride;
        let mn = 0;
        for (let a = 0; a < h; a++) {
          const g = actGrad(l.activation, p[r * h + a]!);
          if (g === 0) continue;
          for (let o = 0; o < nOut; o++) Gt[o * S + mn] = g * T[a * ts + o]!;
          idx[mn++] = a;
        }
        m = mn;
        if (this.jac.has(i)) this.addGram(i, m);
        from = L - 4;
      }
      for (let i = from; i >= lo; i--) {
        const l = model.layers[i]!;
        const h = l.dOut;
        const hn = model.layers[i + 1]!.dOut;
        const W = this.W[i + 1]!; // h × hn
        const p = f.pres[i]!;
        // Below a linear output layer G_{L−1} is the identity: G[o, a] = σ'(p_a) W[a, o], no products.
        const direct = i === L - 2 && last.activation === 'identity';
        let mn = 0;
        for (let a = 0; a < h; a++) {
          const g = actGrad(l.activation, p[r * h + a]!);
          if (g === 0) continue;
          if (direct) {
            for (let o = 0; o < nOut; o++) Gn[o * S + mn] = g * W[a * hn + o]!;
            idxN[mn++] = a;
            continue;
          }
          // wc[k] = W[a, idx[k]]: row a of W over the next layer's kept units.
          const wa = a * hn;
          for (let k = 0; k < m; k++) wc[k] = W[wa + idx[k]!]!;
          for (let o = 0; o < nOut; o++) {
            const go = o * S;
            let t0 = 0,
              t1 = 0;
            let k = 0;
            for (; k + 1 < m; k += 2) {
              t0 += Gt[go + k]! * wc[k]!;
              t1 += Gt[go + k + 1]! * wc[k + 1]!;
            }
            if (k < m) t0 += Gt[go + k]! * wc[k]!;
            Gn[go + mn] = (t0 + t1) * g;
          }
          idxN[mn++] = a;
        }
        [Gt, Gn] = [Gn, Gt];
        [idx, idxN] = [idxN, idx];
        [this.cur, this.next] = [this.next, this.cur];
        m = mn;
        if (this.jac.has(i)) this.addGram(i, m);
      }
    }
  }

  /**
   * M[idx[k], idx[q]] += Σ_o G[o, k] G[o, q] for k ≤ q (upper triangle; idx is increasing) of
   * layer i, from the output-major current Jacobian Gt (stride S) through its unit-major copy U
   * (U[k * nOut + o]) by addPanelGramUpper, 2×2 pairs at a time; or by the WebAssembly kernel, the
   * same bits.
   */
  private addGram(i: number, m: number): void {
    const M = this.jac.get(i)!;
    const h = this.model.layers[i]!.dOut;
    const { nOut, S, U, kernel } = this;
    const { G: Gt, idx } = this.cur;
    if (kernel) {
      kernel.ex.gram_upper(this.cur.oG, S * 8, nOut, m, this.cur.oIdx, kernel.oM.get(i)!, h * 8);
      return;
    }
    for (let o = 0; o < nOut; o++) for (let k = 0; k < m; k++) U[k * nOut + o] = Gt[o * S + k]!;
    addPanelGramUpper(M, h, idx, U, m, nOut);
  }

  result(): DegeneracyStats {
    const n = this.seen;
    const jacobianGram = new Map<number, Float64Array>();
    for (const [i, M] of this.jac) {
      const h = this.model.layers[i]!.dOut;
      const out = new Float64Array(h * h);
      for (let a = 0; a < h; a++) {
        for (let b = a; b < h; b++) {
          const v = M[a * h + b]! / n;
          out[a * h + b] = v;
          out[b * h + a] = v;
        }
      }
      jacobianGram.set(i, out);
    }
    const hidden = new Map<number, HiddenStats>();
    for (const [i, s] of this.bits) {
      const d = this.model.layers[i]!.dOut;
      const words = s.bits.neuronMajor();
      const { hashLo, hashHi } = hashPatternsCpu(words, d, n);
      const patterns = {
        n,
        d,
        hashLo,
        hashHi,
        fireCount: fireCountCpu(words, d, n),
        cofire: s.cofire ? cofireCpu(words, d, n) : new Float64Array(0),
        words,
      };
      const actGram = Float64Array.from(s.gram.gram(), (v) => v / n);
      const actMean = Float64Array.from(s.gram.sums(), (v) => v / n);
      hidden.set(i, { patterns, actGram, actMean });
    }
    return this.stats(jacobianGram, hidden);
  }
}
