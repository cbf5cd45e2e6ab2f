// Random transformers for tests, self-checks and examples: Gaussian weights with the standard
// deviations of the synthetic-transformer fixtures (W_E 1, W_pos 0.5, attention/MLP 0.25,
// W_out 0.25/√2, biases 0.1), from a seeded generator.

import { mulberry32 } from '../../util/mulberry32.js';
import type { TransformerConfig } from './config.js';
import type { BlockWeights, TransformerModel } from './weights.js';

export function transformerConfig(
  over: Partial<TransformerConfig> & Pick<TransformerConfig, 'd_model' | 'n_heads' | 'd_head' | 'd_mlp' | 'd_vocab' | 'n_ctx' | 'n_layers'>,
): TransformerConfig {
  return {
    act_fn: 'relu',
    normalization_type: null,
    positional_embedding_type: 'standard',
    rotary_dim: null,
    rotary_base: 10000,
    parallel_attn_mlp: false,
    use_attn_scale: true,
    eps: 1e-5,
    original_architecture: null,
    use_local_attn: false,
    window_size: 256,
    ...over,
  };
}

export function randomTransformer(config: TransformerConfig, seed: number): TransformerModel {
  const rand = mulberry32(seed);
  const g = (): number => Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-300))) * Math.cos(2 * Math.PI * rand());
  const arr = (n: number, s: number): Float64Array => Float64Array.from({ length: n }, () => g() * s);
  const { d_model: d, n_heads: H, d_head: dh, d_mlp: m, d_vocab: V, n_ctx } = config;
  const blocks: BlockWeights[] = [];
  for (let i = 0; i < config.n_layers; i++) {
    blocks.push({
      WQ: arr(H * d * dh, 0.25),
      WK: arr(H * d * dh, 0.25),
      WV: arr(H * d * dh, 0.25),
      bQ: arr(H * dh, 0.1),
      bK: arr(H * dh, 0.1),
      bV: arr(H * dh, 0.1),
      WO: arr(H * dh * d, 0.25),
      bO: arr(d, 0.1),
      Win: arr(d * m, 0.25),
      bin: arr(m, 0.1),
      Wout: arr(m * d, 0.25 / Math.SQRT2),
      bout: arr(d, 0.1),
    });
  }
  const weights: TransformerModel['weights'] = { WE: arr(V * d, 1), blocks, WU: arr(d * V, 0.25), bU: arr(V, 0.1) };
  if (config.positional_embedding_type === 'standard') weights.Wpos = arr(n_ctx * d, 0.5);
  return { config, weights };
}
