// Dry run (`ibgpu build --plan`): the buffers every stage allocates and the passes over the data,
// from the config, the model's widths and the dataset's size alone (no GPU, no data read).
// Sizes are upper bounds: basis ranks r are taken as the full node-layer dimension. The sections'
// buffers come from the plan over the compiled program (src/pipeline/plan.ts, which also formats
// it) with the cost model of the MLP layer specialisation (src/ib/sections.ts: gate-Gram M′,
// carried-Jacobian edges). MLPs with "device": "cpu" run section programs instead and are planned
// with the flop model (src/build/plan.ts).

import type { BuildConfig } from './config.js';
import { isLegacyFormula } from './legacy.js';
import type { MlpModel } from '../model/mlp.js';
import { changeBufferBytes, pad4, pad8 } from '../kernels/edges.js';
import { ACTIVATION_CACHE_BYTES } from './activation-cache.js';
import { isMlpLayerSection, planNodes, statsPlanOf, type NodePlan } from './sections.js';
import { CHUNK_BYTES as DEGENERACY_CHUNK_BYTES, WIDE_LAYER } from './degeneracy-gpu.js';
import { compileMlp } from '../model/mlp-program.js';
import { planBuild, sectionItems, type BufferPlan, type BuildPlan, type PlanItem, type SectionCost, type SectionCostModel } from '../pipeline/plan.js';

export type { PlanItem } from '../pipeline/plan.js';

/** The plan of an MLP build on the GPU/host pipeline: buffers per stage. */
export type MlpPlan = BuildPlan & BufferPlan;

/**
 * The cost model of an MLP layer section (node layer j → j+1, one folded layer): its gate Gram in
 * the statistics pass (jacobian basis), its basis on the host, and its pair in the edge pass.
 */
function mlpLayerCost(model: MlpModel, plan: NodePlan[], config: BuildConfig, b: number, edgeChunk: number, chunkSaid: boolean): SectionCostModel<SectionCost> {
  const L = model.layers;
  const width = (act: number) => (act === 0 ? L[0]!.dIn : L[act - 1]!.dOut);
  return (sec, j) => {
    const items: PlanItem[] = [];
    const add = (stage: PlanItem['stage'], where: PlanItem['where'], what: string, bytes: number) => items.push({ stage, where, what, bytes });
    const nd = plan[j]!;
    const pair = `pair ${nd.name}->${plan[j + 1]!.name}`;
    if (config.basis_formula === 'jacobian') {
      const h = L[nd.act]!.dOut;
      add('stats', 'gpu', `gates ${L[nd.act]!.name} (${b}×${h}) + Gram partial (${h}×${h})`, (b * h + h * h) * 4);
      add('stats', 'host', `gate Gram ${L[nd.act]!.name} (${h}×${h} f64)`, h * h * 8 + h * h * 4);
    }
    const dim = width(nd.act) + 1;
    // Gram, its eigenvectors, M', V, C, C⁺, U and temporaries: about eight dim² f64 matrices.
    add('bases', 'host', `basis ${nd.name} (≈8 matrices ${dim}×${dim} f64)`, 8 * dim * dim * 8);
    if (config.calculate_edges) {
      const d = width(nd.act);
      const r = d + 1;
      const dimOut = nd.act === L.length - 1 ? L[nd.act]!.dOut : L[nd.act]!.dOut + 1;
      const ro = dimOut; // upper bound: the next layer's basis keeps at most its full width
      const chunks = Math.ceil(b / edgeChunk);
      const relu = L[nd.act]!.activation === 'relu';
      add(
        'edges',
        'gpu',
        `${pair}: C, C⁺W̄, next C (${d}×${pad4(r)}, ${pad4(r)}×${dimOut}, ${dimOut}×${pad8(ro)})`,
        (d * pad4(r) + 2 * pad4(r) * dimOut + dimOut * pad8(ro)) * 4,
      );
      add('edges', 'gpu', `${pair}: per batch f̂, pre-activations, gates (${b} rows)`, (2 * b * pad4(r) + b * d + 3 * b * dimOut) * 4);
      add(
        'edges',
        'gpu',
        `${pair}: E partials (${chunks} chunks × ${ro}×${r} f32, ${edgeChunk} rows per chunk${chunkSaid ? '' : ' as on GPUs; software adapters use more'}; batches are cut into row blocks when this exceeds one storage binding)`,
        chunks * ro * r * 4,
      );
      add('edges', 'host', `${pair}: E sum (${ro}×${r} f64) + staging`, ro * r * 8 + chunks * ro * r * 4);
      add('edges', 'gpu', `${pair}: next block staged ahead (f̂${relu ? '' : ', gates'})`, b * (pad4(r) + (relu ? 0 : dimOut)) * 4);
      if (relu) {
        // Carried-Jacobian kernel: gates read back, sorted, listed as (h, Δg) pairs (at most all of them).
        add('edges', 'host', `${pair}: gates read back + gate-change list (≤ ${b}×${dimOut} pairs)`, b * dimOut * (4 + 8));
        add('edges', 'gpu', `${pair}: gate-change list + visiting order`, changeBufferBytes(b * dimOut * 8) + b * 16);
      }
    }
    return { name: `${sec.from} -> ${sec.to}`, path: mlpLayerPath(config, L[nd.act]!.activation), items };
  };
}

