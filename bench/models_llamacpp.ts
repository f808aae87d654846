/**
 * Whole-model inference against llama.cpp on the same checkpoint (issue 11): a random-weight Llama
 * of SmolLM2-135M's shape (hidden 576, 30 layers, 9/3 heads, d64, intermediate 1536, vocab 49152,
 * untied, float32), greedy, each side in its own process (bench/peers/llamacpp/bench_side.mjs),
 * sides alternating within a round and the order rotated between rounds; medians over rounds;
 * ratios against llama.cpp F32 (defaults: flash attention on, F16 KV); greedy ids compared.
 *
 *   bash bench/peers/setup-llamacpp.sh                        # once: node-llama-cpp 3.22.1 from npm
 *   node dist/bench/models_llamacpp.js [--rounds 3] [--sides ours-cpu,ours-wasm,llama-f32] [--quick] [--json FILE]
 *     sides also: ours-wasm-simd (wasm without the addon: the WebAssembly SIMD kernels a browser runs),
 *     ours-wasm-relaxed (the same with V8's relaxed SIMD on, as in Chrome 114+; Node 20 needs a V8 flag for it),
 *     ours-wasm-ts (wasm without addon nor SIMD module: TypeScript loops and tfjs-wasm's own ops)
 *       [--prompt 512 --new 128 --batch 8 --batch-prompt 64 --batch-new 128] [--work DIR] [--peer DIR]
 *       [--quiet-wait 300 --quiet-max 15]   # wait (s) before each child for < 15% CPU used by others
 *   npm run bench -- --only models_llamacpp                   # the same through the bench runner (opt-in)
 *
 * single: 1 sequence, prompt then `new` tokens; prefill = time to the first token, decode =
 * (N - 1) / (t_N - t_1). batch: `batch` sequences of `batch-prompt` tokens submitted together;
 * aggregate decode tok/s once every sequence has its first token. The checkpoint and its GGUF
 * (bench/peers/llamacpp/make_checkpoint.mjs, make_gguf.mjs) are made once under --work
 * (default out/bench-models). Ratio = llama.cpp ms / ours ms (above 1: ours faster).
 */
import { spawnSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

import { packageRoot } from '../lib/util/package_root.js';
import { type BenchModule, type BenchRow, formatTable, row } from './harness.js';

const PEERS = path.join(packageRoot, 'bench', 'peers', 'llamacpp');
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

export interface ModelsLlamaCppOptions {
  rounds: number; sides: string[]; prompt: number; newTokens: number; batch: number; batchPrompt: number; batchNew: number;
  work: string; peerDir: string; json?: string; log(s: string): void;
  /** Before each child, wait up to this many seconds for other processes to use < quietMaxPct of the CPUs. */
  quietWaitS: number; quietMaxPct: number;
}

interface SeqResult { ttftMs: number; decodeTokS: number; tokens: number[][] }
interface SideResult { side: string; single?: SeqResult; batch?: SeqResult; loadMs?: number; cpuSec: number; othersCpuPct?: number }

/** Busy and total jiffies of all CPUs (/proc/stat). */
function cpuJiffies(): { busy: number; total: number } {
  const l = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = l.reduce((a, b) => a + b, 0);
  return { busy: total - l[3] - (l[4] ?? 0), total };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits (up to quietWaitS) until the machine's CPUs are below quietMaxPct busy over 2 s; returns the last share. */
async function waitQuiet(o: ModelsLlamaCppOptions): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const a = cpuJiffies(); await sleep(2000); const b = cpuJiffies();
    const share = (100 * (b.busy - a.busy)) / Math.max(1, b.total - a.total);
    if (share <= o.quietMaxPct || Date.now() - t0 > o.quietWaitS * 1000) return share;
    o.log(`  (waiting for a quiet machine: ${share.toFixed(0)}% of the CPUs busy)`);
  }
}

function ensureCheckpoint(o: ModelsLlamaCppOptions, f16: boolean): { hf: string; f32: string; f16: string } {
  const hf = path.join(o.work, 'ckpt-135m');
  const run = (script: string, args: string[]) => {
    const r = spawnSync(process.execPath, [path.join(PEERS, script), ...args], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`[models_llamacpp] ${script} ${args.join(' ')} exited ${r.status}`);
  };
  if (!existsSync(path.join(hf, 'model.safetensors'))) run('make_checkpoint.mjs', ['--preset', '135m', '--out', hf]);
  const gguf = (t: string) => path.join(o.work, `ckpt-135m-${t}.gguf`);
  if (!existsSync(gguf('f32'))) run('make_gguf.mjs', ['--in', hf, '--out', gguf('f32'), '--type', 'f32']);
  if (f16 && !existsSync(gguf('f16'))) run('make_gguf.mjs', ['--in', hf, '--out', gguf('f16'), '--type', 'f16']);
  return { hf, f32: gguf('f32'), f16: f16 ? gguf('f16') : gguf('f32') };
}

