// The transformer passes' host path (stage_paths `stats` and `edges` = host; the default on software
// adapters, src/runtime/stage-paths.ts): where node layer 0 comes from a per-(token, position)
// table (token-table.ts) and every section up to the last statistics node layer has a closed
// form — an attention section cut to the last position (gpu-attention-closed.ts) reading node
// layer 0, then position-local sections with one activation (gpu-mdash-local.ts) — the node
// layers are computed on the host in float64 (src/host/transformer-forward.ts) instead of a GPU
// forward: rib's modular addition (ln1.0 → attention → ln2.0 → MLP → unembed) in a few hundred
// ms of host arithmetic where llvmpipe spends seconds on its kernels. The pass keeps what the
// later passes of the same build need: the rows of each node layer (for the one-activation
// sections' host edges) and each one-activation section's act inputs (for its gate moments,
// exact co-firing counts for ReLU, src/host/stats.ts). All float64, so the statistics are the
// float64 reference's (passes-f64.ts) to rounding, not the GPU's f32 sums.

import { actGrad } from '../model/activations.js';
import type { SectionProgram } from '../model/program.js';
import type { IntegrationPoints } from '../ib/integration.js';
import { attentionShape } from '../host/attention-sums.js';
import { HOST_EDGE_RUNS } from '../host/edges.js';
import type { SquaredEdgeSection } from '../host/edges-squared.js';
import { mulOnThreads } from '../host/mul-threads.js';
import { hostThreadPool, runHostTasks } from '../host/pool.js';
import { gateMomentsByCounts, gateMomentsF64, gateMomentsFromCounts, type RowMoments } from '../host/node-moments.js';
import { HOST_TASKS, type HostTaskArgs, type HostTaskName, type HostTaskResult } from '../host/tasks.js';
import type { ActSectionMaps, AttentionForwardTables } from '../host/transformer-forward.js';
import { signPatternOrder } from '../cpu/gate-order.js';
import { attentionClosedParts, lastPosAttentionSection } from './gpu-attention-closed.js';
import { localEdgeFactors, type LocalEdgeOptions } from './gpu-edges-local.js';
import { bottomMap, singleActSection, topParts, type ActOp } from './gpu-mdash-local.js';
import type { GpuModel } from './gpu-model.js';
import { sectionGeometry, type SectionGeometry } from './gpu-section.js';
import { mulRows } from '../host/mul-rows.js';
import { gatherRows, lookupRows, tableRowIds, tokenRowTable } from './token-table.js';

/** Samples per task of the host forward (fixed, so the rows do not depend on the thread count). */
const FORWARD_CHUNK = 512;

type SectionPlan =
  | { s: number; kind: 'attention'; att: NonNullable<ReturnType<typeof lastPosAttentionSection>> }
  | { s: number; kind: 'act'; act: { op: ActOp; index: number } };

export interface HostStatsPlan {
  table: Float64Array;
  sections: SectionPlan[];
}

/** What the host forward leaves for the later passes of the build. */
export interface HostNodeRows {
  /** Node layer index → its rows [N·P_ℓ, width] (node layers 1 … last). */
  rows: Map<number, Float64Array>;
  /** One-activation section index → its act inputs at the data points [N·P, m]. */
  pre: Map<number, Float64Array>;
  /** Node layer index → its rows as combinations of table rows, where an attention table forward made them. */
  forms: Map<number, TableRowForm>;
}

/** Rows f of node layer ℓ = res(ρ_t*) + Σ_{h,u} p_u^h vz(ρ_u, h) (src/host/transformer-forward.ts). */
export interface TableRowForm {
  shape: { P: number; heads: number };
  ids: Int32Array;
  /** [N, H·P] softmax rows. */
  probs: Float64Array;
  /** Row width d. */
  d: number;
  R: number;
  res: Float64Array;
  vz: Float64Array;
}

