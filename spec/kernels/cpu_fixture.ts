/**
 * Test fixtures for the CPU kernel specs: a tiny paged cache satisfying the PagedKVCollection
 * contract with pages handed out in scrambled order (no logical page maps to its own index), pools
 * pre-filled with random K/V for the cached context, rope tables, and float64 naive references.
 */
import type { PagedKVCollection } from '../../lib/kv_cache/collection.js';
import type { RopeTables } from '../../lib/rope/rope_tables.js';
import type { MaskSpec } from '../../lib/types.js';

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 * 2 - 1;
  };
}

export function randomArray(n: number, r: () => number, amp = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r() * amp;
  return a;
}

export interface Seq { start: number; numNew: number }

/** A one-layer paged cache with scrambled pages, as a PagedKVCollection. */
export function makeCollection(seqs: Seq[], nKv: number, D: number, pageSize: number, seed: number): PagedKVCollection {
  const r = rng(seed);
  const pagesPer = seqs.map((s) => Math.ceil((s.start + s.numNew) / pageSize));
  const maxPagesPerSeq = Math.max(1, ...pagesPer);
  const used = pagesPer.reduce((x, y) => x + y, 0);
  const numPages = used + 3;
  const perm = Array.from({ length: numPages }, (_, i) => i);
  for (let i = numPages - 1; i > 0; i--) {
    const j = Math.floor(((r() + 1) / 2) * (i + 1)) % (i + 1);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  for (let i = 0; i < numPages; i++) if (perm[i] === i) { const j = (i + 1) % numPages; [perm[i], perm[j]] = [perm[j], perm[i]]; }
  const batch = seqs.length;
  const pageTable = new Int32Array(batch * maxPagesPerSeq).fill(-1);
  let next = 0;
  seqs.forEach((_, b) => { for (let i = 0; i < pagesPer[b]; i++) pageTable[b * maxPagesPerSeq + i] = perm[next++]; });
  const poolSize = numPages * nKv * pageSize * D;
  const keys = randomArray(poolSize, r), values = randomArray(poolSize, r);
  const rowOffsets = new Int32Array(batch + 1);
  seqs.forEach((s, b) => { rowOffsets[b + 1] = rowOffsets[b] + s.numNew; });
  const params = { dtype: 'float32' as const, nKvHeads: nKv, headDim: D, pageSize, numLayers: 1, numPages };
  const slot = (b: number, pos: number, h: number): number =>
    ((pageTable[b * maxPagesPerSeq + Math.floor(pos / pageSize)] * nKv + h) * pageSize + (pos % pageSize)) * D;
  const collection = {
    seqIds: seqs.map((_, i) => i),
    startPositions: Int32Array.from(seqs.map((s) => s.start)),
    numNewTokens: Int32Array.from(seqs.map((s) => s.numNew)),
    rowOffsets, pageTable, maxPagesPerSeq,
    totalTokens: rowOffsets[batch],
    maxContext: Math.max(0, ...seqs.map((s) => s.start + s.numNew)),
  } as Record<string, unknown>;
  collection.cache = {
    params,
    // a test double of the cache: every view it hands out is live (the real cache tracks them)
    validateCollection: () => undefined,
    keys: () => keys,
    values: () => values,
    writeTokens(_l: number, c: PagedKVCollection, k: Float32Array, v: Float32Array) {
      for (let b = 0; b < batch; b++) {
        for (let t = c.rowOffsets[b]; t < c.rowOffsets[b + 1]; t++) {
          for (let h = 0; h < nKv; h++) {
            const off = slot(b, c.startPositions[b] + t - c.rowOffsets[b], h);
            keys.set(k.subarray((t * nKv + h) * D, (t * nKv + h + 1) * D), off);
            values.set(v.subarray((t * nKv + h) * D, (t * nKv + h + 1) * D), off);
          }
        }
      }
    },
    readSequence(_l: number, _c: PagedKVCollection, b: number, length: number) {
      const k = new Float32Array(nKv * length * D), v = new Float32Array(nKv * length * D);
      for (let h = 0; h < nKv; h++) {
        for (let p = 0; p < length; p++) {
          const off = slot(b, p, h);
          k.set(keys.subarray(off, off + D), (h * length + p) * D);
          v.set(values.subarray(off, off + D), (h * length + p) * D);
        }
      }
      return { k, v };
    },
  };
  return collection as unknown as PagedKVCollection;
}

export function ropeTables(headDim: number, rotaryDim: number, maxPositions: number, interleaved: boolean, theta = 10000): RopeTables {
  const half = rotaryDim / 2, cos = new Float32Array(maxPositions * half), sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * Math.pow(theta, (-2 * i) / rotaryDim);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin, headDim, rotaryDim, maxPositions, interleaved };
}

