/**
 * The WebAssembly SIMD kernels' threads (kernels/wasm/simd_threads.ts) against one thread, in this process,
 * alternating (opt-in module `wasm_threads`: `npm run bench -- --only wasm_threads [--quick]`; relaxed SIMD as
 * Chrome runs it: `node --experimental-wasm-relaxed-simd dist/bench/run.js --only wasm_threads`). The `wasm`
 * backend without the addon (a browser's path; in Node the `staged` mode: weights copied once into a shared
 * memory of ours, activations per call):
 * - ProjectionMatMul [128, 576] x [576, 1536] and FusedSwiGLUMLP 128 x 576 x 1536 (a 128-row prefill chunk
 *   of SmolLM2-135M);
 * - the whole 135M model (out/bench-models/ckpt-135m, made once by bench/peers/llamacpp/make_checkpoint.mjs):
 *   prefill of a 512-token prompt (256 with --quick), rounds alternating N threads / 1 thread.
 * Ratio = 1-thread ms / N-thread ms (N: TFJS_ATTENTION_WASM_THREADS, default the core count). The prefill lines
 * also print the process's CPU time: on a machine shared with other sessions, Linux's autogroup scheduling gives
 * each session one share whatever its thread count, so there the wall ratio stays near 1 while the CPU time
 * shows what the threads cost (equal CPU: no overhead; a quiet machine then runs ~CPU / N for the threaded part).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';

import { setCpuKernelImpl } from '../kernels/cpu/native.js';
import { FusedSwiGLUMLP } from '../kernels/kernel_names.js';
import { projectionMatMul } from '../kernels/projection_matmul.js';
import { setWasmKernelImpl, wasmSimdStatus } from '../kernels/wasm/simd_module.js';
import { startWasmThreads } from '../kernels/wasm/simd_thread_calls.js';
import { setWasmThreads, threadPlan } from '../kernels/wasm/simd_threads.js';
import { useBackend } from '../lib/backends/select.js';
import { packageRoot } from '../lib/util/package_root.js';
import { Generator } from '../models/generation/generator.js';
import { loadPretrained } from '../models/load.js';
import { type BenchModule, type BenchOptions, type BenchRow, row, timeInterleaved } from './harness.js';

const CKPT = path.join(packageRoot, 'out', 'bench-models', 'ckpt-135m');
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

async function kernelRows(opts: BenchOptions, n: number): Promise<BenchRow[]> {
  const a = tf.randomNormal([128, 576]) as tf.Tensor2D, b = tf.randomNormal([576, 1536]) as tf.Tensor2D;
  const x = tf.randomNormal([128, 576]), gate = tf.randomNormal([576, 1536]), up = tf.randomNormal([576, 1536]), down = tf.randomNormal([1536, 576]);
  const mm = (t: number) => () => { setWasmThreads(t); const y = projectionMatMul(a, b); y.dataSync(); y.dispose(); };
  const mlp = (t: number) => () => {
    setWasmThreads(t);
    const y = tf.engine().runKernel(FusedSwiGLUMLP, { x, gate, up, down, residual: x }, {}) as tf.Tensor;
    y.dataSync(); y.dispose();
  };
  const o = opts.quick ? { minIters: 6, minMs: 500, chunk: 3, skip: 1 } : { chunk: 6, skip: 1 };
  const rows: BenchRow[] = [];
  for (const [name, f, flops] of [['ProjectionMatMul [128,576]x[576,1536]', mm, 2 * 128 * 576 * 1536], ['FusedSwiGLUMLP 128x576x1536', mlp, 6 * 128 * 576 * 1536]] as const) {
    const [many, one] = await timeInterleaved([f(n), f(1)], o);
    opts.log(`  ${name}: ${n} threads ${many.toFixed(2)} ms (${(flops / many / 1e6).toFixed(1)} GFLOP/s), 1 thread ${one.toFixed(2)} ms (${(flops / one / 1e6).toFixed(1)} GFLOP/s)`);
    rows.push(row(`wasm ${name}`, `wasm-simd ${n} threads`, many, 'wasm-simd 1 thread', one));
  }
  tf.dispose([a, b, x, gate, up, down]);
  return rows;
}

const cpuMs = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

/** Wall and CPU ms to the first token of a greedy generation. */
async function prefillMs(model: Awaited<ReturnType<typeof loadPretrained>>['model'], prompt: number[]): Promise<[number, number]> {
  let first = 0, firstCpu = 0;
  const gen = new Generator(model, { numPages: Math.ceil((prompt.length + 2) / model.kvParams.pageSize) + 1 });
  gen.submit({ promptIds: prompt, maxNewTokens: 1, onToken: () => { first = performance.now(); firstCpu = cpuMs(); } });
  const t0 = performance.now(), c0 = cpuMs();
  await gen.run();
  gen.dispose();
  return [first - t0, firstCpu - c0];
}

async function modelRows(opts: BenchOptions, n: number): Promise<BenchRow[]> {
  if (!existsSync(path.join(CKPT, 'model.safetensors'))) {
    const r = spawnSync(process.execPath, [path.join(packageRoot, 'bench', 'peers', 'llamacpp', 'make_checkpoint.mjs'), '--preset', '135m', '--out', CKPT], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`[wasm_threads] make_checkpoint.mjs exited ${r.status}`);
  }
  const { model } = await loadPretrained(CKPT);
  const P = opts.quick ? 256 : 512, rounds = opts.quick ? 2 : 4;
  const prompt = Array.from({ length: P }, (_, i) => (i * 7919) % 40000 + 5);
  const res = new Map<number, number[]>([[n, []], [1, []]]);
  for (const t of [n, 1]) { setWasmThreads(t); await prefillMs(model, prompt.slice(0, 130)); } // warm-up: stages the weights
  for (let r = 0; r < rounds; r++) {
    for (const t of r % 2 ? [1, n] : [n, 1]) {
      setWasmThreads(t);
      const [ms, cpu] = await prefillMs(model, prompt);
      res.get(t)!.push(ms);
      opts.log(`  135M round ${r + 1}, ${t} thread(s): prefill ${P} ${ms.toFixed(0)} ms, CPU ${cpu.toFixed(0)} ms`);
    }
  }
  model.dispose();
  return [row(`wasm 135M whole model, prefill ${P}`, `wasm-simd ${n} threads`, median(res.get(n)!), 'wasm-simd 1 thread', median(res.get(1)!))];
}

/** Opt-in (a minute or two): runs only when `--only` names it. */
export const wasmThreadsBench: BenchModule & { optIn: true } = {
  name: 'wasm_threads',
  optIn: true,
  async run(opts) {
    await useBackend('wasm');
    setCpuKernelImpl('ts'); setWasmKernelImpl('simd');
    const plan = threadPlan();
    const st = wasmSimdStatus();
    if (!st.loaded || typeof plan === 'string') { opts.log(`  wasm threads cannot run: ${st.reason ?? plan}`); return []; }
    const ts = await startWasmThreads();
    opts.log(`  wasm SIMD kernels (${st.variant}); ${ts.threads} threads, ${ts.ready} workers ready, mode ${ts.mode}`);
    try {
      return [...await kernelRows(opts, plan.threads), ...await modelRows(opts, plan.threads)];
    } finally {
      setWasmThreads(plan.threads); setWasmKernelImpl('auto'); setCpuKernelImpl('auto');
    }
  },
};
