import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ResultDir, withResultDir, writeFileAtomic } from '../src/io/atomic.js';
import { writeNpy } from '../src/io/npy.js';
import { openSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { fromNumbers } from '../src/io/tensor.js';

const root = mkdtempSync(join(tmpdir(), 'ibgpu-atomic-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => {
  const d = join(root, `case-${n++}`);
  mkdirSync(d);
  return d;
};

describe('writeFileAtomic', () => {
  it('writes text, bytes and chunk sequences, replacing existing files', async () => {
    const d = freshDir();
    const p = join(d, 'out.bin');
    await writeFileAtomic(p, 'héllo');
    expect(readFileSync(p, 'utf8')).toBe('héllo');
    await writeFileAtomic(p, Float32Array.from([1, 2]));
    const b = readFileSync(p);
    expect(Array.from(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length)))).toEqual([1, 2]);
    async function* chunks() {
      yield Uint8Array.from([1, 2]);
      yield new Uint16Array([0x0403]);
    }
    await writeFileAtomic(p, chunks(), { fsync: false });
    expect(Array.from(readFileSync(p))).toEqual([1, 2, 3, 4]);
    await writeFileAtomic(p, [Uint8Array.from([9]), new Uint8Array(0)]);
    expect(Array.from(readFileSync(p))).toEqual([9]);
    expect(readdirSync(d)).toEqual(['out.bin']);
  });

  it('leaves no file and no temporary when writing fails, and keeps the old file', async () => {
    const d = freshDir();
    const p = join(d, 'new.bin');
    async function* failing() {
      yield new Uint8Array(1000);
      throw new Error('disk on fire');
    }
    await expect(writeFileAtomic(p, failing())).rejects.toThrow(/disk on fire/);
    expect(readdirSync(d)).toEqual([]);
    writeFileSync(join(d, 'old.bin'), 'old');
    await expect(writeFileAtomic(join(d, 'old.bin'), failing())).rejects.toThrow();
    expect(readFileSync(join(d, 'old.bin'), 'utf8')).toBe('old');
    expect(readdirSync(d)).toEqual(['old.bin']);
  });

  it('explains a missing directory', async () => {
    const p = join(root, 'no-such-dir', 'x.bin');
    await expect(writeFileAtomic(p, 'x')).rejects.toMatchObject({ code: 'BAD_FILE', hint: expect.stringMatching(/create the directory/) });
  });

  it('a failing safetensors / npy write leaves nothing behind', async () => {
    const d = freshDir();
    const bad = { dtype: 'F32' as const, shape: [2], data: new Float32Array(3) };
    await expect(writeSafetensors(join(d, 'w.safetensors'), { bad })).rejects.toMatchObject({ code: 'SHAPE' });
    await expect(writeNpy(join(d, 'w.npy'), bad)).rejects.toMatchObject({ code: 'SHAPE' });
    expect(readdirSync(d)).toEqual([]);
  });
});

