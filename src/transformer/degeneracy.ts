// The degeneracy report of a transformer's MLP blocks (SPEC §6, per (datapoint, position) row;
// the accounting is src/report/transformer-degeneracy.ts). Two parts:
//
// 1. Statistics of the block's rows, float64 on the host: the model compiled at the node layers
//    mlp_in.i, mlp_act.i, mlp_out.i, add_resid2.i of every block (and `output`) is run in chunks
//    of sequences with the float64 program interpreter's bits (forward-rows.ts: linear ops batched
//    over a chunk's rows, the embedding stage per (token, position), up to the last mlp_out);
//    per block the covariance of the MLP input x, the moments of h = act(p) and, for ReLU, the
//    firing bits of p and its constant slot (one bit per row, packed as the sign-pattern kernels
//    pack them; hashes, firing and co-firing counts by their exact integer routines). One forward
//    pass over the data, O(N·P·(model + d² + d_mlp²)).
// 2. The Jacobian Grams, by the build's own per-sample VJP machinery (GPU passes, or the float64
//    passes with "device": "cpu"): E[J_pᵀJ_p] is the M′ of the section mlp_act.i → output
//    (cutAtFinal composes the rest of the model), with the output unrotated (identity cotangents,
//    one per output position and logit) and the gradient rule (α = 1); its p block is taken.
//    Likewise E[J_yᵀJ_y] from add_resid2.i → output. Cost: 2 passes per block, each with
//    d_vocab·P_out VJPs per sequence through the rest of the model; the report records the time.
//    Where the rest of the model after a ReLU block is position-local with that one ReLU, the
//    passes' gate closed form gives the p block alone from part 1's co-firing counts
//    (TransformerPasses.reluInputMPrime: no data pass, none of the rest of M′).

import type { BuildConfig } from '../ib/config.js';
import type { IbResult } from '../ib/pipeline.js';
import { degeneracyRule } from '../ib/from-build.js';
import { integrationPoints } from '../ib/integration.js';
import { FiringBits, firstUnits, ShiftedMoments } from '../host/row-moments.js';
import { WIDE_LAYER } from '../host/degeneracy.js';
import { cutAtFinal } from '../model/compose.js';
import type { ModelProgram } from '../model/program.js';
import { activationOf } from '../model/transformer/config.js';
import { compileTransformer } from '../model/transformer/compile.js';
import type { TransformerModel } from '../model/transformer/weights.js';
import type { DegeneracyReport } from '../report/degeneracy.js';
import { mlpBlockNames, mlpBlocksReport, type MlpBlockStats } from '../report/transformer-degeneracy.js';
import { RowsForward } from './forward-rows.js';
import type { TransformerPasses } from './passes.js';

/** Sequences per chunk of the host forward pass (bounds its memory). */
export const DEGENERACY_CHUNK = 256;

/** The node layers of the degeneracy program: four per block, then the logits. */
export function degeneracyNodeLayers(nLayers: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < nLayers; i++) {
    const n = mlpBlockNames(i);
    out.push(n.in, n.pre, n.post, n.out);
  }
  out.push('output');
  return out;
}

/** The model compiled at the degeneracy node layers for sequences of P positions. */
export function degeneracyProgram(model: TransformerModel, P: number, lastPos: BuildConfig['last_pos_module_type']): ModelProgram {
  return compileTransformer(model, degeneracyNodeLayers(model.config.n_layers), { positions: P, lastPosModuleType: lastPos ?? null });
}

/** Every parameter of the model as loaded (LayerNorm weights already folded). */
export function transformerParameterCount(model: TransformerModel): number {
  const w = model.weights;
  let n = w.WE.length + (w.Wpos?.length ?? 0) + w.WU.length + w.bU.length;
  for (const b of w.blocks) for (const v of Object.values(b)) n += (v as Float64Array).length;
  return n;
}

export interface HostBlockStats {
  block: number;
  rows: number;
  positions: number;
  xCov: Float64Array;
  hMean: Float64Array;
  hCov: Float64Array;
  hGram: Float64Array;
  patterns?: MlpBlockStats['patterns'];
  /**
   * ReLU blocks: the co-firing counts of every column of mlp_act.i's first member (p and its
   * constant slot: the input of the ReLU of the section mlp_act.i → output), for that section's
   * M′ block (TransformerPasses.reluInputMPrime).
   */
  actCounts?: Float64Array;
}