/** f·M for each M (d × w) of `maps` (the rows of `form`), in shared memory when `shared`. */
async function formTimes(form: TableRowForm, N: number, maps: { M: Float64Array; w: number }[], shared: boolean): Promise<Float64Array[]> {
  const { d, R } = form;
  const H = form.shape.heads;
  const outs = maps.map((m) => f64(N * m.w, shared));
  const mapped = await Promise.all(
    maps.map(async (m, i) => ({
      resM: await mulOnThreads(form.res, R, d, m.M, m.w, { threads: shared }),
      vzM: await mulOnThreads(form.vz, R * H, d, m.M, m.w, { threads: shared }),
      w: m.w,
      out: outs[i]!,
    })),
  );
  await runHostTasks(
    'table-rows-times',
    chunks(N, FORWARD_CHUNK).map(([n0, n1]) => ({ shape: form.shape, ids: form.ids, probs: form.probs, maps: mapped, n0, n1 })),
    { threads: shared },
  );
  return outs;
}

/** The host forward's plan for node layers 1 … last, or why it does not apply. */
export function hostStatsPlan(model: GpuModel, N: number, last: number): HostStatsPlan | { reason: string } {
  const table = tokenRowTable(model, 0, N, model.nodes[0]!.width);
  if (!table) return { reason: 'node layer 0 has no per-(token, position) table (vocabulary larger than N, or attention before it)' };
  const sections: SectionPlan[] = [];
  for (let s = 0; s < last; s++) {
    const p = model.sections[s]!.program;
    const att = s === 0 ? lastPosAttentionSection(p) : undefined;
    if (att) {
      sections.push({ s, kind: 'attention', att });
      continue;
    }
    const act = singleActSection(p);
    const g = sectionGeometry(model, s);
    if (act && g.pIn === g.pOut) {
      sections.push({ s, kind: 'act', act });
      continue;
    }
    return { reason: `section ${model.nodes[s]!.name}->${model.nodes[s + 1]!.name} has no host closed form` };
  }
  return { table, sections };
}

function transpose(a: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j]!;
  return out;
}

function chunks(n: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let n0 = 0; n0 < n; n0 += size) out.push([n0, Math.min(n, n0 + size)]);
  return out;
}

/** Zeroed float64 memory, shared with the host threads when `shared`. */
function f64(n: number, shared: boolean): Float64Array {
  return shared ? new Float64Array(new SharedArrayBuffer(Math.max(8, n * 8))).subarray(0, n) : new Float64Array(n);
}

/** `a` in shared memory when `shared` (what every task of a pass reads), else itself. */
function share(a: Float64Array, shared: boolean): Float64Array {
  if (!shared) return a;
  const b = f64(a.length, true);
  b.set(a);
  return b;
}

