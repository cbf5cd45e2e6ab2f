// Output files and directories that appear complete or not at all. A crash, a full disk or an
// exception mid-write leaves at most a hidden temporary next to the target, never a truncated
// file under the real name that a later run (or a Python user) would take for a result.
//
// Files: write to a temporary in the same directory (same filesystem, so rename is atomic),
// fsync, rename over the target. Directories: build everything in a sibling temporary directory
// and rename it into place on commit(); an existing target is swapped out only at that moment.

import { randomBytes } from 'node:crypto';
import { lstat, mkdir, open, readdir, rename, rm, unlink } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { IbgpuError } from '../errors.js';
import { checkReplaceableDir, type OutputGuardOptions } from './output-guard.js';

/** What writeFileAtomic accepts: text (UTF-8), bytes, or a (possibly async) sequence of chunks. */
export type FileData = string | ArrayBufferView | Iterable<ArrayBufferView> | AsyncIterable<ArrayBufferView>;

export interface AtomicWriteOptions {
  /** fsync the file before the rename (default true): otherwise a power loss can leave an empty file. */
  fsync?: boolean;
  /** File mode for a new file (default 0o644). */
  mode?: number;
}

/** Hidden sibling name for a temporary: `.<base>.<tag>-<pid>-<random>`. */
export function siblingTempPath(target: string, tag: string): string {
  return join(dirname(target), `.${basename(target)}.${tag}-${process.pid}-${randomBytes(4).toString('hex')}`);
}

function asBytes(v: ArrayBufferView): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

async function* chunksOf(data: FileData): AsyncGenerator<Uint8Array> {
  if (typeof data === 'string') {
    yield new TextEncoder().encode(data);
  } else if (ArrayBuffer.isView(data)) {
    yield asBytes(data);
  } else {
    for await (const c of data as AsyncIterable<ArrayBufferView>) yield asBytes(c);
  }
}

