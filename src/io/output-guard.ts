// The one place that decides whether ibgpu may write where it was told to. Every command that
// writes a directory (build, combine, train-mlp, serve --export, staged builds) asks here first,
// before any computation, and ResultDir asks again just before it swaps a directory into place.
//
// The rule: nothing ibgpu did not write is ever deleted or overwritten.
//   - A directory is replaced only when it is absent, empty, or an ibgpu output: a manifest.json
//     with an ibgpu format marker and nothing in the directory that manifest does not account
//     for, or nothing but ibgpu's own safetensors files (stage directories, shard partials).
//   - Never the working directory or one of its parents, never a directory holding one of the
//     command's inputs (config, model, data), never one holding `.git`.
//   - A file is overwritten only when ibgpu wrote it (see checkOwnedFiles).
//   - The location must be writable: checked here, not discovered after the computation.

import { constants } from 'node:fs';
import { access, lstat, open, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { IbgpuError } from '../errors.js';

/** manifest.json "format" of a build result. */
export const RESULT_FORMAT = 'ibgpu-result';
/** manifest.json "format" of `ibgpu serve --export`. */
export const VIEWER_EXPORT_FORMAT = 'ibgpu-viewer-export';
/** train.json "format" of `ibgpu train-mlp`. */
export const TRAIN_FORMAT = 'ibgpu-train-mlp';

const MANIFEST_FORMATS = new Set([RESULT_FORMAT, VIEWER_EXPORT_FORMAT]);

/** What a result directory written before manifests listed their files may hold. */
const LEGACY_RESULT_FILES = new Set([
  'manifest.json',
  'basis.safetensors',
  'edges.safetensors',
  'graph.json',
  'degeneracy.json',
  'modules.json',
  'stats.safetensors',
  'bases.state.safetensors',
]);

export interface OutputGuardOptions {
  /** Files the command reads (config, model, data): the target may not be or contain any of them. */
  inputs?: readonly (string | undefined)[];
  /** What goes there, for messages ("the build result", "the viewer export", ...). */
  what?: string;
  /** The option that names the location, for the hint (default "-o"). */
  flag?: string;
}

function refuse(message: string, hint: string): never {
  throw new IbgpuError('BAD_OUTPUT', message, hint);
}

function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

async function statOrNull(p: string): Promise<import('node:fs').Stats | null> {
  try {
    return await stat(p);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ENOTDIR')
      refuse(`cannot write to ${p}: a part of that path is a file, not a directory`, 'choose an output path whose parents are directories');
    throw e;
  }
}

/**
 * The nearest existing ancestor of `abs` must be a directory this process can write (creating the
 * rest of the path and renaming into it happen there). access() also reports read-only mounts.
 */
async function checkWritableParent(abs: string, flag: string): Promise<void> {
  let p = dirname(abs);
  for (;;) {
    const s = await statOrNull(p);
    if (s) {
      if (!s.isDirectory()) refuse(`cannot write to ${abs}: ${p} is a file, not a directory`, `choose another ${flag} path`);
      try {
        await access(p, constants.W_OK | constants.X_OK);
      } catch (e) {
        refuse(
          `cannot write to ${abs}: ${p} is not writable (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
          `choose a writable ${flag} location or fix its permissions`,
        );
      }
      return;
    }
    const up = dirname(p);
    if (up === p) return;
    p = up;
  }
}

/** Every file below `dir`, as paths relative to it ('/'-separated), directories marked with a trailing '/'. */
async function listTree(dir: string, prefix = '', out: string[] = [], cap = 10000): Promise<string[]> {
  for (const e of await readdir(join(dir, prefix), { withFileTypes: true })) {
    if (out.length >= cap) break;
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) {
      const before = out.length;
      await listTree(dir, rel, out, cap);
      if (out.length === before) out.push(`${rel}/`); // an empty folder is still something we did not write
    } else {
      out.push(rel);
    }
  }
  return out;
}

/**
 * The safetensors metadata format of `path`, when it is a readable safetensors file. Reads only
 * the header (8-byte little-endian length, then JSON) instead of using src/io/safetensors.ts,
 * which writes through src/io/atomic.ts and so sits above this module.
 */
async function safetensorsFormat(path: string): Promise<string | undefined> {
  let fh: import('node:fs/promises').FileHandle | undefined;
  try {
    fh = await open(path, 'r');
    const len = Buffer.alloc(8);
    if ((await fh.read(len, 0, 8, 0)).bytesRead !== 8) return undefined;
    const n = Number(len.readBigUInt64LE(0));
    if (n <= 0 || n > 100 * 2 ** 20) return undefined;
    const head = Buffer.alloc(n);
    if ((await fh.read(head, 0, n, 8)).bytesRead !== n) return undefined;
    const meta = (JSON.parse(head.toString('utf8')) as { __metadata__?: Record<string, unknown> }).__metadata__;
    return typeof meta?.['format'] === 'string' ? meta['format'] : undefined;
  } catch {
    return undefined;
  } finally {
    await fh?.close();
  }
}

async function isIbgpuSafetensors(path: string): Promise<boolean> {
  return (await safetensorsFormat(path))?.startsWith('ibgpu') === true;
}

async function readJsonOrNull(path: string): Promise<Record<string, unknown> | null> {
  try {
    const v = JSON.parse(await readFile(path, 'utf8')) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/**
 * Files that later commands add to a build result (`ibgpu ablate`): part of the result, so a
 * rebuild may replace them, and they are written only into an ibgpu result directory.
 */
export const RESULT_ADDED_FILES: readonly string[] = ['ablations.json', 'ablations.svg', 'ablations-edges.svg'];

/** The files an ibgpu manifest accounts for, or null when manifest.json is not one of ibgpu's. */
function manifestFiles(m: Record<string, unknown> | null): Set<string> | null {
  if (!m) return null;
  if (typeof m['format'] === 'string' && MANIFEST_FORMATS.has(m['format'])) {
    const files = Array.isArray(m['files']) ? (m['files'] as unknown[]).filter((f): f is string => typeof f === 'string') : [...LEGACY_RESULT_FILES];
    return new Set(['manifest.json', ...files, ...RESULT_ADDED_FILES]);
  }
  // Results written before the format marker existed: the version stamp and the build's fields.
  if (m['format'] === undefined && typeof m['ibgpu_version'] === 'string' && typeof m['timings_ms'] === 'object' && typeof m['config'] === 'object') {
    return new Set([...LEGACY_RESULT_FILES, ...RESULT_ADDED_FILES]);
  }
  return null;
}

/** `.<name>.tmp-<pid>-<8 hex>` / `.old-…`: the hidden temporaries of src/io/atomic.ts. */
const IBGPU_TEMPORARY = /^\.[^/]+\.(tmp|old)-\d+-[0-9a-f]{8}(\/.*)?$/;

function listing(names: string[], max = 6): string {
  const shown = names.slice(0, max).join(', ');
  return names.length > max ? `${shown}, … (${names.length} entries)` : shown;
}

/** Why ibgpu may not replace the existing directory `abs`, or null when it may. */
async function foreignContents(abs: string): Promise<string | null> {
  const entries = await listTree(abs);
  if (entries.length === 0) return null;
  if (entries.some((e) => e === '.git/' || e.startsWith('.git/') || e === '.git')) return `it holds a .git repository (${listing(entries)})`;
  const allowed = manifestFiles(await readJsonOrNull(join(abs, 'manifest.json')));
  const foreign: string[] = [];
  for (const e of entries) {
    if (allowed?.has(e)) continue;
    // A temporary that an interrupted atomic write left behind (siblingTempPath in atomic.ts).
    if (IBGPU_TEMPORARY.test(e)) continue;
    // ibgpu's own safetensors files (stage files, shard partials) carry an "ibgpu-…" format in their metadata.
    if (e.endsWith('.safetensors') && !e.includes('/') && (await isIbgpuSafetensors(join(abs, e)))) continue;
    foreign.push(e);
  }
  if (foreign.length === 0) return null;
  const what = allowed ? 'besides an ibgpu result it holds' : 'it is not an ibgpu output and holds';
  return `${what} ${listing(foreign)}`;
}

/**
 * Throws BAD_OUTPUT (exit code 2 on the command line) unless a directory that ibgpu writes may
 * replace `target` (see the file header). Call it before any computation; ResultDir.commit calls
 * it again right before the swap.
 */
export async function checkReplaceableDir(target: string, opts: OutputGuardOptions = {}): Promise<string> {
  const abs = resolve(target);
  const what = opts.what ?? 'the results';
  const flag = opts.flag ?? '-o';
  const hint = `pass ${flag} with a new or empty directory (ibgpu replaces only directories it wrote itself)`;
  const cwd = process.cwd();
  if (within(cwd, abs)) {
    refuse(
      `refusing to write ${what} to ${abs}: it is ${abs === cwd ? 'the working directory' : 'a parent of the working directory'}, which ibgpu would replace`,
      hint,
    );
  }
  for (const input of opts.inputs ?? []) {
    if (input === undefined) continue;
    const p = resolve(input);
    if (within(p, abs))
      refuse(
        `refusing to write ${what} to ${abs}: it ${p === abs ? 'is' : 'holds'} ${p === abs ? 'an input of this command' : `${relative(abs, p)}, an input of this command`}`,
        hint,
      );
  }
  let s: import('node:fs').Stats | null;
  try {
    s = await statOrNull(abs);
  } catch (e) {
    refuse(`cannot inspect ${abs}: ${(e as Error).message}`, hint);
  }
  await checkWritableParent(abs, flag);
  if (!s) return abs;
  if (!s.isDirectory())
    refuse(`refusing to write ${what} to ${abs}: it is a file, not a directory`, `choose another ${flag} path; ibgpu does not replace files it did not write`);
  const link = await lstat(abs);
  if (link.isSymbolicLink()) refuse(`refusing to write ${what} to ${abs}: it is a symbolic link`, `pass ${flag} with the directory it points to, or a new one`);
  const why = await foreignContents(abs);
  if (why) refuse(`refusing to replace ${abs} with ${what}: ${why}`, hint);
  return abs;
}

/**
 * Throws BAD_OUTPUT unless ibgpu may write `names` into the directory `dir` (created if absent;
 * other files there are left alone): each name that exists must have been written by ibgpu, as
 * `owned(dir)` decides. Also checks that the location is writable.
 */
export async function checkOwnedFiles(
  dir: string,
  names: readonly string[],
  owned: (dir: string) => Promise<boolean>,
  opts: OutputGuardOptions = {},
): Promise<string> {
  const abs = resolve(dir);
  const flag = opts.flag ?? '-o';
  const s = await statOrNull(abs);
  if (s && !s.isDirectory()) refuse(`cannot write ${opts.what ?? 'the output'} into ${abs}: it is a file, not a directory`, `choose another ${flag} path`);
  if (!s) {
    await checkWritableParent(abs, flag);
    return abs;
  }
  try {
    await access(abs, constants.W_OK | constants.X_OK);
  } catch (e) {
    refuse(`cannot write into ${abs}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, `choose a writable ${flag} location`);
  }
  const present: string[] = [];
  for (const n of names) if (await statOrNull(join(abs, n))) present.push(n);
  if (present.length > 0 && !(await owned(abs))) {
    refuse(
      `refusing to overwrite ${listing(present)} in ${abs}: ibgpu did not write ${present.length === 1 ? 'it' : 'them'}`,
      `pass ${flag} with a new or empty directory`,
    );
  }
  return abs;
}

/** A train-mlp output: train.json carries the format marker (or, older, ibgpu's version and hyperparameters). */
export async function isTrainOutput(dir: string): Promise<boolean> {
  const t = await readJsonOrNull(join(dir, 'train.json'));
  if (!t) return false;
  return t['format'] === TRAIN_FORMAT || (t['format'] === undefined && typeof t['ibgpu_version'] === 'string' && typeof t['hyperparameters'] === 'object');
}

/** Throws BAD_OUTPUT unless the file `path` is absent or an ibgpu safetensors file (a shard partial). */
export async function checkOwnedSafetensors(path: string, opts: OutputGuardOptions = {}): Promise<string> {
  const abs = resolve(path);
  return checkOwnedFiles(dirname(abs), [relative(dirname(abs), abs)], () => isIbgpuSafetensors(abs), opts).then(() => abs);
}

/** A build result directory: its manifest.json is one of ibgpu's (format marker, or an older result's fields). */
export async function isResultDir(dir: string): Promise<boolean> {
  return manifestFiles(await readJsonOrNull(join(dir, 'manifest.json'))) !== null;
}
