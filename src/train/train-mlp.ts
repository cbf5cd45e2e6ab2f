// trainMlp: trains a small classifier MLP on the GPU with Adam and softmax cross-entropy,
// deterministically. Weights are initialised on the host from the seed (torch nn.Linear's
// Kaiming-uniform), every epoch visits the training rows in a seeded random order, and all
// arithmetic of a step runs on the GPU (see trainer.ts). The same seed, data and options on the
// same adapter give bit-identical weights.
//
// Data split: the first `trainCount` rows train, the remaining rows are held out and only
// evaluated (loss and accuracy after every epoch).

import { checkFinite, IbgpuError } from '../errors.js';
import { parseActivation, type Activation } from '../model/activations.js';
import type { MlpArch, MlpModel } from '../model/mlp.js';
import { ADAM_DEFAULTS, checkAdamHyper, type AdamHyper } from '../kernels/adam.js';
import { MATMUL_VARIANTS, type MatmulVariantName } from '../kernels/matmul.js';
import { softmaxXentLoopCount } from '../kernels/softmax-xent.js';
import type { Engine } from '../runtime/engine.js';
import { kaimingUniform, makeRng, permutation, checkSeed } from './random.js';
import { MlpTrainer, type TrainerLayerInit } from './trainer.js';

export interface TrainData {
  /** n × d row-major inputs (d = sizes[0]). */
  x: Float32Array;
  /** n class labels, integers in [0, sizes[sizes.length − 1]). */
  labels: ArrayLike<number>;
  /** Number of rows (default labels.length). */
  n?: number;
}

export interface TrainMlpOptions {
  /** Layer widths: input, hidden..., classes (e.g. [784, 100, 100, 10]). */
  sizes: readonly number[];
  /** Activation of the hidden layers (default relu); the output layer is linear (logits). */
  activation?: Activation;
  /** Seed of the initialisation and the shuffles (default 0). */
  seed?: number;
  epochs: number;
  batchSize: number;
  /** Adam learning rate. */
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  data: TrainData;
  /** Rows [0, trainCount) train, [trainCount, n) are held out (default: all rows train). */
  trainCount?: number;
  /** Rows per forward pass when evaluating the held-out rows (default 2048). */
  evalBatchSize?: number;
  /** Matmul kernel variant (default: trainingMatmulVariant(engine), a function of the adapter). */
  matmulVariant?: MatmulVariantName;
  /** Progress of the steps: stage 'epoch e/E', steps done, steps per epoch. */
  progress?: (stage: string, done: number, total: number) => void;
  /** Called after every epoch. */
  onEpoch?: (record: EpochRecord) => void;
}

export interface EpochRecord {
  /** 1-based. */
  epoch: number;
  /** Mean loss / accuracy over the epoch's training rows, each taken when its batch was trained. */
  trainLoss: number;
  trainAccuracy: number;
  /** Held-out loss / accuracy after the epoch (null without held-out rows). */
  testLoss: number | null;
  testAccuracy: number | null;
  seconds: number;
}

export interface ResolvedTrainOptions {
  sizes: number[];
  activation: Activation;
  seed: number;
  epochs: number;
  batchSize: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  n: number;
  trainCount: number;
  testCount: number;
  stepsPerEpoch: number;
}

export interface TrainMlpResult {
  model: MlpModel;
  /** Architecture file contents for `model` saved with `trainedTensors` (weight_layout in_out). */
  arch: MlpArch;
  options: ResolvedTrainOptions;
  /** Held-out loss / accuracy of the initial weights (null without held-out rows). */
  initial: { testLoss: number | null; testAccuracy: number | null };
  history: EpochRecord[];
  matmulVariant: MatmulVariantName;
  adapter: string;
  steps: number;
  seconds: number;
}

/** Name of layer i's input node layer, as src/model/mlp.ts and rib name them. */
export function layerName(i: number): string {
  return `layers.${i}`;
}

function bad(message: string, hint?: string): IbgpuError {
  return new IbgpuError('BAD_CONFIG', message, hint);
}

function isCount(v: unknown, min = 1): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min;
}

