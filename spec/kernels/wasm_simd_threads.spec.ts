/**
 * The WebAssembly SIMD kernels' threads (kernels/wasm/simd_threads.ts, simd_thread_calls.ts, simd_staging.ts):
 * ProjectionMatMul and FusedSwiGLUMLP on 2 threads give the same bits as on 1 (same tile, K slices and order
 * of additions), over odd widths, both transposes, biases, residuals and the MLP's 128-row chunks; in both
 * modes: `staged` (Node: tfjs-wasm's heap is not shared, weights copied once into a shared memory of ours)
 * and `heap` (a shared heap, as tfjs-wasm's threaded build on a cross-origin isolated page, made here with a
 * stand-in backend on a shared memory). Also: workers do take chunks; a weight rewritten in place is copied
 * again; disposed weights are swept; workers that never start leave the caller to do every chunk; the
 * switches' errors; tfjs-wasm itself does not run threaded in Node.
 */
import * as tf from '@tensorflow/tfjs';

import { setCpuKernelImpl } from '../../kernels/cpu/native';
import { FlashAttentionRaggedPaged, FusedSwiGLUMLP, ProjectionMatMul } from '../../kernels/kernel_names';
import { registerAllKernels } from '../../kernels/register_all';
import { simdSgemm } from '../../kernels/wasm/simd_calls';
import { setWasmKernelImpl, sharedKernelModule, wasmSimdFor, type WasmBackendHeap } from '../../kernels/wasm/simd_module';
import { StagingHeap } from '../../kernels/wasm/simd_staging';
import { startWasmThreads, stopWasmThreads, wasmThreadsStatus } from '../../kernels/wasm/simd_thread_calls';
import { setWasmThreads, setWasmWorkerHost, threadPlan, type WasmWorkerHost } from '../../kernels/wasm/simd_threads';
import { makeCollection, randomArray, rng } from './cpu_fixture';

const nodeHost = (() => { const p = threadPlan(); return typeof p === 'string' ? null : p.host; })();