function runSide(side: string, ck: { hf: string; f32: string; f16: string }, o: ModelsLlamaCppOptions): Promise<SideResult> {
  const args = [path.join(PEERS, 'bench_side.mjs'), side, '--product', packageRoot, '--hf', ck.hf, '--gguf-f32', ck.f32, '--gguf-f16', ck.f16,
    '--prompt', String(o.prompt), '--new', String(o.newTokens), '--batch', String(o.batch), '--batch-prompt', String(o.batchPrompt),
    '--batch-new', String(o.batchNew), '--threads', '2'];
  if (o.batch === 0) args.push('--skip-batch');
  return new Promise((resolve, reject) => {
    const a = cpuJiffies(), t0 = Date.now();
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LLAMACPP_PEER_DIR: o.peerDir } });
    let out = '', err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('RESULT '));
      if (code !== 0 || !line) reject(new Error(`[models_llamacpp] side ${side} exited ${code}\n${err.slice(-2000)}\n${out.slice(-1000)}`));
      else {
        const r = JSON.parse(line.slice(7)) as SideResult, b = cpuJiffies(), wallS = (Date.now() - t0) / 1000;
        // CPU other processes used while the child ran, as a share of the machine (USER_HZ = 100)
        r.othersCpuPct = +Math.max(0, (100 * ((b.busy - a.busy) / 100 - r.cpuSec)) / (wallS * os.cpus().length)).toFixed(1);
        resolve(r);
      }
    });
  });
}

/** How many leading ids two runs share, over all sequences: `same/total`. */
function agreement(a: number[][] | undefined, b: number[][] | undefined): string {
  if (!a || !b) return '-';
  let same = 0, total = 0;
  a.forEach((seq, i) => {
    const other = b[i] ?? [];
    const n = Math.min(seq.length, other.length);
    let k = 0;
    while (k < n && seq[k] === other[k]) k++;
    same += k; total += n;
  });
  return `${same}/${total}`;
}

