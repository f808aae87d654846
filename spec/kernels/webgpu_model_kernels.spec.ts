/**
 * The whole-model inference kernels on webgpu (DenseMatMul, SwiGluMlp, RmsNorm, ArgMaxRows)
 * against their composite references (plain tfjs ops, run on webgpu with
 * ATTENTION_ROPE_FORCE_COMPOSITE): GEMV (M <= 8) and tiled (partial 128-tiles) paths, K not a
 * multiple of 4 (scalar loads), bias and residual epilogues, intermediate sizes that need padding,
 * argmax ties / NaN / -inf rows, empty inputs, and bad shapes refused with a clear error.
 */
import * as tf from '@tensorflow/tfjs';
import { argMaxRows, denseMatMul, rmsNorm, swiGluMlp } from '../../kernels/model_ops';
import { ArgMaxRows, DenseMatMul, RmsNorm, SwiGluMlp } from '../../kernels/kernel_names';
import { packGateUp } from '../../models/fused_weights';
import { webgpuDenseTuning } from '../../kernels/webgpu/dense_plan';
import { type F32Tile, tileSharedBytes, tileThreads } from '../../kernels/webgpu/matmul_nt_wgsl';
import { rand, startWebGpu, stopWebGpu } from './webgpu_support';

jest.setTimeout(600000);

beforeAll(startWebGpu);
afterAll(stopWebGpu);

/** Runs f with the fused kernels and with the composite path; returns both results. */
async function both(f: () => tf.Tensor): Promise<[Float32Array | Int32Array, Float32Array | Int32Array, number[]]> {
  const fused = f();
  tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', true);
  let ref: tf.Tensor;
  try { ref = f(); } finally { tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', false); }
  const out = [(await fused.data()) as Float32Array, (await ref.data()) as Float32Array, fused.shape] as const;
  expect(fused.shape).toEqual(ref.shape);
  tf.dispose([fused, ref]);
  return [out[0], out[1], [...out[2]]];
}

function expectClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  expect(a.length).toBe(b.length);
  let worst = 0;
  let scale = 1e-6;
  for (let i = 0; i < a.length; i++) { worst = Math.max(worst, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])); }
  expect(worst / scale).toBeLessThan(tol);
}

const t2 = (M: number, N: number, seed: number) => tf.tensor2d(rand(M * N, seed), [M, N]);

test('the kernels are registered on webgpu', () => {
  for (const k of [DenseMatMul, RmsNorm, SwiGluMlp, ArgMaxRows]) expect(tf.getKernel(k, 'webgpu')).toBeDefined();
});

describe('DenseMatMul', () => {
  const cases: [number, number, number, boolean, boolean][] = [
    // M, K, N, bias, residual: GEMV (M <= 8) with the unrolled and the tail loop, then tiles
    [1, 64, 5, false, false], [1, 1040, 37, true, true], [3, 36, 130, false, true], [8, 260, 9, true, false],
    [9, 64, 130, true, true], [130, 44, 257, false, true], [200, 30, 70, true, true], [5, 30, 7, false, false],
  ];
  test.each(cases)('M %i K %i N %i bias %s residual %s', async (M, K, N, hasBias, hasRes) => {
    const x = t2(M, K, 1), w = t2(N, K, 2);
    const bias = hasBias ? tf.tensor1d(rand(N, 3)) : undefined;
    const residual = hasRes ? t2(M, N, 4) : undefined;
    const [got, want, shape] = await both(() => denseMatMul(x, w, { bias, residual }));
    expect(shape).toEqual([M, N]);
    expectClose(got, want, 1e-5);
    tf.dispose([x, w, bias!, residual!].filter(Boolean));
  });

  const tiles: F32Tile[] = [ // each compiles ~4 pipelines, 5-20 s each on lavapipe
    { bm: 128, bn: 128, tm: 8, tn: 8, bk: 32, double: false, pad: 0 }, { bm: 128, bn: 64, tm: 8, tn: 8, bk: 16, double: true, pad: 0 },
    { bm: 64, bn: 64, tm: 8, tn: 4, bk: 8, double: true, pad: 1, unroll: true },
  ];
  test.each(tiles.map((t) => [JSON.stringify(t), t] as const))('f32 tile %s agrees (dense with residual and bias; swiglu where it may)', async (_, tile) => {
    const device = (tf.backend() as unknown as { device: GPUDevice }).device;
    expect(tileSharedBytes(tile)).toBeLessThanOrEqual(device.limits.maxComputeWorkgroupStorageSize); // no silent fallback
    const saved = { ...webgpuDenseTuning.f32Tiles };
    webgpuDenseTuning.f32Tiles = { dense: tile, swiglu: tile.bn === 128 && tile.tn === 8 ? tile : saved.swiglu };
    try {
      for (const [M, K, N] of [[130, 44, 257], [67, 30, 131]]) {
        const x = t2(M, K, 31), w = t2(N, K, 32), residual = t2(M, N, 33), bias = tf.tensor1d(rand(N, 34));
        const [got, want] = await both(() => denseMatMul(x, w, { residual, bias }));
        expectClose(got, want, 1e-5);
        tf.dispose([x, w, residual, bias]);
      }
      const x = t2(70, 36, 35), gateUp = packGateUp(t2(100, 36, 36), t2(100, 36, 37)), down = t2(36, 100, 38);
      const gateUpBias = packGateUp(tf.tensor1d(rand(100, 39)), tf.tensor1d(rand(100, 40)));
      const downBias = tf.tensor1d(rand(36, 41)), residual = t2(70, 36, 42);
      const [got, want] = await both(() => swiGluMlp(x, gateUp, down, { gateUpBias, downBias, residual }));
      expectClose(got, want, 1e-5);
      tf.dispose([x, gateUp, down, gateUpBias, downBias, residual]);
    } finally { webgpuDenseTuning.f32Tiles = saved; }
  });

  test('tiles that cannot be built are refused with the field named', () => {
    const t: F32Tile = { bm: 128, bn: 128, tm: 8, tn: 8, bk: 16, double: true, pad: 1 };
    expect(() => tileThreads({ ...t, tm: 6 })).toThrow(/tm \(6\) must be 4 or 8/);
    expect(() => tileThreads({ ...t, bk: 12, bm: 64, bn: 64, tm: 4, tn: 4 })).toThrow(/threads \(256\)|multiples of the threads/);
    expect(() => tileThreads({ ...t, bn: 64 }, 'swiglu')).toThrow(/swiglu needs bn 128 and tn 8/);
    expect(tileSharedBytes(t)).toBe(2 * 16 * (33 + 33) * 16);
  });

  test('empty rows give an empty result; bad shapes are refused', async () => {
    const w = t2(4, 8, 1);
    const y = denseMatMul(tf.zeros([0, 8]) as tf.Tensor2D, w);
    expect(y.shape).toEqual([0, 4]);
    expect(() => denseMatMul(t2(2, 7, 1), w)).toThrow(/\[denseMatMul\] w shape \[4,8\] must be \[4,7\]/);
    expect(() => denseMatMul(t2(2, 8, 1), w, { residual: t2(3, 4, 1) })).toThrow(/residual shape \[3,4\] must be \[2,4\]/);
  });
});

