// The synthetic-transformer fixture models (test/fixtures/synthetic-transformer) as builds run from
// a work directory: the model's three files copied into a fresh temporary directory, and the build
// config keys that read them there, with modadd's node layers and last-position cut (rib's).

import { copyFile, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'synthetic-transformer');

/** The config keys of a modadd-tiny build in a workspace (the files by their names there). */
export const MODADD_TINY_BUILD = {
  model: 'weights_f64.safetensors',
  arch: 'config.json',
  data: { type: 'npy', path: 'inputs.npy' },
  node_layers: ['ln1.0', 'ln2.0', 'unembed', 'output'],
  last_pos_module_type: 'add_resid1',
};

/** A fresh directory (its path pushed onto `dirs`, for the caller to remove) holding fixture `model`'s weights, config and inputs. */
export async function fixtureWorkspace(model: string, dirs: string[], prefix: string): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), prefix));
  dirs.push(d);
  for (const f of ['weights_f64.safetensors', 'config.json', 'inputs.npy']) await copyFile(join(FIXTURES, model, f), join(d, f));
  return d;
}
