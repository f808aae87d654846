/**
 * The browser's WebAssembly SIMD kernels (native/wasm/, kernels/wasm/simd_module.ts) on the wasm
 * backend, forced with setWasmKernelImpl('simd') (what a browser without the addon runs), against
 * float64 references: FlashAttentionRaggedPaged over every case and mask of cpu_kernels.spec.ts
 * (prefill / decode / auto), NaN isolation; ProjectionMatMul for every transpose pair on GEMV and GEMM
 * sizes with odd edges; FusedRMSNorm; FusedSwiGLUMLP across its 128-row chunks; the TypeScript
 * fallback (impl 'ts') giving the same answers; the switch's errors. Tolerance: 1e-4 * max |expected|
 * (attention), 2e-5 relative (matmuls; relaxed SIMD may fuse multiply-adds).
 */
import * as tf from '@tensorflow/tfjs';

import { setCpuKernelImpl } from '../../kernels/cpu/native';
import { fusedRmsNorm, fusedSwiGluMlp, decoderStepFused } from '../../kernels/decoder_steps';
import { FlashAttentionRaggedPaged, FusedRMSNorm, FusedSwiGLUMLP } from '../../kernels/kernel_names';
import { projectionMatMul, projectionUsesNative } from '../../kernels/projection_matmul';
import { registerAllKernels } from '../../kernels/register_all';
import { getWasmKernelImpl, setWasmKernelImpl, wasmSimdStatus } from '../../kernels/wasm/simd_module';
import { stopWasmThreads } from '../../kernels/wasm/simd_thread_calls';
import { MASK_VARIANTS, type MaskSpec, type MaskVariant } from '../../lib/types';
import { type Seq, attentionNaive, makeCollection, maxAbs, maxDiff, randomArray, rng } from './cpu_fixture';

const MASKS: Record<MaskVariant, MaskSpec> = {
  causal: { variant: 'causal', window: 0, chunk: 0 },
  null: { variant: 'null', window: 0, chunk: 0 },
  sliding_window_causal: { variant: 'sliding_window_causal', window: 9, chunk: 0 },
  sliding_window: { variant: 'sliding_window', window: 6, chunk: 0 },
  chunked_causal: { variant: 'chunked_causal', window: 0, chunk: 8 },
};

interface Case { name: string; pageSize: number; nH: number; nKv: number; D: number; seqs: Seq[] }
const CASES: Case[] = [
  { name: 'page 1, MHA, D 8', pageSize: 1, nH: 4, nKv: 4, D: 8, seqs: [{ start: 0, numNew: 5 }, { start: 3, numNew: 0 }, { start: 7, numNew: 1 }] },
  { name: 'page 16, GQA 2, D 16', pageSize: 16, nH: 8, nKv: 4, D: 16, seqs: [{ start: 0, numNew: 40 }, { start: 20, numNew: 13 }, { start: 33, numNew: 1 }] },
  { name: 'page 128, GQA 4, D 64', pageSize: 128, nH: 8, nKv: 2, D: 64, seqs: [{ start: 100, numNew: 60 }, { start: 0, numNew: 1 }, { start: 250, numNew: 3 }] },
  { name: 'page 16, MQA, D 128', pageSize: 16, nH: 4, nKv: 1, D: 128, seqs: [{ start: 5, numNew: 20 }, { start: 0, numNew: 0 }, { start: 140, numNew: 1 }] },
  { name: 'page 16, G 3, D 96', pageSize: 16, nH: 6, nKv: 2, D: 96, seqs: [{ start: 30, numNew: 25 }, { start: 0, numNew: 2 }, { start: 77, numNew: 1 }] },
  { name: 'page 8, G 8, D 32, long decode', pageSize: 8, nH: 8, nKv: 1, D: 32, seqs: [{ start: 9, numNew: 3 }, { start: 130, numNew: 1 }] },
  { name: 'page 4, G 5, D 6 (odd head dim)', pageSize: 4, nH: 10, nKv: 2, D: 6, seqs: [{ start: 3, numNew: 70 }, { start: 11, numNew: 1 }] },
];

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, what: string, rel = 1e-4): void {
  const tol = rel * Math.max(maxAbs(want), 1e-30);
  const err = maxDiff(got, want);
  if (!(err <= tol)) throw new Error(`${what}: max abs error ${err} > ${tol}`);
}

