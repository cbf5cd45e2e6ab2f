// One opener for the weight files a model may come in: safetensors, or a PyTorch checkpoint
// written by torch.save (rib's `model_epoch_N.pt`, HF's `pytorch_model.bin`), told apart by their
// first bytes rather than by the file name.

import { open } from 'node:fs/promises';
import { IbgpuError } from '../errors.js';
import { openSafetensors, type SafetensorsFile } from './safetensors.js';
import type { DType } from './tensor.js';
import { looksLikeZip, openTorchCheckpoint } from './torch-pt.js';

/** What the model loaders read from a weight file, whatever its format. */
export type TensorFile = Pick<SafetensorsFile, 'source' | 'keys' | 'has' | 'read' | 'readF32' | 'readF64' | 'close'> & {
  info(name: string): { dtype: DType; shape: number[] };
};

/** Opens a safetensors file or a torch.save checkpoint. */
export async function openTensorFile(path: string): Promise<TensorFile> {
  let head = new Uint8Array(0);
  try {
    const fh = await open(path, 'r');
    try {
      head = new Uint8Array(4);
      const { bytesRead } = await fh.read(head, 0, 4, 0);
      head = head.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw new IbgpuError('BAD_FILE', `cannot open ${path}: ${(e as Error).message}`, 'check the path (relative paths are relative to the config file)');
  }
  return looksLikeZip(head) ? openTorchCheckpoint(path) : openSafetensors(path);
}