/** The rows of node layers 1 … last (and the act inputs) by the plan, in float64 on the host. */
export async function hostNodeRows(model: GpuModel, tokens: ArrayLike<number>, N: number, plan: HostStatsPlan): Promise<HostNodeRows> {
  const pool = await hostThreadPool();
  const sh = pool !== undefined;
  const vocab = model.mp.embed!.vocab;
  const P = model.P;
  const out: HostNodeRows = { rows: new Map(), pre: new Map(), forms: new Map() };
  let f: Float64Array | undefined;
  let form: TableRowForm | undefined;
  for (const sp of plan.sections) {
    const p: SectionProgram = model.sections[sp.s]!.program;
    const g = sectionGeometry(model, sp.s);
    if (sp.kind === 'attention') {
      // Node layer 0 from the table: per distinct row its [v | k | q], residual and value paths.
      const { J, m, S, DZ } = attentionClosedParts(p, sp.att, g, undefined);
      const d = g.dIn,
        dOut = g.dOut;
      const H = sp.att.op.heads,
        dV = sp.att.op.dV,
        HdV = H * dV;
      const { ids, rows } = tableRowIds(tokens, vocab, P, N, sh);
      const T = gatherRows(plan.table, d, rows);
      const R = rows.length;
      const vkq = mulRows(T, R, d, J, m);
      const res = mulRows(T, R, d, transpose(S, dOut, d), dOut);
      const vz = new Float64Array(R * H * dOut);
      for (let row = 0; row < R; row++)
        for (let h = 0; h < H; h++)
          for (let k = 0; k < dOut; k++) {
            let acc = 0;
            for (let j = 0; j < dV; j++) acc += vkq[row * m + h * dV + j]! * DZ[k * HdV + h * dV + j]!;
            vz[(row * H + h) * dOut + k] = acc;
          }
      const tables: AttentionForwardTables = { vkq: share(vkq, sh), ids, dOut, res: share(res, sh), vz: share(vz, sh) };
      const y = f64(N * g.pOut * dOut, sh);
      const probs = f64(N * H * P, sh);
      const shape = attentionShape(sp.att.op, P, m, dOut);
      await runHostTasks(
        'attention-table-forward',
        chunks(N, FORWARD_CHUNK).map(([n0, n1]) => ({ shape, tables, n0, n1, out: y, probs })),
        { threads: sh },
      );
      f = y;
      form = { shape: { P, heads: H }, ids, probs, d: dOut, R, res, vz };
      out.forms.set(sp.s + 1, form);
    } else {
      const rowsN = N * g.pIn;
      if (!f) f = lookupRows(plan.table, g.dIn, tokens, vocab, P, 0, N, sh);
      const A = bottomMap(p, sp.act, g);
      const { r, s } = topParts(p, sp.act, g, undefined);
      const m = p.values[sp.act.op.x]!.width;
      const maps: ActSectionMaps = {
        act: sp.act.op.act,
        d: g.dIn,
        m,
        dOut: g.dOut,
        A: share(A, sh),
        S: share(transpose(s, g.dOut, g.dIn), sh),
        R: share(transpose(r, g.dOut, m), sh),
      };
      let x: Float64Array, y: Float64Array;
      if (form && g.pIn === 1) {
        // Rows from the attention table forward: x = f·A and f·S from the mapped tables.
        const xy = await formTimes(
          form,
          N,
          [
            { M: A, w: m },
            { M: transpose(s, g.dOut, g.dIn), w: g.dOut },
          ],
          sh,
        );
        x = xy[0]!;
        y = xy[1]!;
        await runHostTasks(
          'act-section-finish',
          chunks(rowsN, FORWARD_CHUNK).map(([n0, n1]) => ({ maps, n0, n1, x, out: y })),
          { threads: sh },
        );
      } else {
        x = f64(rowsN * m, sh);
        y = f64(rowsN * g.dOut, sh);
        const input = f;
        await runHostTasks(
          'act-section-rows',
          chunks(rowsN, FORWARD_CHUNK).map(([n0, n1]) => ({ maps, f: input, n0, n1, x, out: y })),
          { threads: sh },
        );
      }
      out.pre.set(sp.s, x);
      f = y;
      form = undefined;
    }
    out.rows.set(sp.s + 1, f);
  }
  return out;
}

/** `task` on a host worker thread when there are any, else on this thread. */
async function onHostThread<T extends HostTaskName>(task: T, args: HostTaskArgs<T>): Promise<HostTaskResult<T>> {
  const pool = await hostThreadPool();
  return pool ? pool.run(task, args) : (HOST_TASKS[task] as (a: HostTaskArgs<T>) => HostTaskResult<T>)(args);
}

/**
 * Means and Gram (divided by n) of rows x [n, w] (node-moments.ts), on a host thread when there
 * are any (the node layers' moments then run beside each other).
 */
export function hostMoments(x: Float64Array, n: number, w: number, centred: boolean): Promise<RowMoments> {
  return onHostThread('row-moments', { x, n, w, centred });
}

/** ReLU co-firing counts of act inputs pre [rows, h], in row ranges over the host threads (integer counts: the same in any split). */
export async function hostCofireCounts(pre: Float64Array, rows: number, h: number): Promise<Float64Array> {
  const pool = await hostThreadPool();
  const parts = Math.max(1, Math.min(pool?.size ?? 1, rows));
  const bounds = Array.from({ length: parts + 1 }, (_, k) => Math.round((k * rows) / parts));
  const counts = await Promise.all(bounds.slice(0, parts).map((r0, k) => onHostThread('relu-cofire', { pre, h, r0, r1: bounds[k + 1]! })));
  const out = counts[0]!;
  for (let k = 1; k < parts; k++) {
    const c = counts[k]!;
    for (let i = 0; i < out.length; i++) out[i]! += c[i]!;
  }
  return out;
}

