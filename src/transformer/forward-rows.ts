// The float64 node-layer rows of a model over token data for host passes that read every node
// layer (the degeneracy report's forward, degeneracy.ts): nodeTuplesF64 (forward-f64.ts, the
// program interpreter) bit for bit, faster in two ways that keep each row's operations:
//   - the linear ops run once over the rows of a whole chunk (src/host/program-forward.ts);
//   - the embedding stage's position-local ops (everything `pre` computes before an op that mixes
//     positions: on rib's models the residual stream and q, k, v) give rows that are a function
//     of (token, position) only, so where the data has more sequences than the vocabulary they
//     are computed once per (token, position), vocab·P rows, and the chunks' rows are looked up
//     (token-table.ts does the same for node layer 0). A looked-up row is the row the
//     interpreter computes for that token at that position: the same operations on the same
//     operands;
//   - rows that only a last-position cut reads are computed at that position alone (lastOnly).

import { embedF64, type ProgramValues } from '../cpu/program-f64.js';
import { IbgpuError } from '../errors.js';
import { forwardRowsF64, runOpsRows } from '../host/program-forward.js';
import { opInputs, type ModelProgram, type Op, type SectionProgram } from '../model/program.js';
import { nodeTuplesF64, tupleWidths, type NodeTuple } from './forward-f64.js';

/** Largest per-(token, position) table of the embedding stage's values kept (bytes). */
export const ROW_TABLE_MAX_BYTES = 64 * 2 ** 20;

/** The embedding stage's values per (token, position): [vocab, P, w] per value id of `pre` that is one. */
interface PreTable {
  vals: ProgramValues;
  /** Per value id of pre: computed from the embedding by position-local ops only. */
  local: boolean[];
  /** The ops of pre that are not, run per chunk: in `chunk`, with the rows nothing reads left out (lastOnly). */
  chunk: SectionProgram;
  vocab: number;
}

/** Ops whose every output row is computed from the same row of their inputs, whatever its position. */
const ROWWISE = new Set<Op['kind']>(['linear', 'act', 'add', 'copy', 'concat', 'slice', 'lnVar', 'lnDiv']);

/** `op` with its input value ids mapped by f. */
function withInputs(op: Op, f: (id: number) => number): Op {
  switch (op.kind) {
    case 'lnDiv':
      return { ...op, v: f(op.v), x: f(op.x) };
    case 'add':
      return { ...op, a: f(op.a), b: f(op.b) };
    case 'concat':
      return { ...op, xs: op.xs.map(f) };
    case 'attention':
      return { ...op, q: f(op.q), k: f(op.k), v: f(op.v) };
    default:
      return { ...op, x: f(op.x) };
  }
}

/**
 * The per-chunk ops `rest` of pre with the rows nothing reads left out: a value of a row-wise op
 * that is read only at its last position (by lastPos, or by row-wise ops whose own values are)
 * is computed at that position alone (rib's add_resid1 cut: W_O and the residual add on the last
 * position instead of all P); its inputs are cut to their last position first, and a lastPos of
 * it becomes a copy. Every row computed is computed as in pre, so the values read are the same bits.
 */
function lastOnly(pre: SectionProgram, local: boolean[], rest: Op[]): SectionProgram {
  const readers = pre.values.map((): Op[] => []);
  for (const op of rest) for (const id of opInputs(op)) readers[id]!.push(op);
  const outputs = new Set(pre.outputs);
  const pruned = new Array<boolean>(pre.values.length).fill(false);
  // Readers come later in program order: decided before the values they read.
  for (let i = rest.length - 1; i >= 0; i--) {
    const op = rest[i]!;
    if (!ROWWISE.has(op.kind) || outputs.has(op.y) || local[op.y]) continue;
    const rs = readers[op.y]!;
    pruned[op.y] = rs.length > 0 && rs.every((r) => r.kind === 'lastPos' || pruned[r.y]);
  }
  const values = pre.values.map((v, id) => (pruned[id] ? { ...v, positions: 1 } : v));
  const ops: Op[] = [];
  const cut = new Map<number, number>();
  const lastRow = (id: number): number => {
    if (pruned[id]) return id;
    let y = cut.get(id);
    if (y === undefined) {
      y = values.length;
      values.push({ ...pre.values[id]!, positions: 1, label: `${pre.values[id]!.label}/last` });
      ops.push({ kind: 'lastPos', x: id, y });
      cut.set(id, y);
    }
    return y;
  };
  for (const op of rest) {
    if (op.kind === 'lastPos' && pruned[op.x]) ops.push({ kind: 'copy', x: op.x, y: op.y });
    else if (pruned[op.y]) ops.push(withInputs(op, lastRow));
    else ops.push(op);
  }
  return { ...pre, values, ops };
}

export type NodeTupleRows = NodeTuple & { widths: number[] };

