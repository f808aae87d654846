/**
 * Where a whole-model prefill and decode step go on `cpu` with the native addon (issue 11): loads a
 * checkpoint (default the 135M one of bench/models_llamacpp.ts, out/bench-models/ckpt-135m), wraps
 * every addon function with a timer, runs a prefill of `--prompt` tokens and `--steps` single-token
 * decode steps, and prints per function: calls, total ms, share of the wall time, and GFLOP/s for
 * sgemm/swiglu. The rest (wall minus native) is tfjs dispatch, allocation and TypeScript.
 * Each rep runs the native step (models/native_forward.ts) and the layers path in turn (flag
 * ATTENTION_ROPE_NATIVE_FORWARD), so a busy machine's load falls on both; medians and ratios printed.
 *
 * With `--huge-ab`, the native step only, on two copies of the model: weights moved to huge pages
 * (the default) against left on 4 KiB pages (flag ATTENTION_ROPE_HUGE_PAGES off), alternating.
 *
 * `--native-only` skips the layers side; `--cpu-time` times each addon call (and each phase) by the
 * process's CPU time rather than the wall clock: with TFJS_ATTENTION_THREADS=1 that is each phase's
 * own work, which other jobs on a shared machine do not inflate (the spin-waits of 2 threads would).
 *
 *   node dist/bench/models_cpu_profile.js [--ckpt DIR] [--prompt 512] [--steps 32] [--reps 3] [--huge-ab]
 *   TFJS_ATTENTION_THREADS=1 node dist/bench/models_cpu_profile.js --native-only --cpu-time --steps 8
 */
import { performance } from 'node:perf_hooks';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';

import { installNativeKernels, nativeKernels, type NativeKernels } from '../kernels/cpu/native.js';
import '../lib/backends/native_node.js';
import { useBackend } from '../lib/backends/select.js';
import { loadPretrained } from '../models/load.js';
import { packageRoot } from '../lib/util/package_root.js';

interface Stat { calls: number; ms: number; flops: number }
const stats = new Map<string, Stat>();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
/** `--cpu-time`: the process's CPU time (user + system, ms) instead of wall time per addon call: with
 * TFJS_ATTENTION_THREADS=1 a phase's own work, unaffected by other jobs preempting it on a shared machine. */
const cpuTime = process.argv.includes('--cpu-time');
const clock = cpuTime ? () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; } : () => performance.now();

/** Replaces each addon function by a timed wrapper (flops from the shape arguments where known). */
function instrument(): void {
  const addon = nativeKernels as unknown as Record<string, unknown>;
  if (!addon) throw new Error('[models_cpu_profile] the native addon did not load');
  const n: Record<string, unknown> = {};  // the addon's properties are read-only: install a timed copy
  for (const name of Object.getOwnPropertyNames(addon)) {
    const fn = addon[name];
    n[name] = fn;
    if (typeof fn !== 'function' || name === 'threads' || name === 'isa') continue;
    n[name] = (...args: unknown[]) => {
      const t = clock();
      const r = (fn as (...a: unknown[]) => unknown)(...args);
      const dt = clock() - t;
      let key = name, flops = 0;
      if (name === 'sgemm') {
        const [M, N, K] = args.slice(4, 7) as number[];
        flops = 2 * M * N * K; key = `sgemm ${M <= 16 ? 'M<=16' : 'M>16'} N=${N} K=${K}`;
      } else if (name === 'swiglu') {
        const [T, H, I] = args.slice(9, 12) as number[];
        flops = 6 * T * H * I; key = `swiglu ${T <= 16 ? 'T<=16' : 'T>16'}`;
      }
      const s = stats.get(key) ?? { calls: 0, ms: 0, flops: 0 };
      s.calls++; s.ms += dt; s.flops += flops;
      stats.set(key, s);
      return r;
    };
  }
  installNativeKernels(n as unknown as NativeKernels);
}