/** Validates the options against the data (IbgpuError BAD_CONFIG / SHAPE / NON_FINITE). */
export function resolveTrainOptions(engine: Engine | undefined, o: TrainMlpOptions): ResolvedTrainOptions {
  const sizes = [...(o.sizes as number[])];
  if (!Array.isArray(o.sizes) || sizes.length < 2 || !sizes.every((s) => isCount(s))) {
    throw bad(`sizes must list at least two positive integer widths (input, ..., classes), got ${JSON.stringify(o.sizes)}`, 'e.g. [784, 100, 100, 10]');
  }
  const classes = sizes[sizes.length - 1]!;
  if (classes < 2) throw bad(`the last width is the number of classes and must be at least 2, got ${classes}`);
  if (softmaxXentLoopCount(classes) + 16 > (engine?.loopBudget ?? Infinity)) {
    throw new IbgpuError('LIMIT_EXCEEDED', `${classes} classes exceed the loss kernel's per-row loop budget on this adapter`, 'use fewer classes');
  }
  const activation = parseActivation(String(o.activation ?? 'relu'), 'activation');
  const seed = o.seed ?? 0;
  checkSeed(seed);
  if (!isCount(o.epochs)) throw bad(`epochs must be a positive integer, got ${o.epochs}`);
  const hyper: AdamHyper = { lr: o.lr, beta1: o.beta1 ?? ADAM_DEFAULTS.beta1, beta2: o.beta2 ?? ADAM_DEFAULTS.beta2, eps: o.eps ?? ADAM_DEFAULTS.eps };
  checkAdamHyper(hyper);
  if (o.matmulVariant !== undefined && !MATMUL_VARIANTS.includes(o.matmulVariant)) {
    throw bad(`unknown matmul variant '${String(o.matmulVariant)}'`, `use one of ${MATMUL_VARIANTS.join(', ')}`);
  }

  const d = sizes[0]!;
  const { x, labels } = o.data;
  const n = o.data.n ?? labels.length;
  if (!isCount(n)) throw bad(`the data must hold at least one row, got n = ${n}`);
  if (x.length !== n * d) {
    throw new IbgpuError(
      'SHAPE',
      `the inputs hold ${x.length} values, expected n × sizes[0] = ${n} × ${d} = ${n * d}`,
      'sizes[0] must be the number of features per row',
    );
  }
  if (labels.length < n) throw new IbgpuError('SHAPE', `${labels.length} labels for ${n} rows`);
  for (let i = 0; i < n; i++) {
    const y = labels[i]!;
    if (!Number.isInteger(y) || y < 0 || y >= classes) {
      throw bad(`label ${y} of row ${i} is not a class index in [0, ${classes})`, 'the last width in sizes is the number of classes');
    }
  }
  checkFinite('training inputs', x, [n, d]);
  const trainCount = o.trainCount ?? n;
  if (!isCount(trainCount) || trainCount > n) throw bad(`trainCount must be an integer in [1, ${n}], got ${trainCount}`);
  if (!isCount(o.batchSize)) throw bad(`batch size must be a positive integer, got ${o.batchSize}`);
  if (o.batchSize > trainCount)
    throw bad(`batch size ${o.batchSize} exceeds the ${trainCount} training rows`, 'use a smaller batch size or more training rows');
  // dW = Xᵀ·dP reduces over the batch inside one invocation: keep it below the loop budget.
  const maxBatch = Math.min(16384, Math.floor(((engine?.loopBudget ?? Infinity) - 1024) / 2));
  if (o.batchSize > maxBatch) throw bad(`batch size ${o.batchSize} exceeds ${maxBatch}, the most one step reduces on this adapter`);
  if (o.evalBatchSize !== undefined && !isCount(o.evalBatchSize)) throw bad(`evalBatchSize must be a positive integer, got ${o.evalBatchSize}`);
  return {
    sizes,
    activation,
    seed,
    epochs: o.epochs,
    batchSize: o.batchSize,
    ...hyper,
    n,
    trainCount,
    testCount: n - trainCount,
    stepsPerEpoch: Math.ceil(trainCount / o.batchSize),
  };
}

/** Initial layers for the options: Kaiming-uniform from stream 0 of the seed. */
export function initialLayers(opts: Pick<ResolvedTrainOptions, 'sizes' | 'activation' | 'seed'>): TrainerLayerInit[] {
  const rng = makeRng(opts.seed, 0);
  const L = opts.sizes.length - 1;
  const layers: TrainerLayerInit[] = [];
  for (let i = 0; i < L; i++) {
    const dIn = opts.sizes[i]!;
    const dOut = opts.sizes[i + 1]!;
    layers.push({ dIn, dOut, ...kaimingUniform(dIn, dOut, rng), activation: i === L - 1 ? 'identity' : opts.activation });
  }
  return layers;
}

/** The training order of epoch e (0-based): a seeded permutation of the training rows. */
export function epochOrder(seed: number, epoch: number, trainCount: number): Uint32Array {
  return permutation(trainCount, makeRng(seed, 1 + epoch));
}

