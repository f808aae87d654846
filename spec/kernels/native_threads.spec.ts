/**
 * The native addon called from several JS threads at once (what tensor-parallel cpu workers do):
 * every thread has its own pool and scratch, so concurrent decode attention (split-K partials)
 * and sgemm calls give, on every one of hundreds of calls, exactly the result one thread alone gives.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { nativeKernels } from '../../kernels/cpu/native';
import { packageRoot } from '../../lib/util/package_root.js';

const ADDON = path.join(packageRoot, 'native', 'build', 'Release', 'tfjs_attention_native.node');

/**
 * Plain JS run both in the main thread and in workers: deterministic inputs from `seed`, then
 * `iters` calls of decode attention (8 sequences x 1 token over 150-400 cached, causal, forced
 * decode variant: split across the pool with partial states) and of a 67x96x80 sgemm.
 * Returns the first outputs and whether every later call matched them bit for bit.
 */
const BODY = `
function run(addon, seed, iters) {
  let s = seed >>> 0 || 1;
  const rnd = (n) => { const a = new Float32Array(n); for (let i = 0; i < n; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; a[i] = s / 4294967296 * 2 - 1; } return a; };
  const B = 8, NH = 8, NKV = 2, D = 32, PS = 16;
  const ctx = Array.from({ length: B }, (_, b) => 150 + ((seed * 37 + b * 53) % 250));
  const maxPages = Math.ceil(Math.max(...ctx) / PS);
  const numPages = B * maxPages;
  const kPool = rnd(numPages * NKV * PS * D), vPool = rnd(numPages * NKV * PS * D);
  const pageTable = new Int32Array(B * maxPages);
  for (let i = 0; i < pageTable.length; i++) pageTable[i] = (i * 7919 + seed) % numPages;
  const rowOffsets = Int32Array.from({ length: B + 1 }, (_, b) => b);
  const start = Int32Array.from(ctx, (c) => c - 1);
  const numNew = new Int32Array(B).fill(1);
  const ints = Int32Array.from([B, NH, NKV, D, PS, maxPages, 0, 0, 0, 2, 0]);  // ATTN_ARG order; last: KV_DTYPE float32
  const q = rnd(B * NH * D);
  const M = 67, N = 96, K = 80;
  const a = rnd(M * K), w = rnd(K * N), bias = rnd(N);
  const once = () => {
    const out = new Float32Array(B * NH * D);
    addon.flashAttention(q, out, kPool, vPool, rowOffsets, start, numNew, pageTable, ints, 1 / Math.sqrt(D));
    const c = new Float32Array(M * N);
    addon.sgemm(a, w, bias, c, M, N, K, 0, 0);
    return [out, c];
  };
  const first = once();
  let same = true;
  for (let i = 1; i < iters; i++) {
    const r = once();
    for (let j = 0; j < 2; j++) for (let k = 0; k < r[j].length; k++) if (!Object.is(r[j][k], first[j][k])) same = false;
  }
  return { attention: first[0], matmul: first[1], same };
}
`;

function runInWorker(seed: number, iters: number): Promise<{ attention: Float32Array; matmul: Float32Array; same: boolean }> {
  const code = `${BODY}
const { parentPort, workerData } = require('node:worker_threads');
const addon = require(workerData.addon);
parentPort.postMessage(run(addon, workerData.seed, workerData.iters));`;
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { addon: ADDON, seed, iters } });
    w.once('message', (m) => { resolve(m); void w.terminate(); });
    w.once('error', reject);
  });
}

// eslint-disable-next-line @typescript-eslint/no-implied-eval
const runHere = new Function('addon', 'seed', 'iters', `${BODY}\nreturn run(addon, seed, iters);`) as
  (addon: unknown, seed: number, iters: number) => { attention: Float32Array; matmul: Float32Array; same: boolean };

(nativeKernels === null && process.env.TFJS_ATTENTION_SKIP_NATIVE === '1' ? describe.skip : describe)('native addon from several threads at once', () => {
  jest.setTimeout(120000);

  it('3 worker threads and the main thread, 300 calls each: every call equals a lone thread\'s result', async () => {
    const seeds = [11, 12, 13];
    const alone = [];
    for (const s of seeds) alone.push(await runInWorker(s, 1)); // one at a time (same 1-thread pool)
    const workers = Promise.all(seeds.map((s) => runInWorker(s, 300)));
    const main = runHere(nativeKernels, 99, 300); // main thread busy at the same time, on its own pool
    const got = await workers;
    expect(main.same).toBe(true);
    got.forEach((g, i) => {
      expect(g.same).toBe(true);
      expect(Array.from(g.attention)).toEqual(Array.from(alone[i].attention));
      expect(Array.from(g.matmul)).toEqual(Array.from(alone[i].matmul));
      expect(g.attention.some((x) => x !== 0)).toBe(true);
    });
  });
});
