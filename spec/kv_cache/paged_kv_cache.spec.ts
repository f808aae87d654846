import { PagedKVCache, type KVDeviceMirror } from '../../lib/kv_cache/paged_kv_cache';
import type { PagedKVCollection } from '../../lib/kv_cache/collection';
import type { KVCacheParams } from '../../lib/kv_cache/params';

/**
 * Value of component d of KV head h at position pos, written by a sequence of data tag `tag`,
 * for layer l, K (kv = 0) or V (kv = 1). Integers well under 2^24: exact in float32.
 */
const val = (l: number, kv: number, tag: number, pos: number, h: number, d: number) =>
  ((((l * 2 + kv) * 16 + tag) * 256 + pos) * 4 + h) * 16 + d + 1;

/** What each sequence should hold: the data tag of each of its positions. */
type Model = Map<number, number[]>;

function packed(cache: PagedKVCache, c: PagedKVCollection, l: number, kv: number, tags: Map<number, number>): Float32Array {
  const { nKvHeads, headDim } = cache.params;
  const out = new Float32Array(c.totalTokens * nKvHeads * headDim); // [T, nKvHeads, headDim]
  c.seqIds.forEach((id, b) => {
    for (let i = 0; i < c.numNewTokens[b]; i++) {
      const row = c.rowOffsets[b] + i;
      for (let h = 0; h < nKvHeads; h++)
        for (let d = 0; d < headDim; d++)
          out[(row * nKvHeads + h) * headDim + d] = val(l, kv, tags.get(id)!, c.startPositions[b] + i, h, d);
    }
  });
  return out;
}

/** fetch, write every layer, step; records the written tags in the model. */
function runStep(cache: PagedKVCache, model: Model, ids: number[], counts: number[], tagOf = (id: number) => id): PagedKVCollection {
  const c = cache.fetch(ids, counts);
  const tags = new Map(ids.map((id) => [id, tagOf(id)]));
  for (let l = 0; l < cache.params.numLayers; l++)
    cache.writeTokens(l, c, packed(cache, c, l, 0, tags), packed(cache, c, l, 1, tags));
  cache.step(c);
  ids.forEach((id, b) => {
    if (!model.has(id)) model.set(id, []);
    for (let i = 0; i < counts[b]; i++) model.get(id)!.push(tags.get(id)!);
  });
  return c;
}

/** Reads every sequence of the model back and compares it element by element. */
function verify(cache: PagedKVCache, model: Model): void {
  const ids = Array.from(model.keys());
  const c = cache.fetch(ids, ids.map(() => 0));
  const { nKvHeads, headDim, numLayers } = cache.params;
  ids.forEach((id, b) => {
    const tags = model.get(id)!;
    expect(cache.cacheLength(id)).toBe(tags.length);
    for (let l = 0; l < numLayers; l++) {
      const { k, v } = cache.readSequence(l, c, b, tags.length); // [nKvHeads, len, headDim]
      expect(k.length).toBe(nKvHeads * tags.length * headDim);
      const wantK = new Float32Array(k.length);
      const wantV = new Float32Array(v.length);
      for (let h = 0; h < nKvHeads; h++)
        for (let p = 0; p < tags.length; p++)
          for (let d = 0; d < headDim; d++) {
            wantK[(h * tags.length + p) * headDim + d] = val(l, 0, tags[p], p, h, d);
            wantV[(h * tags.length + p) * headDim + d] = val(l, 1, tags[p], p, h, d);
          }
      expect(k).toEqual(wantK);
      expect(v).toEqual(wantV);
    }
  });
}

/** Fills the pools with NaN so any read of a slot never written shows up. */
function poison(cache: PagedKVCache): void {
  for (let l = 0; l < cache.params.numLayers; l++) {
    cache.keys(l).fill(NaN);
    cache.values(l).fill(NaN);
  }
}

/** Everything observable about the cache's state. */
function snapshot(cache: PagedKVCache) {
  const seqs = cache.sequenceIds.map((id) => ({ id, pages: cache.pagesOf(id), len: cache.cacheLength(id) }));
  const refs = Array.from({ length: cache.params.numPages }, (_, p) => cache.pageRefCount(p));
  const pools: Float32Array[] = [];
  for (let l = 0; l < cache.params.numLayers; l++) pools.push(cache.keys(l).slice(), cache.values(l).slice());
  return { seqs, refs, free: cache.numFreePages, inUse: cache.numPagesInUse, pools };
}

