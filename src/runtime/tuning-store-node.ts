// The on-disk tuning store (Node): one JSON file in the user's cache directory, never inside the
// package: $IBGPU_CACHE_DIR, else $XDG_CACHE_HOME/ibgpu, else ~/.cache/ibgpu; file tuning.json.
// Entries are keyed by the caller's key (kernel family + adapter + variant list) plus this host:
// CPU model name, family/model/stepping from /proc/cpuinfo, and the core count, so a cache
// copied to another machine, or a container moved to another CPU generation, re-tunes.
// The file is written atomically (temporary + rename); an unreadable or foreign file is never
// overwritten: the store then keeps its entries in memory and says so in `location`.

import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { setTuningStore, type TuningStore } from './tuning-store.js';

const FORMAT = 'ibgpu-tuning-v1';

export function tuningCacheDir(): string {
  const env = process.env;
  if (env.IBGPU_CACHE_DIR) return env.IBGPU_CACHE_DIR;
  const base = env.XDG_CACHE_HOME || join(os.homedir(), '.cache');
  return join(base, 'ibgpu');
}

/** CPU model name, family/model/stepping (Linux) and core count: what software-adapter speed depends on. */
export function hostCpuKey(): string {
  const cpus = os.cpus();
  let fms = '';
  try {
    const first = readFileSync('/proc/cpuinfo', 'utf8').split('\n\n')[0] ?? '';
    const f = (name: string): string => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(first)?.[1]?.trim() ?? '?';
    fms = ` family ${f('cpu family')} model ${f('model')} stepping ${f('stepping')}`;
  } catch {
    // not Linux: the model name and core count still separate most hosts
  }
  return `${cpus[0]?.model ?? 'unknown cpu'}${fms}, ${cpus.length} cores`;
}

interface FileShape {
  format: string;
  entries: Record<string, unknown>;
}

export function diskTuningStore(dir = tuningCacheDir()): TuningStore {
  const file = join(dir, 'tuning.json');
  const host = hostCpuKey();
  let entries: Record<string, unknown> = {};
  let writable = true;
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<FileShape>;
    if (parsed.format === FORMAT && parsed.entries && typeof parsed.entries === 'object') entries = parsed.entries;
    else writable = false; // not ours: leave it alone
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') writable = false;
  }
  const full = (key: string): string => `${key} @ ${host}`;
  return {
    location: writable ? file : `${file} (unreadable or not an ibgpu file: kept in memory only)`,
    host,
    get: (key) => entries[full(key)],
    set(key, value) {
      entries[full(key)] = value;
      if (!writable) return;
      try {
        mkdirSync(dir, { recursive: true });
        try {
          // merge what another process wrote meanwhile
          const now = JSON.parse(readFileSync(file, 'utf8')) as Partial<FileShape>;
          if (now.format === FORMAT && now.entries) entries = { ...now.entries, ...entries };
        } catch {
          // no file yet
        }
        const tmp = join(dir, `.tuning.json.${process.pid}-${Date.now()}`);
        writeFileSync(tmp, JSON.stringify({ format: FORMAT, entries } satisfies FileShape, null, 2) + '\n');
        renameSync(tmp, file);
      } catch {
        writable = false; // read-only cache dir: keep the measurements for this process only
      }
    },
  };
}

/** Installs the on-disk store for this process (CLI, benches; library users may call it). */
export function useDiskTuningCache(dir?: string): TuningStore {
  const s = diskTuningStore(dir);
  setTuningStore(s);
  return s;
}
