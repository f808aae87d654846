/**
 * A seeded, model-based fuzz of PagedKVCache: thousands of random operations (add, fetch + write
 * + step, abandon, fetches left pending, fork, release, copy-on-write writes into shared pages,
 * out-of-pages fetches, stale and forged collections, bad arguments). After every operation the
 * cache is checked against a plain model: sequence ids, lengths, every committed K/V value read
 * straight from the pools, every page's refcount and the free-page count. Rejected operations
 * must name the argument and leave the cache exactly as it was.
 */
import * as tf from '@tensorflow/tfjs';
import type { PagedKVCollection } from '../../lib/kv_cache/collection';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';

const P = { nKvHeads: 2, headDim: 2, pageSize: 4, numLayers: 1, numPages: 24 };
const W = P.nKvHeads * P.headDim; // floats per token

/** mulberry32 */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Model = Map<number, number[][]>; // seqId -> committed tokens, each [K floats..., V floats...]

function check(cache: PagedKVCache, model: Model, op: string): void {
  const fail = (m: string) => { throw new Error(`after ${op}: ${m}`); };
  const ids = [...model.keys()].sort((a, b) => a - b);
  const got = cache.sequenceIds.sort((a, b) => a - b);
  if (JSON.stringify(got) !== JSON.stringify(ids)) fail(`sequenceIds ${JSON.stringify(got)}, model ${JSON.stringify(ids)}`);
  const refs = new Map<number, number>();
  const K = cache.keys(0), V = cache.values(0);
  for (const id of ids) {
    const toks = model.get(id)!;
    if (cache.cacheLength(id) !== toks.length) fail(`cacheLength(${id}) ${cache.cacheLength(id)}, model ${toks.length}`);
    const pages = cache.pagesOf(id);
    if (pages.length < Math.ceil(toks.length / P.pageSize)) fail(`sequence ${id} holds ${pages.length} pages for ${toks.length} tokens`);
    for (const p of pages) refs.set(p, (refs.get(p) ?? 0) + 1);
    toks.forEach((t, pos) => {
      const page = pages[Math.floor(pos / P.pageSize)];
      for (let h = 0; h < P.nKvHeads; h++) {
        const off = ((page * P.nKvHeads + h) * P.pageSize + (pos % P.pageSize)) * P.headDim;
        for (let d = 0; d < P.headDim; d++) {
          if (K[off + d] !== t[h * P.headDim + d] || V[off + d] !== t[W + h * P.headDim + d]) {
            fail(`sequence ${id} token ${pos} head ${h}: K ${K[off + d]} V ${V[off + d]}, model ${t[h * P.headDim + d]} ${t[W + h * P.headDim + d]}`);
          }
        }
      }
    });
  }
  for (let p = 0; p < P.numPages; p++) {
    if (cache.pageRefCount(p) !== (refs.get(p) ?? 0)) fail(`page ${p} refcount ${cache.pageRefCount(p)}, held by ${refs.get(p) ?? 0} sequence(s)`);
  }
  if (cache.numFreePages !== P.numPages - refs.size) fail(`numFreePages ${cache.numFreePages}, expected ${P.numPages - refs.size}`);
}

/** Runs `fn`, which must throw a PagedKVCache error matching `re`. */
function rejects(fn: () => unknown, re: RegExp, what: string): void {
  try {
    fn();
  } catch (e) {
    if (!re.test((e as Error).message) || !(e as Error).message.startsWith('[PagedKVCache] ')) {
      throw new Error(`${what}: wrong error '${(e as Error).message}', expected ${re}`);
    }
    return;
  }
  throw new Error(`${what}: accepted`);
}

