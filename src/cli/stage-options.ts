// What `ibgpu build` (with --plan, --stage or --resume) and `ibgpu combine` share between the MLP
// commands (stage.ts) and the transformer ones (stage-transformer.ts): their options, progress
// lines and stdout. A module of its own, so that neither command file imports the other's types.

import type { Backend } from '../gpu/acquire.js';

export interface StageCliOptions {
  backend?: Backend;
  out?: string;
  quiet?: boolean;
  plan?: boolean;
  stage?: string;
  shard?: string;
  shards?: string;
  bases?: string;
  resume?: boolean;
  work?: string;
  force?: boolean;
  split?: string;
  json?: boolean;
}

export interface CombineCliOptions {
  out: string;
  bases?: string;
  config?: string;
  quiet?: boolean;
  json?: boolean;
}

/** Progress lines on stderr, unless --quiet or --json. */
export function stageLog(o: { quiet?: boolean; json?: boolean }): (m: string) => void {
  return (m) => {
    if (!o.quiet && !o.json) console.error(m);
  };
}

/** What a stage command prints on stdout: the file it wrote, or with --json one document about it. */
export function printPath(path: string, json: boolean | undefined, extra: Record<string, unknown>): void {
  console.log(json ? JSON.stringify({ result: path, ...extra }, null, 2) : path);
}