/** Node write() may write fewer bytes than asked; loop, and cap each call below 2 GiB. */
async function writeAll(fh: import('node:fs/promises').FileHandle, bytes: Uint8Array): Promise<void> {
  const CHUNK = 1 << 30;
  let off = 0;
  while (off < bytes.length) {
    const len = Math.min(CHUNK, bytes.length - off);
    const { bytesWritten } = await fh.write(bytes, off, len);
    if (bytesWritten <= 0) throw new Error('write returned 0 bytes');
    off += bytesWritten;
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Writes `data` to `path` atomically: readers see either the old file or the complete new one.
 * The temporary is removed if anything fails (including an exception thrown by a chunk iterator).
 */
export async function writeFileAtomic(path: string, data: FileData, opts: AtomicWriteOptions = {}): Promise<void> {
  const tmp = siblingTempPath(path, 'tmp');
  let fh: import('node:fs/promises').FileHandle;
  try {
    fh = await open(tmp, 'wx', opts.mode ?? 0o644);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new IbgpuError(
      'BAD_FILE',
      `cannot write ${path}: ${describe(e)}`,
      code === 'ENOENT' ? `create the directory ${dirname(path)} first` : 'check the path and its permissions',
    );
  }
  try {
    for await (const chunk of chunksOf(data)) await writeAll(fh, chunk);
    if (opts.fsync ?? true) await fh.sync();
    await fh.close();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    if (e instanceof IbgpuError) throw e;
    throw new IbgpuError('BAD_FILE', `writing ${path} failed: ${describe(e)}`, 'check free disk space and permissions; no partial file was left');
  }
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw new IbgpuError('BAD_FILE', `cannot move the finished file into place at ${path}: ${describe(e)}`, 'is the target a directory, or read-only?');
  }
}

export type ResultDirState = 'open' | 'committed' | 'aborted';

/**
 * A results directory that appears all at once. Files are written into a hidden sibling
 * temporary directory (`path`, `file(rel)`), and `commit()` renames it to the target. An existing
 * target is replaced only when src/io/output-guard.ts allows it (absent, empty, or an ibgpu output
 * with nothing else in it; checked at create() and again at commit()); it is moved aside and
 * deleted only after the new directory is in place,
 * so at every moment the target name holds either the old complete results or the new ones
 * (between the two renames, briefly, nothing). `abort()` deletes the temporary directory; it is
 * a no-op after commit, so `try { ...; await d.commit(); } finally { await d.abort(); }` is safe.
 */
export class ResultDir {
  private _state: ResultDirState = 'open';

  private constructor(
    /** Final location of the directory. */
    readonly target: string,
    /** Temporary directory the results are written into until commit. */
    readonly path: string,
    /** What the output guard protects besides the rule itself (the command's inputs). */
    private readonly guard: OutputGuardOptions,
  ) {}

  /**
   * Creates the temporary directory next to `target` (creating target's parent if needed), after
   * checking that the target may be replaced (IbgpuError BAD_OUTPUT otherwise).
   */
  static async create(target: string, guard: OutputGuardOptions = {}): Promise<ResultDir> {
    const abs = await checkReplaceableDir(target, guard);
    try {
      await mkdir(dirname(abs), { recursive: true });
      const tmp = siblingTempPath(abs, 'tmp');
      await mkdir(tmp);
      return new ResultDir(abs, tmp, guard);
    } catch (e) {
      throw new IbgpuError('BAD_FILE', `cannot create a results directory next to ${abs}: ${describe(e)}`, 'check the output path and its permissions');
    }
  }

  get state(): ResultDirState {
    return this._state;
  }

  /** Path of `rel` inside the temporary directory (parents not created; see writeFile). */
  file(rel: string): string {
    this.checkOpen();
    const n = normalize(rel);
    if (rel === '' || isAbsolute(rel) || n === '..' || n.startsWith(`..${sep}`)) {
      throw new IbgpuError('BAD_CONFIG', `result file name ${JSON.stringify(rel)} must be a relative path inside the results directory`);
    }
    return join(this.path, n);
  }

  /** Writes a file inside the directory (creating subdirectories); returns its temporary path. */
  async writeFile(rel: string, data: FileData): Promise<string> {
    const p = this.file(rel);
    await mkdir(dirname(p), { recursive: true });
    await writeFileAtomic(p, data, { fsync: false });
    return p;
  }

  /** Writes `value` as pretty-printed JSON (with a trailing newline). */
  async writeJson(rel: string, value: unknown): Promise<string> {
    return this.writeFile(rel, `${JSON.stringify(value, null, 2)}\n`);
  }

  /** The files written so far, as '/'-separated paths relative to the directory (for manifests). */
  async files(): Promise<string[]> {
    this.checkOpen();
    const out: string[] = [];
    const walk = async (rel: string): Promise<void> => {
      for (const e of await readdir(join(this.path, rel), { withFileTypes: true })) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) await walk(r);
        else out.push(r);
      }
    };
    await walk('');
    return out.sort();
  }

  /** Moves the finished directory into place, replacing an existing directory at the target. */
  async commit(): Promise<void> {
    this.checkOpen();
    // Again at the last moment: something may have been put there while the results were computed.
    await checkReplaceableDir(this.target, this.guard);
    let existing: import('node:fs').Stats | undefined;
    try {
      existing = await lstat(this.target);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    if (!existing) {
      await rename(this.path, this.target);
      this._state = 'committed';
      return;
    }
    const old = siblingTempPath(this.target, 'old');
    await rename(this.target, old);
    try {
      await rename(this.path, this.target);
    } catch (e) {
      await rename(old, this.target).catch(() => undefined);
      throw new IbgpuError('BAD_FILE', `cannot move results into ${this.target}: ${describe(e)}`, 'the previous results were left in place');
    }
    this._state = 'committed';
    await rm(old, { recursive: true, force: true });
  }

  /** Deletes the temporary directory (no-op once committed or aborted). */
  async abort(): Promise<void> {
    if (this._state !== 'open') return;
    this._state = 'aborted';
    await rm(this.path, { recursive: true, force: true });
  }

  private checkOpen(): void {
    if (this._state !== 'open') {
      throw new IbgpuError('DISPOSED', `results directory ${this.target} was already ${this._state}`, 'create a new ResultDir for another run');
    }
  }
}

/** Runs `fn` on a fresh ResultDir, commits if it resolves, removes the temporary if it throws. */
export async function withResultDir<T>(target: string, fn: (dir: ResultDir) => Promise<T>, guard: OutputGuardOptions = {}): Promise<T> {
  const dir = await ResultDir.create(target, guard);
  try {
    const result = await fn(dir);
    if (dir.state === 'open') await dir.commit();
    return result;
  } finally {
    await dir.abort();
  }
}
