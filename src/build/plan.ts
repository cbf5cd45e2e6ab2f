// `ibgpu build --plan` of any config: the compiled program of the build and the cost model of the
// specialisation each of its sections takes, planned by src/pipeline/plan.ts (planBuild) and
// printed by its one formatter. The specialisation follows what the build would run:
//   MLP on the GPU/host pipeline     every section an MLP layer: buffers (src/ib/plan.ts)
//   MLP with "device": "cpu"         section programs through the float64 passes (mlp-f64.ts):
//                                    flops of generic per-sample VJPs (src/transformer/plan.ts);
//                                    its shards (--stage) run the GPU/host pipeline: buffers
//   transformer                      flops, closed forms named on the GPU, generic on the CPU

import { formatBytes, formatPlan, planBuild, type BuildPlan } from '../pipeline/plan.js';
import { planMlp } from '../ib/plan.js';
import { shardRange, type Shard } from '../ib/staged.js';
import { compileMlp } from '../model/mlp-program.js';
import { compileTransformer } from '../model/transformer/compile.js';
import { flopCostModel } from '../transformer/plan.js';
import { isTransformerBuild, loadTransformerBuild } from '../transformer/build.js';
import { sequenceRange } from '../transformer/staged.js';
import { loadData, loadModel, type LoadedConfig } from './load.js';
import { checkMlpF64Config } from './mlp-f64.js';

/** A build's plan, the header its text starts with, and what its JSON says besides the plan. */
export interface PlannedBuild {
  plan: BuildPlan;
  header: string;
  /** The JSON form's fields before the plan's own. */
  context: Record<string, unknown>;
}

/** The plan of the build `loaded` describes, on shard `shard` of its data. */
export async function planConfig(loaded: LoadedConfig, shard: Shard): Promise<PlannedBuild> {
  const { configPath, base, config } = loaded;
  if (await isTransformerBuild(config, base)) {
    const tf = await loadTransformerBuild(config, base);
    const range = sequenceRange(tf.data.n, shard);
    const n = range.end - range.start;
    const mp = compileTransformer(tf.model, config.node_layers, { positions: tf.data.P, lastPosModuleType: config.last_pos_module_type ?? null });
    const L = config.node_layers.length - 1;
    const rounds = config.basis_formula === 'jacobian' ? config.node_layers.slice(0, L).reverse() : [];
    const staged = {
      stats: 'one pass over the statistics data',
      mprime: rounds.length > 0 ? `${rounds.length} rounds, one per node layer, in this order: ${rounds.join(', ')}` : 'none (no M′ for this basis formula)',
      edges: config.calculate_edges ? 'one pass, every section' : 'none (calculate_edges: false)',
    };
    const plan = { ...planBuild(mp, flopCostModel(mp, n, { naiveGradientFlow: config.naive_gradient_flow === true, device: config.device ?? 'gpu' })), staged };
    const shardLine =
      shard.count > 1 ? `\nshard ${shard.index}/${shard.count}: sequences [${range.start}, ${range.end}) of ${tf.data.n}; costs below are this shard's` : '';
    return {
      plan,
      header: `ibgpu build plan: ${configPath}\ndata: ${tf.data.source}; ${tf.data.n} sequences × ${tf.data.P} positions; transformer with ${tf.arch.n_layers} layers, d_model ${tf.arch.d_model}${shardLine}`,
      context: { config: configPath, data: tf.data.source, positions: tf.data.P, shard, sequences: [range.start, range.end], staged },
    };
  }
  // "device": "cpu" sends a whole build (`ibgpu build`) through the float64 passes; the staged
  // commands (--stage, which shards run) take the GPU/host pipeline whatever the device, so a
  // shard's plan is that pipeline's. A config the float64 passes refuse is refused here too.
  const f64 = config.device === 'cpu' && shard.count === 1;
  if (f64) checkMlpF64Config(config);
  const model = await loadModel(config, base);
  const data = await loadData(config, base);
  try {
    const range = shardRange(data.n, config.batch_size, shard);
    const rows = range.end - range.start;
    const mp = compileMlp(model, config.node_layers);
    const plan = f64
      ? planBuild(mp, flopCostModel(mp, rows, { device: 'cpu' }))
      : planMlp(model, config, { n: data.n, d: data.d, bytesPerRow: (data as { bytesPerRow?: number }).bytesPerRow ?? data.d * 4 }, range);
    const weights = model.layers.reduce((a, l) => a + (l.dIn + 1) * l.dOut * 4, 0);
    const widths = `${model.layers.map((l) => l.dIn).join('-')}-${model.layers[model.layers.length - 1]!.dOut}`;
    return {
      plan,
      header: `ibgpu build plan: ${configPath}\ndata: ${data.description}; batch size ${config.batch_size}; model ${widths} (${formatBytes(weights)} f32)${shard.count > 1 ? `\nshard ${shard.index}/${shard.count}: rows [${range.start}, ${range.end})` : ''}`,
      context: { config: configPath, data: data.description, model: widths, shard, range: [range.start, range.end] },
    };
  } finally {
    await data.close?.();
  }
}

/** The plan as printed: text, or with `json` the context and the plan object. */
export function printablePlan(p: PlannedBuild, json: boolean): string {
  return json ? JSON.stringify({ ...p.context, ...p.plan }, null, 2) : formatPlan(p.plan, p.header);
}
