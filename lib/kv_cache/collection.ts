/** One step's view of the cache lives in core/paged_kv_store.ts (what kernels see); re-exported for lib/. */
export type { PagedKVCollection } from '../../core/paged_kv_store.js';
