// The file-based library entry point: a build config on disk (paths relative to it) gives the
// same result as the in-memory API, and writes the same result directory as `ibgpu build`.

import { mkdtemp, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildFromConfigFile } from '../src/build/from-files.js';
import { IbgpuError } from '../src/errors.js';
import { useEngine } from './helpers/gpu.js';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'synthetic-mlp');

describe('buildFromConfigFile', () => {
  const engine = useEngine();
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function workspace(): Promise<string> {
    const d = await mkdtemp(join(tmpdir(), 'ibgpu-files-'));
    dirs.push(d);
    await copyFile(join(FIXTURE, 'weights.safetensors'), join(d, 'weights.safetensors'));
    await copyFile(join(FIXTURE, 'inputs.safetensors'), join(d, 'inputs.safetensors'));
    const arch = {
      type: 'mlp',
      weight_layout: 'in_out',
      layers: [16, 32, 32, 8].slice(0, 3).map((din, i) => ({
        name: `layers.${i}`,
        in: din,
        out: [32, 32, 8][i],
        activation: i < 2 ? 'relu' : 'identity',
        weight: `layers.${i}.W`,
        bias: `layers.${i}.b`,
      })),
    };
    await writeFile(join(d, 'arch.json'), JSON.stringify(arch));
    await writeFile(
      join(d, 'build.json'),
      JSON.stringify({
        node_layers: ['layers.0', 'layers.1', 'layers.2', 'output'],
        model: 'weights.safetensors',
        arch: 'arch.json',
        data: { type: 'safetensors', path: 'inputs.safetensors', key: 'X' },
        batch_size: 512,
      }),
    );
    return d;
  }

  it('runs the config (paths relative to it), applies overrides and writes a complete result directory', async () => {
    const d = await workspace();
    const e = await engine();
    const a = await buildFromConfigFile(e, join(d, 'build.json'), { out: join(d, 'out') });
    expect(a.dir).toBe(join(d, 'out'));
    for (const f of ['basis.safetensors', 'edges.safetensors', 'graph.json', 'manifest.json']) expect(existsSync(join(d, 'out', f))).toBe(true);
    const manifest = JSON.parse(await readFile(join(d, 'out', 'manifest.json'), 'utf8'));
    expect(manifest.adapter).toBe(e.adapterName);
    expect(a.result.bases.get('layers.0')!.r).toBe(15); // the fixture's kept dimensions (rib: 15/30/8)
    expect(a.result.bases.get('layers.1')!.r).toBe(30);
    const b = await buildFromConfigFile(e, join(d, 'build.json'), { overrides: { batch_size: 256 } });
    expect(b.config.batch_size).toBe(256);
    expect(b.dir).toBeUndefined();
    const la = a.result.bases.get('layers.1')!.Lambda!;
    const lb = b.result.bases.get('layers.1')!.Lambda!;
    for (let k = 0; k < la.length; k++) expect(Math.abs(la[k]! - lb[k]!)).toBeLessThan(1e-5 * la[0]!);
  });

  it('names the problem for a missing or malformed config and writes nothing', async () => {
    const d = await workspace();
    const e = await engine();
    await expect(buildFromConfigFile(e, join(d, 'nope.json'))).rejects.toThrow(IbgpuError);
    await writeFile(join(d, 'bad.json'), '{"node_layers": ');
    await expect(buildFromConfigFile(e, join(d, 'bad.json'), { out: join(d, 'out2') })).rejects.toThrow(/cannot read the build config/);
    await writeFile(join(d, 'typo.json'), JSON.stringify({ node_layers: ['layers.0', 'output'], batch_sise: 3 }));
    await expect(buildFromConfigFile(e, join(d, 'typo.json'), { out: join(d, 'out3') })).rejects.toThrow(/unknown config key 'batch_sise'/);
    expect(existsSync(join(d, 'out2'))).toBe(false);
    expect(existsSync(join(d, 'out3'))).toBe(false);
  });
});
