import { check } from '../errors.js';
import type { PagedKVCollection } from './collection.js';
import type { KVLayerPools, PagedKVStore } from '../../core/paged_kv_store.js';
import { allocKvPool, kvBytesPerElement } from '../../core/kv_dtype.js';
import type { KVDeviceMirror } from './device_mirror.js';
import { PageAllocator } from './page_allocator.js';
import { type SeqState, idList, isIndex, planFetch, validateFetch } from './fetch_plan.js';
import { type PoolSide, copyPage, decodePages, readRows, writeRows } from './page_io.js';
import { type KVCacheParams, type ResolvedKVCacheParams, resolveKVCacheParams } from './params.js';

export type { KVDeviceMirror } from './device_mirror.js';

const W = 'PagedKVCache';

/**
 * A pool of fixed-size pages shared by all sequences, a page table per sequence and its
 * cache length (the reference's paged KV cache manager).
 *
 * Storage: per layer one K and one V pool of `[numPages, nKvHeads, pageSize, headDim]` elements of
 * `params.dtype` (packed codes for the compact dtypes, core/kv_dtype.ts; int8 keeps a float32 scale
 * per token and KV head beside each pool), allocated once. Scales travel with their pages through
 * copy-on-write and the device mirror. Appending writes only the new tokens' slots. Pages have refcounts: a fork shares
 * its source's pages, and `fetch` copies a shared page before a sequence writes into it. Free pages
 * sit on a stack, so fetch/step/write cost depends on the batch, never on the pool size.
 *
 * Life of a step: `fetch` (reserve pages, get the view) -> `writeTokens` / kernels per layer ->
 * `readSequence` / kernels -> `step` (commit lengths). A newer `fetch`, a `step` or a release of one
 * of its sequences makes a view stale; stale views are rejected.
 *
 * @example
 * const cache = new PagedKVCache({ nKvHeads: 2, headDim: 16, pageSize: 16, numLayers: 1, numPages: 64 });
 * cache.addSequence(0);
 * const kv = cache.fetch([0], [5]);            // room for 5 new tokens of sequence 0
 * layer.callRagged(0, hidden, kv, undefined, kv.rowOffsets);
 * cache.step(kv);                              // sequence 0 now holds 5 tokens
 * const beam = cache.forkSequence(0);          // shares sequence 0's pages, copy on write
 * const small = new PagedKVCache({ dtype: 'float16', nKvHeads: 2, headDim: 16, numPages: 64 }); // half the bytes
 */
export class PagedKVCache implements PagedKVStore {
  readonly params: ResolvedKVCacheParams;
  private readonly kPools: PoolSide[] = [];
  private readonly vPools: PoolSide[] = [];
  private readonly alloc: PageAllocator;
  private readonly seqs = new Map<number, SeqState>();
  /** Stamp of each view made by fetch. */
  private readonly issued = new WeakMap<PagedKVCollection, number>();
  private stamp = 0;
  private nextId = 0;
  private mirror: KVDeviceMirror | null = null;
  /** See hostPoolsUntouched. */
  private untouched = true;

  constructor(params: KVCacheParams) {
    this.params = resolveKVCacheParams(params, W);
    const { numLayers, numPages, nKvHeads, pageSize, headDim, dtype, kScale, vScale } = this.params;
    const size = numPages * nKvHeads * pageSize * headDim, rows = numPages * nKvHeads * pageSize;
    const side = (scale: number): PoolSide => ({
      codes: allocKvPool(dtype, size), // [numPages, nKvHeads, pageSize, headDim]
      rowScales: dtype === 'int8' ? new Float32Array(rows) : null, // [numPages, nKvHeads, pageSize]
      scale,
    });
    try {
      for (let l = 0; l < numLayers; l++) {
        this.kPools.push(side(kScale));
        this.vPools.push(side(vScale));
      }
    } catch (e) {
      throw new Error(`[${W}] cannot allocate ${2 * numLayers} pools of ${size} ${dtype} elements (${this.memoryBytes} bytes): ${(e as Error).message}`);
    }
    this.alloc = new PageAllocator(numPages);
  }

  /**
   * Bytes of the K and V pools: 2 * numLayers * numPages * pageSize * nKvHeads * (headDim * bytes
   * per element, + 4 for int8's row scale).
   */
  get memoryBytes(): number {
    const p = this.params;
    const perRow = p.headDim * kvBytesPerElement(p.dtype) + (p.dtype === 'int8' ? 4 : 0);
    return 2 * p.numLayers * p.numPages * p.pageSize * p.nKvHeads * perRow;
  }
  get numFreePages(): number { return this.alloc.numFree; }
  get numPagesInUse(): number { return this.params.numPages - this.alloc.numFree; }
  /** Live sequence ids, in the order they were added. */
  get sequenceIds(): number[] { return Array.from(this.seqs.keys()); }
  /** Owners of a page (0 = free). */
  pageRefCount(page: number): number {
    check(isIndex(page) && page < this.params.numPages, W, () => `page (${page}) must be an integer in [0, ${this.params.numPages})`);
    return this.alloc.refCount(page);
  }

