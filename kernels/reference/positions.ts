import type { PagedKVCollection } from '../../core/paged_kv_store.js';

/** Absolute position of every packed row: startPositions[b] + (row - rowOffsets[b]). `[T]` */
export function rowPositions(c: Pick<PagedKVCollection, 'rowOffsets' | 'startPositions'>): Int32Array {
  const batch = c.startPositions.length;
  const pos = new Int32Array(c.rowOffsets[batch]);
  for (let b = 0; b < batch; b++) {
    for (let r = c.rowOffsets[b]; r < c.rowOffsets[b + 1]; r++) pos[r] = c.startPositions[b] + (r - c.rowOffsets[b]);
  }
  return pos;
}
