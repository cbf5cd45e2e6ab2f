// Compiles a transformer, cut at rib's node layers, into a ModelProgram (src/model/program.ts).
//
// The compiler walks rib's flat module list (modules.ts) once, applying each module's semantics
// after bias folding (SPEC-transformers §1.4, §2.3) to a symbolic tuple of value ids. At each node
// layer the current section is closed with the tuple as its outputs and a new section opens whose
// inputs have the same shapes — exactly rib's cut "before each node layer", where a node layer is
// the section's input tuple concatenated (§1.3). The layouts of §1.5 (1-slots, 0-slots, the
// duplicated no-LN halves, Pythia's dual streams) follow from the module semantics; the tests
// check them against the table.

import type { EmbedSpec, Op, SectionProgram, ValueInfo, ModelProgram } from '../program.js';
import { activationOf, ribRootOfOne, type TransformerConfig } from './config.js';
import { moduleIds, moduleType, validateNodeLayers, type LastPosModuleType } from './modules.js';
import type { BlockWeights, TransformerModel } from './weights.js';

export interface CompileOptions {
  /** Sequence length of the data (≤ n_ctx). */
  positions: number;
  /** rib's last_pos_module_type (§7): every module of that type keeps only the last position. */
  lastPosModuleType?: LastPosModuleType | null;
}

/** Folded weights of one block as the linear ops use them (row-major [wIn, wOut]). */
interface FoldedBlock {
  Q: Float64Array; // [d+1, H·dh]
  K: Float64Array; // [d+1, H·dh]
  V: Float64Array; // [d+1, H·(dh+1)]
  O: Float64Array; // [H·(dh+1), d+1]
  In: Float64Array; // [d+1, m+1]
  Out: Float64Array; // [m+1, d+1]
}

/** rib's fold_bias (§2.3) for one block. */
export function foldBlock(c: TransformerConfig, b: BlockWeights): FoldedBlock {
  const { d_model: d, n_heads: H, d_head: dh, d_mlp: m } = c;
  const D = d + 1;
  const qk = (W: Float64Array, bias: Float64Array): Float64Array => {
    const out = new Float64Array(D * H * dh);
    for (let h = 0; h < H; h++) {
      for (let j = 0; j < dh; j++) {
        for (let k = 0; k < d; k++) out[k * H * dh + h * dh + j] = W[(h * d + k) * dh + j]!;
        out[d * H * dh + h * dh + j] = bias[h * dh + j]!;
      }
    }
    return out;
  };
  const dV = dh + 1;
  const V = new Float64Array(D * H * dV);
  for (let h = 0; h < H; h++) {
    for (let j = 0; j < dh; j++) {
      for (let k = 0; k < d; k++) V[k * H * dV + h * dV + j] = b.WV[(h * d + k) * dh + j]!;
      V[d * H * dV + h * dV + j] = b.bV[h * dh + j]!;
    }
    V[d * H * dV + h * dV + dh] = 1; // each head's v ends in the 1-slot
  }
  const O = new Float64Array(H * dV * D);
  for (let h = 0; h < H; h++) {
    for (let j = 0; j < dh; j++) for (let k = 0; k < d; k++) O[(h * dV + j) * D + k] = b.WO[(h * dh + j) * d + k]!;
    for (let k = 0; k < d; k++) O[(h * dV + dh) * D + k] = b.bO[k]! / H; // Σ_u p_{t,u} = 1: the heads add b_O
  }
  const In = new Float64Array(D * (m + 1));
  for (let k = 0; k < d; k++) for (let j = 0; j < m; j++) In[k * (m + 1) + j] = b.Win[k * m + j]!;
  for (let j = 0; j < m; j++) In[d * (m + 1) + j] = b.bin[j]!;
  In[d * (m + 1) + m] = ribRootOfOne(c.act_fn);
  const Out = new Float64Array((m + 1) * D);
  for (let j = 0; j < m; j++) for (let k = 0; k < d; k++) Out[j * D + k] = b.Wout[j * d + k]!;
  for (let k = 0; k < d; k++) Out[m * D + k] = b.bout[k]!;
  return { Q: qk(b.WQ, b.bQ), K: qk(b.WK, b.bK), V, O, In, Out };
}