  /** Registers a new empty sequence; returns its id (the given one, or the next free id). */
  addSequence(seqId?: number): number {
    if (seqId === undefined) {
      while (this.seqs.has(this.nextId)) this.nextId++;
      seqId = this.nextId++;
    }
    check(isIndex(seqId), W, () => `addSequence: seqId (${seqId}) must be an integer >= 0`);
    check(!this.seqs.has(seqId), W, () => `addSequence: seqId (${seqId}) already exists`);
    this.seqs.set(seqId, { pages: [], length: 0, gen: 0 });
    return seqId;
  }
  hasSequence(seqId: number): boolean { return this.seqs.has(seqId); }
  /** Frees the sequence's pages (pages shared with a fork stay until the last owner goes). */
  releaseSequence(seqId: number): void {
    const s = this.seq(seqId, 'releaseSequence');
    for (const page of s.pages) this.alloc.release(page);
    this.seqs.delete(seqId);
  }
  /** New sequence sharing `srcId`'s tokens (prefix shared, copy on write). Returns its id. */
  forkSequence(srcId: number, dstId?: number): number {
    const src = this.seq(srcId, 'forkSequence', 'srcId');
    if (dstId !== undefined) {
      check(isIndex(dstId), W, () => `forkSequence: dstId (${dstId}) must be an integer >= 0`);
      check(!this.seqs.has(dstId), W, () => `forkSequence: dstId (${dstId}) already exists`);
    }
    const id = this.addSequence(dstId);
    const dst = this.seqs.get(id)!;
    dst.pages = src.pages.slice(0, Math.ceil(src.length / this.params.pageSize)); // only committed tokens
    for (const page of dst.pages) this.alloc.retain(page);
    dst.length = src.length;
    return id;
  }
  /** Tokens the sequence holds. */
  cacheLength(seqId: number): number { return this.seq(seqId, 'cacheLength').length; }
  /** Page ids of the sequence, in order (may include pages reserved by a fetch not yet stepped). */
  pagesOf(seqId: number): readonly number[] { return this.seq(seqId, 'pagesOf').pages.slice(); }

  /**
   * Prepares a step: makes sure every sequence owns pages for `start + new` tokens (copying
   * shared pages that will be written) and returns the step's view. Atomic: on any error
   * (unknown sequence, duplicate id, out of pages) the cache is left exactly as it was.
   */
  fetch(seqIds: readonly number[], numNewTokens: readonly number[]): PagedKVCollection {
    const batch = validateFetch(seqIds, numNewTokens, this.seqs);
    const ps = this.params.pageSize;
    const { need, cow, maxPagesPerSeq: maxPages, maxContext } = planFetch(seqIds, numNewTokens, this.seqs, this.alloc, ps);
    const { numPages } = this.params;
    check(need <= this.alloc.numFree, W, () =>
      `out of pages: step needs ${need} free pages, ${this.alloc.numFree} are free (pool of ${numPages} pages of ${ps} tokens)`);

    // Apply (cannot fail from here on).
    for (let i = 0; i < cow.length; i += 2) {
      const s = this.seqs.get(seqIds[cow[i]])!;
      const old = s.pages[cow[i + 1]];
      const page = this.alloc.alloc();
      for (let l = 0; l < this.params.numLayers; l++) {
        copyPage(this.kPools[l], old, page, this.params);
        copyPage(this.vPools[l], old, page, this.params);
      }
      this.mirror?.copyPage(old, page);
      this.alloc.release(old);
      s.pages[cow[i + 1]] = page;
    }
    const stamp = ++this.stamp;
    const startPositions = new Int32Array(batch);
    const newTokens = new Int32Array(batch);
    const rowOffsets = new Int32Array(batch + 1);
    const pageTable = new Int32Array(batch * maxPages).fill(-1); // [batch, maxPages]
    for (let b = 0; b < batch; b++) {
      const s = this.seqs.get(seqIds[b])!;
      const pages = Math.ceil((s.length + numNewTokens[b]) / ps);
      while (s.pages.length < pages) s.pages.push(this.alloc.alloc());
      for (let j = 0; j < pages; j++) pageTable[b * maxPages + j] = s.pages[j];
      s.gen = stamp;
      startPositions[b] = s.length;
      newTokens[b] = numNewTokens[b];
      rowOffsets[b + 1] = rowOffsets[b] + numNewTokens[b];
    }
    const view: PagedKVCollection = Object.freeze({
      cache: this, seqIds: Object.freeze(Array.from(seqIds)), startPositions, numNewTokens: newTokens,
      rowOffsets, pageTable, maxPagesPerSeq: maxPages, totalTokens: rowOffsets[batch], maxContext,
    });
    this.issued.set(view, stamp);
    return view;
  }