/** Part 1: per block the row statistics, from float64 forward passes over chunks of sequences. */
export function mlpBlockHostStats(mp: ModelProgram, model: TransformerModel, tokens: Int32Array, n: number, P: number): HostBlockStats[] {
  const c = model.config;
  const d = c.d_model;
  const m = c.d_mlp;
  const relu = activationOf(c.act_fn) === 'relu';
  const acc = Array.from({ length: c.n_layers }, () => ({
    x: new ShiftedMoments(d),
    h: new ShiftedMoments(m),
    bits: undefined as FiringBits | undefined,
    positions: 0,
  }));
  const forward = new RowsForward(mp, P, n);
  for (let s0 = 0; s0 < n; s0 += DEGENERACY_CHUNK) {
    const B = Math.min(DEGENERACY_CHUNK, n - s0);
    // Node layers up to the last block's mlp_out (its add_resid2 and the logits are not read here).
    const acts = forward.tuples(tokens.subarray(s0 * P, (s0 + B) * P), B, 4 * c.n_layers - 2);
    for (let i = 0; i < c.n_layers; i++) {
      const a = acc[i]!;
      const xin = acts[4 * i]!; // mlp_in.i: [x̂, 1 | …]
      const pre = acts[4 * i + 1]!; // mlp_act.i: [p, ρ | …]
      const post = acts[4 * i + 2]!; // mlp_out.i: [h, 1 | …]
      const rows = B * pre.positions;
      a.positions = pre.positions;
      a.x.add({ data: xin.parts[0]!, rows, stride: d + 1, offset: 0 });
      a.h.add({ data: post.parts[0]!, rows, stride: m + 1, offset: 0 });
      if (relu) {
        // Every column of p's member (p and its constant slot): the report reads the first m, the
        // M′ of mlp_act.i → output all of them (mlpBlockJacobianGrams).
        a.bits ??= new FiringBits(m + 1, n * pre.positions);
        a.bits.add({ data: pre.parts[0]!, rows, stride: m + 1, offset: 0 });
      }
    }
  }
  return acc.map((a, i) => {
    const x = a.x.result();
    const h = a.h.result();
    const bits = a.bits?.result({ cofire: m < WIDE_LAYER });
    return {
      block: i,
      rows: h.rows,
      positions: a.positions,
      xCov: x.cov,
      hMean: h.mean,
      hCov: h.cov,
      hGram: h.gram,
      ...(bits ? { patterns: firstUnits(bits, m), ...(bits.cofire.length > 0 ? { actCounts: bits.cofire } : {}) } : {}),
    };
  });
}

/** Top-left k×k block of an n×n matrix. */
function leading(a: Float64Array, n: number, k: number): Float64Array {
  const out = new Float64Array(k * k);
  for (let i = 0; i < k; i++) out.set(a.subarray(i * n, i * n + k), i * k);
  return out;
}

export interface JacobianGrams {
  pre: Float64Array[];
  out: Float64Array[];
  /** How the passes computed them (their stage paths, or the device). */
  path: string;
  vjpsPerSequence: number;
  ms: number;
}

/**
 * Part 2: E[J_pᵀJ_p] and E[J_yᵀJ_y] of every block from M′ of the sections cut at the output.
 * `host` (part 1's statistics): a ReLU block's counts of its act input go to the passes
 * (reluInputMPrime), whose closed form then gives E[J_pᵀJ_p] without a data pass or the rest of M′.
 */
export async function mlpBlockJacobianGrams(
  mp: ModelProgram,
  model: TransformerModel,
  passesFor: (mp: ModelProgram) => Promise<TransformerPasses>,
  host: readonly HostBlockStats[] = [],
): Promise<JacobianGrams> {
  const c = model.config;
  const last = mp.sections[mp.sections.length - 1]!;
  const logits = last.outputs.reduce((a, id) => a + last.values[id]!.width, 0);
  const outPositions = last.values[last.outputs[0]!]!.positions;
  const gradient = integrationPoints('gradient', 0);
  const paths = new Set<string>();
  let device = '';
  const t0 = performance.now();
  const grams = async (l: number, k: number, counts?: Float64Array): Promise<Float64Array> => {
    const cut = cutAtFinal(mp, l);
    const p = await passesFor(cut);
    try {
      const sec = cut.sections[l]!;
      const dIn = sec.inputs.reduce((a, id) => a + sec.values[id]!.width, 0);
      // A ReLU block's p → output Gram from part 1's co-firing counts of p's member, where the
      // passes have that closed form (the block of M′ on the ReLU's input); else M′ by its pass.
      const w0 = sec.values[sec.inputs[0]!]!.width;
      const block = counts?.length === w0 * w0 ? p.reluInputMPrime?.(l, counts, gradient) : undefined;
      const M = block ?? (await p.mPrime(l, undefined, logits, gradient));
      const path = Object.entries(p.stagePaths?.() ?? {}).find(([key]) => key.startsWith('m_prime'))?.[1];
      device = p.device;
      if (path) paths.add(`${sec.from}->${sec.to}: ${path}`);
      return leading(M, block ? Math.sqrt(block.length) : dIn, k);
    } finally {
      p.dispose?.();
    }
  };
  const pre: Float64Array[] = [];
  const out: Float64Array[] = [];
  for (let i = 0; i < c.n_layers; i++) {
    pre.push(await grams(4 * i + 1, c.d_mlp, host[i]?.actCounts));
    out.push(await grams(4 * i + 3, c.d_model));
  }
  return { pre, out, path: paths.size ? `${device}; ${[...paths].join('; ')}` : device, vjpsPerSequence: logits * outPositions, ms: performance.now() - t0 };
}