beforeAll(async () => {
  require('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  registerAllKernels();
  setCpuKernelImpl('ts');
  setWasmKernelImpl('simd');
  setWasmThreads(2);
});
afterAll(async () => {
  stopWasmThreads();
  setWasmThreads(2);
  setWasmKernelImpl('auto');
  setCpuKernelImpl('auto');
  await tf.setBackend('cpu');
});

/** Runs fn on 1 thread and on 2, returns both outputs' bits and how many thread jobs the second run took. */
function oneAndTwo(fn: () => tf.Tensor): [Int32Array, Int32Array, number] {
  setWasmThreads(1);
  const a = fn(); const one = new Int32Array((a.dataSync() as Float32Array).slice().buffer); a.dispose();
  setWasmThreads(2);
  const jobs = wasmThreadsStatus().jobs ?? 0;
  const b = fn(); const two = new Int32Array((b.dataSync() as Float32Array).slice().buffer); b.dispose();
  return [one, two, (wasmThreadsStatus().jobs ?? 0) - jobs];
}

function expectSameBits(one: Int32Array, two: Int32Array, what: string): void {
  let bad = 0;
  for (let i = 0; i < one.length; i++) if (one[i] !== two[i]) bad++;
  if (bad) throw new Error(`${what}: ${bad} of ${one.length} values differ between 1 and 2 threads`);
}

const rand = (shape: number[], seed: number) => tf.tensor(randomArray(shape.reduce((a, b) => a * b, 1), rng(seed)), shape);

describe('wasm kernel threads, staged (Node)', () => {
  it('tfjs-wasm runs unthreaded in Node (its heap is not shared): the staged mode is the one here', async () => {
    expect(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')).toBe(false);
    const st = await startWasmThreads();
    expect(st).toMatchObject({ threads: 2, ready: 1, mode: 'staged' });
  });

  it.each([
    [17, 64, 40, false, true], [33, 576, 576, false, false], [128, 576, 1536, false, true], [100, 37, 300, true, true],
    [129, 600, 203, true, false], [64, 5, 4096, false, true], [300, 130, 96, false, false],
  ])('ProjectionMatMul M %i K %i N %i, transposeB %s, bias %s: same bits on 2 threads', (M, K, N, tB, withBias) => {
    const a = rand([M, K], M), b = rand(tB ? [N, K] : [K, N], K + N), bias = withBias ? rand([N], 7) : undefined;
    const [one, two, jobs] = oneAndTwo(() => tf.engine().runKernel(ProjectionMatMul, bias ? { a, b, bias } : { a, b },
      { transposeA: false, transposeB: tB }) as tf.Tensor);
    expectSameBits(one, two, `M ${M} K ${K} N ${N}`);
    expect(jobs).toBe(M > 16 && M * N * K >= 1 << 20 ? 1 : 0); // small ones stay on the calling thread
    tf.dispose([a, b, bias!].filter(Boolean));
  });

  it.each([
    [128, 576, 1536, 'residual'], [300, 64, 200, 'residual, biases'], [145, 40, 72, ''], [17, 64, 1000, 'biases'], [257, 96, 160, 'residual'],
  ])('FusedSwiGLUMLP T %i H %i I %i (%s): same bits on 2 threads', (T, H, I, opts) => {
    const inputs: Record<string, tf.Tensor> = { x: rand([T, H], 1), gate: rand([H, I], 2), up: rand([H, I], 3), down: rand([I, H], 4) };
    if (opts.includes('residual')) inputs.residual = rand([T, H], 5);
    if (opts.includes('biases')) Object.assign(inputs, { gateBias: rand([I], 6), upBias: rand([I], 7), downBias: rand([H], 8) });
    const [one, two, jobs] = oneAndTwo(() => tf.engine().runKernel(FusedSwiGLUMLP, inputs, {}) as tf.Tensor);
    expectSameBits(one, two, `T ${T} H ${H} I ${I}`);
    if (T * H * I >= 1 << 20) expect(jobs).toBeGreaterThanOrEqual(2); // gate/up, then down, per 128-row chunk
    tf.dispose(Object.values(inputs));
  });

  it.each([
    ['prefill, GQA 3, D 64, causal', 16, 9, 3, 64, [{ start: 0, numNew: 200 }, { start: 50, numNew: 30 }], 'causal', 'prefill'],
    ['auto, MHA 4, D 32, sliding window', 8, 4, 4, 32, [{ start: 7, numNew: 90 }, { start: 0, numNew: 1 }, { start: 33, numNew: 40 }], 'sliding_window_causal', 'auto'],
    ['prefill, MQA, D 48, no mask', 4, 6, 1, 48, [{ start: 100, numNew: 64 }], 'null', 'prefill'],
    ['prefill, 100 entries x 48 KV heads (4800 items: 2 a chunk)', 8, 48, 48, 4, Array.from({ length: 100 }, (_, i) => ({ start: i % 7, numNew: 17 })), 'causal', 'prefill'],
  ] as const)('FlashAttentionRaggedPaged %s: same bits on 2 threads', (_, pageSize, nH, nKv, D, seqs, mask, variant) => {
    const c = makeCollection(seqs.map((x) => ({ ...x })), nKv, D, pageSize, 11);
    const q = rand([c.totalTokens, nH * D], 12);
    const attrs = { nHeads: nH, nKvHeads: nKv, headDim: D, scale: 1 / Math.sqrt(D), mask: { variant: mask, window: 9, chunk: 0 }, collection: c, layerIdx: 0, variant };
    const [one, two, jobs] = oneAndTwo(() => tf.engine().runKernel(FlashAttentionRaggedPaged, { q }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor);
    expectSameBits(one, two, 'attention');
    expect(jobs).toBe(1);
    q.dispose();
  });

  it('the worker takes chunks', () => {
    const a = rand([128, 576], 1), b = rand([576, 1536], 2);
    const before = wasmThreadsStatus();
    for (let i = 0; i < 200; i++) {
      (tf.engine().runKernel(ProjectionMatMul, { a, b }, { transposeA: false, transposeB: false }) as tf.Tensor).dispose();
      const s = wasmThreadsStatus();
      if (s.chunks! - s.callerChunks! > before.chunks! - before.callerChunks!) break;
    }
    const s = wasmThreadsStatus();
    expect(s.chunks! - s.callerChunks!).toBeGreaterThan(before.chunks! - before.callerChunks!);
    tf.dispose([a, b]);
  });

  it('a weight rewritten in place is staged again', () => {
    const a = rand([64, 256], 1), b = rand([256, 128], 2);
    const run = () => tf.engine().runKernel(ProjectionMatMul, { a, b }, { transposeA: false, transposeB: false }) as tf.Tensor;
    run().dispose(); // staged
    const heap = (tf.backend() as unknown as { typedArrayFromHeap(t: tf.TensorInfo): Float32Array }).typedArrayFromHeap(b);
    heap.set(randomArray(heap.length, rng(99)));
    const [one, two, jobs] = oneAndTwo(run);
    expectSameBits(one, two, 'after an in-place write');
    expect(jobs).toBe(1);
    tf.dispose([a, b]);
  });
});

describe('StagingHeap', () => {
  it('copies a weight once, sweeps disposed ones and moves the rest down', () => {
    const c = sharedKernelModule();
    if (typeof c === 'string') throw new Error(c);
    const s = new StagingHeap(c.module, 2, 128, 1 << 16);
    const live = new Set<object>();
    const src = randomArray(1 << 16, rng(3));
    const t = (id: object) => ({ dataId: id, shape: [1], dtype: 'float32' as const });
    const ids = Array.from({ length: 12 }, () => ({}));
    s.beginCall();
    const first = s.weight(t(ids[0]), src, 0, 4096, live);
    live.add(ids[0]);
    expect(s.weight(t(ids[0]), src, 0, 4096, live)).toBe(first); // kept, not copied again
    let most = 0;
    for (const id of ids.slice(1)) { // never live: as if disposed at once
      s.beginCall();
      s.weight(t(id), src, 4096 * 4, 8192, live);
      most = Math.max(most, s.weightBytes);
    }
    expect(most).toBeLessThanOrEqual(2 * (1 << 16) + 4 * 8192 + 64); // swept whenever it doubled past the floor
    expect(most).toBeLessThan(4 * 4096 + 11 * 4 * 8192); // (so a sweep ran)
    s.beginCall();
    const moved = s.weight(t(ids[0]), src, 0, 4096, live);
    const f = new Float32Array(s.memory.buffer, moved, 4096);
    expect(Array.from(f)).toEqual(Array.from(src.subarray(0, 4096)));
  });
});

describe('wasm kernel threads, heap (a shared tfjs heap)', () => {
  /** A stand-in for tfjs-wasm's threaded build: a shared memory, a bump malloc, tensors by dataId. */
  function sharedBackend(): { backend: WasmBackendHeap; put(v: Float32Array, shape: number[]): tf.TensorInfo; get(t: tf.TensorInfo): Float32Array } {
    const memory = new WebAssembly.Memory({ initial: 1024, maximum: 65536, shared: true });
    let top = 1 << 16;
    const at = new Map<object, { off: number; n: number }>();
    const malloc = (n: number) => { const p = top; top = Math.ceil((top + n) / 16) * 16; return p; };
    const view = (t: tf.TensorInfo) => { const e = at.get(t.dataId as object)!; return new Float32Array(memory.buffer, e.off, e.n); };
    const backend = { wasm: { wasmMemory: memory, _malloc: malloc, _free: () => undefined, HEAPU8: new Uint8Array(memory.buffer) }, typedArrayFromHeap: view } as unknown as WasmBackendHeap;
    return {
      backend, get: view,
      put(v, shape) { const id = {}, off = malloc(4 * v.length); at.set(id, { off, n: v.length }); new Float32Array(memory.buffer, off, v.length).set(v); return { dataId: id, shape, dtype: 'float32' }; },
    };
  }

  it.each([[128, 576, 1536, false], [64, 300, 203, true]])('sgemm M %i K %i N %i (transposeB %s) on 2 threads in place: same bits as 1', async (M, K, N, tB) => {
    const h = sharedBackend();
    const w = wasmSimdFor('wasm', h.backend, false)!;
    expect(w.sharedMemory).toBe(true);
    const a = h.put(randomArray(M * K, rng(1)), [M, K]), b = h.put(randomArray(N * K, rng(2)), tB ? [N, K] : [K, N]);
    const bias = h.put(randomArray(N, rng(3)), [N]), out1 = h.put(new Float32Array(M * N), [M, N]), out2 = h.put(new Float32Array(M * N), [M, N]);
    setWasmThreads(1); simdSgemm(w, a, b, bias, out1, M, N, K, false, tB);
    setWasmThreads(2); simdSgemm(w, a, b, bias, out2, M, N, K, false, tB);
    expectSameBits(new Int32Array(h.get(out1).slice().buffer), new Int32Array(h.get(out2).slice().buffer), 'heap mode');
  });
});

describe('wasm kernel threads, fallbacks and errors', () => {
  it('workers that never start: the caller takes every chunk (no wait on them)', () => {
    const silent: WasmWorkerHost = { cores: 2, spawn: () => ({ postMessage: () => undefined, onMessage: () => undefined, terminate: () => undefined }) };
    setWasmWorkerHost(silent);
    try {
      const h = { wasm: { wasmMemory: new WebAssembly.Memory({ initial: 256, maximum: 65536, shared: true }) } };
      let top = 1 << 16;
      Object.assign(h.wasm, { _malloc: (n: number) => { const p = top; top += Math.ceil(n / 16) * 16; return p; }, _free: () => undefined });
      const views = new Map<object, Float32Array>();
      const backend = { ...h, typedArrayFromHeap: (t: tf.TensorInfo) => views.get(t.dataId as object)! } as unknown as WasmBackendHeap;
      const w = wasmSimdFor('wasm', backend, false)!;
      const mk = (n: number, seed: number, shape: number[]) => {
        const id = {}, off = (backend.wasm._malloc as (n: number) => number)(4 * n), v = new Float32Array(h.wasm.wasmMemory.buffer, off, n);
        if (seed) v.set(randomArray(n, rng(seed)));
        views.set(id, v);
        return { dataId: id, shape, dtype: 'float32' as const };
      };
      const a = mk(64 * 256, 1, [64, 256]), b = mk(256 * 80, 2, [256, 80]), o1 = mk(64 * 80, 0, [64, 80]), o2 = mk(64 * 80, 0, [64, 80]);
      setWasmThreads(1); simdSgemm(w, a, b, null, o1, 64, 80, 256, false, false);
      setWasmThreads(2); simdSgemm(w, a, b, null, o2, 64, 80, 256, false, false);
      expectSameBits(new Int32Array(views.get(o1.dataId)!.slice().buffer), new Int32Array(views.get(o2.dataId)!.slice().buffer), 'silent workers');
    } finally { setWasmWorkerHost(nodeHost); }
  });

  it('without a worker host, threads are off and say why', () => {
    setWasmWorkerHost(null);
    try { expect(threadPlan()).toMatch(/no worker host/); } finally { setWasmWorkerHost(nodeHost); }
  });

  it('TFJS_ATTENTION_WASM_THREADS names a bad value', () => {
    const before = process.env.TFJS_ATTENTION_WASM_THREADS;
    process.env.TFJS_ATTENTION_WASM_THREADS = 'lots';
    try {
      jest.isolateModules(() => {
        const fresh = require('../../kernels/wasm/simd_threads') as typeof import('../../kernels/wasm/simd_threads');
        expect(() => fresh.envThreadCount()).toThrow("[wasmThreads] TFJS_ATTENTION_WASM_THREADS ('lots') must be an integer from 1 to 16");
      });
    } finally {
      if (before === undefined) delete process.env.TFJS_ATTENTION_WASM_THREADS; else process.env.TFJS_ATTENTION_WASM_THREADS = before;
    }
  });

  it('setWasmThreads names a bad count', () => {
    expect(() => setWasmThreads(0)).toThrow('[setWasmThreads] n (0) must be an integer from 1 to 16');
    expect(() => setWasmThreads(2.5)).toThrow(/n \(2.5\)/);
    setWasmThreads(1);
    expect(wasmThreadsStatus()).toMatchObject({ threads: 1, reason: expect.stringMatching(/one thread asked/) });
    setWasmThreads(2);
  });
});

describe('wasm kernel threads, a staging memory that cannot grow (last: it stops the staged pool)', () => {
  it('the call runs on one thread, the pool turns off and says why', () => {
    const a = rand([64, 256], 1), b = rand([256, 128], 3);
    const run = () => tf.engine().runKernel(ProjectionMatMul, { a, b }, { transposeA: false, transposeB: false }) as tf.Tensor;
    setWasmThreads(1);
    const want = (run().dataSync() as Float32Array).slice();
    setWasmThreads(2);
    const proto = StagingHeap.prototype as unknown as { weight: (...args: unknown[]) => number };
    const weight = proto.weight;
    proto.weight = () => { throw new RangeError('WebAssembly.Memory.grow(): Maximum memory size exceeded'); };
    try {
      const y = run();
      expect(Array.from(y.dataSync())).toEqual(Array.from(want));
      y.dispose();
    } finally { proto.weight = weight; }
    expect(wasmThreadsStatus()).toMatchObject({ threads: 1, reason: expect.stringMatching(/staging memory could not hold a call's tensors: WebAssembly.Memory.grow/) });
    stopWasmThreads(); // a stopped pool is dropped: the next prefill starts a fresh one
    const y = run();
    expect(Array.from(y.dataSync())).toEqual(Array.from(want));
    y.dispose();
    expect(wasmThreadsStatus()).toMatchObject({ threads: 2, mode: 'staged', jobs: 1 });
    tf.dispose([a, b]);
  });
});