const base = (o: Partial<KVCacheParams> = {}): KVCacheParams => ({ nKvHeads: 2, headDim: 4, pageSize: 3, numLayers: 2, numPages: 40, ...o });

describe('PagedKVCache round trip', () => {
  for (const pageSize of [1, 3, 16]) {
    it(`writes and reads ragged batches back exactly (pageSize ${pageSize}, scrambled pages)`, () => {
      const cache = new PagedKVCache(base({ pageSize, numPages: Math.ceil(400 / pageSize) + 40 }));
      poison(cache);
      // Shuffle the free list: grow five sequences in interleaved steps, release three of them.
      const scratch = [100, 101, 102, 103, 104];
      scratch.forEach((id) => cache.addSequence(id));
      for (let r = 0; r < 4; r++) cache.step(cache.fetch(scratch, scratch.map((_, i) => 1 + ((i + r) % 3) * pageSize)));
      [101, 104, 102].forEach((id) => cache.releaseSequence(id));

      const model: Model = new Map();
      const ids = [0, 1, 2];
      ids.forEach((id) => cache.addSequence(id));
      const plan = [
        [5, 1, 0], [0, 2, 7], [1, 1, 1], [pageSize * 2 + 1, 0, 3], [1, pageSize + 2, 1], [4, 4, 4],
      ];
      for (const counts of plan) runStep(cache, model, ids, counts);
      runStep(cache, model, [2, 0], [3, 2]); // another order, a subset
      verify(cache, model);
      // Pages came out of the shuffled free list, not in order.
      const pages = ids.flatMap((id) => cache.pagesOf(id));
      expect(pages.some((p, i) => i > 0 && p !== pages[i - 1] + 1)).toBe(true);
      expect(new Set(pages).size).toBe(pages.length);
    });
  }

  it('describes the step in the collection', () => {
    const cache = new PagedKVCache(base({ pageSize: 4 }));
    [7, 3, 9].forEach((id) => cache.addSequence(id));
    cache.step(cache.fetch([7, 3], [6, 1]));
    const c = cache.fetch([7, 3, 9], [3, 0, 0]);
    expect(Array.from(c.startPositions)).toEqual([6, 1, 0]);
    expect(Array.from(c.numNewTokens)).toEqual([3, 0, 0]);
    expect(Array.from(c.rowOffsets)).toEqual([0, 3, 3, 3]);
    expect(c.totalTokens).toBe(3);
    expect(c.maxContext).toBe(9);
    expect(c.maxPagesPerSeq).toBe(3);
    const p7 = cache.pagesOf(7);
    const p3 = cache.pagesOf(3);
    expect(Array.from(c.pageTable)).toEqual([...p7, p3[0], -1, -1, -1, -1, -1]);
    expect(cache.cacheLength(7)).toBe(6); // fetch does not change lengths
    cache.step(c);
    expect(cache.cacheLength(7)).toBe(9);
    expect(cache.cacheLength(3)).toBe(1);
  });

  it('gives an empty sequence with no new tokens a row of -1 and at least one column', () => {
    const cache = new PagedKVCache(base());
    cache.addSequence(0);
    const c = cache.fetch([0], [0]);
    expect(c.maxPagesPerSeq).toBe(1);
    expect(Array.from(c.pageTable)).toEqual([-1]);
    expect(c.totalTokens).toBe(0);
    expect(cache.numPagesInUse).toBe(0);
    cache.step(c);
    expect(cache.cacheLength(0)).toBe(0);
  });

  it('keeps pages reserved by a fetch that was never stepped, and reuses them', () => {
    const cache = new PagedKVCache(base({ pageSize: 2 }));
    cache.addSequence(0);
    const stale = cache.fetch([0], [5]);
    expect(cache.numPagesInUse).toBe(3);
    const model: Model = new Map();
    runStep(cache, model, [0], [4]);
    expect(cache.numPagesInUse).toBe(3);
    expect(() => cache.step(stale)).toThrow(/step: stale collection: sequence seqIds\[0\] \(0\) was fetched again/);
    verify(cache, model);
  });

  it('auto-assigns ids, releases pages, reports memory', () => {
    const p = base({ numPages: 10 });
    const cache = new PagedKVCache(p);
    expect(cache.memoryBytes).toBe(2 * 2 * 10 * 3 * 2 * 4 * 4);
    expect(cache.keys(1).length).toBe(10 * 2 * 3 * 4);
    expect(cache.keys(0)).not.toBe(cache.keys(1));
    expect(cache.keys(0)).not.toBe(cache.values(0));
    expect(cache.addSequence()).toBe(0);
    expect(cache.addSequence(1)).toBe(1);
    expect(cache.addSequence()).toBe(2);
    expect(cache.hasSequence(1)).toBe(true);
    cache.step(cache.fetch([0, 2], [7, 3]));
    expect(cache.numPagesInUse).toBe(4);
    expect(cache.numFreePages).toBe(6);
    cache.releaseSequence(0);
    expect(cache.hasSequence(0)).toBe(false);
    expect(cache.numFreePages).toBe(9);
    cache.releaseSequence(2);
    expect(cache.numFreePages).toBe(10);
    expect(cache.sequenceIds).toEqual([1]);
  });
});

