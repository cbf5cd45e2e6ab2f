// Float64 reference interpreter of a SectionProgram (src/model/program.ts): the forward pass and
// exact vector-Jacobian products, per sample. It is the oracle the GPU passes are tested against
// and the engine of the float64 transformer pipeline, so every derivative is written out by hand
// (no finite differences, no autodiff library):
//   linear   x̄ += ȳ·Wᵀ
//   act      x̄ += ȳ ∘ act'(x)                    (src/model/activations.ts actGrad)
//   lnVar    x̄_k += ȳ · 2(x_k − mean)/d, k < d   (Σ_k (x_k − mean) = 0 kills the mean's term)
//   lnDiv    x̄ += (ȳ_{:d} − mean(ȳ_{:d}))/σ, v̄ += −Σ_k ȳ_k (x_k − mean)/(2σ³), x̄_d += ȳ_d
//   rotary   x̄ = ȳ cos θ + Rᵀ(ȳ sin θ), Rᵀz = [z_{n:2n}, −z_{0:n}]
//   attention  SPEC-transformers §5.2: dp = dz·v, dv = Σ_t p dz, ds = p(dp − Σ p dp),
//              dq = Σ_u ds k / c, dk = Σ_t ds q / c
// The VJP is batched over K cotangents per sample (rows (k, p) of a [K, P, w] block), which is
// how M′ (SPEC-transformers §5.1) and the edges (§6.1) use it.
//
// Layouts: a value of a batch is [n, P, w] row-major; a cotangent block is [n, K, P, w].

import { act, actGrad } from '../model/activations.js';
import { IbgpuError } from '../errors.js';
import type { EmbedSpec, Op, SectionProgram } from '../model/program.js';

/** Forward values of a batch: one [n, P, w] array per value id of the program. */
export type ProgramValues = Float64Array[];

function size(p: SectionProgram, id: number): number {
  const v = p.values[id]!;
  return v.positions * v.width;
}

/**
 * Runs `program` on `nSamples` samples. `inputs[j]` holds input value `program.inputs[j]` as
 * [n, P, w]; the whole input tuple is scaled by `alpha` (integrated gradients scale every tuple
 * member, 1-slots included: SPEC-transformers §5.1). Returns every value of the program.
 */
export function forwardF64(program: SectionProgram, inputs: readonly Float64Array[], nSamples: number, alpha = 1): ProgramValues {
  const vals = forwardInputs(program, inputs, nSamples, alpha);
  for (const op of program.ops) vals[opOutput(op)] = forwardOpF64(program, op, vals, nSamples);
  return vals;
}

/** forwardF64's start: the value slots of a batch with the inputs checked against the program and scaled by `alpha`. */
export function forwardInputs(program: SectionProgram, inputs: readonly Float64Array[], nSamples: number, alpha = 1): ProgramValues {
  if (inputs.length !== program.inputs.length) {
    throw new Error(`section ${program.from}->${program.to}: ${inputs.length} inputs given, the program has ${program.inputs.length}`);
  }
  const vals: ProgramValues = new Array<Float64Array>(program.values.length);
  program.inputs.forEach((id, j) => {
    const want = nSamples * size(program, id);
    const src = inputs[j]!;
    if (src.length !== want) {
      throw new Error(`section ${program.from}->${program.to}: input ${program.values[id]!.label} has ${src.length} values, expected ${want}`);
    }
    vals[id] = alpha === 1 ? src : src.map((x) => x * alpha);
  });
  return vals;
}

/**
 * One op of `program` over a batch: its output value [n, P, w] from the values computed so far,
 * sample by sample. forwardF64's step, exported for batched forwards (src/host/program-forward.ts)
 * that run some ops their own way and the rest through this one.
 */
export function forwardOpF64(program: SectionProgram, op: Op, vals: ProgramValues, nSamples: number): Float64Array {
  const out = new Float64Array(nSamples * size(program, opOutput(op)));
  for (let n = 0; n < nSamples; n++) forwardOp(program, op, vals, out, n);
  return out;
}

function opOutput(op: Op): number {
  return op.y;
}

function view(p: SectionProgram, vals: ProgramValues, id: number, n: number): Float64Array {
  const s = size(p, id);
  return vals[id]!.subarray(n * s, (n + 1) * s);
}

