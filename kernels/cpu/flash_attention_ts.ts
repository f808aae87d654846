/**
 * FlashAttentionRaggedPaged in plain TypeScript (the browser / no-compiler path), the same
 * algorithm as native/attention.cc without SIMD or threads:
 * - an item is (sequence b, KV head h, query rows [t0, t1), keys [k0, k1)); its rows are the pairs
 *   (token t, group head g), so every K/V row is read once for all G query heads of the group;
 * - keys go in blocks of 64 with online softmax; each row's mask is a contiguous key range
 *   [lo, hi], blocks outside the union of the rows' ranges are skipped (causal block skipping);
 * - prefill: items (b, h, 64 / G tokens); decode: items (b, h, key split), partial (max, sum, acc)
 *   states merged per (b, h).
 */
import { MASK_CODE } from '../../lib/types.js';
import type { FlashAttentionRaggedPagedAttrs } from '../kernel_names.js';

const NK = 64;

interface ItemState { M: number; m: Float64Array; l: Float64Array; o: Float64Array }

class Attender {
  readonly G: number;
  readonly D: number;
  private s = new Float64Array(0);
  private q = new Float64Array(0);
  private lo = new Int32Array(0);
  private hi = new Int32Array(0);
  private kOff = new Int32Array(NK);

  constructor(private readonly a: FlashAttentionRaggedPagedAttrs, private readonly qIn: Float32Array,
    private readonly kPool: Float32Array, private readonly vPool: Float32Array) {
    this.G = a.nHeads / a.nKvHeads;
    this.D = a.headDim;
  }

  private range(qp: number, ctx: number): [number, number] {
    const { window: W, chunk: C } = this.a.mask;
    switch (MASK_CODE[this.a.mask.variant]) {
      case 0: return [0, qp];
      case 1: return [0, ctx - 1];
      case 2: return [Math.max(0, qp - W + 1), qp];
      case 3: return [Math.max(0, qp - W + 1), Math.min(ctx - 1, qp + W - 1)];
      default: return [Math.floor(qp / C) * C, qp];
    }
  }

  /** Unnormalised state of rows [t0, t1) of entry b, KV head h, over keys [k0, k1). */
  attend(b: number, h: number, t0: number, t1: number, k0: number, k1: number, st: ItemState): void {
    const { G, D, a, qIn, kPool, vPool } = this;
    const c = a.collection, ps = c.cache.params.pageSize, nKv = a.nKvHeads;
    const M = (t1 - t0) * G, start = c.startPositions[b], ctx = start + c.numNewTokens[b], row0 = c.rowOffsets[b];
    if (this.q.length < M * D) { this.q = new Float64Array(M * D); this.lo = new Int32Array(M); this.hi = new Int32Array(M); }
    if (this.s.length < M * NK) this.s = new Float64Array(M * NK);
    const { q, s, lo, hi, kOff } = this;
    const { m: mr, l: lr, o } = st;
    st.M = M;
    let kmin = k1, kmax = k0 - 1;
    for (let m = 0; m < M; m++) {
      const t = t0 + Math.floor(m / G), g = m % G;
      const src = (row0 + t) * a.nHeads * D + (h * G + g) * D;
      for (let d = 0; d < D; d++) q[m * D + d] = qIn[src + d] * a.scale;
      let [x, z] = this.range(start + t, ctx);
      x = Math.max(x, k0); z = Math.min(z, k1 - 1, ctx - 1);
      lo[m] = x; hi[m] = z;
      if (x <= z) { kmin = Math.min(kmin, x); kmax = Math.max(kmax, z); }
      mr[m] = -Infinity; lr[m] = 0;
    }
    o.fill(0, 0, M * D);
    for (let kb = kmin; kb <= kmax; kb += NK) {
      const nk = Math.min(NK, kmax + 1 - kb);
      for (let n = 0; n < nk; n++) {
        const pos = kb + n, page = c.pageTable[b * c.maxPagesPerSeq + Math.floor(pos / ps)];
        kOff[n] = ((page * nKv + h) * ps + (pos % ps)) * D;
      }
      for (let m = 0; m < M; m++) {
        const n0 = Math.max(lo[m], kb) - kb, n1 = Math.min(hi[m], kb + nk - 1) - kb;
        if (n0 > n1) continue;
        const qo = m * D, so = m * NK;
        let bmax = -Infinity;
        for (let n = n0; n <= n1; n++) {
          const ko = kOff[n];
          let acc = 0;
          for (let d = 0; d < D; d++) acc += q[qo + d] * kPool[ko + d];
          s[so + n] = acc;
          if (acc > bmax || acc !== acc) bmax = acc;
        }
        const mold = mr[m], mnew = mold > bmax ? mold : bmax;
        const alpha = Math.exp(mold - mnew);
        let lsum = 0;
        for (let n = n0; n <= n1; n++) { const p = Math.exp(s[so + n] - mnew); s[so + n] = p; lsum += p; }
        lr[m] = lr[m] * alpha + lsum;
        mr[m] = mnew;
        if (alpha !== 1) for (let d = 0; d < D; d++) o[qo + d] *= alpha;
        for (let n = n0; n <= n1; n++) {
          const p = s[so + n], vo = kOff[n];
          for (let d = 0; d < D; d++) o[qo + d] += p * vPool[vo + d];
        }
      }
    }
  }

