/**
 * The `wasm` backend without the native addon, as a browser runs it (opt-in module `wasm_simd`,
 * `npm run bench -- --only wasm_simd`, or `node dist/bench/run.js --only wasm_simd [--quick]`): the
 * WebAssembly SIMD kernels (native/wasm/, kernels/wasm/simd_module.ts) against what the same backend
 * ran before them (TypeScript loops for attention and the fused steps, tfjs-wasm's XNNPACK matMul for
 * projections), both in this process with the addon switched off, timed in alternation so shared load
 * falls on both alike:
 * - ProjectionMatMul on the SmolLM2-135M shapes: a 128-row prefill chunk [128, 576] x [576, 1536],
 *   decode GEMV [1, 576] x [576, 1536] and [8, 576] x [576, 1536], the LM head [1, 576] x [49152, 576]ᵀ;
 * - the whole 135M model (random weights, out/bench-models/ckpt-135m, made once by
 *   bench/peers/llamacpp/make_checkpoint.mjs): prefill of a 512-token prompt (256 with --quick) and
 *   ms per decoded token, greedy, alternating SIMD / TypeScript generations.
 * Ratio = TypeScript ms / SIMD ms. llama.cpp on the same checkpoint: bench/models_llamacpp.ts
 * (sides ours-wasm-simd, ours-wasm-ts).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';

import { setCpuKernelImpl } from '../kernels/cpu/native.js';
import { projectionMatMul } from '../kernels/projection_matmul.js';
import { setWasmKernelImpl, wasmSimdStatus } from '../kernels/wasm/simd_module.js';
import { useBackend } from '../lib/backends/select.js';
import { Generator } from '../models/generation/generator.js';
import { packageRoot } from '../lib/util/package_root.js';
import { loadPretrained } from '../models/load.js';
import { type BenchModule, type BenchOptions, type BenchRow, row, timeInterleaved } from './harness.js';

const CKPT = path.join(packageRoot, 'out', 'bench-models', 'ckpt-135m');
const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

function use(impl: 'simd' | 'ts'): void { setCpuKernelImpl('ts'); setWasmKernelImpl(impl); }

async function matmulRows(opts: BenchOptions): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const cases: [string, number, number, number, boolean][] = [
    ['prefill chunk [128,576]x[576,1536]', 128, 576, 1536, false],
    ['decode GEMV [1,576]x[576,1536]', 1, 576, 1536, false],
    ['decode GEMV [8,576]x[576,1536]', 8, 576, 1536, false],
    ['LM head [1,576]x[49152,576]T', 1, 576, 49152, true],
  ];
  for (const [name, M, K, N, tB] of cases) {
    const a = tf.randomNormal([M, K]) as tf.Tensor2D, b = tf.randomNormal(tB ? [N, K] : [K, N]) as tf.Tensor2D;
    const run = (impl: 'simd' | 'ts') => () => { use(impl); const y = projectionMatMul(a, b, { transposeB: tB }); y.dataSync(); y.dispose(); };
    const [simd, ts] = await timeInterleaved([run('simd'), run('ts')], opts.quick ? { minIters: 6, minMs: 500, chunk: 3, skip: 1 } : { chunk: 6, skip: 1 });
    rows.push(row(`wasm ProjectionMatMul ${name}`, 'wasm-simd', simd, 'tfjs-wasm matMul (XNNPACK)', ts));
    opts.log(`  ${name}: SIMD ${simd.toFixed(2)} ms (${(2 * M * K * N / simd / 1e6).toFixed(1)} GFLOP/s), XNNPACK ${ts.toFixed(2)} ms`);
    tf.dispose([a, b]);
  }
  return rows;
}

/** Prefill ms and decode ms/token of one greedy generation. */
async function generate(model: Awaited<ReturnType<typeof loadPretrained>>['model'], prompt: number[], newTokens: number): Promise<[number, number]> {
  const times: number[] = [];
  const gen = new Generator(model, { numPages: Math.ceil((prompt.length + newTokens) / model.kvParams.pageSize) + 1 });
  gen.submit({ promptIds: prompt, maxNewTokens: newTokens, onToken: () => times.push(performance.now()) });
  const t0 = performance.now();
  await gen.run();
  gen.dispose();
  return [times[0] - t0, (times[times.length - 1] - times[0]) / (times.length - 1)];
}

async function modelRows(opts: BenchOptions): Promise<BenchRow[]> {
  if (!existsSync(path.join(CKPT, 'model.safetensors'))) {
    const r = spawnSync(process.execPath, [path.join(packageRoot, 'bench', 'peers', 'llamacpp', 'make_checkpoint.mjs'), '--preset', '135m', '--out', CKPT], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error(`[wasm_simd] make_checkpoint.mjs exited ${r.status}`);
  }
  const { model } = await loadPretrained(CKPT);
  const P = opts.quick ? 256 : 512, N = opts.quick ? 8 : 32, rounds = opts.quick ? 1 : 3;
  const prompt = Array.from({ length: P }, (_, i) => (i * 7919) % 40000 + 5);
  const res = { simd: [[], []] as number[][], ts: [[], []] as number[][] };
  for (const impl of ['simd', 'ts'] as const) { use(impl); await generate(model, prompt.slice(0, 16), 3); } // warm-up
  for (let r = 0; r < rounds; r++) {
    for (const impl of (r % 2 ? ['ts', 'simd'] : ['simd', 'ts']) as ('simd' | 'ts')[]) {
      use(impl);
      const [pre, dec] = await generate(model, prompt, N);
      res[impl][0].push(pre); res[impl][1].push(dec);
      opts.log(`  135M round ${r + 1} ${impl}: prefill ${P} ${pre.toFixed(0)} ms, decode ${(1000 / dec).toFixed(1)} tok/s`);
    }
  }
  model.dispose();
  return [
    row(`wasm 135M whole model, prefill ${P}`, 'wasm-simd', median(res.simd[0]), 'TS loops + XNNPACK', median(res.ts[0])),
    row('wasm 135M whole model, decode ms/token', 'wasm-simd', median(res.simd[1]), 'TS loops + XNNPACK', median(res.ts[1])),
  ];
}

/** Opt-in (minutes: the TypeScript side's prefill is slow): runs only when `--only` names it. */
export const wasmSimdBench: BenchModule & { optIn: true } = {
  name: 'wasm_simd',
  optIn: true,
  async run(opts) {
    await useBackend('wasm');
    use('simd');
    const st = wasmSimdStatus();
    opts.log(`  wasm SIMD kernels: ${st.loaded ? `loaded (${st.variant})` : `not loaded: ${st.reason}`}`);
    if (!st.loaded) return [];
    try {
      return [...await matmulRows(opts), ...await modelRows(opts)];
    } finally {
      setWasmKernelImpl('auto');
      setCpuKernelImpl('auto');
    }
  },
};