/**
 * G_a = Σ a aᵀ and Σa of a one-activation section from its act inputs at the data points
 * (a = Σ_k w_k act'(α_k x)): for ReLU at positive points from its co-firing counts (`counts`
 * when they were started earlier), else the gate Gram.
 */
export async function hostGateMoments(
  act: ActOp,
  pre: Float64Array,
  rows: number,
  points: IntegrationPoints,
  counts?: Promise<Float64Array>,
): Promise<{ Ga: Float64Array; sa: Float64Array }> {
  const m = pre.length / rows;
  if (gateMomentsByCounts(act.act, points)) return gateMomentsFromCounts(await (counts ?? hostCofireCounts(pre, rows, m)), m, points);
  return gateMomentsF64(act.act, pre, rows, points);
}

/**
 * Squared edges of a one-activation section (gpu-edges-local.ts's factorisation) on the host, from
 * the host rows f of its input node layer: u = f C, the gates at the projected point x' = u (C⁺A),
 * and the carried-Jacobian sums of src/host/edges-squared.ts in sign-pattern order, cut into
 * HOST_EDGE_RUNS runs (each its own partial, added in order: the same bits on any thread count).
 * E is r_out × r_in, divided by N·P_in.
 */
export async function edgesLocalHost(
  model: GpuModel,
  s: number,
  f: Float64Array,
  N: number,
  g: SectionGeometry,
  opts: LocalEdgeOptions,
  act: { op: ActOp; index: number },
  form?: TableRowForm,
): Promise<Float64Array> {
  const pool = await hostThreadPool();
  const sh = pool !== undefined;
  const rIn = opts.rIn;
  const ro = g.rOut;
  const rows = N * g.pIn;
  const W = opts.points.weights.reduce((a, b) => a + b, 0);
  const fac = localEdgeFactors(model.sections[s]!.program, act, g, opts.Chat, opts.Cpinv, rIn, W);
  const { m } = fac;
  const h = m + fac.extra;
  // u = f C, from the mapped tables when f came from an attention table forward.
  // u and the gates' inputs on this thread: small products (r_in columns) that would otherwise
  // queue behind the M′ sums the threads run meanwhile, and the gates and their order are this
  // thread's work anyway.
  const u = form && g.pIn === 1 ? (await formTimes(form, N, [{ M: opts.C, w: rIn }], false))[0]! : mulRows(f, rows, g.dIn, opts.C, rIn);
  const x = await mulOnThreads(u, rows, rIn, fac.CpA, m, { threads: false });
  const gates = f64(rows * h, sh);
  const { alphas, weights } = opts.points;
  for (let n = 0; n < rows; n++) {
    for (let c = 0; c < m; c++) {
      const p = x[n * m + c]!;
      let v = 0;
      for (let k = 0; k < alphas.length; k++) v += weights[k]! * actGrad(act.op.act, alphas[k]! * p);
      gates[n * h + c] = v;
    }
    for (let c = m; c < h; c++) gates[n * h + c] = 1;
  }
  const order = signPatternOrder(gates, rows, h);
  const orderS = sh ? new Uint32Array(new SharedArrayBuffer(order.byteLength)) : order;
  if (orderS !== order) orderS.set(order);
  const fhat = share(u, sh);
  const section: SquaredEdgeSection = { h, ro, r: rIn, A: transpose(fac.A, ro, h), B: transpose(fac.B, rIn, h) };
  const runs = Math.min(HOST_EDGE_RUNS, rows);
  const parts = f64(runs * ro * rIn, sh);
  const bounds = Array.from({ length: runs + 1 }, (_, k) => Math.round((k * rows) / runs));
  await runHostTasks(
    'squared-edges-run',
    Array.from({ length: runs }, (_, k) => ({
      section,
      E: parts.subarray(k * ro * rIn, (k + 1) * ro * rIn),
      fhat,
      gates,
      order: orderS,
      from: bounds[k]!,
      to: bounds[k + 1]!,
    })),
    { threads: sh },
  );
  const E = new Float64Array(ro * rIn);
  for (let k = 0; k < runs; k++) for (let i = 0; i < E.length; i++) E[i]! += parts[k * ro * rIn + i]!;
  const sc = 1 / rows;
  for (let i = 0; i < E.length; i++) E[i] = E[i]! * sc;
  return E;
}