function forwardOp(p: SectionProgram, op: Op, vals: ProgramValues, outAll: Float64Array, n: number): void {
  const sy = size(p, op.y);
  const y = outAll.subarray(n * sy, (n + 1) * sy);
  const P = p.values[op.y]!.positions;
  switch (op.kind) {
    case 'linear': {
      const x = view(p, vals, op.x, n);
      matRows(x, op.W, y, P, op.wIn, op.wOut);
      return;
    }
    case 'act': {
      const x = view(p, vals, op.x, n);
      for (let i = 0; i < y.length; i++) y[i] = act(op.act, x[i]!);
      return;
    }
    case 'lnVar': {
      const x = view(p, vals, op.x, n);
      const w = p.values[op.x]!.width;
      for (let t = 0; t < P; t++) y[t] = variance(x, t * w, op.d);
      return;
    }
    case 'lnDiv': {
      const x = view(p, vals, op.x, n);
      const v = view(p, vals, op.v, n);
      const w = p.values[op.x]!.width;
      for (let t = 0; t < P; t++) {
        const o = t * w;
        const m = meanOf(x, o, op.d);
        const sig = Math.sqrt(Math.max(v[t]!, 0) + op.eps);
        for (let k = 0; k < op.d; k++) y[o + k] = (x[o + k]! - m) / sig;
        for (let k = op.d; k < w; k++) y[o + k] = x[o + k]!;
      }
      return;
    }
    case 'rotary': {
      const x = view(p, vals, op.x, n);
      rotate(x, y, P, op.heads, op.dHead, op.rotaryDim, op.base, false);
      return;
    }
    case 'attention': {
      attentionForward(op, view(p, vals, op.q, n), view(p, vals, op.k, n), view(p, vals, op.v, n), P, y);
      return;
    }
    case 'add': {
      const a = view(p, vals, op.a, n);
      const b = view(p, vals, op.b, n);
      for (let i = 0; i < y.length; i++) y[i] = a[i]! + b[i]!;
      return;
    }
    case 'lastPos': {
      const x = view(p, vals, op.x, n);
      const w = p.values[op.x]!.width;
      const Px = p.values[op.x]!.positions;
      y.set(x.subarray((Px - 1) * w, Px * w));
      return;
    }
    case 'copy': {
      y.set(view(p, vals, op.x, n));
      return;
    }
    case 'concat': {
      const wy = p.values[op.y]!.width;
      let off = 0;
      for (const id of op.xs) {
        const x = view(p, vals, id, n);
        const w = p.values[id]!.width;
        for (let t = 0; t < P; t++) for (let k = 0; k < w; k++) y[t * wy + off + k] = x[t * w + k]!;
        off += w;
      }
      return;
    }
    case 'slice': {
      const x = view(p, vals, op.x, n);
      const w = p.values[op.x]!.width;
      const wy = op.to - op.from;
      for (let t = 0; t < P; t++) for (let k = 0; k < wy; k++) y[t * wy + k] = x[t * w + op.from + k]!;
      return;
    }
  }
}

/** y[r] = x[r]·W for `rows` rows (W row-major [wIn, wOut]). */
function matRows(x: Float64Array, W: Float64Array, y: Float64Array, rows: number, wIn: number, wOut: number): void {
  y.fill(0, 0, rows * wOut);
  for (let r = 0; r < rows; r++) {
    const yo = r * wOut;
    for (let i = 0; i < wIn; i++) {
      const a = x[r * wIn + i]!;
      if (a === 0) continue;
      const wo = i * wOut;
      for (let o = 0; o < wOut; o++) y[yo + o]! += a * W[wo + o]!;
    }
  }
}

function meanOf(x: Float64Array, o: number, d: number): number {
  let s = 0;
  for (let k = 0; k < d; k++) s += x[o + k]!;
  return s / d;
}

function variance(x: Float64Array, o: number, d: number): number {
  const m = meanOf(x, o, d);
  let s = 0;
  for (let k = 0; k < d; k++) {
    const c = x[o + k]! - m;
    s += c * c;
  }
  return s / d;
}

/** cos/sin tables of the NeoX rotary embedding at position t (SPEC-transformers §2.5). */
function rotaryAngle(t: number, c: number, rotaryDim: number, base: number): number {
  const half = rotaryDim / 2;
  const j = c % half;
  return t / Math.pow(base, j / half);
}

