// PyTorch checkpoints (torch.save's ZIP format, src/io/torch-pt.ts) as weight files: the tensors of
// fixtures written by torch 2.13 (test/fixtures/torch/make.py) read back exactly — dtypes, strided
// and offset views of shared storages, parameters, nested containers —, models loaded from them
// equal the same models from safetensors, and damaged or old files fail with the fix.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IbgpuError } from '../src/errors.js';
import { openWeights } from '../src/ib/data-files.js';
import { openTensorFile } from '../src/io/tensor-file.js';
import { openTorchCheckpoint, readTorchCheckpoint } from '../src/io/torch-pt.js';
import { parseTransformerConfig } from '../src/model/transformer/config.js';
import { loadTransformer } from '../src/model/transformer/weights.js';

const TORCH = new URL('./fixtures/torch', import.meta.url).pathname;
const MLP = new URL('./fixtures/synthetic-mlp', import.meta.url).pathname;
const MODADD = new URL('./fixtures/synthetic-transformer/modadd-tiny', import.meta.url).pathname;
const tmp = mkdtempSync(join(tmpdir(), 'ibgpu-torch-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

async function failure(p: Promise<unknown>): Promise<IbgpuError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(IbgpuError);
    return e as IbgpuError;
  }
  throw new Error('did not fail');
}

describe('torch.save checkpoints', () => {
  it('reads every tensor of a nested checkpoint exactly: views, dtypes, scalars, empty tensors, lists', async () => {
    const c = await openTorchCheckpoint(join(TORCH, 'various.pt'));
    try {
      expect(c.keys()).toEqual(['model.t', 'model.row', 'model.h', 'model.b', 'model.flag', 'model.i64', 'model.scalar', 'model.empty', 'list.0']);
      const vals = async (k: string) => Array.from((await c.read(k)).data as ArrayLike<number | bigint>, (x) => Number(x));
      // base = arange(12).reshape(3, 4) in float64; t = base.t() (strides 1, 4); row = base[1] (offset 4).
      expect(c.info('model.t')).toEqual({ dtype: 'F64', shape: [4, 3] });
      expect(await vals('model.t')).toEqual([0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]);
      expect(await vals('model.row')).toEqual([4, 5, 6, 7]);
      // 1.5 and -2.0 as IEEE half (0x3e00, 0xc000) and bfloat16 (0x3fc0, 0xc000) bit patterns.
      expect(c.info('model.h').dtype).toBe('F16');
      expect(await vals('model.h')).toEqual([0x3e00, 0xc000]);
      expect(c.info('model.b').dtype).toBe('BF16');
      expect(await vals('model.b')).toEqual([0x3fc0, 0xc000]);
      expect(await vals('model.flag')).toEqual([1, 0]);
      expect(c.info('model.i64')).toEqual({ dtype: 'I64', shape: [1, 2] });
      expect(await vals('model.i64')).toEqual([1, -2]);
      expect(c.info('model.scalar')).toEqual({ dtype: 'F32', shape: [] });
      expect(await vals('model.scalar')).toEqual([3.25]);
      expect((await c.read('model.empty')).shape).toEqual([0, 5]);
      expect(Array.from((await c.readF64('list.0')).data)).toEqual([1, 1]);
      const missing = await failure(c.read('model.nope'));
      expect(missing.code).toBe('MISSING_TENSOR');
      expect(missing.hint).toMatch(/model\.t, model\.row/);
    } finally {
      await c.close();
    }
  });

  it('reads the same from bytes in memory as from the file', async () => {
    const bytes = new Uint8Array(readFileSync(join(TORCH, 'various.pt')));
    const mem = await readTorchCheckpoint(async (o, n) => bytes.subarray(o, Math.min(o + n, bytes.length)), bytes.length, 'various.pt');
    const file = await openTorchCheckpoint(join(TORCH, 'various.pt'));
    try {
      for (const k of file.keys()) expect(await mem.read(k), k).toEqual(await file.read(k));
    } finally {
      await file.close();
      await mem.close();
    }
  });

  it("an MLP state dict (transposed views) gives the safetensors fixture's weights bit for bit", async () => {
    const pt = await openWeights(join(TORCH, 'mlp-synthetic.pt'));
    const st = await openWeights(join(MLP, 'weights.safetensors'));
    try {
      for (const name of ['layers.0.W', 'layers.0.b', 'layers.1.W', 'layers.1.b', 'layers.2.W', 'layers.2.b']) {
        const a = await pt.get(name);
        const b = await st.get(name);
        expect(a.shape, name).toEqual(b.shape);
        expect(Array.from(a.data), name).toEqual(Array.from(b.data));
      }
    } finally {
      await pt.close();
      await st.close();
    }
  });

  it('a transformer state dict of parameters loads as the same model as its safetensors twin', async () => {
    const cfg = parseTransformerConfig(JSON.parse(readFileSync(join(MODADD, 'config.json'), 'utf8')));
    const fromPt = await loadTransformer(join(TORCH, 'modadd-tiny.pt'), cfg);
    const fromSt = await loadTransformer(join(MODADD, 'weights.safetensors'), cfg);
    expect(fromPt.weights).toEqual(fromSt.weights);
  });

  it('old-format, truncated and non-checkpoint files fail with the fix, not a crash', async () => {
    const legacy = await failure(openTorchCheckpoint(join(TORCH, 'legacy.pt')));
    expect(legacy.code).toBe('BAD_FILE');
    expect(legacy.message).toMatch(/not a ZIP-format PyTorch checkpoint.*torch\.save/s);
    const full = readFileSync(join(TORCH, 'mlp-synthetic.pt'));
    for (const keep of [0.3, 0.7, 0.99]) {
      const cut = join(tmp, `cut-${keep}.pt`);
      writeFileSync(cut, full.subarray(0, Math.floor(full.length * keep)));
      const e = await failure(
        (async () => {
          const c = await openTorchCheckpoint(cut);
          for (const k of c.keys()) await c.read(k);
        })(),
      );
      expect(e.code, `${keep}`).toBe('BAD_FILE');
    }
    // Safetensors files still open as safetensors through the same opener.
    const st = await openTensorFile(join(MLP, 'weights.safetensors'));
    expect(st.keys()).toContain('layers.0.W');
    await st.close();
  });
});