describe('SwiGluMlp', () => {
  test.each([[1, 40, 70, false, true], [8, 64, 128, true, true], [3, 30, 10, true, false], [20, 40, 70, true, true], [150, 36, 200, false, true]])(
    'M %i H %i I %i bias %s residual %s', async (M, H, I, hasBias, hasRes) => {
      const x = t2(M, H, 5);
      const gate = t2(I, H, 6), up = t2(I, H, 7), down = t2(H, I, 8);
      const gateUp = packGateUp(gate, up);
      const gateUpBias = hasBias ? packGateUp(tf.tensor1d(rand(I, 9)), tf.tensor1d(rand(I, 10))) : undefined;
      const downBias = hasBias ? tf.tensor1d(rand(H, 11)) : undefined;
      const residual = hasRes ? t2(M, H, 12) : undefined;
      const [got, want, shape] = await both(() => swiGluMlp(x, gateUp, down, { gateUpBias, downBias, residual }));
      expect(shape).toEqual([M, H]);
      expectClose(got, want, 1e-5);
      // and the reference agrees with the layer's own formula on unpacked weights
      const direct = tf.tidy(() => {
        let g = tf.matMul(x, gate, false, true), u = tf.matMul(x, up, false, true);
        if (hasBias) { g = tf.add(g, tf.matMul(tf.ones([1, 1]), tf.tensor2d(rand(I, 9), [1, I]))); u = tf.add(u, tf.tensor1d(rand(I, 10))); }
        let y = tf.matMul(tf.mul(tf.mul(g, tf.sigmoid(g)), u), down, false, true);
        if (hasBias) y = tf.add(y, downBias!);
        return residual ? tf.add(residual, y) : y;
      });
      expectClose(got, (await direct.data()) as Float32Array, 1e-5);
      tf.dispose([x, gate, up, down, gateUp, direct, gateUpBias!, downBias!, residual!].filter(Boolean));
    });
});

describe('RmsNorm', () => {
  test.each([[1, 2048], [3, 37], [300, 64]])('M %i H %i', async (M, H) => {
    const x = t2(M, H, 13), w = tf.tensor1d(rand(H, 14));
    const [got, want] = await both(() => rmsNorm(x, w, 1e-5));
    expectClose(got, want, 1e-5);
    tf.dispose([x, w]);
  });
});

describe('ArgMaxRows', () => {
  test('ties, NaN, -inf and all-NaN rows match the host sampler', async () => {
    const V = 1000;
    const rows = [rand(V, 21), rand(V, 22), new Float32Array(V).fill(-Infinity), new Float32Array(V).fill(NaN), rand(V, 23)];
    rows[0][700] = 5; rows[0][300] = 5; // tie: first wins
    rows[1][0] = NaN; rows[1][999] = 4; // NaN never wins
    rows[4][10] = Infinity;
    const x = tf.tensor2d(Float32Array.from(rows.flatMap((r) => [...r])), [rows.length, V]);
    const ids = argMaxRows(x);
    expect(ids.dtype).toBe('int32');
    expect([...(await ids.data())]).toEqual([300, 999, 0, 0, 10]);
    const [got, want] = await both(() => argMaxRows(x));
    expect([...got]).toEqual([...want]);
    const big = t2(3, 128256, 24);
    const [g2, w2] = await both(() => argMaxRows(big));
    expect([...g2]).toEqual([...w2]);
    tf.dispose([x, ids, big]);
  });
});