/** Float64 reference of RopeSplitStoreRagged: returns q and writes k/v into copies of the pools. */
export function ropeSplitStoreNaive(qkv: Float32Array, c: PagedKVCollection, nH: number, nKv: number, D: number,
  rope: RopeTables, eps: number, qw: Float32Array | null, kw: Float32Array | null,
  kPool: Float64Array, vPool: Float64Array): Float64Array {
  const T = c.totalTokens, ps = c.cache.params.pageSize, half = rope.rotaryDim / 2, width = (nH + 2 * nKv) * D;
  const q = new Float64Array(T * nH * D);
  const head = (src: number, w: Float32Array | null, pos: number): Float64Array => {
    const x = Float64Array.from(qkv.subarray(src, src + D));
    if (eps >= 0 && w) {
      let ss = 0;
      for (let d = 0; d < D; d++) ss += x[d] * x[d];
      const inv = 1 / Math.sqrt(ss / D + eps);
      for (let d = 0; d < D; d++) x[d] = x[d] * inv * w[d];
    }
    const y = Float64Array.from(x);
    for (let i = 0; i < half; i++) {
      const [ia, ib] = rope.interleaved ? [2 * i, 2 * i + 1] : [i, i + half];
      const co = rope.cos[pos * half + i], si = rope.sin[pos * half + i];
      y[ia] = x[ia] * co - x[ib] * si;
      y[ib] = x[ib] * co + x[ia] * si;
    }
    return y;
  };
  for (let b = 0; b < c.seqIds.length; b++) {
    for (let t = c.rowOffsets[b]; t < c.rowOffsets[b + 1]; t++) {
      const pos = c.startPositions[b] + t - c.rowOffsets[b];
      for (let h = 0; h < nH; h++) q.set(head(t * width + h * D, qw, pos), (t * nH + h) * D);
      const page = c.pageTable[b * c.maxPagesPerSeq + Math.floor(pos / ps)];
      for (let h = 0; h < nKv; h++) {
        const off = ((page * nKv + h) * ps + (pos % ps)) * D;
        kPool.set(head(t * width + (nH + h) * D, kw, pos), off);
        const vs = t * width + (nH + nKv + h) * D;
        for (let d = 0; d < D; d++) vPool[off + d] = qkv[vs + d];
      }
    }
  }
  return q;
}

export function visible(m: MaskSpec, i: number, j: number, ctx: number): boolean {
  if (j < 0 || j >= ctx) return false;
  switch (m.variant) {
    case 'causal': return j <= i;
    case 'null': return true;
    case 'sliding_window_causal': return j <= i && i - j < m.window;
    case 'sliding_window': return Math.abs(i - j) < m.window;
    default: return j <= i && Math.floor(i / m.chunk) === Math.floor(j / m.chunk);
  }
}

/** Float64 naive attention over the paged pools. */
export function attentionNaive(q: Float32Array, c: PagedKVCollection, nH: number, nKv: number, D: number,
  scale: number, mask: MaskSpec, kPool: ArrayLike<number>, vPool: ArrayLike<number>): Float64Array {
  const out = new Float64Array(c.totalTokens * nH * D), G = nH / nKv, ps = c.cache.params.pageSize;
  for (let b = 0; b < c.seqIds.length; b++) {
    const start = c.startPositions[b], ctx = start + c.numNewTokens[b];
    const off = (pos: number, h: number): number =>
      ((c.pageTable[b * c.maxPagesPerSeq + Math.floor(pos / ps)] * nKv + h) * ps + (pos % ps)) * D;
    for (let t = c.rowOffsets[b]; t < c.rowOffsets[b + 1]; t++) {
      const qp = start + t - c.rowOffsets[b];
      for (let h = 0; h < nH; h++) {
        const kvh = Math.floor(h / G), qo = (t * nH + h) * D;
        const s: number[] = [], js: number[] = [];
        for (let j = 0; j < ctx; j++) {
          if (!visible(mask, qp, j, ctx)) continue;
          let acc = 0;
          const ko = off(j, kvh);
          for (let d = 0; d < D; d++) acc += q[qo + d] * kPool[ko + d];
          s.push(acc * scale); js.push(j);
        }
        if (s.length === 0) continue;
        const mx = Math.max(...s);
        const p = s.map((x) => Math.exp(x - mx));
        const sum = p.reduce((x, y) => x + y, 0);
        js.forEach((j, i) => {
          const vo = off(j, kvh);
          for (let d = 0; d < D; d++) out[qo + d] += (p[i] / sum) * vPool[vo + d];
        });
      }
    }
  }
  return out;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    m = d > m || d !== d ? d : m;
  }
  return m;
}