/**
 * y = x cos θ + rot(x) sin θ on the first rotaryDim coordinates of every head (rest copied);
 * with `transpose`, the adjoint: y = x cos θ + rotᵀ(x sin θ).
 */
function rotate(x: Float64Array, y: Float64Array, P: number, heads: number, dHead: number, rotaryDim: number, base: number, transpose: boolean): void {
  const half = rotaryDim / 2;
  const w = heads * dHead;
  for (let t = 0; t < P; t++) {
    for (let h = 0; h < heads; h++) {
      const o = t * w + h * dHead;
      for (let c = 0; c < dHead; c++) {
        if (c >= rotaryDim) {
          y[o + c] = x[o + c]!;
          continue;
        }
        const th = rotaryAngle(t, c, rotaryDim, base);
        const cs = Math.cos(th);
        let r: number;
        if (!transpose) {
          // rot(x) = [−x_{n:2n}, x_{0:n}]
          r = c < half ? -x[o + c + half]! : x[o + c - half]!;
          y[o + c] = x[o + c]! * cs + r * Math.sin(th);
        } else {
          // rotᵀ(z) = [z_{n:2n}, −z_{0:n}] with z = x sin θ (θ of the source coordinate).
          const cc = c < half ? c + half : c - half;
          const zs = x[o + cc]! * Math.sin(rotaryAngle(t, cc, rotaryDim, base));
          r = c < half ? zs : -zs;
          y[o + c] = x[o + c]! * cs + r;
        }
      }
    }
  }
}

function masked(op: Extract<Op, { kind: 'attention' }>, t: number, u: number): boolean {
  if (op.causal && u > t) return true;
  if (op.window !== undefined && u <= t - op.window) return true;
  return false;
}

/** Attention probabilities p[h][t][u] (0 where masked). */
function attentionProbs(op: Extract<Op, { kind: 'attention' }>, q: Float64Array, k: Float64Array, P: number): Float64Array {
  const { heads: H, dHead } = op;
  const wq = H * dHead;
  const probs = new Float64Array(H * P * P);
  const s = new Float64Array(P);
  for (let h = 0; h < H; h++) {
    for (let t = 0; t < P; t++) {
      let mx = -Infinity;
      for (let u = 0; u < P; u++) {
        if (masked(op, t, u)) {
          s[u] = -Infinity;
          continue;
        }
        let dot = 0;
        for (let c = 0; c < dHead; c++) dot += q[t * wq + h * dHead + c]! * k[u * wq + h * dHead + c]!;
        s[u] = dot / op.scale;
        if (s[u]! > mx) mx = s[u]!;
      }
      let z = 0;
      const base = (h * P + t) * P;
      for (let u = 0; u < P; u++) {
        const e = s[u] === -Infinity ? 0 : Math.exp(s[u]! - mx);
        probs[base + u] = e;
        z += e;
      }
      for (let u = 0; u < P; u++) probs[base + u] = probs[base + u]! / z;
    }
  }
  return probs;
}

function attentionForward(op: Extract<Op, { kind: 'attention' }>, q: Float64Array, k: Float64Array, v: Float64Array, P: number, y: Float64Array): void {
  const { heads: H, dV } = op;
  const wv = H * dV;
  const probs = attentionProbs(op, q, k, P);
  y.fill(0);
  for (let h = 0; h < H; h++) {
    for (let t = 0; t < P; t++) {
      const base = (h * P + t) * P;
      for (let u = 0; u < P; u++) {
        const pr = probs[base + u]!;
        if (pr === 0) continue;
        for (let c = 0; c < dV; c++) y[t * wv + h * dV + c]! += pr * v[u * wv + h * dV + c]!;
      }
    }
  }
}

/**
 * The input gradients of K cotangents (vjpSampleF64's result, [K, P, w] per input) at position 0,
 * as one d_in × K matrix over the inputs in order: column k is cotangent k's gradient.
 */
export function inputGradientColumns(p: SectionProgram, grads: Float64Array[], K: number, P: number): Float64Array {
  const dIn = p.inputs.reduce((s, id) => s + p.values[id]!.width, 0);
  const out = new Float64Array(dIn * K);
  for (let c = 0; c < K; c++) {
    let off = 0;
    p.inputs.forEach((id, j) => {
      const w = p.values[id]!.width;
      for (let a = 0; a < w; a++) out[(off + a) * K + c] = grads[j]![c * P * w + a]!;
      off += w;
    });
  }
  return out;
}

