/// <reference types="@webgpu/types" />
/**
 * WebGPU copy of a PagedKVStore's pools: per layer one K and one V GPUBuffer of
 * `[capacityPages, nKvHeads, pageSize, headDim]` elements of the cache's dtype (the host pools'
 * bytes as they are: float32, float16/bfloat16 pairs or int8/e4m3 quads per u32 word), and for
 * int8 one K and one V row-scale buffer `[capacityPages, nKvHeads, pageSize]` float32, holding
 * pages `[0, capacityPages)`. Every page operation below moves codes and scales together.
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
import type { KVPool } from '../../core/kv_dtype.js';
import type { WebGpuBackendLike } from './gpu_util.js';

const W = 'WebGpuKVMirror';
/** Smallest device capacity, in pages (growth doubles from here). */
const MIN_CAPACITY_PAGES = 64;
/** Usage of the pool buffers (a function: the WebGPU globals exist only once a backend started). */
const poolUsage = (): number => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** One kind of per-layer buffer (K codes, V codes, K scales, V scales): host arrays and bytes per page. */
interface PoolGroup { bufs: GPUBuffer[]; hosts: ArrayBufferView[]; pageBytes: number }

export class WebGpuKVMirror implements KVDeviceMirror {
  /** Per layer: K codes, V codes; int8 adds K and V row scales (empty otherwise). */
  readonly k: GPUBuffer[] = [];
  readonly v: GPUBuffer[] = [];
  readonly kScales: GPUBuffer[] = [];
  readonly vScales: GPUBuffer[] = [];
  private readonly groups: PoolGroup[];
  /** True when the device holds writes the host pools lack. */
  dirty = false;
  /** Pages `[0, capacityPages)` live on the device. */
  capacityPages = 0;
  private disposed = false;
  private tmp: GPUBuffer | undefined;

  private constructor(
    private readonly backend: WebGpuBackendLike,
    hosts: { k: ArrayBufferView[]; v: ArrayBufferView[]; kS: Float32Array[]; vS: Float32Array[] },
    pageBytes: number,
    rowsPerPage: number,
    private readonly numPages: number,
    /**
     * The host pools were all zeros when this mirror attached: pages it adds later are still
     * zeros on the host (while attached only download() writes them, and only pages it holds),
     * so new device buffers (zeroed by WebGPU) need no upload. A fresh 2048-token prefill of a
     * 16-layer model otherwise copies ~135 MB of zeros through the queue first.
     */
    private readonly hostZeros = false,
  ) {
    this.groups = [
      { bufs: this.k, hosts: hosts.k, pageBytes }, { bufs: this.v, hosts: hosts.v, pageBytes },
      { bufs: this.kScales, hosts: hosts.kS, pageBytes: rowsPerPage * 4 }, { bufs: this.vScales, hosts: hosts.vS, pageBytes: rowsPerPage * 4 },
    ].filter((g) => g.hosts.length > 0);
  }

  /** The cache's mirror on this backend's device, uploading and attaching one if needed. */
  static of(backend: WebGpuBackendLike, cache: PagedKVStore): WebGpuKVMirror {
    const m = cache.deviceMirror;
    if (m instanceof WebGpuKVMirror && m.backend === backend && !m.disposed) {
      m.ensureCapacity(cache.pageHighWater);
      return m;
    }
    const { numLayers, numPages, nKvHeads, pageSize, headDim, dtype } = cache.params;
    if (dtype !== 'float32' && headDim % 4 !== 0) {
      throw new AttentionRopeError(`[${W}] a '${dtype}' cache on webgpu needs headDim (${headDim}) to be a multiple of 4 ` +
        '(codes are read in u32 words); use a float32 cache, or the cpu / wasm backend');
    }
    // Host pools first: attaching below detaches (and syncs) any other mirror.
    cache.attachDeviceMirror(null);
    // A fresh cache's pools are all zeros: nothing to upload (read before pools() below marks them handed out).
    const zeros = cache.hostPoolsUntouched === true;
    const hosts = { k: [] as ArrayBufferView[], v: [] as ArrayBufferView[], kS: [] as Float32Array[], vS: [] as Float32Array[] };
    for (let l = 0; l < numLayers; l++) {
      const p = cache.pools(l);
      hosts.k.push(p.k);
      hosts.v.push(p.v);
      if (p.kRowScales && p.vRowScales) { hosts.kS.push(p.kRowScales); hosts.vS.push(p.vRowScales); }
    }
    const rows = nKvHeads * pageSize;
    const mirror = new WebGpuKVMirror(backend, hosts, rows * headDim * (hosts.k[0] as KVPool).BYTES_PER_ELEMENT, rows, numPages, zeros);
    mirror.ensureCapacity(Math.max(1, cache.pageHighWater));
    cache.attachDeviceMirror(mirror);
    return mirror;
  }

