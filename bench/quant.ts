/**
 * Quantized projections on cpu native (module `quant`, `npm run bench -- --only quant`): QuantMatMul
 * (native/quant_matmul.cc, weights read packed; decode rows by native/quant_decode*.cc, packed
 * weights straight into VNNI / bf16 dot products or FMAs) against the float32 native sgemm on the same
 * product, both called straight into preallocated outputs and timed in alternation in one process.
 * Shapes: decode `[1, 4096] x [4096, 4096]` and `[8, 4096]`, prefill `[512, 4096]`. Targets (issue 12):
 * fp8 / int8 >= 2.5x, nvfp4 / int4 >= 4x, bf16 / f16 >= 1.7x on decode; prefill no slower than 1.5x float32
 * (ratio >= 0.67). `QUANT_BENCH_ROWS=512` times only the given row counts.
 */
import { nativeSgemm } from '../kernels/cpu/ProjectionMatMul.js';
import { nativeArgs } from '../kernels/cpu/QuantMatMul.js';
import { activeNative } from '../kernels/cpu/native.js';
import type { QuantMatMulAttrs } from '../kernels/kernel_names.js';
import { type BenchModule, type BenchRow, row, timeInterleaved } from './harness.js';
import { quantCases, randomWords } from './quant_cases.js';

const K = 4096, N = 4096;

/** Every format but fp8 block 128 (the cpu bench's rows since issue 12). */
const CASES = quantCases(N, K).filter((c) => c.name !== 'fp8 block 128');

/** User + system CPU ms per call of `f` (all threads of the process). */
function cpuMsPerCall(f: () => void, calls: number): number {
  const c0 = process.cpuUsage();
  for (let i = 0; i < calls; i++) f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000 / calls;
}

export const quantBench: BenchModule = {
  name: 'quant',
  async run(opts) {
    const native = activeNative(), sgemm = nativeSgemm();
    if (!native?.quantMatMul || !sgemm) { opts.log('  quant: native addon (with quantMatMul) not loaded: nothing to compare'); return []; }
    const q = native.quantMatMul.bind(native);
    const rows: BenchRow[] = [];
    const wF32 = Float32Array.from({ length: K * N }, (_, i) => ((i * 2654435761) % 1000) / 1000 - 0.5); // [K, N] as the layer stores it
    // QUANT_BENCH_ROWS=8,512 times only those row counts
    const rowCounts = process.env.QUANT_BENCH_ROWS ? process.env.QUANT_BENCH_ROWS.split(',').map(Number) : opts.quick ? [1] : [1, 8, 512];
    for (const T of rowCounts) {
      const x = Float32Array.from({ length: T * K }, (_, i) => Math.sin(i)), yF = new Float32Array(T * N), yQ = new Float32Array(T * N);
      const iters = T >= 512 ? { minIters: 4, minMs: 1500, chunk: 2, skip: 0, warmup: 1 } : { minIters: 20, minMs: 1500, chunk: 6, skip: 1 };
      for (const c of CASES) {
        const a: QuantMatMulAttrs = { weightFormat: 'e4m3', weightScale: 'none', blockRows: 0, blockCols: 0, activation: 'none', actGroup: 0,
          inputScale: 0, weightScale2: 1, inDim: K, outDim: N, ...c.attrs };
        const words = randomWords(c.words, a.weightFormat), scale = c.scales ? new Float32Array(c.scales).fill(0.01) : null;
        const zeros = c.zeros ? randomWords(c.zeros, 'gptq') : null, gIdx = a.weightFormat === 'gptq' ? Int32Array.from({ length: K }, (_, k) => Math.floor(k / 128)) : null;
        const ints = nativeArgs(a, T);
        const [ours, peer] = await timeInterleaved([
          () => q(x, words, scale, zeros, gIdx, null, yQ, ints, a.inputScale, a.weightScale2),
          () => sgemm(x, wF32, null, yF, T, N, K, 0, 0),
        ], iters);
        const mb = (4 * (c.words + c.scales + (c.zeros ?? 0))) / 2 ** 20;
        // CPU time per call of each side (both threads): on a shared machine it moves less than wall time
        const calls = T >= 512 ? 3 : 15;
        const cpuOurs = cpuMsPerCall(() => q(x, words, scale, zeros, gIdx, null, yQ, ints, a.inputScale, a.weightScale2), calls);
        const cpuPeer = cpuMsPerCall(() => sgemm(x, wF32, null, yF, T, N, K, 0, 0), calls);
        const target = T >= 512 ? 0.67 : c.target;  // issue 12: decode c.target, prefill no slower than 1.5x float32
        opts.log(`  ${c.name} [${T}, ${K}] x [${K}, ${N}]: ${ours.toFixed(2)} ms vs float32 sgemm ${peer.toFixed(2)} ms (${(peer / ours).toFixed(2)}x, ` +
          `target >= ${target}x: ${peer / ours >= target ? 'met' : 'NOT met'}; cpu time ${cpuOurs.toFixed(2)} vs ${cpuPeer.toFixed(2)} ms, ` +
          `${(cpuPeer / cpuOurs).toFixed(2)}x; weights ${mb.toFixed(1)} MiB vs 64 MiB)`);
        rows.push(row(`quantMatMul ${c.name} [${T},${K}]x[${K},${N}]`, 'cpu-native', ours, 'float32 native sgemm', peer));
      }
    }
    return rows;
  },
};
