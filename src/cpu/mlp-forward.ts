// The float64 forward pass of an MLP for one datapoint: the one written-out forward of the host
// code, shared by the Gauss–Newton nullity, the host degeneracy statistics and the batch reference
// forwardF64 below. Sums run over the inputs in increasing order starting from the
// bias, so every caller sees the same float64 values.

import { act, type Activation } from '../model/activations.js';

/** What the forward pass reads of a layer (an MlpLayer of src/model/mlp.ts is one). */
export interface ForwardLayer {
  readonly dIn: number;
  readonly dOut: number;
  /** [dIn, dOut] row-major, y = x·W + b. */
  readonly W: ArrayLike<number>;
  readonly b: ArrayLike<number>;
  readonly activation: Activation;
}

export interface SampleForward {
  /** inputs[ℓ]: the input f^ℓ of layer ℓ (inputs[0] is the datapoint). */
  readonly inputs: Float64Array[];
  /** pres[ℓ]: the pre-activation p^ℓ = W^ℓᵀ f^ℓ + b^ℓ. */
  readonly pres: Float64Array[];
  /** σ(p^{L−1}): the network output. */
  readonly output: Float64Array;
}

/** Forward pass of row `row` of x (row-major, dIn of the first layer wide). */
export function forwardSampleF64(
  model: { readonly layers: readonly ForwardLayer[] },
  x: ArrayLike<number>,
  row: number,
  activate: (a: Activation, v: number) => number = act,
): SampleForward {
  const d0 = model.layers[0]!.dIn;
  const inputs: Float64Array[] = [];
  const pres: Float64Array[] = [];
  let cur = new Float64Array(d0);
  for (let i = 0; i < d0; i++) cur[i] = x[row * d0 + i]!;
  for (const l of model.layers) {
    inputs.push(cur);
    const p = new Float64Array(l.dOut);
    for (let o = 0; o < l.dOut; o++) {
      let t = l.b[o]!;
      for (let i = 0; i < l.dIn; i++) t += cur[i]! * l.W[i * l.dOut + o]!;
      p[o] = t;
    }
    pres.push(p);
    cur = Float64Array.from(p, (v) => activate(l.activation, v));
  }
  return { inputs, pres, output: cur };
}

/** f64 CPU forward pass of the unfolded model (reference for tests; rows × dOut of the last layer). */
export function forwardF64(
  model: { readonly layers: readonly ForwardLayer[] },
  x: ArrayLike<number>,
  rows: number,
  act: (a: Activation, v: number) => number,
): Float64Array[] {
  const outs: Float64Array[] = [Float64Array.from(x), ...model.layers.map((l) => new Float64Array(rows * l.dOut))];
  for (let n = 0; n < rows; n++) {
    const f = forwardSampleF64(model, x, n, act);
    model.layers.forEach((l, i) => outs[i + 1]!.set(f.inputs[i + 1] ?? f.output, n * l.dOut));
  }
  return outs;
}
