// Writing a trained MLP: DIR/model.safetensors (F32 tensors `layers.i.W` [in, out] and
// `layers.i.b`), DIR/arch.json (the architecture file src/model/mlp.ts reads) and DIR/train.json
// (how it was trained and how well). Each file is written atomically (temporary + rename), in
// that order, so train.json appears last and only after a complete model. Other files in DIR
// (a build config, a README) are left alone.

import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { IbgpuError } from '../errors.js';
import type { MlpModel } from '../model/mlp.js';
import { writeFileAtomic } from '../io/atomic.js';
import { checkOwnedFiles, isTrainOutput, TRAIN_FORMAT } from '../io/output-guard.js';
import { serializeSafetensors } from '../io/safetensors.js';
import type { Tensor } from '../io/tensor.js';
import { VERSION } from '../version.js';
import { archOf, type EpochRecord, type TrainMlpResult } from './train-mlp.js';

export const MODEL_FILE = 'model.safetensors';
export const ARCH_FILE = 'arch.json';
export const TRAIN_FILE = 'train.json';

/** The model's tensors in rib's layout: `<name>.W` [in, out], `<name>.b` [out], float32. */
export function trainedTensors(model: MlpModel): Record<string, Tensor> {
  const t: Record<string, Tensor> = {};
  for (const l of model.layers) {
    t[`${l.name}.W`] = { dtype: 'F32', shape: [l.dIn, l.dOut], data: l.W };
    t[`${l.name}.b`] = { dtype: 'F32', shape: [l.dOut], data: l.b };
  }
  return t;
}

function epochJson(r: EpochRecord): Record<string, number | null> {
  return {
    epoch: r.epoch,
    train_loss: r.trainLoss,
    train_accuracy: r.trainAccuracy,
    test_loss: r.testLoss,
    test_accuracy: r.testAccuracy,
    seconds: Number(r.seconds.toFixed(3)),
  };
}

/** The contents of train.json (without the file hashes, which saveTrainedMlp adds). */
export function trainRecord(res: TrainMlpResult, extra: { data?: string; command?: string } = {}): Record<string, unknown> {
  const o = res.options;
  const last = res.history[res.history.length - 1];
  return {
    format: TRAIN_FORMAT,
    ibgpu_version: VERSION,
    created: new Date().toISOString(),
    ...(extra.command ? { command: extra.command } : {}),
    adapter: res.adapter,
    matmul_variant: res.matmulVariant,
    data: extra.data ?? 'in-memory arrays',
    split: { rows: o.n, train_rows: [0, o.trainCount], test_rows: [o.trainCount, o.n] },
    hyperparameters: {
      sizes: o.sizes,
      activation: o.activation,
      output_activation: 'identity',
      loss: 'softmax cross-entropy, mean over the batch',
      optimizer: 'adam',
      lr: o.lr,
      beta1: o.beta1,
      beta2: o.beta2,
      eps: o.eps,
      epochs: o.epochs,
      batch_size: o.batchSize,
      steps_per_epoch: o.stepsPerEpoch,
      seed: o.seed,
      init: 'kaiming-uniform as torch nn.Linear (W and b uniform in ±1/sqrt(fan_in)), sfc32 stream 0 of the seed',
      shuffle: 'Fisher-Yates permutation of the training rows per epoch, sfc32 stream 1 + epoch of the seed',
    },
    initial: { test_loss: res.initial.testLoss, test_accuracy: res.initial.testAccuracy },
    epochs: res.history.map(epochJson),
    final: last ? epochJson(last) : null,
    steps: res.steps,
    train_seconds: Number(res.seconds.toFixed(3)),
  };
}

export interface SavedFiles {
  model: string;
  arch: string;
  train: string;
  /** sha256 of model.safetensors (hex). */
  modelSha256: string;
}

/**
 * Throws IbgpuError BAD_OUTPUT unless train-mlp may write into `dir`: model.safetensors, arch.json
 * and train.json are overwritten only when an earlier train-mlp wrote them; other files stay.
 */
export async function checkTrainOutput(dir: string): Promise<string> {
  return checkOwnedFiles(dir, [MODEL_FILE, ARCH_FILE, TRAIN_FILE], isTrainOutput, { what: 'the trained model', flag: '--out' });
}

/** Writes model.safetensors, arch.json and train.json into `dir` (created if needed). */
export async function saveTrainedMlp(dir: string, res: TrainMlpResult, extra: { data?: string; command?: string } = {}): Promise<SavedFiles> {
  const out = await checkTrainOutput(dir);
  try {
    await mkdir(out, { recursive: true });
  } catch (e) {
    throw new IbgpuError('BAD_FILE', `cannot create the output directory ${out}: ${(e as Error).message}`, 'choose another --out or fix its permissions');
  }
  const bytes = serializeSafetensors(trainedTensors(res.model), { format: 'pt', producer: `ibgpu ${VERSION} train-mlp`, seed: String(res.options.seed) });
  const modelSha256 = createHash('sha256').update(bytes).digest('hex');
  const files = { model: join(out, MODEL_FILE), arch: join(out, ARCH_FILE), train: join(out, TRAIN_FILE) };
  await writeFileAtomic(files.model, bytes);
  await writeFileAtomic(files.arch, `${JSON.stringify(archOf(res.model), null, 2)}\n`);
  const record = { ...trainRecord(res, extra), files: { [MODEL_FILE]: { sha256: modelSha256, bytes: bytes.length } } };
  await writeFileAtomic(files.train, `${JSON.stringify(record, null, 2)}\n`);
  return { ...files, modelSha256 };
}
