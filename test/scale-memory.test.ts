// Bounded memory: `ibgpu build` on an .npy dataset streams it batch by batch, so the peak
// resident memory of the process does not grow with N.
//
// Two builds of the same model run as separate processes on data of N₁ and N₂ = 8·N₁ rows of 128
// f32 (the larger file is ~78 MB). A build that held the dataset would need at least the extra
// data more at N₂ (it is read into one Float32Array); a streamed one needs the same batch buffers
// at both sizes. We require peak(N₂) − peak(N₁) < 1/3 of the extra data (~23 MB).
// What could blur that comparison is removed rather than tolerated:
// - garbage: Dawn's per-dispatch objects are freed only when V8 collects their wrappers, so the
//   RSS at the peak depended on GC timing (10–35 MB of noise when this test let V8 decide; it
//   failed once that way). The child collects every 20 ms; measured growth is then within ±6 MB.
// - the activation cache (src/ib/activation-cache.ts) is turned off, so neither size keeps hidden
//   activations between the passes;
// - node layers start at layers.1: the 128-wide input is streamed through layer 0 in both passes
//   but needs no 129² Gram, which keeps the test short on a 2-core software adapter.

import { spawn } from 'node:child_process';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { npyHeaderFor } from '../src/io/npy.js';
import { writeSafetensors } from '../src/io/safetensors.js';

const ROOT = resolve(import.meta.dirname, '..');
const WIDTH = 128;
const N1 = 20_000;
const N2 = 8 * N1;
const BATCH = 4096;

/** Deterministic uniform [-1, 1) (xorshift32). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 31 - 1;
  };
}

/** An N×WIDTH f32 .npy written in chunks (never held whole): 6 latent factors plus noise. */
async function writeData(path: string, n: number): Promise<number> {
  const r = rng(3);
  const k = 6;
  const mix = Float32Array.from({ length: k * WIDTH }, () => r());
  const fh = await open(path, 'w');
  try {
    const head = npyHeaderFor('F32', [n, WIDTH]);
    await fh.write(head);
    const chunk = 16_384;
    const buf = new Float32Array(chunk * WIDTH);
    for (let s = 0; s < n; s += chunk) {
      const rows = Math.min(chunk, n - s);
      for (let i = 0; i < rows; i++) {
        const z = [r(), r(), r(), r(), r(), r()];
        for (let j = 0; j < WIDTH; j++) {
          let v = 0.05 * r();
          for (let q = 0; q < k; q++) v += z[q]! * mix[q * WIDTH + j]!;
          buf[i * WIDTH + j] = v;
        }
      }
      await fh.write(new Uint8Array(buf.buffer, 0, rows * WIDTH * 4));
    }
    return head.length + n * WIDTH * 4;
  } finally {
    await fh.close();
  }
}

/**
 * Runs the build of `cfg` (the library call behind `ibgpu build cfg -o out`) in its own process;
 * returns its peak RSS in bytes. The activation cache is off so that neither size keeps hidden
 * activations between the passes: both stream the same way and only the data size differs.
 */
function buildPeakRss(cfg: string, out: string): Promise<number> {
  const script = [
    "import { Engine } from './src/runtime/engine.ts';",
    "import { buildFromConfigFile } from './src/build/from-files.ts';",
    // Collect garbage often: Dawn's per-dispatch objects are freed only when V8 collects their
    // wrappers, and how much garbage is pending at the peak depends on GC timing, not on N.
    'const gcTimer = setInterval(() => globalThis.gc(), 20);',
    'const engine = await Engine.create();',
    'await buildFromConfigFile(engine, process.argv[1], { out: process.argv[2], activationCacheBytes: 0 });',
    'engine.dispose();',
    'clearInterval(gcTimer);',
    'process.stderr.write(`\\nPEAK_RSS_KIB=${process.resourceUsage().maxRSS}\\n`);',
  ].join('\n');
  return new Promise((res, rej) => {
    const p = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script, cfg, out], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    p.stderr.on('data', (c) => {
      err += c;
    });
    p.on('error', rej);
    p.on('close', (code) => {
      const m = /PEAK_RSS_KIB=(\d+)/.exec(err);
      if (code !== 0 || !m) rej(new Error(`ibgpu build ${cfg} exited ${code}:\n${err}`));
      else res(Number(m[1]) * 1024);
    });
  });
}

describe('streamed builds in bounded memory', () => {
  let d = '';
  const bytes: Record<string, number> = {};
  beforeAll(async () => {
    d = await mkdtemp(join(tmpdir(), 'ibgpu-memory-'));
    const r = rng(11);
    const widths = [WIDTH, 8, 8, 4];
    const tensors: Record<string, { dtype: 'F32'; shape: number[]; data: Float32Array }> = {};
    const layers = widths.slice(0, -1).map((din, i) => {
      const dout = widths[i + 1]!;
      tensors[`l${i}.W`] = { dtype: 'F32', shape: [din, dout], data: Float32Array.from({ length: din * dout }, () => r() * Math.sqrt(3 / din)) };
      tensors[`l${i}.b`] = { dtype: 'F32', shape: [dout], data: Float32Array.from({ length: dout }, () => 0.1 * r()) };
      return { name: `layers.${i}`, in: din, out: dout, activation: i < 2 ? 'relu' : 'identity', weight: `l${i}.W`, bias: `l${i}.b` };
    });
    await writeSafetensors(join(d, 'model.safetensors'), tensors);
    await writeFile(join(d, 'arch.json'), JSON.stringify({ type: 'mlp', weight_layout: 'in_out', layers }));
    for (const [name, n] of [
      ['small', N1],
      ['large', N2],
    ] as const) {
      bytes[name] = await writeData(join(d, `${name}.npy`), n);
      await writeFile(
        join(d, `${name}.json`),
        JSON.stringify({
          node_layers: ['layers.1', 'layers.2', 'output'],
          model: 'model.safetensors',
          arch: 'arch.json',
          data: { type: 'npy', path: `${name}.npy` },
          batch_size: BATCH,
        }),
      );
    }
  }, 60_000);
  afterAll(async () => {
    if (d) await rm(d, { recursive: true, force: true });
  });

  it(`peak RSS at N = ${N2} exceeds the N = ${N1} build's by less than a third of the extra data`, async () => {
    const small = await buildPeakRss(join(d, 'small.json'), join(d, 'out-small'));
    const large = await buildPeakRss(join(d, 'large.json'), join(d, 'out-large'));
    const extra = bytes['large']! - bytes['small']!;
    const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
    console.log(
      `peak RSS: N=${N1} ${mib(small)}, N=${N2} ${mib(large)} (data ${mib(bytes['small']!)} vs ${mib(bytes['large']!)}; growth ${mib(large - small)}, bound ${mib(extra / 3)})`,
    );
    expect(large - small).toBeLessThan(extra / 3);
  }, 300_000);
});
