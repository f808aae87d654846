/**
 * The golden quant/kv_* fixtures (compact KV caches: float16, bfloat16, int8, float8_e4m3) on
 * every backend (cpu: the native addon, and again on the TypeScript kernels), fused and unfused, each
 * within its config's tolerance; the float32 fixtures
 * through every compact cache within that dtype's bar; and a float32 cache missing the kv_*
 * bars (so the cases really test the quantizers).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fixtureTolerance, runAttentionFixture } from '../../bin/conformance/attention_fixture';
import { loadAttentionFixture } from '../../bin/conformance/attention_fixture_files';
import type { KVCacheDType } from '../../core/kv_dtype';
import { nativeKernels, setCpuKernelImpl } from '../../kernels/cpu/native';
import { useBackend } from '../../lib/backends/select';
import { describeEachBackend } from '../support/backends';

const QUANT = path.join(__dirname, '..', 'fixtures', 'quant');
const KV_CASES = fs.readdirSync(QUANT).filter((n) => n.startsWith('kv_')).sort();
const FLOAT_ROOT = path.join(__dirname, '..', 'fixtures', 'attention');
const FLOAT_CASES = fs.readdirSync(FLOAT_ROOT).sort();

/**
 * Bar for a float32 fixture run through a compact cache: about twice the worst error measured over
 * every fixture (float16 4.4e-4, bfloat16 3.3e-3, int8 1.1e-2, float8_e4m3 with unit scales 5.2e-2),
 * i.e. a few quanta of the format (2^-11, 2^-8, 1/254 of the row max, 2^-4 relative).
 */
export const KV_DTYPE_TOLERANCE: Record<Exclude<KVCacheDType, 'float32'>, number> = {
  float16: 1e-3, bfloat16: 8e-3, int8: 2.5e-2, float8_e4m3: 1e-1,
};

it('finds the four kv_* cases', () => {
  expect(KV_CASES).toEqual(['kv_bfloat16', 'kv_float16', 'kv_float8_e4m3', 'kv_int8']);
});

describeEachBackend('quantized KV cache fixtures', () => {
  for (const name of KV_CASES) {
    for (const unfused of [false, true]) {
      it(`${name} ${unfused ? 'composite (unfused)' : 'fused'} within its tolerance`, async () => {
        const f = loadAttentionFixture(path.join(QUANT, name));
        const r = await runAttentionFixture(f, { unfused, scramblePages: true, pageSize: unfused ? 16 : 4 });
        expect(r.error).toBeLessThanOrEqual(fixtureTolerance(f.config));
        expect(r.passed).toBe(true);
      });
    }
  }
  it('a float32 cache misses every kv_* bar (the cases need the quantizer)', async () => {
    for (const name of KV_CASES) {
      const f = loadAttentionFixture(path.join(QUANT, name));
      const r = await runAttentionFixture(f, { kvFormat: { dtype: 'float32' } });
      expect(r.error).toBeGreaterThan(fixtureTolerance(f.config));
    }
  });
  for (const dtype of Object.keys(KV_DTYPE_TOLERANCE) as (keyof typeof KV_DTYPE_TOLERANCE)[]) {
    it(`every float32 fixture through a ${dtype} cache within ${KV_DTYPE_TOLERANCE[dtype]}`, async () => {
      for (const name of FLOAT_CASES) {
        const r = await runAttentionFixture(loadAttentionFixture(path.join(FLOAT_ROOT, name)),
          { kvFormat: { dtype }, tolerance: KV_DTYPE_TOLERANCE[dtype], scramblePages: true, pageSize: 4 });
        expect({ name, passed: r.passed, error: r.error }).toEqual({ name, passed: true, error: r.error });
      }
    });
  }
});

// cpu with the addon loaded runs the native compact-cache kernels above (auto); here the same cases on the
// TypeScript kernels (decoded pages), the fallback without the addon.
(nativeKernels !== null ? describe : describe.skip)('quantized KV cache fixtures [cpu, TypeScript kernels]', () => {
  beforeAll(async () => { await useBackend('cpu'); setCpuKernelImpl('ts'); });
  afterAll(() => setCpuKernelImpl('auto'));
  for (const name of KV_CASES) {
    for (const unfused of [false, true]) {
      it(`${name} ${unfused ? 'composite (unfused)' : 'fused'} within its tolerance`, async () => {
        const f = loadAttentionFixture(path.join(QUANT, name));
        const r = await runAttentionFixture(f, { unfused, scramblePages: true, pageSize: unfused ? 16 : 4 });
        expect(r.error).toBeLessThanOrEqual(fixtureTolerance(f.config));
        expect(r.passed).toBe(true);
      });
    }
  }
  for (const dtype of Object.keys(KV_DTYPE_TOLERANCE) as (keyof typeof KV_DTYPE_TOLERANCE)[]) {
    it(`every float32 fixture through a ${dtype} cache within ${KV_DTYPE_TOLERANCE[dtype]}`, async () => {
      for (const name of FLOAT_CASES) {
        const r = await runAttentionFixture(loadAttentionFixture(path.join(FLOAT_ROOT, name)),
          { kvFormat: { dtype }, tolerance: KV_DTYPE_TOLERANCE[dtype], scramblePages: true, pageSize: 4 });
        expect({ name, passed: r.passed, error: r.error }).toEqual({ name, passed: true, error: r.error });
      }
    });
  }
});

// webgpu in Node (Dawn; lavapipe in CI): the fused store and every attention path read the
// packed pages in place (the composite store cannot read back synchronously there).
describeEachBackend('quantized KV cache fixtures, fused', () => {
  for (const name of KV_CASES) {
    for (const pageSize of [4, 16]) {
      it(`${name} page size ${pageSize} within its tolerance`, async () => {
        const f = loadAttentionFixture(path.join(QUANT, name));
        const r = await runAttentionFixture(f, { scramblePages: true, pageSize });
        expect(r.error).toBeLessThanOrEqual(fixtureTolerance(f.config));
      });
    }
  }
  // Three shapes per dtype (GQA, qk-norm MQA, chunked mask with materialize): each case compiles
  // its own pipelines, which takes minutes on a shared CPU with lavapipe for all fifteen.
  const GPU_CASES = ['large_gqa', 'qwen3_qknorm_mqa', 'materialize_kv_from_hidden'];
  for (const dtype of Object.keys(KV_DTYPE_TOLERANCE) as (keyof typeof KV_DTYPE_TOLERANCE)[]) {
    it(`float32 fixtures ${GPU_CASES.join(', ')} through a ${dtype} cache within ${KV_DTYPE_TOLERANCE[dtype]}`, async () => {
      for (const name of GPU_CASES) {
        const r = await runAttentionFixture(loadAttentionFixture(path.join(FLOAT_ROOT, name)),
          { kvFormat: { dtype }, tolerance: KV_DTYPE_TOLERANCE[dtype], scramblePages: true, pageSize: 4 });
        expect({ name, passed: r.passed, error: r.error }).toEqual({ name, passed: true, error: r.error });
      }
    }, 300_000);
  }
}, ['webgpu']);