  /**
   * Makes the device buffers hold at least pages `[0, pages)`: new buffers of double the
   * capacity (at most the pool), the old pages copied on the GPU, the new ones uploaded from the
   * host pools (untouched by the device so far, so they are current; nothing to upload where the
   * host pools were all zeros at attach, see hostZeros). No-op when they do already.
   */
  ensureCapacity(pages: number): void {
    if (pages <= this.capacityPages) return;
    const b = this.backend;
    const cap = Math.min(this.numPages, Math.max(pages, 2 * this.capacityPages, MIN_CAPACITY_PAGES));
    const bytes = cap * this.groups[0].pageBytes;
    const lim = b.device.limits;
    if (bytes > lim.maxStorageBufferBindingSize || bytes > lim.maxBufferSize) {
      throw new AttentionRopeError(`[${W}] ${cap} pages of one layer's K pool (${bytes} bytes) exceed this device's ` +
        `maxStorageBufferBindingSize (${lim.maxStorageBufferBindingSize}) or maxBufferSize (${lim.maxBufferSize}); ` +
        'use fewer pages at once (pageHighWater) or smaller pages');
    }
    const hadPages = this.capacityPages > 0;
    const old = this.groups.flatMap((g) => g.bufs);
    if (hadPages) {
      b.ensureCommandEncoderReady();
      b.endComputePassEncoder();
    }
    for (const { bufs, hosts, pageBytes } of this.groups) {
      const oldBytes = this.capacityPages * pageBytes, size = cap * pageBytes;
      hosts.forEach((host, l) => {
        const buf = b.device.createBuffer({ size, usage: poolUsage(), label: `kv-layer${l}` });
        if (oldBytes > 0) b.commandEncoder!.copyBufferToBuffer(bufs[l], 0, buf, 0, oldBytes);
        if (!this.hostZeros) b.queue.writeBuffer(buf, oldBytes, host.buffer, host.byteOffset + oldBytes, size - oldBytes);
        bufs[l] = buf;
      });
    }
    this.capacityPages = cap;
    if (hadPages) {
      // The copies must be submitted before the old buffers can be destroyed.
      b.submitQueue();
      for (const buf of old) buf.destroy();
    }
  }

  copyPage(srcPage: number, dstPage: number): void {
    this.ensureCapacity(Math.max(srcPage, dstPage) + 1);
    const b = this.backend;
    // WebGPU copies never have the same buffer on both sides: go through a one-page buffer.
    this.tmp ??= b.device.createBuffer({ size: this.groups[0].pageBytes, usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    b.ensureCommandEncoderReady();
    b.endComputePassEncoder();
    for (const { bufs, pageBytes: n } of this.groups) {
      for (const buf of bufs) {
        b.commandEncoder!.copyBufferToBuffer(buf, srcPage * n, this.tmp, 0, n);
        b.commandEncoder!.copyBufferToBuffer(this.tmp, 0, buf, dstPage * n, n);
      }
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
    const pending: Promise<void>[] = [];
    b.ensureCommandEncoderReady();
    b.endComputePassEncoder();
    const staging: [GPUBuffer, ArrayBufferView][] = [];
    for (const g of this.groups) g.bufs.forEach((buf, l) => staging.push([buf, g.hosts[l]]));
    const reads = staging.map(([src, host]) => {
      const st = b.device.createBuffer({ size: src.size, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ });
      b.commandEncoder!.copyBufferToBuffer(src, 0, st, 0, src.size);
      return [st, host] as const;
    });
    b.submitQueue();
    for (const [st, host] of reads) {
      pending.push(st.mapAsync(GPUMapMode.READ).then(() => {
        new Uint8Array(host.buffer, host.byteOffset, st.size).set(new Uint8Array(st.getMappedRange()));
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
    for (const g of this.groups) for (const buf of g.bufs) buf.destroy();
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
