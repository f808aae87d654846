/**
 * The WebAssembly SIMD kernels on a shared memory (kernels/wasm/simd_module.ts): where a page is
 * cross-origin isolated, tfjs-wasm runs its threaded build on a `shared` WebAssembly.Memory (maximum
 * 4 GiB) and exposes it as `wasmMemory` (not `asm.memory`); a module importing a plain memory cannot
 * link to it. Node's tfjs-wasm never runs threaded, so the backend here is a stand-in with the same
 * shape (memory, malloc/free, typedArrayFromHeap): the `_shared` build must load on it, report its
 * variant, run sgemm / GEMV / RMSNorm / SwiGLU against float64 references, and read the heap
 * through the memory's current buffer after it grows. A plain memory still gets the plain build, and
 * the shared build must refuse a plain memory (the flags really differ).
 */
import type { TensorInfo } from '@tensorflow/tfjs';

import { simdRmsNorm, simdSgemm, simdSwiGlu } from '../../kernels/wasm/simd_calls';
import { type WasmBackendHeap, type WasmSimdInstance, wasmSimdFor } from '../../kernels/wasm/simd_module';
import { WASM_KERNELS_SIMD128, WASM_KERNELS_SIMD128_SHARED } from '../../kernels/wasm/simd_bytes';

/** A stand-in for tfjs-wasm's backend: a bump allocator on `memory`, tensors by heap offset. */
function fakeBackend(memory: WebAssembly.Memory, asExport: boolean) {
  let top = 1 << 16;
  const offsets = new Map<object, number>();
  const wasm = {
    ...(asExport ? { asm: { memory } } : { wasmMemory: memory }),
    _malloc(n: number): number {
      const p = top;
      top = Math.ceil((top + n) / 16) * 16;
      while (top > memory.buffer.byteLength) memory.grow(16);
      return p;
    },
    _free(): void { /* bump allocator */ },
    get HEAPU8() { return new Uint8Array(memory.buffer); },
  };
  const backend: WasmBackendHeap = {
    wasm,
    typedArrayFromHeap: (t: TensorInfo) => new Float32Array(memory.buffer, offsets.get(t.dataId)!, t.shape.reduce((a, b) => a * b, 1)),
  };
  const tensor = (shape: number[], values?: Float32Array): TensorInfo => {
    const n = shape.reduce((a, b) => a * b, 1);
    const p = wasm._malloc(4 * n);
    const t = { dataId: {}, shape, dtype: 'float32' } as TensorInfo;
    offsets.set(t.dataId, p);
    if (values) new Float32Array(memory.buffer, p, n).set(values);
    return t;
  };
  const read = (t: TensorInfo) => Float32Array.from(backend.typedArrayFromHeap(t) as Float32Array);
  return { backend, tensor, read };
}

function rand(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => { s = (s * 1664525 + 1013904223) >>> 0; return s / 2 ** 32 - 0.5; });
}

function matmulRef(a: Float32Array, b: Float32Array, M: number, N: number, K: number, tB: boolean): Float64Array {
  const out = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += a[m * K + k] * (tB ? b[n * K + k] : b[k * N + n]);
    out[m * N + n] = s;
  }
  return out;
}

function expectClose(got: Float32Array, want: Float64Array, tol: number, what: string): void {
  let worst = 0, at = -1;
  for (let i = 0; i < want.length; i++) { const d = Math.abs(got[i] - want[i]); if (!(d <= worst)) { worst = d; at = i; } }
  if (!(worst <= tol)) throw new Error(`${what}: |got - want| = ${worst} at ${at} (got ${got[at]}, want ${want[at]}) > ${tol}`);
}

const sharedMemory = () => new WebAssembly.Memory({ initial: 64, maximum: 65536, shared: true });

