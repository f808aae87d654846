/// <reference types="@webgpu/types" />
/**
 * WebGPU copy of a PagedKVStore's pools: per layer one K and one V GPUBuffer of
 * `[capacityPages, nKvHeads, pageSize, headDim]` float32, the same layout as the host pools, holding
 * pages `[0, capacityPages)`.
 *
 * The first webgpu kernel that touches a cache uploads every layer once and attaches the mirror
 * (lib/kv_cache/device_mirror.ts). From then on RopeSplitStoreRagged writes K/V slots in place
 * and FlashAttentionRaggedPaged reads them; page copy-on-write runs as buffer copies.
 *
 * Capacity follows use, not the pool size: it covers the cache's `pageHighWater` (pages are handed
 * out 0, 1, 2, ... and freed ones reused first), and grows by doubling, on the GPU, when a fetch
 * hands out a higher page. A pool of 64,000 pages with 500 in use holds 512 pages on the device,
 * so device memory, upload time and kernel time do not depend on `numPages` (on the H200 a 1 GiB
 * pool buffer made the same decode 3x slower than a 16 MiB one).
 *
 * Reading back: WebGPU in Node (and in browsers' main threads) can only read buffers
 * asynchronously, while the cache's `syncToHost()` is synchronous. So before any host access to
 * a cache the kernels wrote, `await syncWebGpuKVCache(cache)`; a host access without it throws
 * (naming that function) instead of returning stale data.
 */
import { AttentionRopeError } from '../../core/errors.js';
import type { KVDeviceMirror } from '../../core/device_mirror.js';
import type { PagedKVStore } from '../../core/paged_kv_store.js';
import type { WebGpuBackendLike } from './gpu_util.js';

const W = 'WebGpuKVMirror';
/** Smallest device capacity, in pages (growth doubles from here). */
const MIN_CAPACITY_PAGES = 64;
/** Usage of the pool buffers (a function: the WebGPU globals exist only once a backend started). */
const poolUsage = (): number => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

export class WebGpuKVMirror implements KVDeviceMirror {
  readonly k: GPUBuffer[] = [];
  readonly v: GPUBuffer[] = [];
  /** True when the device holds writes the host pools lack. */
  dirty = false;
  /** Pages `[0, capacityPages)` live on the device. */
  capacityPages = 0;
  private disposed = false;
  private tmp: GPUBuffer | undefined;

  private constructor(
    private readonly backend: WebGpuBackendLike,
    private readonly hostK: Float32Array[],
    private readonly hostV: Float32Array[],
    private readonly pageFloats: number,
    private readonly numPages: number,
  ) {}

  /** The cache's mirror on this backend's device, uploading and attaching one if needed. */
  static of(backend: WebGpuBackendLike, cache: PagedKVStore): WebGpuKVMirror {
    const m = cache.deviceMirror;
    if (m instanceof WebGpuKVMirror && m.backend === backend && !m.disposed) {
      m.ensureCapacity(cache.pageHighWater);
      return m;
    }
    const { numLayers, numPages, nKvHeads, pageSize, headDim } = cache.params;
    if (cache.params.dtype !== 'float32') {
      throw new AttentionRopeError(
        `[WebGpuKVMirror] kvParams.dtype '${cache.params.dtype}' has no webgpu kernels yet; use a 'float32' cache on webgpu (cpu and wasm run every dtype)`);
    }
    // Host pools first: attaching below detaches (and syncs) any other mirror.
    cache.attachDeviceMirror(null);
    const hostK: Float32Array[] = [];
    const hostV: Float32Array[] = [];
    for (let l = 0; l < numLayers; l++) {
      hostK.push(cache.keys(l));
      hostV.push(cache.values(l));
    }
    const mirror = new WebGpuKVMirror(backend, hostK, hostV, nKvHeads * pageSize * headDim, numPages);
    mirror.ensureCapacity(Math.max(1, cache.pageHighWater));
    cache.attachDeviceMirror(mirror);
    return mirror;
  }