function fuzz(seed: number, ops: number): { ops: number; rejected: number; outOfPages: number; cow: number } {
  const r = rng(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)];
  const cache = new PagedKVCache(P);
  const model: Model = new Map();
  const pending: { kv: PagedKVCollection; rows: number[][][] }[] = [];
  const stats = { ops: 0, rejected: 0, outOfPages: 0, cow: 0 };
  let stamp = 1;
  for (let i = 0; i < ops; i++) {
    stats.ops++;
    const ids = [...model.keys()];
    const x = r();
    let op: string;
    if (x < 0.12 || ids.length === 0) {
      op = 'add';
      const id = r() < 0.5 ? undefined : Math.floor(r() * 40);
      if (id !== undefined && model.has(id)) {
        rejects(() => cache.addSequence(id), new RegExp(`seqId \\(${id}\\) already exists`), op); stats.rejected++;
      } else model.set(cache.addSequence(id), []);
    } else if (x < 0.2 || (x < 0.35 && cache.numFreePages < 4)) {
      op = 'release';
      if (r() < 0.1) { rejects(() => cache.releaseSequence(1000), /releaseSequence: seqId \(1000\) is not a known sequence/, op); stats.rejected++; } else {
        const id = pick(ids);
        cache.releaseSequence(id);
        model.delete(id);
      }
    } else if (x < 0.3) {
      op = 'fork';
      const src = pick(ids);
      const dst = r() < 0.5 ? undefined : Math.floor(r() * 40);
      if (dst !== undefined && model.has(dst)) {
        rejects(() => cache.forkSequence(src, dst), new RegExp(`dstId \\(${dst}\\) already exists`), op); stats.rejected++;
      } else {
        const id = cache.forkSequence(src, dst);
        model.set(id, model.get(src)!.map((t) => t.slice()));
        if (model.get(src)!.length % P.pageSize !== 0) stats.cow++; // its last page is shared and partly full
      }
    } else if (x < 0.82) {
      op = 'fetch';
      const batch = Math.min(ids.length, 1 + Math.floor(r() * 3));
      const chosen = [...ids].sort(() => r() - 0.5).slice(0, batch);
      const counts = chosen.map(() => Math.floor(r() * 7));
      let kv: PagedKVCollection;
      try {
        kv = cache.fetch(chosen, counts);
      } catch (e) {
        if (!/out of pages: step needs \d+ free pages, \d+ are free/.test((e as Error).message)) throw e;
        stats.outOfPages++; stats.rejected++;
        check(cache, model, 'out-of-pages fetch');
        continue;
      }
      const T = kv.totalTokens;
      const k = new Float32Array(T * W), v = new Float32Array(T * W);
      const rows: number[][][] = chosen.map(() => []);
      for (let b = 0, t = 0; b < batch; b++) {
        for (let j = 0; j < counts[b]; j++, t++) {
          const row: number[] = [];
          for (let c = 0; c < W; c++) { k[t * W + c] = stamp + c / 8; row.push(stamp + c / 8); }
          for (let c = 0; c < W; c++) { v[t * W + c] = -stamp - c / 8; row.push(-stamp - c / 8); }
          stamp++;
          rows[b].push(row);
        }
      }
      cache.writeTokens(0, kv, k, v);
      const y = r();
      if (y < 0.75) {
        cache.step(kv);
        chosen.forEach((id, b) => model.get(id)!.push(...rows[b]));
        rejects(() => cache.step(kv), /stale collection: sequence seqIds\[0\] \(\d+\) was already stepped with it/, 'double step'); stats.rejected++;
      } else if (y < 0.9) {
        cache.abandon(kv); // a failed step: nothing committed, the reservation given back
        rejects(() => cache.writeTokens(0, kv, k, v), /stale collection/, 'write after abandon'); stats.rejected++;
      } else pending.push({ kv, rows });
    } else if (x < 0.9 && pending.length > 0) {
      op = 'stale step';
      const { kv } = pending.splice(Math.floor(r() * pending.length), 1)[0];
      // Its sequences were released, re-fetched or are still live; only the last may be stepped.
      let live = true;
      try { cache.validateCollection(kv, 'probe'); } catch { live = false; }
      if (live) { cache.abandon(kv); } else {
        rejects(() => cache.step(kv), /stale collection: sequence seqIds\[\d+\] \(\d+\) (was released|was fetched again|was already stepped)/, op); stats.rejected++;
      }
    } else {
      op = 'bad fetch';
      const id = pick(ids);
      const cases: [() => unknown, RegExp][] = [
        [() => cache.fetch([id, id], [1, 1]), /seqIds\[1\] \(\d+\) repeats seqIds\[0\]/],
        [() => cache.fetch([999], [1]), /seqIds\[0\] \(999\) is not a known sequence/],
        [() => cache.fetch([id], [-1]), /numNewTokens\[0\] \(-1\) must be (an integer )?>= 0/],
        [() => cache.fetch([id], [1.5]), /numNewTokens\[0\] \(1.5\) must be an integer/],
        [() => cache.fetch([id], [1, 2]), /seqIds.length \(1\) must equal numNewTokens.length \(2\)/],
        [() => cache.fetch([id], [10_000]), /out of pages|exceeds/],
        [() => cache.step({ ...cache.fetch([id], [0]) }), /collection was not made by fetch of this cache/],
      ];
      const [fn, re] = pick(cases);
      rejects(fn, re, op); stats.rejected++;
    }
    check(cache, model, `op ${i} (${op})`);
  }
  return stats;
}

describe('PagedKVCache model-based fuzz', () => {
  it('3 seeds x 2000 operations: contents, lengths and refcounts match the model after every one', () => {
    const before = { tensors: tf.memory().numTensors, rss: process.memoryUsage().rss };
    const totals = { ops: 0, rejected: 0, outOfPages: 0, cow: 0 };
    for (const seed of [1, 2, 3]) {
      const s = fuzz(seed, 2000);
      for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += s[k];
    }
    expect(totals.ops).toBe(6000);
    expect(totals.outOfPages).toBeGreaterThan(20);
    expect(totals.cow).toBeGreaterThan(20);
    const after = { tensors: tf.memory().numTensors, rss: process.memoryUsage().rss };
    expect(after.tensors).toBe(before.tensors);
    console.log(`cache fuzz: ${totals.ops} ops (${totals.rejected} rejected with a named error, ${totals.outOfPages} out of pages, ` +
      `${totals.cow} forks of a partly full page); tf.memory().numTensors ${before.tensors} -> ${after.tensors}, ` +
      `RSS ${(before.rss / 2 ** 20).toFixed(0)} -> ${(after.rss / 2 ** 20).toFixed(0)} MiB`);
  });
});