describe('PagedKVCache fork and copy on write', () => {
  it('shares pages, copies the partly filled page before the fork writes it', () => {
    const cache = new PagedKVCache(base({ pageSize: 4 }));
    poison(cache);
    const model: Model = new Map();
    cache.addSequence(0);
    runStep(cache, model, [0], [6], () => 1);
    const fork = cache.forkSequence(0, 5);
    expect(fork).toBe(5);
    model.set(5, model.get(0)!.slice());
    const [a0, a1] = cache.pagesOf(0);
    expect(cache.pagesOf(5)).toEqual([a0, a1]);
    expect(cache.pageRefCount(a1)).toBe(2);
    const free = cache.numFreePages;
    runStep(cache, model, [5], [3], () => 2); // writes slots 6..8: page 1 copied, page 2 new
    expect(cache.numFreePages).toBe(free - 2);
    const f = cache.pagesOf(5);
    expect(f[0]).toBe(a0);
    expect(f[1]).not.toBe(a1);
    expect(cache.pageRefCount(a1)).toBe(1);
    expect(cache.pageRefCount(a0)).toBe(2);
    verify(cache, model); // the source is untouched, the fork has both parts
    runStep(cache, model, [0], [1], () => 3); // now the sole owner of a1: written in place
    expect(cache.pagesOf(0)).toEqual([a0, a1]);
    verify(cache, model);
    cache.releaseSequence(0);
    expect(cache.pageRefCount(a0)).toBe(1);
    verify(cache, new Map([[5, model.get(5)!]]));
    cache.releaseSequence(5);
    expect(cache.numFreePages).toBe(cache.params.numPages);
  });

  it('copies a page written by two owners in one step only once', () => {
    const cache = new PagedKVCache(base({ pageSize: 4 }));
    poison(cache);
    const model: Model = new Map();
    cache.addSequence(0);
    runStep(cache, model, [0], [5], () => 1);
    cache.forkSequence(0, 1);
    cache.forkSequence(0, 2);
    for (const id of [1, 2]) model.set(id, model.get(0)!.slice());
    const free = cache.numFreePages;
    runStep(cache, model, [0, 1, 2], [1, 1, 0], (id) => 4 + id); // 2 writers of a 3-owner page: 2 copies
    expect(cache.numFreePages).toBe(free - 2);
    runStep(cache, model, [1, 2], [1, 1], (id) => 8 + id); // 1 owns its copy; 2 copies once more
    verify(cache, model);
    const last = [0, 1, 2].map((id) => cache.pagesOf(id)[1]);
    expect(new Set(last).size).toBe(3);
  });

  it('needs no copy when the fork starts on a page boundary, and shares only committed pages', () => {
    const cache = new PagedKVCache(base({ pageSize: 3 }));
    const model: Model = new Map();
    cache.addSequence(0);
    runStep(cache, model, [0], [6]);
    const pending = cache.fetch([0], [2]); // reserves a third page, not committed
    cache.forkSequence(0, 1);
    expect(cache.pagesOf(1)).toEqual(cache.pagesOf(0).slice(0, 2));
    model.set(1, model.get(0)!.slice());
    const free = cache.numFreePages;
    runStep(cache, model, [1], [2]);
    expect(cache.numFreePages).toBe(free - 1);
    expect(() => cache.step(pending)).not.toThrow(); // fork does not invalidate the source's view
    cache.releaseSequence(0);
    model.delete(0);
    verify(cache, model);
  });

  it('copies the page through an attached device mirror and syncs before host access', () => {
    const cache = new PagedKVCache(base({ pageSize: 4, numLayers: 1 }));
    const model: Model = new Map();
    cache.addSequence(0);
    runStep(cache, model, [0], [2]);
    cache.forkSequence(0, 1);
    const calls: string[] = [];
    const hostK = cache.keys(0);
    const mirror: KVDeviceMirror = {
      copyPage: (s, d) => calls.push(`copy ${s}->${d}`),
      syncToHost: () => { calls.push('sync'); hostK[0] = 12345; },
      dispose: () => calls.push('dispose'),
    };
    cache.attachDeviceMirror(mirror);
    expect(cache.deviceMirror).toBe(mirror);
    const old = cache.pagesOf(1)[0];
    const c = cache.fetch([1], [1]);
    const fresh = cache.pagesOf(1)[0];
    expect(calls).toEqual([`copy ${old}->${fresh}`]);
    expect(cache.deviceMirror).toBe(mirror); // fetch/step never sync
    cache.step(c);
    expect(cache.keys(0)[0]).toBe(12345);
    expect(calls).toEqual([`copy ${old}->${fresh}`, 'sync', 'dispose']);
    expect(cache.deviceMirror).toBeNull();

    const second: string[] = [];
    const m2: KVDeviceMirror = { copyPage: () => {}, syncToHost: () => second.push('sync'), dispose: () => second.push('dispose') };
    cache.attachDeviceMirror(m2);
    const c2 = cache.fetch([0], [0]);
    cache.readSequence(0, c2, 0, 2);
    expect(second).toEqual(['sync', 'dispose']);
    const m3: KVDeviceMirror = { copyPage: () => {}, syncToHost: () => second.push('sync3'), dispose: () => second.push('dispose3') };
    cache.attachDeviceMirror(m3);
    cache.attachDeviceMirror(null);
    expect(second).toEqual(['sync', 'dispose', 'sync3', 'dispose3']);
  });
});