function report(title: string, wallMs: number, stats: Map<string, Stat>): void {
  let native = 0;
  const rows = [...stats.entries()].sort((a, b) => b[1].ms - a[1].ms);
  console.log(`\n${title}: ${wallMs.toFixed(1)} ms`);
  for (const [k, s] of rows) {
    native += s.ms;
    const gf = s.flops ? `${(s.flops / s.ms / 1e6).toFixed(0)} GFLOP/s` : '';
    console.log(`  ${k.padEnd(28)} ${String(s.calls).padStart(5)} calls ${s.ms.toFixed(1).padStart(8)} ms ${(100 * s.ms / wallMs).toFixed(1).padStart(5)}%  ${gf}`);
  }
  console.log(`  ${'(outside the addon)'.padEnd(28)} ${''.padStart(11)} ${(wallMs - native).toFixed(1).padStart(8)} ms ${(100 * (wallMs - native) / wallMs).toFixed(1).padStart(5)}%`);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (k: string, d: string) => { const i = argv.indexOf(k); return i >= 0 ? argv[i + 1] : d; };
  const ckpt = path.resolve(arg('--ckpt', path.join(packageRoot, 'out', 'bench-models', 'ckpt-135m')));
  const P = Number(arg('--prompt', '512')), steps = Number(arg('--steps', '32')), reps = Number(arg('--reps', '3'));
  await useBackend('cpu');
  const { model } = await loadPretrained(ckpt);
  if (argv.includes('--huge-ab')) {
    const { model: plain } = await loadPretrained(ckpt);
    const sides = { huge: model, plain };
    const first = (m: typeof model, huge: boolean) => {  // the first native step packs (and moves, when huge) the weights
      tf.env().set('ATTENTION_ROPE_HUGE_PAGES', huge);
      const cache = m.createCache({ numPages: 4 });
      cache.addSequence(0);
      const kv = cache.fetch([0], [1]);
      const t = performance.now();
      m.forwardRagged([1], kv).dispose();
      return performance.now() - t;
    };
    console.log(`first step (packing): huge ${first(model, true).toFixed(0)} ms, plain ${first(plain, false).toFixed(0)} ms`);
    await abRuns(sides, P, steps, reps);
    return;
  }
  instrument();
  const sides: Record<string, typeof model> = argv.includes('--native-only') ? { native: model } : { native: model, layers: model };
  await abRuns(sides, P, steps, reps, (side) => tf.env().set('ATTENTION_ROPE_NATIVE_FORWARD', side === 'native'));
  model.dispose();
}

type Model = Awaited<ReturnType<typeof loadPretrained>>['model'];

/** Prefill of P tokens, then `steps` greedy decode steps: wall ms of each, and each phase's addon stats and clock time. */
async function runOnce(model: Model, P: number, steps: number) {
  const V = model.config.vocabSize;
  const ids = Array.from({ length: P }, (_, i) => (i * 7919 + 13) % V);
  const cache = model.createCache({ numPages: Math.ceil((P + steps + 16) / model.kvParams.pageSize) + 1 });
  cache.addSequence(0);
  stats.clear();
  let t = performance.now(), c = clock();
  let kv = cache.fetch([0], [P]);
  let y = model.forwardRagged(ids, kv, [P - 1]);
  cache.step(kv);
  let next = (await y.argMax(-1).data())[0];
  y.dispose();
  const pre = performance.now() - t, preClock = clock() - c;
  const preStats = new Map(stats);
  stats.clear();
  t = performance.now(); c = clock();
  for (let s = 0; s < steps; s++) {
    kv = cache.fetch([0], [1]);
    y = model.forwardRagged([next], kv);
    cache.step(kv);
    const a = y.argMax(-1);
    next = (await a.data())[0];
    a.dispose(); y.dispose();
  }
  const decClock = clock() - c;
  return { pre, dec: (performance.now() - t) / steps, preStats, preClock, decClock };
}

/** reps + 1 rounds (the first a warm-up), the two sides in turn (order swapped every round); medians and ratios. */
async function abRuns(sides: Record<string, Model>, P: number, steps: number, reps: number, select?: (side: string) => void): Promise<void> {
  const names = Object.keys(sides);
  const wall: Record<string, { pre: number[]; dec: number[] }> = Object.fromEntries(names.map((n) => [n, { pre: [], dec: [] }]));
  for (let r = 0; r <= reps; r++) {
    for (let i = 0; i < names.length; i++) {
      const side = names[(i + r) % names.length];
      select?.(side);
      const { pre, dec, preStats, preClock, decClock } = await runOnce(sides[side], P, steps);
      if (r === reps && stats.size) {
        const unit = cpuTime ? 'cpu' : 'wall';
        report(`${side}: prefill ${P} (last round, ${unit} time)`, preClock, preStats);
        report(`${side}: ${steps} decode steps (last round, ${unit} time)`, decClock, stats);
      }
      if (r > 0) { wall[side].pre.push(pre); wall[side].dec.push(dec); }
    }
  }
  for (const side of names) {
    const w = wall[side];
    console.log(`${side}: median prefill ${P}: ${median(w.pre).toFixed(0)} ms; decode ${median(w.dec).toFixed(2)} ms/token = ${(1000 / median(w.dec)).toFixed(1)} tok/s`);
  }
  const [a, b] = names;
  if (!b) return;
  const ratio = (k: 'pre' | 'dec') => median(wall[b][k].map((v, i) => v / wall[a][k][i]));
  console.log(`${b} / ${a} time (median of per-round ratios): prefill ${ratio('pre').toFixed(2)}x, decode ${ratio('dec').toFixed(2)}x; tensors ${tf.memory().numTensors}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
