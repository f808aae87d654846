/**
 * Page entry of spec/browser: runs the golden attention fixtures (spec/fixtures/attention/*) in a
 * browser on any tfjs backend, through the public API (useBackend) and the same runner as the CLI.
 * The page fetches `<base>/<name>/config.json` and `<base>/<name>/tensors.safetensors`.
 *
 * Exposes on `window`:
 *   __webgpuAvailability(): { ok, reason, fallback }   why webgpu can or cannot run here
 *   __useBackend(name, flags?): { backend, fused, wasmSimd? }  switches backend, sets tf flags, lists fused kernels
 *                                                     (on wasm: whether the WebAssembly SIMD kernels loaded, their variant)
 *   __runFixture(name, opts?, base?): { name, error, passed, detail, ms, leakedTensors }
 *   __readSyncProbe(): string                         whether dataSync of a GPU tensor works here
 *   __wasmThreadsCheck(): { status, sameBits, ms1, ms2 }  on wasm: a 128x576x1536 ProjectionMatMul on 1 thread and on
 *                                                     the kernel threads (bits compared), and wasmThreadsStatus()
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmThreads, startWasmThreads, useBackend, wasmSimdStatus, wasmThreadsStatus } from '../lib/index.js';
import { attentionFixtureFromBytes, runAttentionFixture, TOLERANCE, type RunOptions } from '../bin/conformance/attention_fixture.js';

/** `fallback`: the adapter is a software one (SwiftShader), see GPUAdapterInfo.isFallbackAdapter. */
export interface WebGpuAvailability { ok: boolean; reason: string; fallback?: boolean }

/** Whether this page can run tfjs's webgpu backend, and if not, why. */
async function webgpuAvailability(): Promise<WebGpuAvailability> {
  if (!globalThis.isSecureContext) return { ok: false, reason: `page ${location.origin} is not a secure context (WebGPU needs https or localhost)` };
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) return { ok: false, reason: 'navigator.gpu is missing (browser without WebGPU, or Chromium without --enable-unsafe-webgpu)' };
  let adapter: GPUAdapter | null;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return { ok: false, reason: `navigator.gpu.requestAdapter() threw: ${String(e)}` };
  }
  if (!adapter) return { ok: false, reason: 'navigator.gpu.requestAdapter() returned null (no usable adapter: blocklisted GPU, or no Vulkan/SwiftShader)' };
  const info = (adapter as GPUAdapter & { info?: GPUAdapterInfo }).info;
  try {
    const device = await adapter.requestDevice();
    device.destroy();
  } catch (e) {
    return { ok: false, reason: `adapter.requestDevice() failed: ${String(e)}` };
  }
  const fallback = (info as GPUAdapterInfo & { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter ?? false;
  return { ok: true, reason: `adapter ${info ? `${info.vendor}/${info.architecture}` : '(no info)'}${fallback ? ' (fallback)' : ''}`, fallback };
}

const FUSED = ['RopeSplitStoreRagged', 'FlashAttentionRaggedPaged'];

async function switchBackend(name: string, flags: Record<string, boolean | number | string> = {}):
  Promise<{ backend: string; fused: string[]; wasmSimd?: ReturnType<typeof wasmSimdStatus> }> {
  await useBackend(name);
  for (const [k, v] of Object.entries(flags)) tf.env().set(k, v);
  const backend = tf.getBackend();
  const fused = FUSED.filter((k) => tf.getKernel(k, backend) !== undefined);
  return backend === 'wasm' ? { backend, fused, wasmSimd: wasmSimdStatus() } : { backend, fused };
}

async function fetchOk(url: string): Promise<Response> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`[fixtures_page] GET ${url}: HTTP ${r.status}`);
  return r;
}

/**
 * Runs one fixture on the active backend the way spec/attention/fixtures.spec.ts does (default:
 * fused path), with the CLI's runner (it reads back with `await data()`: sync reads return zeros on webgpu there).
 */
async function runFixture(name: string, opts: RunOptions = { scramblePages: true, pageSize: 4 }, base = '/fixtures') {
  const [config, bytes] = await Promise.all([
    fetchOk(`${base}/${name}/config.json`).then((r) => r.text()),
    fetchOk(`${base}/${name}/tensors.safetensors`).then((r) => r.arrayBuffer()),
  ]);
  const f = attentionFixtureFromBytes(config, new Uint8Array(bytes), name);
  const before = tf.memory().numTensors;
  const t0 = performance.now();
  const r = await runAttentionFixture(f, opts);
  const ms = performance.now() - t0;
  return { ...r, tolerance: TOLERANCE, ms, leakedTensors: tf.memory().numTensors - before };
}

/**
 * Whether `dataSync()` of a tensor computed on the active backend returns its values. On webgpu it
 * goes through an OffscreenCanvas; headless Chromium on SwiftShader returns zeros there (and
 * without --enable-features=Vulkan loses the device), which breaks code paths that read back
 * synchronously (the composite RopeSplitStoreRagged reference does). Run it last on a page.
 */
async function readSyncProbe(): Promise<string> {
  const n = 4096;   // above tfjs-webgpu's CPU hand-off size, so the op runs on the device
  const x = tf.tidy(() => tf.add(tf.range(0, n, 1, 'float32'), 1));
  const want = n * (n + 1) / 2;
  let got = NaN;
  try {
    got = (x.dataSync() as Float32Array).reduce((a, b) => a + b, 0);
  } catch (e) {
    return `dataSync threw: ${String(e)}`;
  } finally {
    x.dispose();
  }
  return got === want ? 'dataSync ok' : `dataSync returned wrong values (sum ${got}, want ${want})`;
}

/** On wasm: a prefill-sized GEMM on 1 thread and on the kernel threads (on the isolated page: tfjs's shared heap). */
async function wasmThreadsCheck() {
  await startWasmThreads();
  const a = tf.randomNormal([128, 576], 0, 1, 'float32', 1), b = tf.randomNormal([576, 1536], 0, 1, 'float32', 2);
  const run = (threads: number) => {
    setWasmThreads(threads);
    const t0 = performance.now();
    const y = tf.engine().runKernel('ProjectionMatMul', { a, b }, { transposeA: false, transposeB: false }) as tf.Tensor;
    const ms = performance.now() - t0, bits = new Int32Array((y.dataSync() as Float32Array).slice().buffer);
    y.dispose();
    return { ms, bits };
  };
  run(2); // the workers join once started
  const one = run(1), two = run(2);
  tf.dispose([a, b]);
  return { status: wasmThreadsStatus(), sameBits: one.bits.every((v, i) => v === two.bits[i]), ms1: one.ms, ms2: two.ms };
}

Object.assign(globalThis, {
  __wasmThreadsCheck: wasmThreadsCheck,
  __readSyncProbe: readSyncProbe,
  __webgpuAvailability: webgpuAvailability,
  __useBackend: switchBackend,
  __runFixture: runFixture,
  __tf: tf,
});
document.title = 'fixtures page ready';