describe('PagedKVCache out of pages', () => {
  it('throws with the figures and leaves the cache exactly as it was', () => {
    const cache = new PagedKVCache(base({ pageSize: 4, numPages: 8 }));
    const model: Model = new Map();
    [0, 1].forEach((id) => cache.addSequence(id));
    runStep(cache, model, [0, 1], [6, 5]);
    cache.forkSequence(0, 2);
    model.set(2, model.get(0)!.slice());
    const live = cache.fetch([1], [0]);
    const before = snapshot(cache);
    expect(before.free).toBe(4);
    // growth alone fits (4 pages), the copy-on-write of sequence 2's shared page does not
    expect(() => cache.fetch([0, 1, 2], [2, 8, 7])).toThrow(
      '[PagedKVCache] out of pages: step needs 5 free pages, 4 are free (pool of 8 pages of 4 tokens)');
    expect(snapshot(cache)).toEqual(before);
    expect(() => cache.fetch([1], [100])).toThrow('step needs 25 free pages, 4 are free');
    expect(snapshot(cache)).toEqual(before);
    cache.step(live); // a failed fetch does not invalidate earlier views
    runStep(cache, model, [0, 2], [2, 5]);
    verify(cache, model);
  });
});

describe('PagedKVCache bad input', () => {
  const make = () => {
    const cache = new PagedKVCache(base({ numLayers: 2 }));
    [0, 1].forEach((id) => cache.addSequence(id));
    return cache;
  };
  it('names the argument and its value', () => {
    const cache = make();
    const e = (f: () => unknown) => expect(f);
    e(() => cache.addSequence(1)).toThrow('[PagedKVCache] addSequence: seqId (1) already exists');
    e(() => cache.addSequence(-1)).toThrow('addSequence: seqId (-1) must be an integer >= 0');
    e(() => cache.addSequence(1.5)).toThrow('addSequence: seqId (1.5) must be an integer >= 0');
    e(() => cache.releaseSequence(9)).toThrow('[PagedKVCache] releaseSequence: seqId (9) is not a known sequence (known: [0, 1])');
    e(() => cache.forkSequence(9)).toThrow('forkSequence: srcId (9) is not a known sequence');
    e(() => cache.forkSequence(0, 1)).toThrow('forkSequence: dstId (1) already exists');
    e(() => cache.cacheLength(4)).toThrow('cacheLength: seqId (4) is not a known sequence');
    e(() => cache.fetch([0, 1], [1])).toThrow('fetch: seqIds.length (2) must equal numNewTokens.length (1)');
    e(() => cache.fetch([], [])).toThrow('fetch: seqIds must name at least one sequence');
    e(() => cache.fetch([0, 1], [1, -2])).toThrow('[PagedKVCache] numNewTokens[1] (-2) must be >= 0');
    e(() => cache.fetch([0, 1], [1, 0.5])).toThrow('numNewTokens[1] (0.5) must be an integer');
    e(() => cache.fetch([0, 0], [1, 1])).toThrow('seqIds[1] (0) repeats seqIds[0] (0)');
    e(() => cache.fetch([0, 7], [1, 1])).toThrow('seqIds[1] (7) is not a known sequence (known: [0, 1])');
    e(() => cache.fetch([-3], [1])).toThrow('seqIds[0] (-3) must be an integer >= 0');
    expect(cache.numPagesInUse).toBe(0); // nothing was reserved by the failed fetches

    const c = cache.fetch([0, 1], [2, 1]);
    const k = new Float32Array(3 * 2 * 4);
    e(() => cache.writeTokens(5, c, k, k)).toThrow('[PagedKVCache] layerIdx (5) must be < numLayers (2)');
    e(() => cache.writeTokens(-1, c, k, k)).toThrow('writeTokens: layerIdx (-1) must be an integer >= 0');
    e(() => cache.keys(2)).toThrow('layerIdx (2) must be < numLayers (2)');
    e(() => cache.writeTokens(0, c, k.subarray(1), k)).toThrow(
      'writeTokens: k.length (23) must be totalTokens * nKvHeads * headDim (3 * 2 * 4 = 24)');
    e(() => cache.writeTokens(0, c, k, new Float32Array(4))).toThrow('writeTokens: v.length (4) must be');
    e(() => cache.readSequence(0, c, 2, 1)).toThrow('readSequence: b (2) must be an integer in [0, 2)');
    e(() => cache.readSequence(0, c, 1, 2)).toThrow(
      'readSequence: length (2) must be an integer in [0, 1] (startPositions[1] + numNewTokens[1])');
  });

  it('rejects stale and foreign collections', () => {
    const cache = make();
    const other = make();
    const c = cache.fetch([0, 1], [2, 1]);
    expect(() => other.step(c)).toThrow('[PagedKVCache] step: collection belongs to another PagedKVCache');
    expect(() => cache.step({ ...c })).toThrow('step: collection was not made by fetch of this cache');
    cache.step(c);
    expect(() => cache.step(c)).toThrow('step: stale collection: sequence seqIds[0] (0) was already stepped with it');
    expect(() => cache.writeTokens(0, c, new Float32Array(24), new Float32Array(24))).toThrow('writeTokens: stale collection');
    expect(cache.readSequence(0, c, 1, 1).k.length).toBe(8); // reading a just-stepped view is fine
    const c2 = cache.fetch([0, 1], [1, 1]);
    cache.releaseSequence(1);
    expect(() => cache.step(c2)).toThrow('step: stale collection: sequence seqIds[1] (1) was released since the fetch');
    cache.addSequence(1);
    expect(() => cache.step(c2)).toThrow('step: stale collection: sequence seqIds[1] (1) was fetched again or re-added');
    expect(() => cache.readSequence(0, c2, 1, 0)).toThrow('readSequence: stale collection');
    expect(cache.cacheLength(0)).toBe(2);
  });

  it('rejects bad params in the constructor', () => {
    expect(() => new PagedKVCache(base({ pageSize: 0 }))).toThrow('[PagedKVCache] pageSize must be an integer >= 1, got 0');
    expect(() => new PagedKVCache(base({ numPages: 2.5 }))).toThrow('numPages must be an integer >= 1, got 2.5');
  });
});