export class RowsForward {
  private readonly table: PreTable | undefined;

  /** For `N` sequences of `P` tokens of `mp` (the table is made when it pays: N > vocab). */
  constructor(
    readonly mp: ModelProgram,
    readonly P: number,
    N: number,
  ) {
    this.table = preTable(mp, P, N);
  }

  /** Whether the embedding stage's rows come from a per-(token, position) table. */
  get tabled(): boolean {
    return this.table !== undefined;
  }

  /** The embedding stage's values computed at their last position only (lastOnly), by label. */
  get lastOnlyValues(): string[] {
    const t = this.table;
    if (!t) return [];
    return t.chunk.values.filter((v, id) => id < this.mp.pre.values.length && v.positions !== this.mp.pre.values[id]!.positions).map((v) => v.label);
  }

  /** nodeTuplesF64(mp, tokens, n, P, …, last)'s node layers 0..last, the same bits. */
  tuples(tokens: ArrayLike<number>, n: number, last = this.mp.sections.length): NodeTupleRows[] {
    const { mp, P, table } = this;
    if (!table) return nodeTuplesF64(mp, tokens, n, P, forwardRowsF64, last);
    const pre = mp.pre;
    const vals: ProgramValues = new Array<Float64Array>(table.chunk.values.length);
    const need = (id: number): void => {
      if (table.local[id] && !vals[id]) vals[id] = lookup(table, pre.values[id]!.width, tokens, n, P, id);
    };
    for (const op of table.chunk.ops) {
      opInputs(op).forEach(need);
      runOpsRows(table.chunk, [op], vals, n);
    }
    pre.outputs.forEach(need);
    const out: NodeTupleRows[] = [];
    let tuple = pre.outputs.map((id) => vals[id]!);
    const record = (name: string, sec: ModelProgram['pre'], parts: Float64Array[]): void => {
      const widths = tupleWidths(sec, sec.outputs);
      out.push({ name, width: widths.reduce((a, b) => a + b, 0), positions: sec.values[sec.outputs[0]!]!.positions, parts, widths });
    };
    record(mp.nodeLayers[0]!, pre, tuple);
    for (const sec of mp.sections.slice(0, last)) {
      const v = forwardRowsF64(sec, tuple, n);
      tuple = sec.outputs.map((id) => v[id]!);
      record(sec.to, sec, tuple);
    }
    return out;
  }
}

function preTable(mp: ModelProgram, P: number, N: number): PreTable | undefined {
  const emb = mp.embed;
  if (!emb || emb.vocab >= N || P > emb.nCtx) return undefined;
  const pre = mp.pre;
  const local = new Array<boolean>(pre.values.length).fill(false);
  for (const id of pre.inputs) local[id] = true;
  const localOps: Op[] = [];
  const rest: Op[] = [];
  for (const op of pre.ops) {
    // attention mixes positions; lastPos changes them (its row is no longer at the token's position).
    const isLocal = op.kind !== 'attention' && op.kind !== 'lastPos' && opInputs(op).every((id) => local[id]);
    local[op.y] = isLocal;
    (isLocal ? localOps : rest).push(op);
  }
  const V = emb.vocab;
  let bytes = 0;
  for (const [id, isLocal] of local.entries()) if (isLocal) bytes += V * P * pre.values[id]!.width * 8;
  if (bytes > ROW_TABLE_MAX_BYTES) return undefined;
  // Sample v: token v at every position.
  const toks = new Int32Array(V * P);
  for (let v = 0; v < V; v++) toks.fill(v, v * P, (v + 1) * P);
  const vals: ProgramValues = new Array<Float64Array>(pre.values.length);
  embedF64(emb, toks, V, P).forEach((a, j) => (vals[pre.inputs[j]!] = a));
  runOpsRows(pre, localOps, vals, V);
  return { vals, local, chunk: lastOnly(pre, local, rest), vocab: V };
}

/** Value `id` of n sequences [n, P, w] from its table rows, as embedF64 checks the tokens. */
function lookup(table: PreTable, w: number, tokens: ArrayLike<number>, n: number, P: number, id: number): Float64Array {
  const src = table.vals[id]!;
  if (tokens.length !== n * P) throw new Error(`RowsForward: ${tokens.length} tokens for ${n}×${P}`);
  const out = new Float64Array(n * P * w);
  for (let i = 0; i < n * P; i++) {
    const t = tokens[i]!;
    if (!Number.isInteger(t) || t < 0 || t >= table.vocab) {
      throw new IbgpuError(
        'SHAPE',
        `token id ${t} at sample ${Math.floor(i / P)}, position ${i % P} is outside the vocabulary 0..${table.vocab - 1}`,
        "tokenise with the model's tokenizer, or check d_vocab in the model config",
      );
    }
    const row = t * P + (i % P);
    out.set(src.subarray(row * w, (row + 1) * w), i * w);
  }
  return out;
}