  /** Commits a fetched step: each sequence's length grows by its new tokens. */
  step(collection: PagedKVCollection): void {
    this.validateCollection(collection, 'step');
    const stamp = this.issued.get(collection)!;
    collection.seqIds.forEach((id, b) => {
      const s = this.seqs.get(id)!;
      s.length += collection.numNewTokens[b];
      s.gen = -stamp;
    });
  }

  /**
   * Gives back what a fetch reserved when its step will not be committed (a failed call): each of
   * its sequences not stepped or re-fetched since keeps only the pages of its committed tokens.
   * Lengths and committed contents are untouched (a copy-on-write copy made by the fetch stays, with
   * the same contents). Idempotent; a collection that is no longer the latest of a sequence is ignored there.
   *
   * @example
   * const kv = cache.fetch([0], [100]);
   * try { layer.callRagged(0, x, kv); cache.step(kv); } catch (e) { cache.abandon(kv); throw e; }
   */
  abandon(collection: PagedKVCollection): void {
    check(collection?.cache === this, W, () => 'abandon: collection belongs to another PagedKVCache');
    const stamp = this.issued.get(collection);
    check(stamp !== undefined, W, () => 'abandon: collection was not made by fetch of this cache');
    const ps = this.params.pageSize;
    for (const id of collection.seqIds) {
      const s = this.seqs.get(id);
      if (!s || s.gen !== stamp) continue;
      const keep = Math.ceil(s.length / ps);
      while (s.pages.length > keep) this.alloc.release(s.pages.pop()!);
      s.gen = 0;
    }
  }

  /** K pool of a float32 cache's layer: `[numPages, nKvHeads, pageSize, headDim]`. Syncs (and drops) a device mirror. */
  keys(layerIdx: number): Float32Array {
    return this.floatPool(layerIdx, 'keys', this.kPools);
  }
  /** V pool of a float32 cache's layer: `[numPages, nKvHeads, pageSize, headDim]`. Syncs (and drops) a device mirror. */
  values(layerIdx: number): Float32Array {
    return this.floatPool(layerIdx, 'values', this.vPools);
  }
  /** A layer's pools in the cache's dtype (codes, and int8's row scales). Syncs (and drops) a device mirror. */
  pools(layerIdx: number): KVLayerPools {
    this.checkLayer(layerIdx, 'pools');
    this.syncToHostIfMirrored();
    this.untouched = false;
    const k = this.kPools[layerIdx], v = this.vPools[layerIdx];
    return { k: k.codes, v: v.codes, kRowScales: k.rowScales, vRowScales: v.rowScales };
  }
  /** Pages `pages` of a layer decoded to float32: `{k, v}` each `[pages.length, nKvHeads, pageSize, headDim]`. */
  decodePages(layerIdx: number, pages: Int32Array): { k: Float32Array; v: Float32Array } {
    this.checkLayer(layerIdx, 'decodePages');
    const n = this.params.numPages;
    for (let i = 0; i < pages.length; i++) {
      check(isIndex(pages[i]) && pages[i] < n, W, () => `decodePages: pages[${i}] (${pages[i]}) must be an integer in [0, ${n})`);
    }
    this.syncToHostIfMirrored();
    return { k: decodePages(this.kPools[layerIdx], pages, this.params), v: decodePages(this.vPools[layerIdx], pages, this.params) };
  }

  /**
   * Writes the new tokens' K and V (`[totalTokens, nKvHeads, headDim]` each, packed in the
   * collection's row order) into their slots. Used by the composite store. The view must be
   * live (fetched, not yet stepped).
   */
  writeTokens(layerIdx: number, collection: PagedKVCollection, k: Float32Array, v: Float32Array): void {
    this.checkLayer(layerIdx, 'writeTokens');
    this.validateCollection(collection, 'writeTokens');
    const want = collection.totalTokens * this.params.nKvHeads * this.params.headDim;
    for (const [name, a] of [['k', k], ['v', v]] as const) {
      check(a instanceof Float32Array, W, () => `writeTokens: ${name} must be a Float32Array, got ${Object.prototype.toString.call(a)}`);
      check(a.length === want, W, () =>
        `writeTokens: ${name}.length (${a.length}) must be totalTokens * nKvHeads * headDim (${collection.totalTokens} * ${this.params.nKvHeads} * ${this.params.headDim} = ${want})`);
    }
    this.syncToHostIfMirrored();
    this.untouched = false;
    writeRows(this.kPools[layerIdx], k, collection, this.params);
    writeRows(this.vPools[layerIdx], v, collection, this.params);
  }

