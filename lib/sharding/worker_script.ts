/**
 * Where the shard worker's JavaScript is. From the compiled package: `dist/lib/sharding/worker.js`.
 * From TypeScript sources (jest, ts runners): an esbuild bundle of `lib/sharding/worker.ts`, built
 * once per process into `node_modules/.cache/tfjs-attention-rope/` (three levels under the package
 * root, so the bundle's package-root lookup still finds `native/`). `TFJS_ATTENTION_SHARD_WORKER`
 * overrides both.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { check } from '../errors.js';
import { packageRoot } from '../util/package_root.js';

let bundled: Promise<string> | null = null;

/** Absolute path of the worker script. */
export async function workerScript(): Promise<string> {
  const env = process.env.TFJS_ATTENTION_SHARD_WORKER;
  if (env) return env;
  const here = typeof __filename === 'string' ? __filename : null; // undefined in ESM (dist)
  if (here === null || !here.endsWith('.ts')) {
    const js = path.join(packageRoot, 'dist', 'lib', 'sharding', 'worker.js');
    check(fs.existsSync(js), 'ShardedAttention', () => `worker script ${js} is missing; run \`npm run build\``);
    return js;
  }
  bundled ??= bundleWorker(path.join(path.dirname(here), 'worker.ts'));
  return bundled;
}

async function bundleWorker(entry: string): Promise<string> {
  const dir = path.join(packageRoot, 'node_modules', '.cache', 'tfjs-attention-rope');
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(dir)) { // bundles of processes that are gone (jest workers are killed, not exited)
    const pid = Number(/^shard_worker\.(\d+)\.mjs$/.exec(f)?.[1]);
    if (pid && pid !== process.pid && !alive(pid)) fs.rmSync(path.join(dir, f), { force: true });
  }
  const outfile = path.join(dir, `shard_worker.${process.pid}.mjs`);
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints: [entry], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'error',
    external: ['@tensorflow/*', 'webgpu', 'onnxruntime-node', '@huggingface/*', 'esbuild'],
    // CommonJS dependencies bundled into ESM need require().
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  process.once('exit', () => { try { fs.unlinkSync(outfile); } catch { /* gone already */ } });
  return outfile;
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}
