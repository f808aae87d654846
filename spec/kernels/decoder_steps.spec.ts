/**
 * FusedRMSNorm and FusedSwiGLUMLP (kernels/decoder_steps.ts): the fused kernels against their
 * composite references (plain tfjs ops) on every spec backend, with and without weight / center /
 * biases / residual, odd sizes and decode-sized rows (the GEMV path); the TypeScript fallbacks;
 * shape errors naming the argument; and that gradients still flow (the reference path under a tape).
 */
import * as tf from '@tensorflow/tfjs';
import { rmsNormRowsTs } from '../../kernels/cpu/FusedRMSNorm';
import { swigluTs } from '../../kernels/cpu/FusedSwiGLUMLP';
import { nativeKernels } from '../../kernels/cpu/native';
import { decoderStepFused, fusedRmsNorm, fusedSwiGluMlp, registerDecoderStepKernels } from '../../kernels/decoder_steps';
import { FusedRMSNorm, FusedSwiGLUMLP } from '../../kernels/kernel_names';
import { wasmSimdActive } from '../../kernels/wasm/simd_module';
import { fusedRmsNormReference } from '../../kernels/reference/FusedRMSNorm';
import { fusedSwiGluMlpReference } from '../../kernels/reference/FusedSwiGLUMLP';
import { describeEachBackend, expectNoLeak } from '../support/backends';
import { maxRelDiff, randomArray } from '../support/random_layer';

const t2 = (r: number, c: number, seed: number, scale = 1) => tf.tensor2d(randomArray(r * c, seed, scale), [r, c]);
const t1 = (n: number, seed: number) => tf.tensor1d(randomArray(n, seed));
const withAddon = nativeKernels?.swiglu !== undefined;

describeEachBackend('fused decoder steps vs composite', (backend) => {
  beforeAll(() => registerDecoderStepKernels());
  const fusedHere = (backend === 'cpu' || backend === 'wasm') && withAddon;

  it(`${fusedHere ? 'runs' : 'does not run'} the fused kernels on ${backend}`, () => {
    if (backend === 'wasm' && !withAddon && wasmSimdActive(false)) { // wasm without the addon: its SIMD module
      expect(decoderStepFused(FusedRMSNorm)).toBe(true);
      return;
    }
    expect(decoderStepFused(FusedRMSNorm)).toBe(fusedHere);
    expect(decoderStepFused(FusedSwiGLUMLP)).toBe(fusedHere);
  });

  for (const [T, H] of [[1, 7], [5, 64], [33, 576]] as const) {
    for (const [weighted, center] of [[true, false], [false, true], [false, false]] as const) {
      it(`RMSNorm ${T}x${H} weight=${weighted} center=${center}`, () => {
        const x = t2(T, H, T + H, 3), w = weighted ? t1(H, 5) : null;
        const attrs = { eps: 1e-5, center };
        const got = expectNoLeak(() => { const y = fusedRmsNorm(x, w, attrs); const v = y.dataSync(); y.dispose(); return v; });
        const want = fusedRmsNormReference(x, w, attrs);
        expect(maxRelDiff(got as Float32Array, want.dataSync() as Float32Array)).toBeLessThan(2e-6);
        tf.dispose([x, w, want].filter((t): t is tf.Tensor => t !== null));
      });
    }
  }

  it('RMSNorm keeps the input rank ([2, 3, 16])', () => {
    const x = tf.tensor3d(randomArray(96, 9), [2, 3, 16]), w = t1(16, 2);
    const y = fusedRmsNorm(x, w, { eps: 1e-6, center: false });
    expect(y.shape).toEqual([2, 3, 16]);
    const want = fusedRmsNormReference(x, w, { eps: 1e-6, center: false });
    expect(maxRelDiff(y.dataSync() as Float32Array, want.dataSync() as Float32Array)).toBeLessThan(2e-6);
    tf.dispose([x, w, y, want]);
  });

  // T <= 16 runs the weight-streaming GEMV, 40 and 77 the packed sgemm with SwiGLU in the gate/up GEMM's
  // epilogue (sgemmSwiGLU), H 800 (beyond one K slice) two sgemms and a pass; H, I not multiples of the vector width
  for (const [T, H, I] of [[1, 16, 40], [3, 37, 75], [8, 64, 160], [16, 33, 70], [40, 48, 130], [77, 96, 200], [20, 800, 45]] as const) {
    for (const extras of [false, true]) {
      it(`SwiGLU MLP ${T}x${H} -> ${I}${extras ? ' + biases + residual' : ''}`, () => {
        const inputs = {
          x: t2(T, H, 1 + T), gate: t2(H, I, 2, 0.3), up: t2(H, I, 3, 0.3), down: t2(I, H, 4, 0.3),
          ...(extras ? { gateBias: t1(I, 5), upBias: t1(I, 6), downBias: t1(H, 7), residual: t2(T, H, 8) } : {}),
        };
        const got = expectNoLeak(() => { const y = fusedSwiGluMlp(inputs); const v = y.dataSync(); y.dispose(); return v; });
        const want = fusedSwiGluMlpReference(inputs);
        expect(maxRelDiff(got as Float32Array, want.dataSync() as Float32Array)).toBeLessThan(1e-5);
        tf.dispose([...Object.values(inputs), want]);
      });
    }
  }

  it('gradients flow through the MLP and the norm (reference path while taped)', () => {
    const x = t2(4, 8, 11), gate = t2(8, 12, 12), up = t2(8, 12, 13), down = t2(12, 8, 14), w = t1(8, 15);
    const f = (xx: tf.Tensor) => tf.sum(fusedSwiGluMlp({ x: fusedRmsNorm(xx, w, { eps: 1e-5, center: false }) as tf.Tensor2D, gate, up, down }));
    const g = tf.grad(f)(x);
    const ref = tf.grad((xx: tf.Tensor) => tf.sum(fusedSwiGluMlpReference({ x: fusedRmsNormReference(xx, w, { eps: 1e-5, center: false }) as tf.Tensor2D, gate, up, down })))(x);
    expect(maxRelDiff(g.dataSync() as Float32Array, ref.dataSync() as Float32Array)).toBeLessThan(1e-5);
    expect(tf.max(tf.abs(g)).dataSync()[0]).toBeGreaterThan(0);
    tf.dispose([x, gate, up, down, w, g, ref]);
  });

  (fusedHere ? it : it.skip)('kernel shape errors name the argument and both shapes', () => {
    const x = t2(2, 4, 1), gate = t2(4, 6, 2), up = t2(4, 5, 3), down = t2(6, 4, 4), w = t1(3, 5);
    expectNoLeak(() => expect(() => tf.engine().runKernel(FusedSwiGLUMLP, { x, gate, up, down }, {}))
      .toThrow('[FusedSwiGLUMLP] up must be [4,6], got shape [4,5]'));
    expectNoLeak(() => expect(() => tf.engine().runKernel(FusedRMSNorm, { x, weight: w }, { eps: 1e-5, center: false }))
      .toThrow('[FusedRMSNorm] weight must be [4] (x\'s last axis), got shape [3]'));
    expectNoLeak(() => expect(() => tf.engine().runKernel(FusedRMSNorm, { x }, { eps: -1, center: false }))
      .toThrow('[FusedRMSNorm] eps (-1) must be a finite number >= 0'));
    tf.dispose([x, gate, up, down, w]);
  });
}, ['cpu', 'wasm']);