export async function trainMlp(engine: Engine, opts: TrainMlpOptions): Promise<TrainMlpResult> {
  const o = resolveTrainOptions(engine, opts);
  const t0 = performance.now();
  const d = o.sizes[0]!;
  const { x } = opts.data;
  const labels = Uint32Array.from({ length: o.n }, (_, i) => opts.data.labels[i]!);
  const init = initialLayers(o);
  const trainer = new MlpTrainer(
    engine,
    init,
    { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps },
    opts.matmulVariant ? { matmulVariant: opts.matmulVariant } : {},
  );
  const evalBatch = Math.min(opts.evalBatchSize ?? 2048, Math.max(o.testCount, 1));

  // Held-out evaluation: forward passes in chunks, (loss, correct) per row, summed in float64.
  const evaluate = async (): Promise<{ testLoss: number | null; testAccuracy: number | null }> => {
    if (o.testCount === 0) return { testLoss: null, testAccuracy: null };
    return engine.withScope(async (scope) => {
      const stats = scope.alloc(2 * o.testCount * 4, 'train.test-stats');
      for (let r0 = 0; r0 < o.testCount; r0 += evalBatch) {
        const rows = Math.min(evalBatch, o.testCount - r0);
        const lo = o.trainCount + r0;
        const xb = scope.upload(x.subarray(lo * d, (lo + rows) * d), 'train.test-x');
        const lb = scope.upload(labels.subarray(lo, lo + rows), 'train.test-labels');
        trainer.evaluate(xb, lb, rows, { buffer: stats, base: r0 });
        scope.release(xb, lb); // one batch at a time on the device
      }
      return summarize(await engine.readF32(stats, 2 * o.testCount), 'held-out');
    });
  };

  const summarize = (s: Float32Array, what: string): { testLoss: number; testAccuracy: number } => {
    let loss = 0;
    let correct = 0;
    for (let i = 0; i < s.length; i += 2) {
      loss += s[i]!;
      correct += s[i + 1]!;
    }
    const rows = s.length / 2;
    if (!Number.isFinite(loss)) {
      throw new IbgpuError('NON_FINITE', `the ${what} loss is ${loss}: training diverged`, 'lower the learning rate');
    }
    return { testLoss: loss / rows, testAccuracy: correct / rows };
  };

  try {
    const initial = await evaluate();
    const history: EpochRecord[] = [];
    const xb = new Float32Array(o.batchSize * d);
    const lb = new Uint32Array(o.batchSize);
    const SYNC_EVERY = 16; // steps between waits: keeps the queue short and the progress honest
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const te = performance.now();
      const stage = `epoch ${epoch + 1}/${o.epochs}`;
      const order = epochOrder(o.seed, epoch, o.trainCount);
      const epochScope = engine.scope();
      try {
        const stats = epochScope.alloc(2 * o.trainCount * 4, 'train.epoch-stats');
        for (let s = 0; s < o.stepsPerEpoch; s++) {
          const r0 = s * o.batchSize;
          const rows = Math.min(o.batchSize, o.trainCount - r0);
          for (let r = 0; r < rows; r++) {
            const src = order[r0 + r]!;
            xb.set(x.subarray(src * d, (src + 1) * d), r * d);
            lb[r] = labels[src]!;
          }
          const xg = epochScope.upload(xb.subarray(0, rows * d), 'train.batch-x');
          const lg = epochScope.upload(lb.subarray(0, rows), 'train.batch-labels');
          trainer.step(xg, lg, rows, { buffer: stats, base: r0 });
          epochScope.release(xg, lg); // one batch at a time on the device
          if ((s + 1) % SYNC_EVERY === 0 || s + 1 === o.stepsPerEpoch) {
            await engine.sync();
            opts.progress?.(stage, s + 1, o.stepsPerEpoch);
          }
        }
        const tr = summarize(await engine.readF32(stats, 2 * o.trainCount), 'training');
        const te2 = await evaluate();
        const rec: EpochRecord = {
          epoch: epoch + 1,
          trainLoss: tr.testLoss,
          trainAccuracy: tr.testAccuracy,
          ...te2,
          seconds: (performance.now() - te) / 1000,
        };
        history.push(rec);
        opts.onEpoch?.(rec);
      } finally {
        epochScope.close();
      }
    }
    const params = await trainer.readParameters();
    const model: MlpModel = {
      layers: init.map((l, i) => ({ name: layerName(i), dIn: l.dIn, dOut: l.dOut, W: params[i]!.W, b: params[i]!.b, activation: l.activation })),
    };
    for (const l of model.layers) {
      checkFinite(`trained ${l.name}.W`, l.W);
      checkFinite(`trained ${l.name}.b`, l.b);
    }
    return {
      model,
      arch: archOf(model),
      options: o,
      initial,
      history,
      matmulVariant: trainer.matmulVariant,
      adapter: engine.adapterName,
      steps: trainer.steps,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    trainer.dispose();
  }
}

/** The architecture file of a model saved with `trainedTensors` (tensors `<name>.W` [in, out], `<name>.b`). */
export function archOf(model: MlpModel): MlpArch {
  return {
    type: 'mlp',
    weight_layout: 'in_out',
    layers: model.layers.map((l) => ({ name: l.name, in: l.dIn, out: l.dOut, activation: l.activation, weight: `${l.name}.W`, bias: `${l.name}.b` })),
  };
}