describe('PagedKVCache cost does not grow with the pool', () => {
  /** ms for `steps` decode steps of 4 sequences (fetch + write + step), after a warm-up. */
  function decodeMs(numPages: number, steps: number): number {
    const cache = new PagedKVCache({ nKvHeads: 1, headDim: 1, pageSize: 1, numLayers: 1, numPages });
    const ids = [0, 1, 2, 3];
    ids.forEach((id) => cache.addSequence(id));
    const one = new Float32Array(4);
    const run = (n: number) => {
      for (let s = 0; s < n; s++) {
        const c = cache.fetch(ids, [1, 1, 1, 1]);
        cache.writeTokens(0, c, one, one);
        cache.step(c);
      }
    };
    run(200);
    const t0 = performance.now();
    run(steps);
    return performance.now() - t0;
  }

  it('a pool of 4M pages decodes about as fast as one of 64K pages', () => {
    const small = decodeMs(64_000, 2000);
    const big = decodeMs(4_000_000, 2000);
    expect(big).toBeLessThan(10 * small + 50);
  });

  it('a 64,000-page pool hands out pages in LIFO order from a stack', () => {
    const cache = new PagedKVCache({ nKvHeads: 1, headDim: 1, pageSize: 1, numPages: 64_000 });
    cache.addSequence(0);
    cache.addSequence(1);
    cache.step(cache.fetch([0, 1], [3, 2]));
    expect(cache.pagesOf(0)).toEqual([0, 1, 2]);
    expect(cache.pagesOf(1)).toEqual([3, 4]);
    cache.releaseSequence(0);
    cache.step(cache.fetch([1], [2]));
    expect(cache.pagesOf(1)).toEqual([3, 4, 2, 1]); // last released first
    expect(cache.numPagesInUse).toBe(4);
    // A device copy needs pages [0, pageHighWater): freed pages are reused before new ones.
    expect(cache.pageHighWater).toBe(5);
    cache.step(cache.fetch([1], [2]));
    expect(cache.pagesOf(1)).toEqual([3, 4, 2, 1, 0, 5]);
    expect(cache.pageHighWater).toBe(6);
  });
});

