// Random MLPs with the activation of every layer chosen, for the host statistics tests
// (test/host-stats.test.ts) and the WebAssembly Jacobian-Gram tests (test/host-jacobian-gram-wasm.test.ts).

import type { Activation } from '../../src/model/activations.js';
import type { MlpModel } from '../../src/model/mlp.js';
import { rng } from './random.js';

/**
 * An MLP through `widths` with layer i's activation acts[i]: weights uniform in [−0.75, 0.75),
 * biases in [−0.09, 0.21), a pure function of the seed. With `signedZeros`, about 15 % of the
 * weights are 0 or −0 instead (half each), for kernels that must keep a zero's sign.
 */
export function randomMlpModel(widths: number[], acts: Activation[], seed: number, signedZeros = false): MlpModel {
  const r = rng(seed);
  const w = () => (signedZeros && r() < 0.15 ? (r() < 0.5 ? 0 : -0) : (r() - 0.5) * 1.5);
  return {
    layers: acts.map((activation, i) => ({
      name: `layers.${i}`,
      dIn: widths[i]!,
      dOut: widths[i + 1]!,
      activation,
      W: Float32Array.from({ length: widths[i]! * widths[i + 1]! }, w),
      b: Float32Array.from({ length: widths[i + 1]! }, () => 0.3 * (r() - 0.3)),
    })),
  };
}
