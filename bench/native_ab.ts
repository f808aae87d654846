/**
 * Same-process A/B of two builds of the native addon (or one build under two env settings) on the
 * attention_cpu shapes, calls alternating so machine load falls on both alike:
 *
 *   cp native/build/Release/tfjs_attention_native.node /tmp/a.node   # before a change
 *   node scripts/build-native.cjs && cp native/build/Release/tfjs_attention_native.node /tmp/b.node
 *   node dist/bench/native_ab.js /tmp/a.node /tmp/b.node
 *   AENV=TFJS_ATTENTION_NK=64 BENV=TFJS_ATTENTION_NK=128 node dist/bench/native_ab.js /tmp/a.node /tmp/b.node
 *   ONLY=P1,R1 node dist/bench/native_ab.js /tmp/a.node /tmp/b.node   # some scenarios only
 *
 * Prints min / p25 / median ms of FlashAttentionRaggedPaged (P1, P2, D1), RopeSplitStoreRagged (R1, R2) and the
 * training FlashAttentionRagged forward / backward (F1, B1, F2, B2) per side (TFJS_ATTENTION_THREADS=1 for
 * one thread). Use different file paths for A and B: a path loads once per process.
 *
 * Sides alternate in blocks of ~100 ms, not call by call: each addon has its own thread pool, whose
 * workers spin for 200 us after a call, so per-call alternation ran every call beside the other
 * side's spinning worker (two copies of one build read 2.71 vs 2.47 ms on P1). The first calls of
 * each block (while the other pool's workers go to sleep) are not counted.
 */
import { createRequire } from 'node:module';

import type { NativeKernels } from '../kernels/cpu/native.js';

const req = createRequire(import.meta.url);
const setEnv = (spec: string | undefined): void => {
  for (const kv of (spec ?? '').split(',').filter(Boolean)) {
    const [k, v] = kv.split('=');
    process.env[k] = v;
  }
};
setEnv(process.env.AENV);
const A = req(process.argv[2]) as NativeKernels;
setEnv(process.env.BENV);
const B = req(process.argv[3]) as NativeKernels;

const ONLY = process.env.ONLY?.split(',');  // e.g. ONLY=P1,R1
const NH = 16, NKV = 4, D = 64, PS = 128;
const SCENARIOS: [string, number[], number[]][] = [
  ['P1', [0], [512]], ['P2', [0, 0, 0, 0], [64, 128, 192, 256]], ['D1', Array(8).fill(1024), Array(8).fill(1)],
];
const stats = (x: number[]): string => {
  x.sort((a, b) => a - b);
  return `${x[0].toFixed(3)}/${x[x.length >> 2].toFixed(3)}/${x[x.length >> 1].toFixed(3)}`;
};
for (const [name, past, news] of SCENARIOS) {
  const batch = past.length, maxPages = Math.ceil((Math.max(...past) + Math.max(...news)) / PS);
  const pageTable = new Int32Array(batch * maxPages).map((_, i) => i);
  const pool = batch * maxPages * NKV * PS * D;
  const k = new Float32Array(pool).map(() => Math.random()), v = new Float32Array(pool).map(() => Math.random());
  const rowOffsets = new Int32Array(batch + 1);
  news.forEach((n, b) => { rowOffsets[b + 1] = rowOffsets[b] + n; });
  const T = rowOffsets[batch], start = Int32Array.from(past), numNew = Int32Array.from(news);
  const q = new Float32Array(T * NH * D).map(() => Math.random()), out = new Float32Array(T * NH * D);
  const ints = Int32Array.of(batch, NH, NKV, D, PS, maxPages, 0, 0, 0, 0, 0);  // ATTN_ARG order (last: KV_DTYPE float32)
  const run = (m: NativeKernels): void => m.flashAttention(q, out, k, v, rowOffsets, start, numNew, pageTable, ints, 0.125);
  abRun(name, run);
}