describe('ResultDir', () => {
  it('makes results appear only on commit', async () => {
    const d = freshDir();
    const target = join(d, 'run');
    const rd = await ResultDir.create(target);
    await rd.writeJson('summary.json', { ok: true });
    await writeSafetensors(rd.file('basis.safetensors'), { C: fromNumbers([1, 2, 3, 4], 'F64', [2, 2]) });
    await rd.writeFile('layers/0/notes.txt', 'nested');
    // Until commit the target does not exist; only a hidden temporary does.
    expect(existsSync(target)).toBe(false);
    expect(readdirSync(d).every((f) => f.startsWith('.run.tmp-'))).toBe(true);
    await rd.commit();
    expect(rd.state).toBe('committed');
    expect(readdirSync(d)).toEqual(['run']);
    expect(new Set(readdirSync(target))).toEqual(new Set(['summary.json', 'basis.safetensors', 'layers']));
    expect(JSON.parse(readFileSync(join(target, 'summary.json'), 'utf8'))).toEqual({ ok: true });
    expect(readFileSync(join(target, 'layers/0/notes.txt'), 'utf8')).toBe('nested');
    const f = await openSafetensors(join(target, 'basis.safetensors'));
    expect(Array.from((await f.readF64('C')).data)).toEqual([1, 2, 3, 4]);
    await f.close();
    await rd.abort(); // no-op after commit
    expect(existsSync(join(target, 'summary.json'))).toBe(true);
    await expect(rd.writeFile('late.txt', 'x')).rejects.toMatchObject({ code: 'DISPOSED' });
  });

  it('replaces an existing results directory only at commit, and only one ibgpu wrote', async () => {
    const d = freshDir();
    const target = join(d, 'run');
    mkdirSync(target);
    writeFileSync(join(target, 'old.txt'), 'old');
    writeFileSync(join(target, 'manifest.json'), JSON.stringify({ format: 'ibgpu-result', files: ['old.txt', 'manifest.json'] }));
    const rd = await ResultDir.create(target);
    await rd.writeFile('new.txt', 'new');
    expect(readdirSync(target).sort()).toEqual(['manifest.json', 'old.txt']);
    await rd.commit();
    expect(readdirSync(target)).toEqual(['new.txt']);
    expect(readdirSync(d)).toEqual(['run']); // the moved-aside old directory was deleted
    // A directory holding anything ibgpu did not write is refused before anything is written.
    writeFileSync(join(target, 'mine.txt'), 'mine');
    await expect(ResultDir.create(target)).rejects.toMatchObject({ code: 'BAD_OUTPUT' });
    expect(readdirSync(target).sort()).toEqual(['mine.txt', 'new.txt']);
    expect(readdirSync(d)).toEqual(['run']);
  });

  it('abort removes the temporary directory and leaves the target untouched', async () => {
    const d = freshDir();
    const target = join(d, 'run');
    mkdirSync(target);
    writeFileSync(join(target, 'manifest.json'), JSON.stringify({ format: 'ibgpu-result', files: ['manifest.json'] }));
    const rd = await ResultDir.create(target);
    await rd.writeFile('half.txt', 'partial');
    await rd.abort();
    expect(rd.state).toBe('aborted');
    expect(readdirSync(d)).toEqual(['run']);
    expect(readdirSync(target)).toEqual(['manifest.json']);
    await expect(rd.commit()).rejects.toMatchObject({ code: 'DISPOSED' });
  });

  it('withResultDir commits on success and cleans up on failure', async () => {
    const d = freshDir();
    const r = await withResultDir(join(d, 'ok'), async (rd) => {
      await rd.writeFile('a.txt', 'a');
      return 7;
    });
    expect(r).toBe(7);
    await expect(
      withResultDir(join(d, 'failed'), async (rd) => {
        await rd.writeFile('a.txt', 'a');
        throw new Error('stage 3 diverged');
      }),
    ).rejects.toThrow(/stage 3 diverged/);
    expect(readdirSync(d)).toEqual(['ok']);
  });

  it('refuses paths that escape the directory and a target that is a file', async () => {
    const d = freshDir();
    const rd = await ResultDir.create(join(d, 'run'));
    for (const bad of ['../x', '/etc/x', '', 'a/../../x']) expect(() => rd.file(bad)).toThrow(/relative path inside/);
    expect(rd.file('a/../b.txt')).toBe(join(rd.path, 'b.txt'));
    await rd.abort();
    writeFileSync(join(d, 'file'), 'x');
    await expect(ResultDir.create(join(d, 'file'))).rejects.toMatchObject({ code: 'BAD_OUTPUT' });
    expect(readdirSync(d)).toEqual(['file']);
  });

  it('creates missing parent directories of the target', async () => {
    const d = freshDir();
    await withResultDir(join(d, 'a', 'b', 'run'), async (rd) => {
      await rd.writeFile('x.txt', 'x');
    });
    expect(readFileSync(join(d, 'a', 'b', 'run', 'x.txt'), 'utf8')).toBe('x');
  });
});