describe('WebAssembly SIMD kernels on a shared memory (tfjs-wasm threaded build)', () => {
  it('the shared build links only to a shared memory, the plain build only to a plain one', () => {
    const plainMod = new WebAssembly.Module(Buffer.from(WASM_KERNELS_SIMD128, 'base64'));
    const sharedMod = new WebAssembly.Module(Buffer.from(WASM_KERNELS_SIMD128_SHARED, 'base64'));
    expect(() => new WebAssembly.Instance(plainMod, { env: { memory: sharedMemory() } })).toThrow(/shared/);
    expect(() => new WebAssembly.Instance(sharedMod, { env: { memory: new WebAssembly.Memory({ initial: 64 }) } })).toThrow();
    expect(() => new WebAssembly.Instance(sharedMod, { env: { memory: sharedMemory() } })).not.toThrow();
  });

  it.each([[true], [false]])('loads on the backend\'s memory (shared %s) and reports it', (shared) => {
    const memory = shared ? sharedMemory() : new WebAssembly.Memory({ initial: 64, maximum: 65536 });
    const { backend } = fakeBackend(memory, !shared);
    const w = wasmSimdFor('wasm', backend, false) as WasmSimdInstance;
    expect(w).not.toBeNull();
    expect(w.sharedMemory).toBe(shared);
    expect(['simd128', 'relaxed']).toContain(w.variant);
  });

  it('sgemm (GEMV and packed GEMM, both b layouts), RMSNorm and SwiGLU are exact on a shared memory that grows', () => {
    const memory = sharedMemory();
    const { backend, tensor, read } = fakeBackend(memory, false);
    const w = wasmSimdFor('wasm', backend, false) as WasmSimdInstance;
    for (const [M, N, K] of [[1, 37, 70], [2, 19, 33], [7, 40, 65], [40, 72, 300]]) {
      for (const tB of [false, true]) {
        const a = rand(M * K, M * 7 + K), b = rand(N * K, N * 13 + (tB ? 1 : 0));
        const at = tensor([M, K], a), bt = tensor(tB ? [N, K] : [K, N], b), out = tensor([M, N]);
        simdSgemm(w, at, bt, null, out, M, N, K, false, tB);
        expectClose(read(out), matmulRef(a, b, M, N, K, tB), 2e-5 * Math.sqrt(K), `sgemm M ${M} N ${N} K ${K} tB ${tB}`);
      }
    }
    const before = memory.buffer.byteLength;
    const big = tensor([1 << 20]); // the heap grows past the views taken before
    expect(memory.buffer.byteLength).toBeGreaterThan(before);
    expect(big.shape).toEqual([1 << 20]);
    const T = 3, H = 40, I = 56;
    const x = rand(T * H, 5), g = rand(H * I, 6), u = rand(H * I, 7), d = rand(I * H, 8), nw = rand(H, 9);
    const xt = tensor([T, H], x), nt = tensor([H], nw), normed = tensor([T, H]);
    simdRmsNorm(w, xt, nt, normed, T, H, 1e-6, false);
    const normRef = new Float64Array(T * H);
    for (let t = 0; t < T; t++) {
      let ss = 0;
      for (let j = 0; j < H; j++) ss += x[t * H + j] ** 2;
      const inv = 1 / Math.sqrt(ss / H + 1e-6);
      for (let j = 0; j < H; j++) normRef[t * H + j] = x[t * H + j] * inv * nw[j];
    }
    expectClose(read(normed), normRef, 1e-5, 'rms_norm');
    const out = tensor([T, H]);
    simdSwiGlu(w, { x: xt, gate: tensor([H, I], g), up: tensor([H, I], u), down: tensor([I, H], d) }, out, T, H, I);
    const gg = matmulRef(x, g, T, I, H, false), uu = matmulRef(x, u, T, I, H, false);
    const act = Float32Array.from(gg, (v, i) => (v / (1 + Math.exp(-v))) * uu[i]);
    expectClose(read(out), matmulRef(act, d, T, H, I, false), 1e-5, 'swiglu');
  });
});
