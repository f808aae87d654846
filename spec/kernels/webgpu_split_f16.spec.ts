/**
 * The split-f16 tensor-core matmul (kernels/webgpu/matmul_split_f16_wgsl.ts). CI's software Vulkan
 * driver has no subgroup matrices, so here: every tile config's WGSL (dense and swiglu, with and
 * without bias / residual) passes Dawn's compiler on its null backend (which offers the feature:
 * syntax, types and the subgroup-matrix uniformity rules); tiles that cannot work are refused;
 * and the variant choice (ATTENTION_ROPE_WEBGPU_MATMUL) takes the f32 tile on this device and
 * names the reason when split-f16 is forced; and the kernel's numbers through its plain-WGSL
 * emulation (each lane does the documented subgroup-matrix ops on a whole matrix): odd shapes,
 * bias, residual, SwiGLU pairing, weight scaling, accumulator flushes and the f16-range fallback
 * against the f32 tile.
 * Its numbers on tensor cores are checked on the H200
 * (bench/device/dense_sweep.ts: against the f32 tile on odd shapes, the f16-range fallback and a
 * whole layer, before any timing).
 */
import * as tf from '@tensorflow/tfjs';
import { loadDawn } from '../../lib/backends/webgpu_node';
import { denseMatMul, swiGluMlp } from '../../kernels/model_ops';
import { matmulVariantFor, webgpuDenseTuning } from '../../kernels/webgpu/dense_plan';
import { packGateUp } from '../../models/fused_weights';
import type { WebGpuBackendLike } from '../../kernels/webgpu/gpu_util';
import { matmulSplitF16Wgsl, type SplitF16Config, splitF16Tile } from '../../kernels/webgpu/matmul_split_f16_wgsl';
import { splitF16Supported } from '../../kernels/webgpu/tensor_cores';
import { rand, startWebGpu, stopWebGpu } from './webgpu_support';

jest.setTimeout(300000);

const TILES = [[2, 2, 4, 4], [4, 2, 2, 4], [2, 4, 4, 2], [4, 4, 2, 2]];

describe('WGSL on Dawn null backend', () => {
  let device: GPUDevice;
  let gpu: GPU; // held for the suite: Dawn aborts the process if its instance goes before the device
  beforeAll(async () => {
    const dawn = loadDawn();
    Object.assign(globalThis, dawn.globals);
    gpu = dawn.create(['backend=null', 'enable-dawn-features=allow_unsafe_apis']);
    const adapter = await gpu.requestAdapter();
    expect(adapter).not.toBeNull();
    device = await adapter!.requestDevice({ requiredFeatures: ['chromium-experimental-subgroup-matrix', 'shader-f16', 'subgroups'] as GPUFeatureName[] });
  });

  const configs: SplitF16Config[] = [];
  for (const mode of ['dense', 'swiglu'] as const) {
    for (const [sgM, sgN, tm, tn] of TILES) {
      for (const bk of [16, 32]) {
        for (const [bias, residual] of [[false, false], [true, mode === 'dense']]) configs.push({ mode, sgM, sgN, tm, tn, bk, bias, residual });
      }
    }
  }
  test.each(configs.map((c) => [JSON.stringify(c), c] as const))('%s compiles', async (_, c) => {
    const module = device.createShaderModule({ code: matmulSplitF16Wgsl(c) });
    const errors = (await module.getCompilationInfo()).messages.filter((m) => m.type === 'error').map((m) => `${m.lineNum}: ${m.message}`);
    expect(errors).toEqual([]);
  });
});

test('tiles that cannot work are refused with the reason', () => {
  const base: SplitF16Config = { mode: 'swiglu', sgM: 2, sgN: 2, tm: 4, tn: 2, bk: 32, bias: false, residual: false };
  expect(() => matmulSplitF16Wgsl(base)).toThrow('[matmulSplitF16Wgsl] swiglu needs a 128-column tile and an even tn, got 64 and 2');
  expect(() => matmulSplitF16Wgsl({ ...base, tn: 4, bk: 24 })).toThrow('[matmulSplitF16Wgsl] bk (24) must be 16 or 32');
  expect(splitF16Tile({ ...base, tn: 4 })).toEqual({ bm: 128, bn: 128, threads: 128, sharedBytes: 4 * 128 * 40 * 2 + 4 * 256 * 4 });
});