  /** out rows of the item from a (merged) state. */
  write(out: Float32Array, b: number, h: number, t0: number, st: ItemState): void {
    const { G, D, a } = this, row0 = a.collection.rowOffsets[b];
    for (let m = 0; m < st.M; m++) {
      const t = t0 + Math.floor(m / G), g = m % G, dst = (row0 + t) * a.nHeads * D + (h * G + g) * D;
      const inv = st.l[m] > 0 ? 1 / st.l[m] : 0;
      for (let d = 0; d < D; d++) out[dst + d] = st.o[m * D + d] * inv;
    }
  }
}

function newState(M: number, D: number): ItemState {
  return { M, m: new Float64Array(M), l: new Float64Array(M), o: new Float64Array(M * D) };
}

export function flashAttentionTs(q: Float32Array, out: Float32Array, kPool: Float32Array, vPool: Float32Array,
  a: FlashAttentionRaggedPagedAttrs): void {
  const c = a.collection, batch = c.seqIds.length, nKv = a.nKvHeads;
  const at = new Attender(a, q, kPool, vPool), G = at.G, D = at.D;
  let maxNew = 0, maxCtx = 0;
  for (let b = 0; b < batch; b++) {
    maxNew = Math.max(maxNew, c.numNewTokens[b]);
    maxCtx = Math.max(maxCtx, c.startPositions[b] + c.numNewTokens[b]);
  }
  if (maxNew === 0) return;
  const decode = a.variant === 'decode' || (a.variant !== 'prefill' && maxNew * G <= 16);
  if (!decode) {
    const bq = Math.max(1, Math.floor(64 / G)), st = newState(bq * G, D);
    for (let b = 0; b < batch; b++) {
      const n = c.numNewTokens[b], ctx = c.startPositions[b] + n;
      for (let t0 = 0; t0 < n; t0 += bq) {
        for (let h = 0; h < nKv; h++) {
          at.attend(b, h, t0, Math.min(n, t0 + bq), 0, ctx, st);
          at.write(out, b, h, t0, st);
        }
      }
    }
    return;
  }
  // Decode: split each sequence's keys (4 splits when forced, so the merge is exercised), merge.
  const splits = a.variant === 'decode' ? 4 : 1;
  const splitLen = Math.max(NK, Math.ceil(Math.ceil(maxCtx / splits) / NK) * NK);
  const part = newState(maxNew * G, D), acc = newState(maxNew * G, D);
  for (let b = 0; b < batch; b++) {
    const n = c.numNewTokens[b], ctx = c.startPositions[b] + n, M = n * G;
    if (n === 0) continue;
    for (let h = 0; h < nKv; h++) {
      acc.M = M; acc.m.fill(-Infinity); acc.l.fill(0); acc.o.fill(0);
      for (let k0 = 0; k0 < ctx; k0 += splitLen) {
        at.attend(b, h, 0, n, k0, k0 + splitLen, part);
        for (let m = 0; m < M; m++) {
          const ms = part.m[m];
          if (ms === -Infinity) continue;
          const mx = Math.max(acc.m[m], ms);
          const wa = Math.exp(acc.m[m] - mx), ws = Math.exp(ms - mx);
          acc.l[m] = acc.l[m] * wa + part.l[m] * ws;
          for (let d = 0; d < D; d++) acc.o[m * D + d] = acc.o[m * D + d] * wa + part.o[m * D + d] * ws;
          acc.m[m] = mx;
        }
      }
      at.write(out, b, h, 0, acc);
    }
  }
}