/**
 * VJP of one sample with K cotangents. `values` are the batch's forward values (forwardF64),
 * `sample` the sample's index in that batch; `cot[j]` is the [K, P, w] cotangent on output
 * `program.outputs[j]` (undefined: zero). Returns [K, P, w] cotangents on `program.inputs`.
 */
export function vjpSampleF64(
  program: SectionProgram,
  values: ProgramValues,
  sample: number,
  cot: readonly (Float64Array | undefined)[],
  K: number,
): Float64Array[] {
  const p = program;
  const grads: (Float64Array | undefined)[] = new Array<Float64Array | undefined>(p.values.length);
  const g = (id: number): Float64Array => (grads[id] ??= new Float64Array(K * size(p, id)));
  p.outputs.forEach((id, j) => {
    const c = cot[j];
    if (!c) return;
    if (c.length !== K * size(p, id)) {
      throw new Error(`section ${p.from}->${p.to}: cotangent on ${p.values[id]!.label} has ${c.length} values, expected ${K * size(p, id)}`);
    }
    const dst = g(id);
    for (let i = 0; i < c.length; i++) dst[i]! += c[i]!;
  });
  for (let oi = p.ops.length - 1; oi >= 0; oi--) {
    const op = p.ops[oi]!;
    const gy = grads[op.y];
    if (!gy) continue; // nothing downstream reads this value's cotangent
    backwardOp(p, op, values, sample, gy, K, g);
  }
  return p.inputs.map((id) => grads[id] ?? new Float64Array(K * size(p, id)));
}

