// Quick check for `ibgpu doctor`: one backward pass of a small MLP on the GPU (matmuls, softmax
// cross-entropy, activation backward, deterministic column sums) against float64 backprop.

import { mlpBackpropF64 } from '../cpu/train.js';
import type { SelfCheckResult } from '../kernels/self-check.js';
import type { Engine } from '../runtime/engine.js';
import { ADAM_DEFAULTS } from '../kernels/adam.js';
import { makeRng, kaimingUniform } from './random.js';
import { MlpTrainer, type TrainerLayerInit } from './trainer.js';

export async function selfCheck(engine: Engine): Promise<SelfCheckResult> {
  const t0 = performance.now();
  const name = 'training (backprop: softmax-xent, act backward, column sums)';
  let trainer: MlpTrainer | undefined;
  try {
    const sizes = [13, 17, 5];
    const rows = 37;
    const rng = makeRng(7);
    const init: TrainerLayerInit[] = sizes.slice(1).map((dOut, i) => ({
      ...kaimingUniform(sizes[i]!, dOut, rng),
      dIn: sizes[i]!,
      dOut,
      activation: i < sizes.length - 2 ? 'relu' : 'identity',
    }));
    const x = new Float32Array(rows * sizes[0]!).map(() => rng.next() * 2 - 1);
    const labels = Uint32Array.from({ length: rows }, (_, i) => i % sizes[sizes.length - 1]!);
    trainer = new MlpTrainer(engine, init, { lr: 1e-3, ...ADAM_DEFAULTS });
    const gpu = await trainer.gradients(x, labels, rows);
    const ref = mlpBackpropF64(init, x, labels, rows);
    // Relative to the largest gradient entry of each tensor; f32 sums over ≤ 37 rows.
    let worst = 0;
    const cmp = (g: Float32Array, r: Float64Array): void => {
      let mx = 0;
      for (let i = 0; i < r.length; i++) mx = Math.max(mx, Math.abs(r[i]!));
      for (let i = 0; i < r.length; i++) worst = Math.max(worst, Math.abs(g[i]! - r[i]!) / (mx || 1));
    };
    gpu.gW.forEach((g, i) => cmp(g, ref.gW[i]!));
    gpu.gb.forEach((g, i) => cmp(g, ref.gb[i]!));
    const tol = 1e-4;
    return {
      name,
      ok: worst <= tol,
      detail: `MLP 13-17-5, ${rows} rows: max gradient error ${worst.toExponential(2)} of each tensor's max (tol ${tol})`,
      ms: performance.now() - t0,
    };
  } catch (e) {
    return { name, ok: false, detail: (e as Error).message, ms: performance.now() - t0 };
  } finally {
    trainer?.dispose();
  }
}
