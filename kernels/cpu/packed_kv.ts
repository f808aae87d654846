/**
 * The TypeScript kernels on a compact cache (kvParams.dtype other than float32, core/kv_dtype.ts):
 * attention decodes just the pages the step reads into a float32 scratch pool and runs on a view
 * whose page table points into it; the store computes float32 K/V rows and lets the cache encode
 * them into their slots (int8 scales beside the pages).
 */
import type { FlashAttentionRaggedPagedAttrs } from '../kernel_names.js';
import type { PagedKVCollection } from '../../core/paged_kv_store.js';

/** Float32 pools holding only the pages the collection reads, and attrs whose collection points there. */
export function decodedStep(a: FlashAttentionRaggedPagedAttrs): { kPool: Float32Array; vPool: Float32Array; attrs: FlashAttentionRaggedPagedAttrs } {
  const c = a.collection, ps = c.cache.params.pageSize, batch = c.seqIds.length, P = c.maxPagesPerSeq;
  const slotOf = new Map<number, number>();
  const remapped = new Int32Array(c.pageTable.length).fill(-1); // [batch, maxPagesPerSeq]
  for (let b = 0; b < batch; b++) {
    const pages = Math.ceil((c.startPositions[b] + c.numNewTokens[b]) / ps);
    for (let j = 0; j < pages; j++) {
      const page = c.pageTable[b * P + j];
      let slot = slotOf.get(page);
      if (slot === undefined) { slot = slotOf.size; slotOf.set(page, slot); }
      remapped[b * P + j] = slot;
    }
  }
  const { k, v } = c.cache.decodePages(a.layerIdx, Int32Array.from(slotOf.keys())); // [pages, nKv, ps, D] each
  const collection: PagedKVCollection = { ...c, pageTable: remapped };
  return { kPool: k, vPool: v, attrs: { ...a, collection } };
}
