// Times the two paths of the squared-edge pass on one synthetic section, for `ibgpu doctor`
// (src/cli/doctor.ts), which stores the comparison (recordStageTiming) so that later builds on
// this adapter and host choose the edges stage's path by measurement (src/runtime/stage-paths.ts).
//
// The section is sized like the first section of rib's MNIST MLP at a quarter of its input
// width: 196 sparse non-negative inputs (~20 % non-zero, drawn around ten sparse prototypes so
// that ReLU firing patterns cluster as they do on digits), 100 ReLU units, r = 96 input and
// ro = 96 output directions, 2000 rows in batches of 1000. Random bases serve: the pass is linear
// in C, C⁺ and the next C, and its cost does not depend on their values.

import type { Engine } from '../runtime/engine.js';
import { mulberry32 } from '../util/mulberry32.js';
import { computeEdgesHost } from '../host/edges.js';
import type { LayerBasis } from './basis.js';
import { arraySource } from './data.js';
import { computeEdges, type EdgePair } from './edges.js';
import { GpuMlp } from './gpu-model.js';
import { integrationPoints } from './integration.js';
import { foldedWeight, type MlpModel } from '../model/mlp.js';

export interface EdgePathTiming {
  gpuMs: number;
  hostMs: number;
  /** What was timed, for messages. */
  what: string;
  /** Largest |E_gpu − E_host| relative to max |E| (the two paths compute the same thing). */
  agreement: number;
}

/** The section's sizes (see the header): input width, ReLU units, input and output directions, rows and rows per batch. */
const SECTION = { inputs: 196, units: 100, r: 96, ro: 96, rows: 2000, batch: 1000 } as const;

export function syntheticSection(): { model: MlpModel; x: Float32Array; pair: EdgePair } {
  const { inputs, units, r, ro, rows } = SECTION;
  const rnd = mulberry32(20261207);
  const gauss = (): number => Math.sqrt(-2 * Math.log(Math.max(rnd(), 1e-300))) * Math.cos(2 * Math.PI * rnd());
  const W = Float32Array.from({ length: inputs * units }, () => gauss() / Math.sqrt(0.2 * inputs));
  const b = Float32Array.from({ length: units }, () => 0.1 * gauss());
  const model: MlpModel = { layers: [{ name: 'layers.0', dIn: inputs, dOut: units, W, b, activation: 'relu' }] };
  const protos = Array.from({ length: 10 }, () => Float32Array.from({ length: inputs }, () => (rnd() < 0.18 ? 0.5 + rnd() : 0)));
  const x = new Float32Array(rows * inputs);
  for (let n = 0; n < rows; n++) {
    const p = protos[Math.floor(rnd() * protos.length)]!;
    for (let i = 0; i < inputs; i++) {
      const v = p[i]! > 0 && rnd() < 0.85 ? p[i]! * (0.5 + rnd()) : rnd() < 0.03 ? rnd() : 0;
      x[n * inputs + i] = v;
    }
  }
  const Wf = foldedWeight(model, 0);
  const dim = inputs + 1;
  const basis = {
    name: 'layers.0',
    dim,
    r,
    centred: true,
    mean: Float64Array.from({ length: dim }, (_, i) => (i === inputs ? 1 : 0.2)),
    C: Float64Array.from({ length: dim * r }, () => gauss() / Math.sqrt(dim)),
    Cpinv: Float64Array.from({ length: r * dim }, () => gauss() / Math.sqrt(dim)),
  } as unknown as LayerBasis;
  const pair: EdgePair = {
    layer: 0,
    inName: 'layers.0',
    outName: 'output',
    basis,
    formula: 'jacobian',
    Wbar: Wf.data,
    dimOut: Wf.cols,
    nextC: Float64Array.from({ length: Wf.cols * ro }, () => gauss() / Math.sqrt(Wf.cols)),
    ro,
  };
  return { model, x, pair };
}

/** Runs both paths once to warm up (pipelines, threads), then times one pass of each. */
export async function measureEdgePaths(engine: Engine): Promise<EdgePathTiming> {
  const { model, x, pair } = syntheticSection();
  const data = arraySource(x, SECTION.rows, SECTION.inputs);
  const pts = integrationPoints('gradient', 0);
  const mlp = new GpuMlp(engine, model, pts);
  try {
    const gpu = (): Promise<Map<string, Float64Array>> => computeEdges(engine, mlp, data, [pair], SECTION.batch);
    const host = (): Promise<Map<string, Float64Array>> => computeEdgesHost(model, data, [pair], SECTION.batch, pts);
    await gpu();
    await host();
    let t = performance.now();
    const eg = (await gpu()).get('layers.0->output')!;
    const gpuMs = performance.now() - t;
    t = performance.now();
    const eh = (await host()).get('layers.0->output')!;
    const hostMs = performance.now() - t;
    let m = 0;
    let d = 0;
    eg.forEach((v, i) => {
      m = Math.max(m, Math.abs(v));
      d = Math.max(d, Math.abs(v - eh[i]!));
    });
    return {
      gpuMs,
      hostMs,
      what: `ReLU section ${SECTION.inputs}→${SECTION.units}, r ${SECTION.r}, ro ${SECTION.ro}, ${SECTION.rows} rows`,
      agreement: m > 0 ? d / m : d,
    };
  } finally {
    mlp.dispose();
  }
}
