// Reading a JSON input (a config, an architecture file) with errors that name the file and the fix.

import { readFile } from 'node:fs/promises';
import { IbgpuError } from '../errors.js';

/** Parses the JSON file at `path`; `what` names it in errors ("architecture file", …). */
export async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new IbgpuError('BAD_CONFIG', `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'check the path');
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new IbgpuError('BAD_CONFIG', `${what} ${path} is not valid JSON: ${(e as Error).message}`, 'fix the JSON syntax at the position named');
  }
}