  /**
   * Makes the device buffers hold at least pages `[0, pages)`: new buffers of double the
   * capacity (at most the pool), the old pages copied on the GPU, the new ones uploaded from the
   * host pools (untouched by the device so far, so they are current). No-op when they do already.
   */
  ensureCapacity(pages: number): void {
    if (pages <= this.capacityPages) return;
    const b = this.backend;
    const cap = Math.min(this.numPages, Math.max(pages, 2 * this.capacityPages, MIN_CAPACITY_PAGES));
    const pageBytes = this.pageFloats * 4;
    const bytes = cap * pageBytes;
    const lim = b.device.limits;
    if (bytes > lim.maxStorageBufferBindingSize || bytes > lim.maxBufferSize) {
      throw new AttentionRopeError(`[${W}] ${cap} pages of one layer's K pool (${bytes} bytes) exceed this device's ` +
        `maxStorageBufferBindingSize (${lim.maxStorageBufferBindingSize}) or maxBufferSize (${lim.maxBufferSize}); ` +
        'use fewer pages at once (pageHighWater) or smaller pages');
    }
    const oldBytes = this.capacityPages * pageBytes;
    const old = [...this.k, ...this.v];
    if (oldBytes > 0) {
      b.ensureCommandEncoderReady();
      b.endComputePassEncoder();
    }
    for (const [bufs, hosts] of [[this.k, this.hostK], [this.v, this.hostV]] as const) {
      hosts.forEach((host, l) => {
        const buf = b.device.createBuffer({ size: bytes, usage: poolUsage(), label: `kv-layer${l}` });
        if (oldBytes > 0) b.commandEncoder!.copyBufferToBuffer(bufs[l], 0, buf, 0, oldBytes);
        b.queue.writeBuffer(buf, oldBytes, host.buffer, host.byteOffset + oldBytes, bytes - oldBytes);
        bufs[l] = buf;
      });
    }
    this.capacityPages = cap;
    if (oldBytes > 0) {
      // The copies must be submitted before the old buffers can be destroyed.
      b.submitQueue();
      for (const buf of old) buf.destroy();
    }
  }

  copyPage(srcPage: number, dstPage: number): void {
    this.ensureCapacity(Math.max(srcPage, dstPage) + 1);
    const b = this.backend;
    const n = this.pageFloats * 4;
    // WebGPU copies never have the same buffer on both sides: go through a one-page buffer.
    this.tmp ??= b.device.createBuffer({ size: n, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    b.ensureCommandEncoderReady();
    b.endComputePassEncoder();
    for (const buf of [...this.k, ...this.v]) {
      b.commandEncoder!.copyBufferToBuffer(buf, srcPage * n, this.tmp, 0, n);
      b.commandEncoder!.copyBufferToBuffer(this.tmp, 0, buf, dstPage * n, n);
    }
    // The cache copies its host pages too, so a clean mirror stays clean.
  }

  syncToHost(): void {
    if (!this.dirty) return;
    throw new AttentionRopeError(`[${W}] syncToHost: the GPU holds K/V that the host pools lack, and WebGPU reads ` +
      'back only asynchronously; call `await syncWebGpuKVCache(cache)` before reading or writing the cache on the host');
  }

  /** Reads every layer's K and V (pages `[0, capacityPages)`) back into the host pools. */
  async download(): Promise<void> {
    if (!this.dirty || this.disposed) return;
    const b = this.backend;
    const size = this.k[0].size;
    const pending: Promise<void>[] = [];
    b.ensureCommandEncoderReady();
    b.endComputePassEncoder();
    const staging: [GPUBuffer, Float32Array][] = [];
    this.k.forEach((buf, l) => staging.push([buf, this.hostK[l]]));
    this.v.forEach((buf, l) => staging.push([buf, this.hostV[l]]));
    const reads = staging.map(([src, host]) => {
      const st = b.device.createBuffer({ size, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
      b.commandEncoder!.copyBufferToBuffer(src, 0, st, 0, size);
      return [st, host] as const;
    });
    b.submitQueue();
    for (const [st, host] of reads) {
      pending.push(st.mapAsync(GPUMapMode.READ).then(() => {
        host.set(new Float32Array(st.getMappedRange()));
        st.unmap();
        st.destroy();
      }));
    }
    await Promise.all(pending);
    this.dirty = false;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const buf of [...this.k, ...this.v]) buf.destroy();
    this.tmp?.destroy();
  }
}

/**
 * Copies what webgpu kernels wrote into `cache` back to its host pools; afterwards host reads
 * (`cache.keys`, `readSequence`, ...) work, and detach the device copy. No-op without one.
 *
 * @example
 * await syncWebGpuKVCache(cache);
 * const k = cache.keys(0);
 */
export async function syncWebGpuKVCache(cache: PagedKVStore): Promise<void> {
  const m = cache.deviceMirror;
  if (m instanceof WebGpuKVMirror) await m.download();
}
