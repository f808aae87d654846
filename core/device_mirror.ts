/**
 * A device-side copy of a PagedKVCache's pools (e.g. WebGPU buffers that kernels write in place).
 *
 * Protocol (kept deliberately simple):
 * - The mirror uploads the host pools (`cache.keys(l)` / `cache.values(l)`) *before* it is
 *   attached with `cache.attachDeviceMirror(m)`; from then on it is the authority on contents.
 * - While attached, page copy-on-write in `fetch` calls `copyPage(src, dst)` (the cache copies
 *   the host pages too, so either side stays self-consistent for page bookkeeping).
 * - Any host access to contents (`writeTokens`, `readSequence`, `keys`, `values`) first calls
 *   `syncToHost()` (download every layer's K and V into the host arrays, synchronously), then the
 *   cache detaches the mirror and calls `dispose()`. Re-attach (after re-uploading) to go on
 *   running on the device.
 * - Page tables, lengths and refcounts stay on the host and never need syncing.
 */
export interface KVDeviceMirror {
  /** Copies page `srcPage` to `dstPage` for every layer, K and V, on the device. */
  copyPage(srcPage: number, dstPage: number): void;
  /** Downloads every layer's K and V pools into the cache's host arrays. */
  syncToHost(): void;
  /** Frees the device buffers; the mirror is not used again. */
  dispose(): void;
}