export async function runModelsLlamaCpp(o: ModelsLlamaCppOptions): Promise<BenchRow[]> {
  const entry = path.join(o.peerDir, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');
  if (o.sides.some((s) => s.startsWith('llama-')) && !existsSync(entry)) {
    throw new Error(`[models_llamacpp] node-llama-cpp not found at ${entry}: run \`bash bench/peers/setup-llamacpp.sh\` (or pass --peer DIR)`);
  }
  mkdirSync(o.work, { recursive: true });
  const ck = ensureCheckpoint(o, o.sides.includes('llama-f16'));
  const results = new Map<string, SideResult[]>(o.sides.map((s) => [s, []]));
  for (let r = 0; r < o.rounds; r++) {
    for (let i = 0; i < o.sides.length; i++) {
      const side = o.sides[(i + r) % o.sides.length];
      await waitQuiet(o);
      const res = await runSide(side, ck, o);
      results.get(side)!.push(res);
      o.log(`round ${r + 1}/${o.rounds} ${side}: prefill ${res.single?.ttftMs.toFixed(0)} ms, decode ${res.single?.decodeTokS.toFixed(1)} tok/s`
        + `${res.batch ? `, batch-${o.batch} decode ${res.batch.decodeTokS.toFixed(1)} tok/s` : ''}; other processes ${res.othersCpuPct}% of the CPUs`);
    }
  }
  const med = (side: string, f: (x: SideResult) => number | undefined) => median(results.get(side)!.map(f).filter((v): v is number => v !== undefined));
  // ratios against llama.cpp's defaults; greedy ids against its all-float32 mode when it ran (flash attention
  // with an F16 KV cache is ~1e-3 off, enough to flip near-ties in long greedy runs)
  const peer = o.sides.find((s) => s === 'llama-f32') ?? o.sides.find((s) => s.startsWith('llama-'));
  const exact = o.sides.includes('llama-f32-exact') ? 'llama-f32-exact' : peer;
  const rows: BenchRow[] = [];
  const ratioLines: string[] = [];
  const lines = [`| side | prefill ${o.prompt} ms | decode tok/s | batch-${o.batch} decode tok/s | greedy ids = ${exact ?? '-'} (single; batch) | other processes, % CPU |`,
    '| --- | --- | --- | --- | --- | --- |'];
  for (const side of o.sides) {
    const pre = med(side, (x) => x.single?.ttftMs), dec = med(side, (x) => x.single?.decodeTokS), bat = med(side, (x) => x.batch?.decodeTokS);
    const last = results.get(side)!.at(-1)!, ref = exact ? results.get(exact)!.at(-1)! : undefined;
    lines.push(`| ${side} | ${pre.toFixed(0)} | ${dec.toFixed(1)} | ${Number.isNaN(bat) ? '-' : bat.toFixed(1)} | `
      + `${agreement(last.single?.tokens, ref?.single?.tokens)}; ${agreement(last.batch?.tokens, ref?.batch?.tokens)} | `
      + `${results.get(side)!.map((x) => x.othersCpuPct).join(' / ')} |`);
    if (!peer || side === peer || side.startsWith('llama-')) continue;
    const backend = side.slice(5);
    // ratio rows: llama.cpp's time / ours (prefill), ours tok/s / llama.cpp's (decode); above 1: ours faster
    const pPre = med(peer, (x) => x.single?.ttftMs), pDec = med(peer, (x) => x.single?.decodeTokS), pBat = med(peer, (x) => x.batch?.decodeTokS);
    ratioLines.push(`| ${side} vs ${peer} | ${(pPre / pre).toFixed(2)}x | ${(dec / pDec).toFixed(2)}x | `
      + `${Number.isNaN(bat) ? '-' : `${(bat / pBat).toFixed(2)}x`} | | |`);
    rows.push(row(`135M whole model, prefill ${o.prompt}`, backend, pre, peer, med(peer, (x) => x.single?.ttftMs)));
    rows.push(row('135M whole model, decode ms/token, 1 seq', backend, 1000 / dec, peer, 1000 / med(peer, (x) => x.single?.decodeTokS)));
    if (!Number.isNaN(bat)) rows.push(row(`135M whole model, decode ms/token, ${o.batch} seqs`, backend, 1000 / bat, peer, 1000 / med(peer, (x) => x.batch?.decodeTokS)));
  }
  o.log([...lines, ...ratioLines].join('\n'));
  o.log(`(medians of ${o.rounds} round(s) per column; ratio rows: above 1x means ours is faster)`);
  if (o.json) {
    mkdirSync(path.dirname(o.json), { recursive: true });
    writeFileSync(o.json, `${JSON.stringify({ options: { ...o, log: undefined }, results: Object.fromEntries(results), rows }, null, 2)}\n`);
  }
  return rows;
}

export function defaultModelsLlamaCppOptions(quick: boolean, log: (s: string) => void): ModelsLlamaCppOptions {
  return {
    rounds: quick ? 1 : 3, sides: ['ours-cpu', 'ours-wasm', 'llama-f32'], prompt: 512, newTokens: quick ? 32 : 128, batch: 8, batchPrompt: 64,
    batchNew: quick ? 32 : 128, work: path.join(packageRoot, 'out', 'bench-models'),
    peerDir: process.env.LLAMACPP_PEER_DIR ?? path.join(packageRoot, 'out', 'peers', 'llamacpp'), log, quietWaitS: 300, quietMaxPct: 15,
  };
}

/** Opt-in module of `npm run bench` (minutes per round): runs only when `--only` names it. */
export const modelsLlamaCppBench: BenchModule & { optIn: true } = {
  name: 'models_llamacpp',
  optIn: true,
  run: (opts) => runModelsLlamaCpp(defaultModelsLlamaCppOptions(opts.quick, opts.log)),
};

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const o = defaultModelsLlamaCppOptions(process.argv.includes('--quick'), (s) => console.log(s));
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i], v = () => argv[++i];
    const num = (name: string) => { const x = Number(v()); if (!Number.isInteger(x) || x < 0) throw new Error(`[models_llamacpp] ${name} (${argv[i]}) must be an integer >= 0`); return x; };
    if (k === '--rounds') o.rounds = num(k);
    else if (k === '--sides') o.sides = v().split(',');
    else if (k === '--prompt') o.prompt = num(k);
    else if (k === '--new') o.newTokens = num(k);
    else if (k === '--batch') o.batch = num(k);
    else if (k === '--batch-prompt') o.batchPrompt = num(k);
    else if (k === '--batch-new') o.batchNew = num(k);
    else if (k === '--work') o.work = path.resolve(v());
    else if (k === '--peer') o.peerDir = path.resolve(v());
    else if (k === '--json') o.json = v();
    else if (k === '--quiet-wait') o.quietWaitS = num(k);
    else if (k === '--quiet-max') o.quietMaxPct = num(k);
    else if (k !== '--quick') throw new Error(`[models_llamacpp] unknown argument '${k}'`);
  }
  runModelsLlamaCpp(o).then((rows) => console.log(`\n${formatTable(rows)}`)).catch((e) => { console.error(e); process.exit(1); });
}
