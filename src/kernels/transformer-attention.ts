// Attention core of the transformer programs (op attention of src/model/program.ts, rib's
// AttentionOut without W_O) on the GPU: the forward (which also keeps the probabilities) and the
// VJP over K-blocks of cotangents in two kernels, first per query position (dp → ds → dq), then
// per key position (dk, dv), following SPEC-transformers §5.2. Shaders: shaders/tf_attention*.wgsl.

import type { AttentionDims } from '../cpu/transformer-ops.js';
import { checkShape } from '../errors.js';
import type { Engine } from '../runtime/engine.js';
import { packParams } from '../runtime/params.js';
import { ceilDiv } from '../runtime/workgroups.js';
import { checkCount, checkFloats, checkLoopBudget } from './transformer-params.js';
import { shaderKernel } from './shader-kernel.js';

const WG = 64;

export const attentionKernel = shaderKernel('tf_attention', { WG });
export const attentionVjpQKernel = shaderKernel('tf_attention_vjp_q', { WG });
export const attentionVjpKvKernel = shaderKernel('tf_attention_vjp_kv', { WG });

/** The shape the kernels run: the same as the float64 reference's. */
export type AttentionShape = AttentionDims;

function check(engine: Engine, name: string, a: AttentionShape, iterations: number): void {
  for (const k of ['B', 'P', 'heads', 'dHead', 'dV'] as const) checkCount(name, k, a[k]);
  checkShape(Number.isFinite(a.scale) && a.scale > 0, `${name}: scale = ${a.scale} must be finite and positive`);
  checkShape(a.window === undefined || (Number.isInteger(a.window) && a.window >= 0), `${name}: window = ${a.window} must be a non-negative integer`);
  checkLoopBudget(engine, name, iterations, `attention over P = ${a.P} positions, head widths ${a.dHead}/${a.dV}`);
}

/** Floats of the probability buffer: [B·heads, P, P]. */
export function attentionProbFloats(a: AttentionShape): number {
  return a.B * a.heads * a.P * a.P;
}

/** z = softmax(q kᵀ / scale, masked) v per sample and head; probs keeps p for the VJP. */
export function attentionForward(engine: Engine, q: GPUBuffer, k: GPUBuffer, v: GPUBuffer, z: GPUBuffer, probs: GPUBuffer, a: AttentionShape): void {
  check(engine, 'tf_attention', a, a.P * (a.dHead + a.dV + 2) + a.dV);
  const rows = a.B * a.P;
  checkFloats('tf_attention', 'q', q, rows * a.heads * a.dHead);
  checkFloats('tf_attention', 'k', k, rows * a.heads * a.dHead);
  checkFloats('tf_attention', 'v', v, rows * a.heads * a.dV);
  checkFloats('tf_attention', 'z', z, rows * a.heads * a.dV);
  checkFloats('tf_attention', 'probs', probs, attentionProbFloats(a));
  engine.dispatch(attentionKernel, {
    bindings: {
      q,
      k,
      v,
      z,
      probs,
      params: packParams(attentionKernel, {
        B: a.B,
        P: a.P,
        H: a.heads,
        dHead: a.dHead,
        dV: a.dV,
        causal: a.causal ? 1 : 0,
        window: a.window ?? 0,
        scale: a.scale,
      }),
    },
    workgroups: ceilDiv(a.B * a.heads * a.P, WG),
  });
}

export interface AttentionVjpArgs {
  q: GPUBuffer;
  k: GPUBuffer;
  v: GPUBuffer;
  probs: GPUBuffer;
  /** Cotangent on z, [B·K·P, heads·dV]. */
  dz: GPUBuffer;
  dq: GPUBuffer;
  dk: GPUBuffer;
  dv: GPUBuffer;
  /** Scratch [B·K·heads, P, P] (attentionProbFloats · K floats). */
  ds: GPUBuffer;
  K: number;
}

/** dq, dk, dv for K cotangents per sample (rows [b, k, p]). */
export function attentionVjp(engine: Engine, g: AttentionVjpArgs, a: AttentionShape): void {
  check(engine, 'tf_attention_vjp', a, (a.P + 1) * (a.dHead + a.dV + 1));
  checkCount('tf_attention_vjp', 'K', g.K);
  const rows = a.B * g.K * a.P;
  checkFloats('tf_attention_vjp', 'dz', g.dz, rows * a.heads * a.dV);
  checkFloats('tf_attention_vjp', 'dq', g.dq, rows * a.heads * a.dHead);
  checkFloats('tf_attention_vjp', 'dk', g.dk, rows * a.heads * a.dHead);
  checkFloats('tf_attention_vjp', 'dv', g.dv, rows * a.heads * a.dV);
  checkFloats('tf_attention_vjp', 'ds', g.ds, attentionProbFloats(a) * g.K);
  checkFloats('tf_attention_vjp', 'probs', g.probs, attentionProbFloats(a));
  // Both halves of the VJP declare the same params struct (checked by the interface test).
  const params = packParams(attentionVjpQKernel, { B: a.B, K: g.K, P: a.P, H: a.heads, dHead: a.dHead, dV: a.dV, scale: a.scale });
  const workgroups = ceilDiv(a.B * g.K * a.heads * a.P, WG);
  engine.dispatch(attentionVjpQKernel, { bindings: { k: g.k, v: g.v, probs: g.probs, dz: g.dz, dq: g.dq, ds: g.ds, params }, workgroups });
  engine.dispatch(attentionVjpKvKernel, { bindings: { q: g.q, probs: g.probs, dz: g.dz, ds: g.ds, dk: g.dk, dv: g.dv, params }, workgroups });
}