function backwardOp(p: SectionProgram, op: Op, vals: ProgramValues, n: number, gy: Float64Array, K: number, g: (id: number) => Float64Array): void {
  const Py = p.values[op.y]!.positions;
  const sy = size(p, op.y);
  switch (op.kind) {
    case 'linear': {
      // x̄[r] += ȳ[r]·Wᵀ over rows r = (k, t); all-zero rows (unit cotangents) are skipped, and a
      // sparse row (a unit cotangent: one entry) sums over its non-zero entries only. A zero entry's
      // term is ±0, which leaves a sum that starts at +0 as it is, so the bits are the same (for
      // finite W) and a batch of unit cotangents costs wIn per row instead of wIn·wOut.
      const gx = g(op.x);
      const { W, wIn, wOut } = op;
      const rows = K * Py;
      const nzAt = new Int32Array(wOut);
      for (let r = 0; r < rows; r++) {
        const yo = r * wOut;
        let nz = 0;
        for (let o = 0; o < wOut; o++) if (gy[yo + o] !== 0) nzAt[nz++] = o;
        if (nz === 0) continue;
        const xo = r * wIn;
        if (4 * nz < wOut) {
          for (let i = 0; i < wIn; i++) {
            const wo = i * wOut;
            let s = 0;
            for (let t = 0; t < nz; t++) {
              const o = nzAt[t]!;
              s += gy[yo + o]! * W[wo + o]!;
            }
            gx[xo + i]! += s;
          }
          continue;
        }
        for (let i = 0; i < wIn; i++) {
          const wo = i * wOut;
          let s = 0;
          for (let o = 0; o < wOut; o++) s += gy[yo + o]! * W[wo + o]!;
          gx[xo + i]! += s;
        }
      }
      return;
    }
    case 'act': {
      const x = view(p, vals, op.x, n);
      const gx = g(op.x);
      const d = new Float64Array(sy);
      for (let i = 0; i < sy; i++) d[i] = actGrad(op.act, x[i]!);
      for (let k = 0; k < K; k++) for (let i = 0; i < sy; i++) gx[k * sy + i]! += gy[k * sy + i]! * d[i]!;
      return;
    }
    case 'lnVar': {
      const x = view(p, vals, op.x, n);
      const w = p.values[op.x]!.width;
      const gx = g(op.x);
      const sx = Py * w;
      for (let t = 0; t < Py; t++) {
        const m = meanOf(x, t * w, op.d);
        for (let k = 0; k < K; k++) {
          const gv = gy[k * sy + t]!;
          if (gv === 0) continue;
          for (let c = 0; c < op.d; c++) gx[k * sx + t * w + c]! += (gv * 2 * (x[t * w + c]! - m)) / op.d;
        }
      }
      return;
    }
    case 'lnDiv': {
      const x = view(p, vals, op.x, n);
      const v = view(p, vals, op.v, n);
      const w = p.values[op.x]!.width;
      const gx = g(op.x);
      const gv = g(op.v);
      for (let t = 0; t < Py; t++) {
        const o = t * w;
        const m = meanOf(x, o, op.d);
        const vv = v[t]!;
        const sig = Math.sqrt(Math.max(vv, 0) + op.eps);
        for (let k = 0; k < K; k++) {
          const go = k * sy + o;
          let gm = 0;
          let gdot = 0;
          for (let c = 0; c < op.d; c++) {
            gm += gy[go + c]!;
            gdot += gy[go + c]! * (x[o + c]! - m);
          }
          gm /= op.d;
          for (let c = 0; c < op.d; c++) gx[go + c]! += (gy[go + c]! - gm) / sig;
          for (let c = op.d; c < w; c++) gx[go + c]! += gy[go + c]!;
          // ∂σ/∂var = 1/(2σ), zero where rib's ReLU(var) is flat.
          if (vv > 0) gv[k * Py + t]! += (-gdot / (sig * sig * sig)) * 0.5;
        }
      }
      return;
    }
    case 'rotary': {
      const gx = g(op.x);
      const tmp = new Float64Array(sy);
      for (let k = 0; k < K; k++) {
        rotate(gy.subarray(k * sy, (k + 1) * sy), tmp, Py, op.heads, op.dHead, op.rotaryDim, op.base, true);
        for (let i = 0; i < sy; i++) gx[k * sy + i]! += tmp[i]!;
      }
      return;
    }
    case 'attention': {
      attentionBackward(p, op, vals, n, gy, K, g);
      return;
    }
    case 'add': {
      const ga = g(op.a);
      const gb = g(op.b);
      for (let i = 0; i < gy.length; i++) {
        ga[i]! += gy[i]!;
        gb[i]! += gy[i]!;
      }
      return;
    }
    case 'lastPos': {
      const w = p.values[op.x]!.width;
      const Px = p.values[op.x]!.positions;
      const gx = g(op.x);
      for (let k = 0; k < K; k++) for (let c = 0; c < w; c++) gx[k * Px * w + (Px - 1) * w + c]! += gy[k * w + c]!;
      return;
    }
    case 'copy': {
      const gx = g(op.x);
      for (let i = 0; i < gy.length; i++) gx[i]! += gy[i]!;
      return;
    }
    case 'concat': {
      const wy = p.values[op.y]!.width;
      let off = 0;
      for (const id of op.xs) {
        const w = p.values[id]!.width;
        const gx = g(id);
        for (let k = 0; k < K; k++) {
          for (let t = 0; t < Py; t++) for (let c = 0; c < w; c++) gx[(k * Py + t) * w + c]! += gy[(k * Py + t) * wy + off + c]!;
        }
        off += w;
      }
      return;
    }
    case 'slice': {
      const w = p.values[op.x]!.width;
      const wy = op.to - op.from;
      const gx = g(op.x);
      for (let k = 0; k < K; k++) {
        for (let t = 0; t < Py; t++) for (let c = 0; c < wy; c++) gx[(k * Py + t) * w + op.from + c]! += gy[(k * Py + t) * wy + c]!;
      }
      return;
    }
  }
}