export interface TransformerDegeneracyData {
  tokens: Int32Array;
  n: number;
  P: number;
}

/**
 * The degeneracy report of every MLP block of `model` on the token data, the Jacobian Grams by
 * `passesFor` (the build's passes factory on the degeneracy program's cuts).
 */
export async function transformerDegeneracy(
  model: TransformerModel,
  data: TransformerDegeneracyData,
  config: Pick<BuildConfig, 'threshold_mode' | 'truncation_threshold' | 'last_pos_module_type'>,
  passesFor: (mp: ModelProgram) => Promise<TransformerPasses>,
  log: (msg: string) => void = () => {},
): Promise<DegeneracyReport> {
  const c = model.config;
  const mp = degeneracyProgram(model, data.P, config.last_pos_module_type);
  const t0 = performance.now();
  const host = mlpBlockHostStats(mp, model, data.tokens, data.n, data.P);
  const forwardMs = performance.now() - t0;
  log(
    `degeneracy: MLP input and hidden statistics of ${c.n_layers} block(s) over ${host[0]?.rows ?? 0} rows (float64 host forward, ${(forwardMs / 1000).toFixed(2)} s)`,
  );
  const jac = await mlpBlockJacobianGrams(mp, model, passesFor, host);
  log(
    `degeneracy: Jacobian Grams, ${2 * c.n_layers} pass(es) of ${jac.vjpsPerSequence} VJPs per sequence over ${data.n} sequences (${(jac.ms / 1000).toFixed(2)} s; ${jac.path})`,
  );
  const last = mp.sections[mp.sections.length - 1]!;
  const act = activationOf(c.act_fn);
  const blocks: MlpBlockStats[] = host.map((h, i) => ({
    block: i,
    activation: act,
    dModel: c.d_model,
    dMlp: c.d_mlp,
    rows: h.rows,
    xCov: h.xCov,
    hMean: h.hMean,
    hCov: h.hCov,
    hGram: h.hGram,
    ...(h.patterns ? { patterns: h.patterns } : {}),
    jacobianPre: jac.pre[i]!,
    jacobianOut: jac.out[i]!,
  }));
  return mlpBlocksReport(blocks, degeneracyRule(config), {
    rawParams: transformerParameterCount(model),
    nLayers: c.n_layers,
    sequences: data.n,
    positions: host[0]?.positions ?? 0,
    rows: host[0]?.rows ?? 0,
    output_positions: last.values[last.outputs[0]!]!.positions,
    last_pos_module_type: config.last_pos_module_type ?? null,
    act_fn: c.act_fn,
    jacobians: { path: jac.path, vjps_per_sequence: jac.vjpsPerSequence, sequences: data.n, ms: jac.ms },
    forward_ms: forwardMs,
  });
}

/** The build's hook: the report into result.degeneracy, its time into result.timings.degeneracy. */
export async function addDegeneracy(
  result: IbResult,
  loaded: { model: TransformerModel; data: TransformerDegeneracyData },
  config: BuildConfig,
  passesFor: (mp: ModelProgram) => Promise<TransformerPasses>,
  logger?: { info(msg: string): void },
): Promise<void> {
  const t0 = performance.now();
  result.degeneracy = await transformerDegeneracy(loaded.model, loaded.data, config, passesFor, (m) => logger?.info(m));
  result.timings['degeneracy'] = performance.now() - t0;
}
