// Every kernel family of ibgpu in one list: its kernels (each a shaders/*.wgsl file whose bindings
// defineKernel takes from the shader) and, where the family has one, its quick self-check against the
// float64 CPU reference. `ibgpu doctor` runs the self-checks from here, the library exports the
// list, and test/kernel-interface.test.ts proves that every shader belongs to exactly one family,
// so a new kernel is added here once instead of in several hand-written import lists.
// Families whose kernels are exercised only through an end-to-end check (training, the forward
// pass of a build) have no selfCheck here: doctor runs those checks from the layers that own them.

import type { Engine } from '../runtime/engine.js';
import type { KernelSpec } from '../runtime/kernel-spec.js';
import { actBackwardKernel } from './act-backward.js';
import { adamKernel } from './adam.js';
import { axpyKernel } from './axpy.js';
import { biasActKernel } from './bias-act.js';
import * as edges from './edges.js';
import * as eigh from './eigh.js';
import * as gram from './gram.js';
import { jacobianGateKernel } from './jacobian-gate.js';
import * as legacy from './legacy.js';
import { loadCostKernel } from './load-cost.js';
import { loopProbeKernel } from './loop-probe.js';
import { matmulPackKernel, matmulPanelKernel } from './matmul-panel.js';
import * as matmul from './matmul.js';
import type { SelfCheckResult } from './self-check.js';
import * as sign from './sign-patterns.js';
import { softmaxXentKernel } from './softmax-xent.js';
import { attentionKernel, attentionVjpKvKernel, attentionVjpQKernel } from './transformer-attention.js';
import { edgeSquareKernel } from './transformer-edges.js';
import { actKernel, actVjpKernel, columnsKernel, gatherKernel, rotaryKernel } from './transformer-elementwise.js';
import { lnDivKernel, lnDivVjpKernel, lnVarKernel, lnVarVjpKernel } from './transformer-ln.js';

export interface KernelFamily {
  readonly name: string;
  /** What the family computes, one line. */
  readonly purpose: string;
  readonly kernels: readonly KernelSpec[];
  readonly selfCheck?: (engine: Engine) => Promise<SelfCheckResult>;
}

export const KERNEL_FAMILIES: readonly KernelFamily[] = Object.freeze([
  {
    name: 'matmul',
    purpose: 'batched C = alpha op(A) op(B) + beta C in f32 (register, tiled and uniform-panel variants)',
    kernels: [matmul.matmulRegKernel, matmul.matmulTiledKernel, matmulPackKernel, matmulPanelKernel],
    selfCheck: matmul.selfCheck,
  },
  {
    name: 'gram',
    purpose: 'Gram matrices and column sums of row batches, f32 tiles summed on the host in float64',
    kernels: [gram.gramRegKernel, gram.gramTiledKernel, gram.colsumKernel],
    selfCheck: gram.selfCheck,
  },
  {
    name: 'eigh',
    purpose: 'block-Jacobi symmetric eigensolver in f32 (a library kernel; builds use the host solver)',
    kernels: [eigh.eighSolveKernel, eigh.eighApplyKernel, eigh.eighNormKernel, eigh.eighNormSumKernel],
    selfCheck: eigh.selfCheck,
  },
  {
    name: 'legacy',
    purpose: 'legacy-basis gradient terms and functional edges',
    kernels: [legacy.legacyTermsKernel, legacy.edgesFunctionalKernel],
    selfCheck: legacy.selfCheck,
  },
  {
    name: 'edges',
    purpose: "rib's squared edges per section (plain and ReLU change-list variants)",
    kernels: [edges.edgesSquaredKernel, edges.edgesSquaredDeltaKernel],
    selfCheck: edges.selfCheck,
  },
  {
    name: 'sign-patterns',
    purpose: 'ReLU firing patterns: bit packing, pattern hashes, co-firing counts',
    kernels: [sign.signPackKernel, sign.signPackAtomicKernel, sign.signPackBallotKernel, sign.signHashKernel, sign.signHashFinalKernel, sign.cofireRegKernel],
    selfCheck: sign.selfCheck,
  },
  { name: 'forward', purpose: 'bias + activation of the forward pass, with integrated gates', kernels: [biasActKernel] },
  { name: 'jacobian-gate', purpose: 'one backward step of stacked output Jacobians (degeneracy statistics)', kernels: [jacobianGateKernel] },
  {
    name: 'training',
    purpose: 'softmax cross-entropy, activation backward, Adam and axpy for MLP training',
    kernels: [softmaxXentKernel, actBackwardKernel, adamKernel, axpyKernel],
  },
  {
    name: 'transformer',
    purpose:
      'section programs of transformers: embedding gather, column ops, activations, split LayerNorm, rotary, causal attention, their K-block VJPs, squared edges',
    kernels: [
      gatherKernel,
      columnsKernel,
      actKernel,
      actVjpKernel,
      rotaryKernel,
      lnVarKernel,
      lnDivKernel,
      lnVarVjpKernel,
      lnDivVjpKernel,
      attentionKernel,
      attentionVjpQKernel,
      attentionVjpKvKernel,
      edgeSquareKernel,
    ],
  },
  { name: 'probes', purpose: 'adapter probes: loop-iteration cap and memory access costs', kernels: [loopProbeKernel, loadCostKernel] },
]);

/** The family that owns a kernel, by kernel name. */
export function kernelFamilyOf(kernelName: string): KernelFamily | undefined {
  return KERNEL_FAMILIES.find((f) => f.kernels.some((k) => k.name === kernelName));
}