  /**
   * Copies the first `length` tokens of batch entry `b` out of the pages, head-major:
   * returns `{k, v}` each `[nKvHeads, length, headDim]`. Used by the composite attention.
   * `length` may reach startPositions[b] + numNewTokens[b]; the view may be live or just stepped.
   */
  readSequence(layerIdx: number, collection: PagedKVCollection, b: number, length: number): { k: Float32Array; v: Float32Array } {
    this.checkLayer(layerIdx, 'readSequence');
    const batch = collection?.seqIds?.length ?? 0;
    check(isIndex(b) && b < batch, W, () => `readSequence: b (${b}) must be an integer in [0, ${batch})`);
    this.validateCollection(collection, 'readSequence', b);
    const max = collection.startPositions[b] + collection.numNewTokens[b];
    check(isIndex(length) && length <= max, W, () =>
      `readSequence: length (${length}) must be an integer in [0, ${max}] (startPositions[${b}] + numNewTokens[${b}])`);
    this.syncToHostIfMirrored();
    return {
      k: readRows(this.kPools[layerIdx], collection, b, length, this.params), // [nKvHeads, length, headDim]
      v: readRows(this.vPools[layerIdx], collection, b, length, this.params), // [nKvHeads, length, headDim]
    };
  }

  /**
   * One more than the largest page id handed out so far (see PageAllocator.highWater): a device
   * mirror only needs pages `[0, pageHighWater)`, so its memory follows use, not `numPages`.
   */
  get pageHighWater(): number { return this.alloc.highWater; }

  /** The attached device mirror, if any (see KVDeviceMirror for the protocol). */
  get deviceMirror(): KVDeviceMirror | null { return this.mirror; }
  /**
   * True while the host pools are all zeros as allocated (no pool handed out, no writeTokens, no
   * mirror attached yet): a first device mirror may skip uploading them.
   */
  get hostPoolsUntouched(): boolean { return this.untouched; }
  /**
   * Makes `m` the authority on pool contents (upload the host pools before attaching). Attaching
   * while another mirror is attached first syncs and disposes that one; `null` just does that.
   */
  attachDeviceMirror(m: KVDeviceMirror | null): void {
    if (m === this.mirror) return;
    this.syncToHostIfMirrored();
    if (m !== null) this.untouched = false; // its download() may write the host pools
    this.mirror = m;
  }
  /** Downloads the mirror's contents into the host pools, then detaches and disposes it. */
  syncToHostIfMirrored(): void {
    const m = this.mirror;
    if (m === null) return;
    this.mirror = null;
    try {
      m.syncToHost();
    } finally {
      m.dispose();
    }
  }

  /**
   * Throws unless `collection` was made by this cache's latest fetch of its sequences and none of
   * them was released, re-fetched or (unless `b` names one entry for a read) stepped since.
   * O(batch). Kernels writing the pools directly may call it with their own name.
   */
  validateCollection(collection: PagedKVCollection, where: string, b?: number): void {
    check(collection?.cache === this, W, () => `${where}: collection belongs to another PagedKVCache`);
    const stamp = this.issued.get(collection);
    check(stamp !== undefined, W, () => `${where}: collection was not made by fetch of this cache`);
    const from = b ?? 0;
    const to = b === undefined ? collection.seqIds.length : b + 1;
    for (let i = from; i < to; i++) {
      const id = collection.seqIds[i];
      const s = this.seqs.get(id);
      const what = `${where}: stale collection: sequence seqIds[${i}] (${id})`;
      check(s !== undefined, W, () => `${what} was released since the fetch`);
      check(s.gen !== -stamp || b !== undefined, W, () => `${what} was already stepped with it`);
      check(s.gen === stamp || s.gen === -stamp, W, () => `${what} was fetched again or re-added since (fetch #${stamp}, now #${Math.abs(s.gen)})`);
    }
  }

  private seq(seqId: number, where: string, name = 'seqId'): SeqState {
    const s = this.seqs.get(seqId);
    check(s !== undefined, W, () => `${where}: ${name} (${seqId}) is not a known sequence (known: ${idList(this.seqs.keys())})`);
    return s;
  }

  private floatPool(layerIdx: number, where: string, side: PoolSide[]): Float32Array {
    this.checkLayer(layerIdx, where);
    check(this.params.dtype === 'float32', W, () =>
      `${where}: the pools of a '${this.params.dtype}' cache hold packed codes, not floats; use pools(layerIdx) or decodePages`);
    this.syncToHostIfMirrored();
    this.untouched = false;
    return side[layerIdx].codes as Float32Array;
  }

  private checkLayer(layerIdx: number, where: string): void {
    check(isIndex(layerIdx), W, () => `${where}: layerIdx (${layerIdx}) must be an integer >= 0`);
    check(layerIdx < this.params.numLayers, W, () => `layerIdx (${layerIdx}) must be < numLayers (${this.params.numLayers})`);
  }
}