function attention(cs: Case, c: ReturnType<typeof makeCollection>, q: Float32Array, mask: MaskSpec, variant: 'prefill' | 'decode' | 'auto'): Float32Array {
  const qt = tf.tensor2d(q, [c.totalTokens, cs.nH * cs.D]);
  const attrs = { nHeads: cs.nH, nKvHeads: cs.nKv, headDim: cs.D, scale: 1 / Math.sqrt(cs.D), mask, collection: c, layerIdx: 0, variant };
  const o = tf.engine().runKernel(FlashAttentionRaggedPaged, { q: qt }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  const out = o.dataSync() as Float32Array;
  tf.dispose([o, qt]);
  return out;
}

/** op(a) · op(b) + bias in float64. */
function matmulNaive(a: Float32Array, b: Float32Array, bias: Float32Array | null, M: number, N: number, K: number, tA: boolean, tB: boolean): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = bias ? bias[n] : 0;
      for (let k = 0; k < K; k++) s += (tA ? a[k * M + m] : a[m * K + k]) * (tB ? b[n * K + k] : b[k * N + n]);
      out[m * N + n] = s;
    }
  }
  return out;
}

beforeAll(async () => {
  require('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  registerAllKernels();
});
afterAll(async () => {
  stopWasmThreads(); // its prefill-sized cases ran on the kernel threads
  setWasmKernelImpl('auto');
  setCpuKernelImpl('auto');
  await tf.setBackend('cpu');
});

describe.each(['simd', 'ts'] as const)('wasm kernels, impl %s', (impl) => {
  beforeAll(() => { setCpuKernelImpl('ts'); setWasmKernelImpl(impl); });

  it(impl === 'simd' ? 'loads the SIMD module on the wasm backend' : 'runs TypeScript loops', () => {
    const st = wasmSimdStatus();
    expect(getWasmKernelImpl()).toBe(impl);
    if (impl === 'simd') { expect(st.loaded).toBe(true); expect(['relaxed', 'simd128']).toContain(st.variant); }
    expect(projectionUsesNative()).toBe(impl === 'simd');
    expect(decoderStepFused(FusedRMSNorm)).toBe(impl === 'simd');
    expect(decoderStepFused(FusedSwiGLUMLP)).toBe(impl === 'simd');
  });

  describe.each(CASES.map((c, i) => [c.name, c, i] as const))('FlashAttentionRaggedPaged, %s', (_n, cs, i) => {
    it.each(MASK_VARIANTS.map((m) => [m]))('mask %s, prefill / decode / auto', (m) => {
      const c = makeCollection(cs.seqs, cs.nKv, cs.D, cs.pageSize, 40 + i);
      const q = randomArray(c.totalTokens * cs.nH * cs.D, rng(7 + i), 2);
      const want = attentionNaive(q, c, cs.nH, cs.nKv, cs.D, 1 / Math.sqrt(cs.D), MASKS[m], c.cache.keys(0), c.cache.values(0));
      for (const variant of ['prefill', 'decode', 'auto'] as const) expectClose(attention(cs, c, q, MASKS[m], variant), want, `${variant} ${m}`);
    });
  });

  it('a NaN key of one sequence does not reach another', () => {
    const cs = CASES[2];
    const c = makeCollection(cs.seqs, cs.nKv, cs.D, cs.pageSize, 9);
    c.cache.keys(0)[((c.pageTable[0] * cs.nKv) * cs.pageSize + 2) * cs.D] = NaN;
    const q = randomArray(c.totalTokens * cs.nH * cs.D, rng(3), 2);
    for (const variant of ['prefill', 'decode'] as const) {
      const out = attention(cs, c, q, MASKS.null, variant);
      expect(out.subarray(c.rowOffsets[1] * cs.nH * cs.D).every((x) => Number.isFinite(x))).toBe(true);
      expect(Number.isNaN(out[0])).toBe(true);
    }
  });

  const SHAPES: [number, number, number][] = [[1, 1, 1], [1, 17, 5], [2, 19, 37], [3, 64, 300], [8, 33, 256], [9, 8, 7], [33, 70, 513], [130, 24, 40]];
  it.each(SHAPES)('ProjectionMatMul M %i N %i K %i, every transpose pair, with and without bias', (M, N, K) => {
    const r = rng(M * 1000 + N * 10 + K);
    for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      for (const withBias of [false, true]) {
        const a = randomArray(M * K, r), b = randomArray(K * N, r), bias = withBias ? randomArray(N, r) : null;
        const at = tf.tensor2d(a, tA ? [K, M] : [M, K]), bt = tf.tensor2d(b, tB ? [N, K] : [K, N]), biasT = bias ? tf.tensor1d(bias) : undefined;
        const y = projectionMatMul(at, bt, { transposeA: tA, transposeB: tB, bias: biasT });
        expectClose(y.dataSync(), matmulNaive(a, b, bias, M, N, K, tA, tB), `tA=${tA} tB=${tB} bias=${withBias}`, 2e-5 * Math.sqrt(K));
        tf.dispose([at, bt, biasT, y].filter((t): t is tf.Tensor => t !== undefined));
      }
    }
  });

  it.each([[1, 7], [5, 64], [33, 576]])('FusedRMSNorm %i x %i, weight and center on and off', (T, H) => {
    const r = rng(T + H);
    for (const [weighted, center] of [[true, false], [false, true], [true, true], [false, false]] as const) {
      const x = randomArray(T * H, r, 3), w = weighted ? randomArray(H, r) : null;
      const want = new Float64Array(T * H);
      for (let t = 0; t < T; t++) {
        const row = Array.from(x.subarray(t * H, (t + 1) * H));
        const mean = center ? row.reduce((s, v) => s + v, 0) / H : 0;
        const inv = 1 / Math.sqrt(row.reduce((s, v) => s + (v - mean) ** 2, 0) / H + 1e-5);
        row.forEach((v, j) => { want[t * H + j] = (v - mean) * inv * (w ? w[j] : 1); });
      }
      const xt = tf.tensor2d(x, [T, H]), wt = w ? tf.tensor1d(w) : null;
      const y = fusedRmsNorm(xt, wt, { eps: 1e-5, center });
      expectClose(y.dataSync(), want, `weight=${weighted} center=${center}`, 2e-6);
      tf.dispose([xt, wt, y].filter((t): t is tf.Tensor => t !== null));
    }
  });

  it.each([[1, 8, 12], [3, 20, 36], [130, 16, 24], [9, 576, 1536]])('FusedSwiGLUMLP T %i H %i I %i, biases and residual on and off', (T, H, I) => {
    const r = rng(T * 7 + H + I);
    for (const extras of [false, true]) {
      const x = randomArray(T * H, r), gate = randomArray(H * I, r, 0.3), up = randomArray(H * I, r, 0.3), down = randomArray(I * H, r, 0.3);
      const gb = extras ? randomArray(I, r) : null, ub = extras ? randomArray(I, r) : null, db = extras ? randomArray(H, r) : null;
      const res = extras ? randomArray(T * H, r) : null;
      const g = matmulNaive(x, gate, gb, T, I, H, false, false), u = matmulNaive(x, up, ub, T, I, H, false, false);
      const h = Float32Array.from(g, (v, i) => v / (1 + Math.exp(-v)) * u[i]);
      const want = matmulNaive(h, down, db, T, H, I, false, false);
      if (res) want.forEach((v, i) => { want[i] = v + res[i]; });
      const ts = { x: tf.tensor2d(x, [T, H]), gate: tf.tensor2d(gate, [H, I]), up: tf.tensor2d(up, [H, I]), down: tf.tensor2d(down, [I, H]),
        gateBias: gb ? tf.tensor1d(gb) : undefined, upBias: ub ? tf.tensor1d(ub) : undefined, downBias: db ? tf.tensor1d(db) : undefined,
        residual: res ? tf.tensor2d(res, [T, H]) : undefined };
      const y = fusedSwiGluMlp(ts as Parameters<typeof fusedSwiGluMlp>[0]);
      expectClose(y.dataSync(), want, `extras=${extras}`, 2e-5 * Math.sqrt(I));
      tf.dispose([y, ...Object.values(ts).filter((t): t is tf.Tensor => t !== undefined)]);
    }
  });

  it('leaves no tensors behind', () => {
    const before = tf.memory().numTensors;
    const a = tf.randomNormal([20, 30]) as tf.Tensor2D, b = tf.randomNormal([30, 10]) as tf.Tensor2D;
    tf.tidy(() => projectionMatMul(a, b).dataSync());
    tf.dispose([a, b]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('wasm kernel switch', () => {
  afterEach(() => setWasmKernelImpl('auto'));

  it('names a bad choice', () => {
    expect(() => setWasmKernelImpl('fast' as never)).toThrow("[setWasmKernelImpl] which must be 'auto', 'simd' or 'ts', got 'fast'");
  });

  it('auto prefers the addon when one is active, else the SIMD module', () => {
    setWasmKernelImpl('auto');
    setCpuKernelImpl('ts');
    expect(projectionUsesNative()).toBe(true); // the SIMD module
    setCpuKernelImpl('auto');
    expect(projectionUsesNative()).toBe(true); // the addon (or the module without it)
  });

  it('names a bad TFJS_ATTENTION_WASM_IMPL at the first wasm kernel call', () => {
    process.env.TFJS_ATTENTION_WASM_IMPL = 'fast';
    try {
      jest.isolateModules(() => {
        const m = require('../../kernels/wasm/simd_module') as typeof import('../../kernels/wasm/simd_module');
        expect(m.wasmSimdFor('cpu', tf.backend(), false)).toBeNull();
        expect(() => m.wasmSimdFor('wasm', tf.backend(), false)).toThrow("[wasmSimd] TFJS_ATTENTION_WASM_IMPL ('fast') must be 'auto', 'simd' or 'ts'");
      });
    } finally { delete process.env.TFJS_ATTENTION_WASM_IMPL; }
  });

  it('a forged collection reaching the kernel directly (no op validation) gets a named error, not a stray write', () => {
    setCpuKernelImpl('ts');
    setWasmKernelImpl('simd');
    const cs = CASES[1];
    const forge = (edit: (c: ReturnType<typeof makeCollection>) => void, want: RegExp) => {
      const c = makeCollection(cs.seqs, cs.nKv, cs.D, cs.pageSize, 5);
      const q = randomArray(c.totalTokens * cs.nH * cs.D, rng(1));
      edit(c);
      const before = tf.engine().backend.numDataIds();
      expect(() => tf.tidy(() => attention(cs, c, q, MASKS.causal, 'auto'))).toThrow(want);
      expect(tf.engine().backend.numDataIds()).toBe(before);
    };
    forge((c) => { (c.rowOffsets as Int32Array)[c.seqIds.length] += 100; }, /\[FlashAttentionRaggedPaged\] collection.rowOffsets must run from 0 to q's rows \(54\), got 0 .. 154/);
    forge((c) => { (c.pageTable as Int32Array)[1] = 9999; }, /\[FlashAttentionRaggedPaged\] collection.pageTable\[0, 1\] \(9999\) must be a page id of the pools/);
    forge((c) => { (c.numNewTokens as Int32Array)[0] = 3; }, /\[FlashAttentionRaggedPaged\] collection entry 0: numNewTokens \(3\) must equal/);
    setCpuKernelImpl('auto');
  });

  it('reports the backend when it is not wasm', async () => {
    await tf.setBackend('cpu');
    expect(wasmSimdStatus()).toEqual({ impl: 'auto', loaded: false, reason: "the backend is 'cpu', not 'wasm'" });
    await tf.setBackend('wasm');
  });
});
