// Opening an input file (a model, its weights, data, a partial) for reading, with the one error
// every reader gives when that fails: the path, the system's code, and what to check.

import { open, type FileHandle } from 'node:fs/promises';
import { IbgpuError } from '../errors.js';

/** `path` opened for reading; IbgpuError BAD_FILE "<path>: cannot open (<code>)" when it cannot be. */
export async function openInput(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new IbgpuError(
      'BAD_FILE',
      `${path}: cannot open (${code ?? (e as Error).message})`,
      code === 'ENOENT' ? 'check the path (relative paths are relative to the config file)' : 'check the path and its permissions',
    );
  }
}