describe('variant choice on this device', () => {
  beforeAll(startWebGpu);
  afterAll(() => { tf.env().set('ATTENTION_ROPE_WEBGPU_MATMUL', 'auto' as unknown as boolean); stopWebGpu(); });
  const device = () => (tf.backend() as unknown as WebGpuBackendLike).device;

  test('auto takes the f32 tile where the device has no subgroup matrices', () => {
    expect(splitF16Supported(device())).toBe(false);
    expect(matmulVariantFor(device(), 64)).toBe('f32');
  });

  test('forcing split-f16 names the reason; a bad flag value is named', async () => {
    const x = tf.tensor2d(rand(16 * 8, 1), [16, 8]);
    const w = tf.tensor2d(rand(4 * 8, 2), [4, 8]);
    tf.env().set('ATTENTION_ROPE_WEBGPU_MATMUL', 'split-f16' as unknown as boolean);
    expect(() => denseMatMul(x, w)).toThrow("[webgpu] ATTENTION_ROPE_WEBGPU_MATMUL is 'split-f16' but the device has no f16 subgroup matrices");
    tf.env().set('ATTENTION_ROPE_WEBGPU_MATMUL', 'tensor' as unknown as boolean);
    expect(() => denseMatMul(x, w)).toThrow("[webgpu] ATTENTION_ROPE_WEBGPU_MATMUL (tensor) must be 'auto', 'f32' or 'split-f16'");
    tf.env().set('ATTENTION_ROPE_WEBGPU_MATMUL', 'f32' as unknown as boolean);
    const y = denseMatMul(x, w);
    expect(y.shape).toEqual([16, 4]);
    tf.dispose([x, w, y]);
  });
});

describe('split-f16 numerics through the emulated subgroup-matrix ops (lavapipe)', () => {
  const FLAG = 'ATTENTION_ROPE_WEBGPU_MATMUL';
  const saved = { ...webgpuDenseTuning.splitF16 };
  beforeAll(startWebGpu);
  afterAll(() => {
    tf.env().set(FLAG, 'auto' as unknown as boolean);
    webgpuDenseTuning.emulateSplitF16 = false;
    webgpuDenseTuning.splitF16 = saved;
    stopWebGpu();
  });

  /** max |split - f32 tile| / max |f32 tile| of f, with the split-f16 tile `t`. */
  async function relDiff(f: () => tf.Tensor, t: typeof saved): Promise<number> {
    tf.env().set(FLAG, 'f32' as unknown as boolean);
    const want = f();
    tf.env().set(FLAG, 'split-f16' as unknown as boolean);
    webgpuDenseTuning.emulateSplitF16 = true;
    webgpuDenseTuning.splitF16 = { ...t };
    const got = f();
    const [a, b] = [await got.data(), await want.data()];
    expect(got.shape).toEqual(want.shape);
    let worst = 0, scale = 1e-30;
    for (let i = 0; i < a.length; i++) { worst = Math.max(worst, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(b[i])); }
    tf.dispose([got, want]);
    return worst / scale;
  }

  const t2 = (r: number, c: number, seed: number, s = 1) => tf.mul(tf.tensor2d(rand(r * c, seed), [r, c]), s) as tf.Tensor2D;
  // small tiles keep the per-lane emulation quick: 32 x 32 (dense) and 32 x 128 (SwiGLU needs 128 columns)
  const small: typeof saved = { sgM: 2, sgN: 2, tm: 1, tn: 1, bk: 16 };
  const swi = { sgM: 2, sgN: 4, tm: 1, tn: 2, bk: 32 };

  test('dense: odd M, N and K with bias and residual, 2 tiles of K', async () => {
    const x = t2(45, 36, 1), w = t2(40, 36, 2, 0.05), bias = tf.tensor1d(rand(40, 3)), res = t2(45, 40, 4);
    expect(await relDiff(() => denseMatMul(x, w, { bias, residual: res }), small)).toBeLessThan(2e-6);
    tf.dispose([x, w, bias, res]);
  });

  test('dense: accumulator flushes every K step and every 2 (the last run partial)', async () => {
    const x = t2(45, 84, 15), w = t2(40, 84, 16, 0.05), bias = tf.tensor1d(rand(40, 17));
    for (const flush of [1, 2]) expect(await relDiff(() => denseMatMul(x, w, { bias }), { ...small, flush })).toBeLessThan(2e-6);
    tf.dispose([x, w, bias]);
  });

  test('dense: an x value past the f16 range takes the f32 fallback for its tile only', async () => {
    const x = tf.add(t2(45, 36, 5), tf.scatterND([[40, 3]], [1e6], [45, 36])) as tf.Tensor2D;
    const w = t2(40, 36, 6, 0.05);
    const rows = (r0: number, n: number) => () => tf.tidy(() => denseMatMul(x, w).slice([r0, 0], [n, 40]));
    expect(await relDiff(rows(0, 40), small)).toBeLessThan(2e-6); // split tile (rows 0-31) and fallback tile
    expect(await relDiff(rows(40, 1), small)).toBeLessThan(2e-6); // the row with 1e6, on its own scale
    tf.dispose([x, w]);
  });

  test('SwiGLU: gate/up pairing with I % 64 != 0, biases and residual', async () => {
    const x = t2(20, 40, 7);
    const gateUp = packGateUp(t2(72, 40, 8, 0.05), t2(72, 40, 9, 0.05)) as tf.Tensor2D;
    const gub = packGateUp(tf.tensor1d(rand(72, 10)), tf.tensor1d(rand(72, 11))) as tf.Tensor1D;
    const down = t2(40, 72, 12, 0.05), db = tf.tensor1d(rand(40, 13)), res = t2(20, 40, 14);
    expect(await relDiff(() => swiGluMlp(x, gateUp, down, { gateUpBias: gub, downBias: db, residual: res }), swi)).toBeLessThan(2e-6);
    tf.dispose([x, gateUp, gub, down, db, res]);
  });
});