/** How the build computes an MLP layer section: its basis formula's path and its edge pass. */
function mlpLayerPath(config: BuildConfig, activation: string): string {
  const f = config.basis_formula;
  const basis =
    f === 'jacobian'
      ? `gate-Gram M′${activation === 'relu' ? ' (co-firing counts)' : ''}`
      : isLegacyFormula(f)
        ? `rib's ${f} basis (a data pass of its own)`
        : `${f} basis`;
  if (!config.calculate_edges) return basis;
  const edges =
    config.edge_formula === 'functional' ? 'functional edges (GPU)' : activation === 'relu' ? 'carried-Jacobian squared edges' : 'per-row squared edges';
  return `${basis}, ${edges}`;
}

/** The plan of an MLP build on the GPU/host pipeline (every section one MLP layer) on `range`'s rows. */
export function planMlp(
  model: MlpModel,
  config: BuildConfig,
  data: { n: number; d: number; bytesPerRow?: number },
  range: { start: number; end: number } = { start: 0, end: data.n },
  opts: { edgeChunkRows?: number } = {},
): MlpPlan {
  const B = config.batch_size;
  const rows = range.end - range.start;
  const batches = Math.ceil(rows / B);
  const plan = planNodes(model, config.node_layers);
  const L = model.layers;
  const width = (act: number) => (act === 0 ? L[0]!.dIn : L[act - 1]!.dOut);
  const items: PlanItem[] = [];
  const add = (stage: PlanItem['stage'], where: PlanItem['where'], what: string, bytes: number) => items.push({ stage, where, what, bytes });

  const b = Math.min(B, Math.max(1, rows));
  add('data', 'host', `batch as stored (${b} rows × ${data.bytesPerRow ?? data.d * 4} B)`, b * (data.bytesPerRow ?? data.d * 4));
  add('data', 'host', `batch as f32 (${b}×${data.d})`, b * data.d * 4);
  add('data', 'gpu', `input batch (${b}×${data.d} f32)`, b * data.d * 4);

  const lastAct = plan[plan.length - 1]!.act;
  for (let a = 1; a <= Math.min(lastAct, L.length); a++) {
    add('stats', 'gpu', `activations after ${L[a - 1]!.name} (${b}×${width(a)}) + pre-activations`, 2 * b * width(a) * 4);
  }
  for (const nd of statsPlanOf(plan, config).statNodes) {
    const d = width(nd.act);
    add('stats', 'gpu', `Gram partial ${nd.name} (${d}×${d} f32)`, d * d * 4);
    add('stats', 'host', `Gram sum ${nd.name} (${d}×${d} f64) + read-back staging`, d * d * 8 + d * d * 4);
  }
  // Each section's own buffers, from the MLP layer cost model (every section of an MLP build is one layer).
  const edgeChunk = opts.edgeChunkRows ?? 32;
  const cost = mlpLayerCost(model, plan, config, b, edgeChunk, opts.edgeChunkRows !== undefined);
  const build = (sections: SectionCost[]): BufferPlan & { n: number } => {
    items.push(...sectionItems(sections, 'stats'));
    // Hidden activations kept for the edge pass (activation-cache.ts): whole builds only, when they
    // fit the cap; shards and staged runs recompute them.
    if (config.calculate_edges && !isLegacyFormula(config.basis_formula) && rows === data.n) {
      const cached = [
        ...new Set(
          plan
            .slice(0, -1)
            .map((nd) => nd.act)
            .filter((a) => a >= 1),
        ),
      ];
      const bytes = cached.reduce((a, act) => a + rows * width(act) * 4, 0);
      if (bytes > 0 && bytes <= ACTIVATION_CACHE_BYTES) {
        add('stats', 'gpu', `activation cache for the edge pass (${rows} rows × ${cached.map(width).join(' + ')}; whole builds only)`, bytes);
      }
    }
    // Degeneracy statistics (src/ib/degeneracy-gpu.ts), on the statistics pass's batches: per
    // chunk of datapoints the stacked per-sample output Jacobians pushed back through every layer,
    // their Grams, and per hidden ReLU layer the packed firing patterns of every datapoint.
    if (config.degeneracy) {
      const sections = plan.slice(0, -1).map((nd) => nd.act);
      const lo = Math.min(...sections);
      const nOut = L[L.length - 1]!.dOut;
      const hmax = Math.max(...L.slice(lo).map((l) => l.dOut));
      const binding = 128 * 2 ** 20; // the largest storage binding ibgpu asks for
      const chunk = Math.min(b, Math.max(1, Math.floor(Math.min(DEGENERACY_CHUNK_BYTES, binding) / (4 * nOut * hmax))));
      add(
        'degeneracy',
        'gpu',
        `transposed weights and biases of ${L[lo]!.name}…${L[L.length - 1]!.name}`,
        L.slice(lo).reduce((a, l) => a + (l.dIn * l.dOut + l.dOut) * 4, 0),
      );
      add(
        'degeneracy',
        'gpu',
        `stacked output Jacobians (${chunk} datapoints × ${nOut} outputs × ≤${hmax}, 3 buffers) + identity`,
        (3 * chunk * nOut * hmax + chunk * nOut * nOut) * 4,
      );
      for (const i of sections) {
        const h = L[i]!.dOut;
        add('degeneracy', 'gpu', `Jacobian Gram partial ${L[i]!.name} (${h}×${h} f32)`, h * h * 4);
        add('degeneracy', 'host', `Jacobian Gram ${L[i]!.name} (${h}×${h} f64) + staging`, h * h * 12);
        if (i < L.length - 1 && L[i]!.activation === 'relu') {
          const words = Math.ceil(rows / 32);
          const cofire = h < WIDE_LAYER && h * h * 4 <= binding;
          add(
            'degeneracy',
            'gpu',
            `firing patterns ${L[i]!.name}: batch bits, activation Gram${cofire ? ', co-firing counts' : ''} (${h}×${h})`,
            (Math.ceil(b / 32) * h + (cofire ? 2 : 1) * h * h) * 4,
          );
          add(
            'degeneracy',
            'host',
            `firing patterns ${L[i]!.name}: every datapoint's bits (${h} × ${words} words) + Grams (f64)`,
            h * words * 4 + (cofire ? 2 : 1) * h * h * 8,
          );
        }
      }
    }
    items.push(...sectionItems(sections, 'bases'), ...sectionItems(sections, 'edges'));
    const passes = [{ stage: 'stats', passes: 1 }];
    if (isLegacyFormula(config.basis_formula)) passes.push({ stage: 'bases (legacy formula)', passes: plan.length - 1 });
    if (config.calculate_edges) passes.push({ stage: 'edges', passes: 1 });
    const peak: Record<string, { gpu: number; host: number }> = {};
    const dataGpu = items.filter((i) => i.stage === 'data' && i.where === 'gpu').reduce((a, i) => a + i.bytes, 0);
    const dataHost = items.filter((i) => i.stage === 'data' && i.where === 'host').reduce((a, i) => a + i.bytes, 0);
    const weights = L.reduce((a, l) => a + (l.dIn + 1) * l.dOut * 4, 0);
    const cacheBytes = items.filter((i) => i.what.startsWith('activation cache')).reduce((a, i) => a + i.bytes, 0);
    const sum = (st: PlanItem['stage'], where: PlanItem['where']) => items.filter((i) => i.stage === st && i.where === where).reduce((a, i) => a + i.bytes, 0);
    for (const st of ['stats', 'bases', 'edges'] as const) {
      // The degeneracy buffers live through the statistics pass (their host sums until the report).
      const g = sum(st, 'gpu') + (st === 'stats' ? sum('degeneracy', 'gpu') : 0);
      const h = sum(st, 'host') + sum('degeneracy', 'host');
      if (g + h === 0) continue;
      const streams = st !== 'bases';
      // Edges also run the forward pass up to the last section.
      const fwd = st === 'edges' ? items.filter((i) => i.stage === 'stats' && i.what.startsWith('activations')).reduce((a, i) => a + i.bytes, 0) : 0;
      // The activation cache, filled by the statistics pass, lives until the edge pass ends.
      const kept = st === 'stats' ? 0 : cacheBytes;
      peak[st] = { gpu: g + fwd + kept + (streams ? dataGpu + weights : 0), host: h + (streams ? dataHost : 0) };
    }
    return { n: data.n, rows, batches, passes, items, peak };
  };
  const p = planBuild(compileMlp(model, config.node_layers), {
    section: (sec) => {
      if (!isMlpLayerSection(sec)) throw new Error(`section ${sec.from}->${sec.to} is not one MLP layer (planNodes admits only those)`);
      return cost;
    },
    build,
  });
  return { ...p, rows, batches, passes: p.passes!, items: p.items!, peak: p.peak! };
}