/** The folded embedding (W_E gains a 0 column, or 1 for rotary models; W_pos a 1 column). */
export function foldEmbed(model: TransformerModel): EmbedSpec {
  const c = model.config;
  const { d_model: d, d_vocab: V, n_ctx } = c;
  const D = d + 1;
  const rotary = c.positional_embedding_type === 'rotary';
  const WE = new Float64Array(V * D);
  for (let v = 0; v < V; v++) {
    WE.set(model.weights.WE.subarray(v * d, (v + 1) * d), v * D);
    WE[v * D + d] = rotary ? 1 : 0;
  }
  const spec: EmbedSpec = { WE, vocab: V, width: D, nCtx: n_ctx };
  if (!rotary) {
    const Wp = model.weights.Wpos!;
    const Wpos = new Float64Array(n_ctx * D);
    for (let t = 0; t < n_ctx; t++) {
      Wpos.set(Wp.subarray(t * d, (t + 1) * d), t * D);
      Wpos[t * D + d] = 1;
    }
    spec.Wpos = Wpos;
  }
  return spec;
}

class SectionBuilder {
  values: ValueInfo[] = [];
  ops: Op[] = [];
  inputs: number[] = [];
  constructor(readonly from: string) {}
  val(width: number, positions: number, label: string): number {
    this.values.push({ width, positions, label });
    return this.values.length - 1;
  }
  info(id: number): ValueInfo {
    return this.values[id]!;
  }
  finish(to: string, outputs: number[]): SectionProgram {
    return { from: this.from, to, values: this.values, inputs: this.inputs, outputs, ops: this.ops };
  }
}