describe('PagedKVCache hostPoolsUntouched (a first device mirror may skip uploading all-zero pools)', () => {
  const noop: KVDeviceMirror = { copyPage: () => {}, syncToHost: () => {}, dispose: () => {} };
  it('stays true through fetch / step / fork and reads that hand out no pool', () => {
    const cache = new PagedKVCache(base({ pageSize: 4, numLayers: 1 }));
    cache.addSequence(0);
    const c = cache.fetch([0], [5]);
    cache.readSequence(0, c, 0, 5);
    cache.decodePages(0, new Int32Array([0]));
    cache.step(c);
    cache.forkSequence(0, 1);
    cache.step(cache.fetch([1], [1])); // copy on write of a zero page
    expect(cache.hostPoolsUntouched).toBe(true);
    expect(Array.from(cache.keys(0)).every((x) => x === 0)).toBe(true);
  });
  const touch: [string, (c: PagedKVCache) => void][] = [
    ['keys', (c) => c.keys(0)], ['values', (c) => c.values(0)], ['pools', (c) => c.pools(0)],
    ['writeTokens', (c) => { c.addSequence(0); const v = c.fetch([0], [1]); c.writeTokens(0, v, new Float32Array(8).fill(1), new Float32Array(8)); }],
    ['attaching a mirror', (c) => c.attachDeviceMirror(noop)],
  ];
  it.each(touch)('turns false for good after %s', (_, f) => {
    const cache = new PagedKVCache(base({ pageSize: 4, numLayers: 1 }));
    f(cache);
    expect(cache.hostPoolsUntouched).toBe(false);
    cache.attachDeviceMirror(null);
    expect(cache.hostPoolsUntouched).toBe(false);
  });
});
