// The WebAssembly kernel of the per-sample ds and β = Σ_k ds dsᵀ of the last-position attention
// sums in the table form (src/host/wasm/attention_mdash.wat): TableSample.run's ds
// (attention-table-sums.ts) and sampleBeta (attention-sums.ts) are the JS references, with the same
// bits. On rib's modular addition β is K·H·P·(H·P + 1)/2 multiply-adds per sample (113·78), and
// ds's per-element index arithmetic is what V8's loop spends its time on.
//
// Memory: one private instance per kernel (per chunk of samples on a thread), laid out once: the
// row table dzv copied in, then each sample's ρ and softmax rows, which the caller writes straight
// into views of the memory, and ds and β, which it reads from views.
//
// Undefined where the module cannot run (src/host/wasm/load.ts) or IBGPU_HOST_WASM=0: the caller
// runs the JS loops instead.

import { hostWasmInstance, WasmLayout } from './wasm/load.js';

interface AttentionMDashExports {
  sample_ds: (K: number, H: number, P: number, rho: number, prob: number, dzv: number, ds: number) => void;
  beta_sym: (K: number, NJ: number, ds: number, beta: number) => void;
  sample_rows: (...args: number[]) => void;
}

/** The row-space accumulators of the M′ sums in WebAssembly memory (zeroed at first), and one sample's additions to them. */
export interface TableRowsKernel {
  readonly Zq: Float64Array;
  readonly Zk: Float64Array;
  readonly Zqq: Float64Array;
  readonly Zqk: Float64Array;
  readonly Zkk: Float64Array;
  /** tableSampleRows of the sample in rho, prob and β (after sampleBeta()). */
  sampleRows(): void;
}

/** What the row-space accumulators need: the head widths and the row table's [v | k | q] rows ([R, m]). */
export interface TableRowsInput {
  dHead: number;
  dV: number;
  m: number;
  vkq: Float64Array;
}

/** One sample's ds and β in WebAssembly memory; the caller fills rho and prob, then calls sampleDs() (and sampleBeta()). */
export interface TableSampleKernel {
  /** [P] the sample's row ids. */
  readonly rho: Int32Array;
  /** [H, P] the softmax rows of query t*. */
  readonly prob: Float64Array;
  /** [K, H·P] ds, written by sampleDs(). */
  readonly ds: Float64Array;
  /** [H·P, H·P] β, written by sampleBeta(). */
  readonly beta: Float64Array;
  sampleDs(): void;
  sampleBeta(): void;
  /** With TableRowsInput: the row-space accumulators. */
  readonly rows?: TableRowsKernel;
}

/**
 * The kernel for K cotangents, H heads, P positions and the row table dzv ([R, K, H], copied in),
 * with the row-space accumulators of `rows` (its vkq copied in) when given; undefined where it
 * cannot run.
 */
export function wasmTableSampleKernel(K: number, H: number, P: number, dzv: Float64Array, rows?: TableRowsInput): TableSampleKernel | undefined {
  const NJ = H * P;
  const lay = new WasmLayout();
  const oZ = lay.region(dzv.length * 8);
  const oR = lay.region(P * 4);
  const oP = lay.region(NJ * 8);
  const oD = lay.region(K * NJ * 8);
  const oB = lay.region(NJ * NJ * 8);
  // The rows' regions (empty without them).
  const R = rows ? rows.vkq.length / rows.m : 0;
  const dH = rows?.dHead ?? 0,
    dV = rows?.dV ?? 0;
  const AH = (H + 1) * H,
    HH = H * H;
  const oV = lay.region(rows ? rows.vkq.length * 8 : 0);
  const oW = lay.region(NJ * dV * 8);
  const oT = lay.region(Math.max(dV, dH) * 8);
  const oZq = lay.region(R * AH * dV * 8);
  const oZk = lay.region(R * AH * dV * 8);
  const oZqq = lay.region(R * HH * dH * 8);
  const oZqk = lay.region(R * HH * dH * 8);
  const oZkk = lay.region(R * HH * 8);
  const ex = hostWasmInstance<AttentionMDashExports>('attention_mdash', lay.top);
  if (!ex) return undefined;
  // The memory never grows again, so these views stay valid for the kernel's life; a fresh
  // instance's memory is zero, so the accumulators start zeroed.
  const buf = ex.memory.buffer;
  new Float64Array(buf, oZ, dzv.length).set(dzv);
  let rowsKernel: TableRowsKernel | undefined;
  if (rows) {
    new Float64Array(buf, oV, rows.vkq.length).set(rows.vkq);
    const m = rows.m;
    rowsKernel = {
      Zq: new Float64Array(buf, oZq, R * AH * dV),
      Zk: new Float64Array(buf, oZk, R * AH * dV),
      Zqq: new Float64Array(buf, oZqq, R * HH * dH),
      Zqk: new Float64Array(buf, oZqk, R * HH * dH),
      Zkk: new Float64Array(buf, oZkk, R * HH),
      sampleRows: () => ex.sample_rows(H, P, dH, dV, m, oR, oP, oB, oV, oW, oT, oZq, oZk, oZqq, oZqk, oZkk),
    };
  }
  return {
    ...(rowsKernel ? { rows: rowsKernel } : {}),
    rho: new Int32Array(buf, oR, P),
    prob: new Float64Array(buf, oP, NJ),
    ds: new Float64Array(buf, oD, K * NJ),
    beta: new Float64Array(buf, oB, NJ * NJ),
    sampleDs: () => ex.sample_ds(K, H, P, oR, oP, oZ, oD),
    sampleBeta: () => ex.beta_sym(K, NJ, oD, oB),
  };
}

/**
 * The closed form's Z = ΩQ^{a,h} Q^hᵀ + ΩK^{a,h} K^hᵀ (dV × d) per block in WebAssembly
 * (attention_mdash.wat's omega_rows; the JS loop in gpu-attention-closed.ts is the reference, the
 * same bits): the caller writes a block's ΩQ, ΩK and head h's J columns transposed into the views,
 * then run() writes zm.
 */
export interface OmegaRowsKernel {
  /** [dV, dH] each. */
  readonly omq: Float64Array;
  readonly omk: Float64Array;
  /** [dH, d] each: J's q and k columns of the head, transposed. */
  readonly jqt: Float64Array;
  readonly jkt: Float64Array;
  /** [dV, d] out. */
  readonly zm: Float64Array;
  run(): void;
}

/** The kernel for d rows of J, or undefined where it cannot run. */
export function wasmOmegaRowsKernel(d: number, dV: number, dH: number): OmegaRowsKernel | undefined {
  const lay = new WasmLayout();
  const oQ = lay.region(dV * dH * 8);
  const oK = lay.region(dV * dH * 8);
  const oJq = lay.region(dH * d * 8);
  const oJk = lay.region(dH * d * 8);
  const oZ = lay.region(dV * d * 8);
  const ex = hostWasmInstance<{ omega_rows: (...args: number[]) => void }>('attention_mdash', lay.top);
  if (!ex) return undefined;
  const buf = ex.memory.buffer;
  return {
    omq: new Float64Array(buf, oQ, dV * dH),
    omk: new Float64Array(buf, oK, dV * dH),
    jqt: new Float64Array(buf, oJq, dH * d),
    jkt: new Float64Array(buf, oJk, dH * d),
    zm: new Float64Array(buf, oZ, dV * d),
    run: () => ex.omega_rows(dV, d, dH, oQ, oK, oJq, oJk, oZ),
  };
}
