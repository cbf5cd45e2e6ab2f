// One opener for the weight files a model may come in: safetensors, or a PyTorch checkpoint
// written by torch.save (rib's `model_epoch_N.pt`, HF's `pytorch_model.bin`), told apart by their
// first bytes rather than by the file name.

import { openInput } from './open-input.js';
import { openSafetensors, type SafetensorsFile } from './safetensors.js';
import type { DType } from './tensor.js';
import { looksLikeZip, openTorchCheckpoint } from './torch-pt.js';

/** What the model loaders read from a weight file, whatever its format. */
export type TensorFile = Pick<SafetensorsFile, 'source' | 'keys' | 'has' | 'read' | 'readF32' | 'readF64' | 'close'> & {
  info(name: string): { dtype: DType; shape: number[] };
};

/** Opens a safetensors file or a torch.save checkpoint. */
export async function openTensorFile(path: string): Promise<TensorFile> {
  const fh = await openInput(path);
  let head = new Uint8Array(4);
  try {
    const { bytesRead } = await fh.read(head, 0, 4, 0);
    head = head.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  return looksLikeZip(head) ? openTorchCheckpoint(path) : openSafetensors(path);
}
