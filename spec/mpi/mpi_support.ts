/**
 * Running scripts under `mpirun` from the specs: the TypeScript entry is bundled with esbuild
 * (the current sources, not a stale dist/) into node_modules/.cache/tfjs-attention-rope/ (three
 * levels under the package root, so the package-root lookup finds native/), then launched with
 * `mpirun -np N --oversubscribe` (and --allow-run-as-root: CI runs as root).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');
const CACHE = path.join(ROOT, 'node_modules', '.cache', 'tfjs-attention-rope');
const BINDING = path.join(ROOT, 'native', 'mpi', 'build', 'Release', 'tfjs_attention_mpi.node');

/** Null when mpirun and the MPI binding are here, else why the MPI specs skip. */
export function mpiSkipReason(): string | null {
  const which = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  if (which.error || which.status !== 0) return 'mpirun not found (apt-get install openmpi-bin libopenmpi-dev; scripts/setup.sh does)';
  if (!fs.existsSync(BINDING)) return `the MPI binding ${path.relative(ROOT, BINDING)} is not built (node scripts/build-native.cjs)`;
  return null;
}

const bundles = new Map<string, string>();

/** An ESM bundle of `entry` (a path under the package root), built once per jest worker. */
export async function bundle(entry: string): Promise<string> {
  const hit = bundles.get(entry);
  if (hit) return hit;
  fs.mkdirSync(CACHE, { recursive: true });
  for (const f of fs.readdirSync(CACHE)) { // bundles of jest workers that were killed, not exited
    const pid = Number(/^mpi_.+\.(\d+)\.mjs$/.exec(f)?.[1]);
    if (pid && pid !== process.pid && !alive(pid)) fs.rmSync(path.join(CACHE, f), { force: true });
  }
  const outfile = path.join(CACHE, `mpi_${path.basename(entry, '.ts')}.${process.pid}.mjs`);
  const esbuild = await import('esbuild');
  await esbuild.build({
    entryPoints: [path.join(ROOT, entry)], outfile, bundle: true, platform: 'node', format: 'esm', target: 'node20', logLevel: 'error',
    external: ['@tensorflow/*', 'webgpu', 'onnxruntime-node', '@huggingface/*', 'esbuild', '@resvg/*', 'echarts'],  // packages with native parts stay require()d
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
  });
  process.once('exit', () => { try { fs.unlinkSync(outfile); } catch { /* gone already */ } });
  bundles.set(entry, outfile);
  return outfile;
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

export interface JobResult { code: number | null; signal: string | null; stdout: string; stderr: string; ms: number }

/** Runs `node script args` on `np` ranks; resolves when mpirun ends (or kills it after `limitMs`). */
export function mpirun(np: number, script: string, args: string[], opts: { limitMs?: number; mpiArgs?: string[]; env?: Record<string, string> } = {}): Promise<JobResult> {
  const argv = ['--allow-run-as-root', '--oversubscribe', '-np', String(np), ...(opts.mpiArgs ?? []), process.execPath, script, ...args];
  return run('mpirun', argv, opts);
}

/** Runs `node script args` as one plain process. */
export function node(script: string, args: string[], opts: { limitMs?: number; env?: Record<string, string> } = {}): Promise<JobResult> {
  return run(process.execPath, [script, ...args], opts);
}

function run(cmd: string, argv: string[], opts: { limitMs?: number; env?: Record<string, string> }): Promise<JobResult> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, {
      cwd: ROOT, env: { ...process.env, TFJS_ATTENTION_THREADS: '1', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.limitMs ?? 120000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** The JSON of every `TAG {json}` line of the output. */
export function tagged<T>(out: string, tag: string): T[] {
  return out.split('\n').filter((l) => l.startsWith(`${tag} `)).map((l) => JSON.parse(l.slice(tag.length + 1)) as T);
}