// RopeSplitStoreRagged on the P1 rows (512 tokens, [T, (16 + 2 * 4) * 64] in): R1 plain, R2 with qk RMSNorm.
for (const [name, norm] of [['R1', false], ['R2', true]] as const) {
  const T = 512, maxPages = T / PS, W = (NH + 2 * NKV) * D;
  const qkv = new Float32Array(T * W).map(() => Math.random() - 0.5), qOut = new Float32Array(T * NH * D);
  const k = new Float32Array(maxPages * NKV * PS * D), v = new Float32Array(k.length);
  const cos = new Float32Array(T * D / 2).map(() => Math.random()), sin = new Float32Array(T * D / 2).map(() => Math.random());
  const w = norm ? new Float32Array(D).fill(1.1) : null;
  const ints = Int32Array.of(T, 1, NH, NKV, D, D, 0, PS, maxPages, 0);  // ROPE_ARG order (last: KV_DTYPE float32)
  const pageTable = new Int32Array(maxPages).map((_, i) => i);
  const run = (m: NativeKernels): void =>
    m.ropeSplitStore(qkv, qOut, k, v, cos, sin, w, w, ints, Int32Array.of(0, T), Int32Array.of(0), pageTable, norm ? 1e-6 : -1); // eps < 0: no qk-norm
  abRun(name, run);
}

// FlashAttentionRagged training forward (F) and backward (B), causal: F1 / B1 one sequence of 512
// tokens, 16 / 4 heads, head dim 64; F2 / B2 the training bench's batch (64 sequences of 8-24
// tokens, 8 / 4 heads, head dim 32).
for (const [tag, nh, nkv, hd, lens] of [
  ['1', NH, NKV, D, [512]],
  ['2', 8, 4, 32, Array.from({ length: 64 }, (_, i) => 8 + ((i * 7) % 17))],
] as const) {
  const batch = lens.length, rowOffsets = new Int32Array(batch + 1);
  lens.forEach((n, b) => { rowOffsets[b + 1] = rowOffsets[b] + n; });
  const T = rowOffsets[batch], qW = nh * hd, kW = nkv * hd;
  const rnd = (n: number): Float32Array => new Float32Array(n).map(() => Math.random() - 0.5);
  const q = rnd(T * qW), k = rnd(T * kW), v = rnd(T * kW), dy = rnd(T * qW);
  const out = new Float32Array(T * qW), lse = new Float32Array(T * nh);
  const dq = new Float32Array(T * qW), dk = new Float32Array(T * kW), dv = new Float32Array(T * kW);
  const ints = Int32Array.of(batch, nh, nkv, hd, 0, 0, 0), scale = 1 / Math.sqrt(hd);
  A.flashTrain(q, k, v, rowOffsets, out, lse, null, null, null, null, ints, scale);
  abRun(`F${tag}`, (m) => m.flashTrain(q, k, v, rowOffsets, out, lse, null, null, null, null, ints, scale));
  abRun(`B${tag}`, (m) => m.flashTrain(q, k, v, rowOffsets, out, lse, dy, dq, dk, dv, ints, scale));
}

function abRun(name: string, run: (m: NativeKernels) => void): void {
  if (ONLY && !ONLY.includes(name)) return;
  for (let i = 0; i < 10; i++) { run(A); run(B); }
  const xa: number[] = [], xb: number[] = [];
  const block = (m: NativeKernels, into: number[]): void => {
    for (let i = 0; i < 3; i++) run(m);
    const b0 = performance.now();
    while (performance.now() - b0 < 100) {
      const s = performance.now();
      run(m);
      into.push(performance.now() - s);
    }
  };
  const t0 = performance.now();
  while (performance.now() - t0 < 4000) { block(A, xa); block(B, xb); }
  console.log(`${name} A ${stats(xa)} B ${stats(xb)} (min/p25/median ms, n=${xa.length})`);
}