export function compileTransformer(model: TransformerModel, nodeLayers: readonly string[], opts: CompileOptions): ModelProgram {
  const c = model.config;
  validateNodeLayers(c, nodeLayers);
  if (!Number.isInteger(opts.positions) || opts.positions < 1 || opts.positions > c.n_ctx) {
    throw new Error(`compileTransformer: positions ${opts.positions} outside 1..n_ctx ${c.n_ctx}`);
  }
  const lastPosType = opts.lastPosModuleType ?? null;
  const { d_model: d, n_heads: H, d_head: dh, d_mlp: m, d_vocab: Vocab } = c;
  const D = d + 1;
  const dV = dh + 1;
  const P0 = opts.positions;
  const lnPre = c.normalization_type !== null;
  const parallel = c.parallel_attn_mlp;
  const rotary = c.positional_embedding_type === 'rotary';
  const folded = model.weights.blocks.map((b) => foldBlock(c, b));
  const WU = new Float64Array(D * Vocab);
  WU.set(model.weights.WU);
  WU.set(model.weights.bU, d * Vocab);

  const embed = foldEmbed(model);
  const nodes = new Set(nodeLayers.filter((n) => n !== 'output'));
  const sections: SectionProgram[] = [];
  let pre: SectionProgram | undefined;
  let sb = new SectionBuilder('input');
  let tup: number[] = rotary ? [sb.val(D, P0, 'embed')] : [sb.val(D, P0, 'embed'), sb.val(D, P0, 'pos_embed')];
  sb.inputs = tup.slice();

  const close = (to: string): void => {
    const prog = sb.finish(to, tup);
    if (pre === undefined) pre = prog;
    else sections.push(prog);
    sb = new SectionBuilder(to);
    tup = tup.map((id) => {
      const v = prog.values[id]!;
      return sb.val(v.width, v.positions, `${to}/${v.label.split('/').pop()}`);
    });
    sb.inputs = tup.slice();
  };

  const emit = (op: Op): void => {
    sb.ops.push(op);
  };
  const P = (id: number): number => sb.info(id).positions;
  const linear = (x: number, W: Float64Array, wIn: number, wOut: number, label: string): number => {
    const y = sb.val(wOut, P(x), label);
    emit({ kind: 'linear', x, y, W, wIn, wOut });
    return y;
  };
  const lnVar = (r: number, label: string): number => {
    const y = sb.val(1, P(r), label);
    emit({ kind: 'lnVar', x: r, y, d });
    return y;
  };
  const lnDiv = (v: number, x: number, label: string): number => {
    const y = sb.val(D, P(x), label);
    emit({ kind: 'lnDiv', v, x, y, d, eps: c.eps });
    return y;
  };
  const add = (a: number, b: number, label: string): number => {
    const y = sb.val(sb.info(a).width, P(a), label);
    emit({ kind: 'add', a, b, y });
    return y;
  };
  const last = (x: number, label: string): number => {
    const y = sb.val(sb.info(x).width, 1, label);
    emit({ kind: 'lastPos', x, y });
    return y;
  };

  const ids = moduleIds(c);
  const start = rotary ? 1 : 2;
  for (let at = start; at < ids.length; at++) {
    const id = ids[at]!;
    if (nodes.has(id)) close(id);
    const type = moduleType(id);
    const layer = id.includes('.') ? Number(id.slice(id.indexOf('.') + 1)) : -1;
    const fb = layer >= 0 ? folded[layer]! : undefined;
    const arity = (n: number): void => {
      if (tup.length !== n) throw new Error(`compileTransformer: ${id} expects ${n} inputs, got ${tup.length}`);
    };
    switch (type) {
      case 'add_embed': {
        arity(2);
        tup = [add(tup[0]!, tup[1]!, `${id}/r`)];
        break;
      }
      case 'ln1':
      case 'ln_final': {
        arity(1);
        if (lnPre) tup = [lnVar(tup[0]!, `${id}/var`), tup[0]!];
        break;
      }
      case 'ln2': {
        if (parallel) {
          arity(2);
          const [a, r] = tup as [number, number];
          tup = [lnVar(r, `${id}/var`), r, a];
        } else {
          arity(1);
          if (lnPre) tup = [lnVar(tup[0]!, `${id}/var`), tup[0]!];
        }
        break;
      }
      case 'ln1_out':
      case 'ln2_out': {
        if (parallel && type === 'ln2_out') {
          arity(3);
          const [v, r, a] = tup as [number, number, number];
          tup = [lnDiv(v, r, `${id}/xhat`), a];
        } else if (lnPre) {
          arity(2);
          tup = [lnDiv(tup[0]!, tup[1]!, `${id}/xhat`), tup[1]!];
        } else {
          // rib's IdentitySplit: r → (r, copy of r)
          arity(1);
          const y = sb.val(D, P(tup[0]!), `${id}/copy`);
          emit({ kind: 'copy', x: tup[0]!, y });
          tup = [tup[0]!, y];
        }
        break;
      }
      case 'ln_final_out': {
        if (lnPre) {
          arity(2);
          tup = [lnDiv(tup[0]!, tup[1]!, `${id}/xhat`)];
        } else arity(1);
        break;
      }
      case 'attn_in': {
        arity(2);
        const [x, r] = tup as [number, number];
        let q = linear(x, fb!.Q, D, H * dh, `${id}/q`);
        let k = linear(x, fb!.K, D, H * dh, `${id}/k`);
        const v = linear(x, fb!.V, D, H * dV, `${id}/v`);
        if (rotary) {
          const rot = (src: number, label: string): number => {
            const y = sb.val(H * dh, P(src), label);
            emit({ kind: 'rotary', x: src, y, heads: H, dHead: dh, rotaryDim: c.rotary_dim!, base: c.rotary_base });
            return y;
          };
          q = rot(q, `${id}/q_rot`);
          k = rot(k, `${id}/k_rot`);
        }
        tup = [q, k, v, r];
        break;
      }
      case 'attn_out': {
        arity(4);
        const [q, k, v, r] = tup as [number, number, number, number];
        const z = sb.val(H * dV, P(q), `${id}/z`);
        const local = c.use_local_attn && layer % 2 === 1;
        emit({
          kind: 'attention',
          q,
          k,
          v,
          y: z,
          heads: H,
          dHead: dh,
          dV,
          scale: c.use_attn_scale ? Math.sqrt(dh) : 1,
          causal: true,
          ...(local ? { window: c.window_size } : {}),
        });
        tup = [linear(z, fb!.O, H * dV, D, `${id}/o`), r];
        break;
      }
      case 'add_resid1': {
        arity(2);
        const [o, r] = tup as [number, number];
        let s = add(o, r, `${id}/r`);
        const cut = lastPosType === 'add_resid1';
        if (cut) s = last(s, `${id}/r_last`);
        tup = parallel ? [s, cut ? last(r, `${id}/resid_last`) : r] : [s];
        break;
      }
      case 'mlp_in': {
        arity(2);
        tup = [linear(tup[0]!, fb!.In, D, m + 1, `${id}/pre`), tup[1]!];
        break;
      }
      case 'mlp_act': {
        arity(2);
        const y = sb.val(m + 1, P(tup[0]!), `${id}/post`);
        emit({ kind: 'act', x: tup[0]!, y, act: activationOf(c.act_fn) });
        tup = [y, tup[1]!];
        break;
      }
      case 'mlp_out': {
        arity(2);
        tup = [linear(tup[0]!, fb!.Out, m + 1, D, `${id}/y`), tup[1]!];
        break;
      }
      case 'add_resid2': {
        arity(2);
        tup = [add(tup[0]!, tup[1]!, `${id}/r`)];
        break;
      }
      case 'unembed': {
        arity(1);
        let x = tup[0]!;
        if (lastPosType === 'unembed') x = last(x, `${id}/x_last`);
        tup = [linear(x, WU, D, Vocab, `${id}/logits`)];
        break;
      }
      default:
        throw new Error(`compileTransformer: no semantics for module ${id}`);
    }
  }
  if (nodeLayers[nodeLayers.length - 1] === 'output') close('output');
  return { embed, pre: pre!, sections, nodeLayers: nodeLayers.slice() };
}