describe('TypeScript fallbacks of the fused decoder steps (no addon)', () => {
  beforeAll(async () => { await tf.setBackend('cpu'); });
  it('rmsNormRowsTs and swigluTs equal the references', () => {
    const T = 3, H = 10, I = 14;
    const x = t2(T, H, 21), w = t1(H, 22), gate = t2(H, I, 23), up = t2(H, I, 24), down = t2(I, H, 25), gb = t1(I, 26), res = t2(T, H, 27);
    const n = new Float32Array(T * H);
    rmsNormRowsTs(x.dataSync() as Float32Array, w.dataSync() as Float32Array, n, T, H, 1e-5, false);
    const nWant = fusedRmsNormReference(x, w, { eps: 1e-5, center: false });
    expect(maxRelDiff(n, nWant.dataSync() as Float32Array)).toBeLessThan(2e-6);
    const y = new Float32Array(T * H);
    swigluTs(x.dataSync() as Float32Array, gate.dataSync() as Float32Array, up.dataSync() as Float32Array, down.dataSync() as Float32Array,
      gb.dataSync() as Float32Array, null, null, res.dataSync() as Float32Array, y, T, H, I);
    const yWant = fusedSwiGluMlpReference({ x, gate, up, down, gateBias: gb, residual: res });
    expect(maxRelDiff(y, yWant.dataSync() as Float32Array)).toBeLessThan(1e-5);
    tf.dispose([x, w, gate, up, down, gb, res, nWant, yWant]);
  });
});

describe('addon: sgemm accumulate and swiglu in place (the native decoder step, models/native_forward.ts)', () => {
  const n = nativeKernels;
  const f32 = (len: number, seed: number) => randomArray(len, seed) as Float32Array;
  /** C[M, N] = A[M, K] · B[K, N] (+ bias) in float64. */
  const matmul = (A: Float32Array, B: Float32Array, bias: Float32Array | null, M: number, N: number, K: number) => {
    const C = new Float64Array(M * N);
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) {
      let s = bias ? bias[j] : 0;
      for (let k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j];
      C[i * N + j] = s;
    }
    return C;
  };
  // M 1 and 5 take the GEMV (row blocks / column ranges), 40 and 300 the packed sgemm (K 700: several K slices)
  for (const [M, N, K] of [[1, 37, 70], [5, 130, 33], [40, 70, 300], [300, 40, 700]] as const) {
    for (const withBias of [false, true]) {
      (n ? it : it.skip)(`sgemm ${M}x${K}·${K}x${N} accumulate${withBias ? ' + bias' : ''}: C += A·B`, () => {
        const A = f32(M * K, 1), B = f32(K * N, 2), bias = withBias ? f32(N, 3) : null, C0 = f32(M * N, 4);
        const C = C0.slice();
        n!.sgemm(A, B, bias, C, M, N, K, 0, 0, 1);
        const want = matmul(A, B, bias, M, N, K);
        let err = 0;
        for (let i = 0; i < M * N; i++) err = Math.max(err, Math.abs(C[i] - (C0[i] + want[i])));
        expect(err).toBeLessThan(1e-4);
      });
    }
  }

  (n?.swiglu ? it : it.skip)('swiglu with out === residual adds the MLP in place (T 3: GEMV, T 40: sgemm)', () => {
    for (const T of [3, 40]) {
      const H = 24, I = 50;
      const x = f32(T * H, 5), gate = f32(H * I, 6), up = f32(H * I, 7), down = f32(I * H, 8), h = f32(T * H, 9);
      const separate = new Float32Array(T * H);
      n!.swiglu!(x, gate, up, down, null, null, null, h, separate, T, H, I);
      const inPlace = h.slice();
      n!.swiglu!(x, gate, up, down, null, null, null, inPlace, inPlace, T, H, I);
      expect(maxRelDiff(inPlace, separate)).toBeLessThan(1e-6);
    }
  });
});