function attentionBackward(
  p: SectionProgram,
  op: Extract<Op, { kind: 'attention' }>,
  vals: ProgramValues,
  n: number,
  gy: Float64Array,
  K: number,
  g: (id: number) => Float64Array,
): void {
  const P = p.values[op.y]!.positions;
  const q = view(p, vals, op.q, n);
  const kk = view(p, vals, op.k, n);
  const v = view(p, vals, op.v, n);
  const { heads: H, dHead, dV, scale } = op;
  const wq = H * dHead;
  const wv = H * dV;
  const probs = attentionProbs(op, q, kk, P);
  const gq = g(op.q);
  const gk = g(op.k);
  const gv = g(op.v);
  const dp = new Float64Array(P);
  for (let k = 0; k < K; k++) {
    const dz = gy.subarray(k * P * wv, (k + 1) * P * wv);
    const oq = k * P * wq;
    const ov = k * P * wv;
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < P; t++) {
        const zt = t * wv + h * dV;
        let any = false;
        for (let c = 0; c < dV; c++)
          if (dz[zt + c] !== 0) {
            any = true;
            break;
          }
        if (!any) continue;
        const base = (h * P + t) * P;
        // dp_{t,u} = dz_t·v_u; dv_u += p_{t,u} dz_t
        let pdp = 0;
        for (let u = 0; u < P; u++) {
          const pr = probs[base + u]!;
          if (pr === 0) {
            dp[u] = 0;
            continue;
          }
          let s = 0;
          for (let c = 0; c < dV; c++) {
            s += dz[zt + c]! * v[u * wv + h * dV + c]!;
            gv[ov + u * wv + h * dV + c]! += pr * dz[zt + c]!;
          }
          dp[u] = s;
          pdp += pr * s;
        }
        // ds = p(dp − Σ p dp); dq_t += Σ_u ds k_u / c; dk_u += ds q_t / c
        for (let u = 0; u < P; u++) {
          const pr = probs[base + u]!;
          if (pr === 0) continue;
          const ds = (pr * (dp[u]! - pdp)) / scale;
          for (let c = 0; c < dHead; c++) {
            gq[oq + t * wq + h * dHead + c]! += ds * kk[u * wq + h * dHead + c]!;
            gk[oq + u * wq + h * dHead + c]! += ds * q[t * wq + h * dHead + c]!;
          }
        }
      }
    }
  }
}

/**
 * VJP for a batch: `cot[j]` is [n, K, P, w] on output j. Returns [n, K, P, w] per input. Holds all
 * samples' cotangents at once; pipelines over large data call vjpSampleF64 per sample instead.
 */
export function vjpF64(
  program: SectionProgram,
  values: ProgramValues,
  cot: readonly (Float64Array | undefined)[],
  nSamples: number,
  K: number,
): Float64Array[] {
  const outs = program.inputs.map((id) => new Float64Array(nSamples * K * size(program, id)));
  const outSizes = program.outputs.map((id) => K * size(program, id));
  for (let n = 0; n < nSamples; n++) {
    const c = cot.map((a, j) => a?.subarray(n * outSizes[j]!, (n + 1) * outSizes[j]!));
    const gi = vjpSampleF64(program, values, n, c, K);
    gi.forEach((a, j) => outs[j]!.set(a, n * a.length));
  }
  return outs;
}

/**
 * The embedding tuple (rib's `embed`, `pos_embed`) for tokens [n, P]: [e] for rotary models,
 * [e, pos] otherwise, each [n, P, width]. Token ids outside the vocabulary and P > n_ctx are
 * errors (rib's Embed would index out of range).
 */
export function embedF64(embed: EmbedSpec, tokens: ArrayLike<number>, nSamples: number, P: number): Float64Array[] {
  if (tokens.length !== nSamples * P) throw new Error(`embedF64: ${tokens.length} tokens for ${nSamples}×${P}`);
  if (P > embed.nCtx) {
    throw new IbgpuError('SHAPE', `sequences of ${P} tokens exceed the model's n_ctx ${embed.nCtx}`, `use windows of at most ${embed.nCtx} tokens`);
  }
  const w = embed.width;
  const e = new Float64Array(nSamples * P * w);
  for (let i = 0; i < nSamples * P; i++) {
    const t = tokens[i]!;
    if (!Number.isInteger(t) || t < 0 || t >= embed.vocab) {
      throw new IbgpuError(
        'SHAPE',
        `token id ${t} at sample ${Math.floor(i / P)}, position ${i % P} is outside the vocabulary 0..${embed.vocab - 1}`,
        "tokenise with the model's tokenizer, or check d_vocab in the model config",
      );
    }
    e.set(embed.WE.subarray(t * w, (t + 1) * w), i * w);
  }
  if (!embed.Wpos) return [e];
  const pos = new Float64Array(nSamples * P * w);
  for (let n = 0; n < nSamples; n++) pos.set(embed.Wpos.subarray(0, P * w), n * P * w);
  return [e, pos];
}
