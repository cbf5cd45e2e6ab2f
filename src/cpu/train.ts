// Float64 references for MLP training (test oracles for the train kernels and the whole backward
// pass): softmax cross-entropy, activation backward, Adam, and full backprop of a small MLP
// with the loss L = mean_r CE(softmax(z_r), y_r).

import { act, actGrad, type Activation } from '../model/activations.js';

export interface SoftmaxXentF64 {
  /** −log softmax(z_r)[y_r] per row. */
  loss: Float64Array;
  /** 1 where argmax z_r (first maximum) equals y_r. */
  correct: Uint8Array;
  /** scale · (softmax(z) − onehot(y)), rows × cols. */
  grad: Float64Array;
}

export function softmaxXentF64(logits: ArrayLike<number>, labels: ArrayLike<number>, rows: number, cols: number, scale = 1 / rows): SoftmaxXentF64 {
  const loss = new Float64Array(rows);
  const correct = new Uint8Array(rows);
  const grad = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const y = labels[r]!;
    let m = logits[o]!;
    let arg = 0;
    for (let j = 1; j < cols; j++) {
      if (logits[o + j]! > m) {
        m = logits[o + j]!;
        arg = j;
      }
    }
    let s = 0;
    for (let j = 0; j < cols; j++) s += Math.exp(logits[o + j]! - m);
    loss[r] = m + Math.log(s) - logits[o + y]!;
    correct[r] = arg === y ? 1 : 0;
    for (let j = 0; j < cols; j++) grad[o + j] = scale * (Math.exp(logits[o + j]! - m) / s - (j === y ? 1 : 0));
  }
  return { loss, correct, grad };
}

/** grad_out · σ'(x + bias), rows × cols. */
export function actBackwardF64(
  x: ArrayLike<number>,
  bias: ArrayLike<number>,
  gradOut: ArrayLike<number>,
  rows: number,
  cols: number,
  a: Activation,
): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      out[i] = gradOut[i]! * actGrad(a, x[i]! + bias[c]!);
    }
  }
  return out;
}

/** One Adam step in place (torch.optim.Adam's formula), float64. `step` is 1-based. */
export function adamStepF64(
  p: Float64Array,
  g: ArrayLike<number>,
  m: Float64Array,
  v: Float64Array,
  step: number,
  h: { lr: number; beta1: number; beta2: number; eps: number },
): void {
  const stepSize = h.lr / (1 - h.beta1 ** step);
  const sqrtBc2 = Math.sqrt(1 - h.beta2 ** step);
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]!;
    m[i] = h.beta1 * m[i]! + (1 - h.beta1) * gi;
    v[i] = h.beta2 * v[i]! + (1 - h.beta2) * gi * gi;
    p[i] = p[i]! - (stepSize * m[i]!) / (Math.sqrt(v[i]!) / sqrtBc2 + h.eps);
  }
}

export interface LayerF64 {
  dIn: number;
  dOut: number;
  /** [dIn, dOut] row-major, y = σ(x·W + b). */
  W: ArrayLike<number>;
  b: ArrayLike<number>;
  activation: Activation;
}

export interface BackpropF64 {
  /** Mean cross-entropy over the rows. */
  loss: number;
  /** Per-row losses. */
  rowLoss: Float64Array;
  logits: Float64Array;
  /** ∂loss/∂W_i ([dIn, dOut]) and ∂loss/∂b_i. */
  gW: Float64Array[];
  gb: Float64Array[];
}

/** Forward pass, mean softmax cross-entropy and its exact gradient by backprop, all in float64. */
export function mlpBackpropF64(layers: LayerF64[], x: ArrayLike<number>, labels: ArrayLike<number>, rows: number): BackpropF64 {
  const acts: Float64Array[] = [Float64Array.from(x)];
  const pres: Float64Array[] = [];
  for (const l of layers) {
    const inp = acts[acts.length - 1]!;
    const pre = new Float64Array(rows * l.dOut);
    const out = new Float64Array(rows * l.dOut);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < l.dOut; o++) {
        let s = l.b[o]!;
        for (let k = 0; k < l.dIn; k++) s += inp[r * l.dIn + k]! * l.W[k * l.dOut + o]!;
        pre[r * l.dOut + o] = s;
        out[r * l.dOut + o] = act(l.activation, s);
      }
    }
    pres.push(pre);
    acts.push(out);
  }
  const last = layers[layers.length - 1]!;
  const logits = acts[acts.length - 1]!;
  const ce = softmaxXentF64(logits, labels, rows, last.dOut);
  let loss = 0;
  for (let r = 0; r < rows; r++) loss += ce.loss[r]!;
  loss /= rows;
  const gW = new Array<Float64Array>(layers.length);
  const gb = new Array<Float64Array>(layers.length);
  let g = ce.grad; // ∂loss/∂(output of the last layer)
  for (let i = layers.length - 1; i >= 0; i--) {
    const l = layers[i]!;
    const gp = new Float64Array(rows * l.dOut);
    for (let k = 0; k < gp.length; k++) gp[k] = g[k]! * actGrad(l.activation, pres[i]![k]!);
    const inp = acts[i]!;
    const w = new Float64Array(l.dIn * l.dOut);
    const b = new Float64Array(l.dOut);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < l.dOut; o++) {
        const v = gp[r * l.dOut + o]!;
        b[o]! += v;
        for (let k = 0; k < l.dIn; k++) w[k * l.dOut + o]! += inp[r * l.dIn + k]! * v;
      }
    }
    gW[i] = w;
    gb[i] = b;
    if (i > 0) {
      const gi = new Float64Array(rows * l.dIn);
      for (let r = 0; r < rows; r++) {
        for (let k = 0; k < l.dIn; k++) {
          let s = 0;
          for (let o = 0; o < l.dOut; o++) s += gp[r * l.dOut + o]! * l.W[k * l.dOut + o]!;
          gi[r * l.dIn + k] = s;
        }
      }
      g = gi;
    }
  }
  return { loss, rowLoss: ce.loss, logits, gW, gb };
}

/** Mean cross-entropy of the MLP on (x, labels), float64 (for finite differences). */
export function mlpLossF64(layers: LayerF64[], x: ArrayLike<number>, labels: ArrayLike<number>, rows: number): number {
  let cur = Float64Array.from(x);
  for (const l of layers) {
    const out = new Float64Array(rows * l.dOut);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < l.dOut; o++) {
        let s = l.b[o]!;
        for (let k = 0; k < l.dIn; k++) s += cur[r * l.dIn + k]! * l.W[k * l.dOut + o]!;
        out[r * l.dOut + o] = act(l.activation, s);
      }
    }
    cur = out;
  }
  const ce = softmaxXentF64(cur, labels, rows, layers[layers.length - 1]!.dOut);
  let loss = 0;
  for (let r = 0; r < rows; r++) loss += ce.loss[r]!;
  return loss / rows;
}
