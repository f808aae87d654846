/**
 * Where a worker's JavaScript is: the shard worker (`lib/sharding/worker.ts`) or the pipeline
 * stage worker (`models/pipeline/stage_worker.ts`). From the compiled package: `dist/{lib,models}/.../*.js`.
 * From TypeScript sources (jest, ts runners): an esbuild bundle of the entry, built once per
 * process into `node_modules/.cache/tfjs-attention-rope/` (three levels under the package root, so
 * the bundle's package-root lookup still finds `native/`). `TFJS_ATTENTION_SHARD_WORKER` /
 * `TFJS_ATTENTION_PIPELINE_WORKER` override both.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { check } from '../errors.js';
import { packageRoot } from '../util/package_root.js';

/** The worker entries: the shard worker, and the pipeline stage worker (TFJS_ATTENTION_PIPELINE_WORKER overrides it). */
const ENTRIES = {
  shard: { rel: ['lib', 'sharding', 'worker'], env: 'TFJS_ATTENTION_SHARD_WORKER', owner: 'ShardedAttention' },
  stage: { rel: ['models', 'pipeline', 'stage_worker'], env: 'TFJS_ATTENTION_PIPELINE_WORKER', owner: 'PipelineModel' },
} as const;

const bundles = new Map<string, Promise<string>>();

/** Absolute path of the worker script (`which`: the shard worker, or the pipeline stage worker). */
export async function workerScript(which: keyof typeof ENTRIES = 'shard'): Promise<string> {
  const e = ENTRIES[which];
  const env = process.env[e.env];
  if (env) return env;
  const here = typeof __filename === 'string' ? __filename : null; // undefined in ESM (dist)
  if (here === null || !here.endsWith('.ts')) {
    const js = path.join(packageRoot, 'dist', ...e.rel) + '.js';
    check(fs.existsSync(js), e.owner, () => `worker script ${js} is missing; run \`npm run build\``);
    return js;
  }
  if (!bundles.has(which)) bundles.set(which, bundleWorker(path.join(path.dirname(here), '..', '..', ...e.rel) + '.ts', which));
  return bundles.get(which)!;
}

async function bundleWorker(entry: string, which: string): Promise<string> {
  const dir = path.join(packageRoot, 'node_modules', '.cache', 'tfjs-attention-rope');
  fs.mkdirSync(dir, { recursive: true });
  for (const f of fs.readdirSync(dir)) { // bundles of processes that are gone (jest workers are killed, not exited)
    const pid = Number(/^(?:shard|stage)_worker\.(\d+)\.mjs$/.exec(f)?.[1]);
    if (pid && pid !== process.pid && !alive(pid)) fs.rmSync(path.join(dir, f), { force: true });
  }
  const outfile = path.join(dir, `${which}_worker.${process.pid}.mjs`);
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
