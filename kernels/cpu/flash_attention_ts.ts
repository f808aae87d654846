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
import { MASK_CODE } from '../../core/types.js';
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
    const { G, D, a, qIn } = this;
    const c = a.collection, ps = c.cache.params.pageSize, nKv = a.nKvHeads;
    const M = (t1 - t0) * G, start = c.startPositions[b], ctx = start + c.numNewTokens[b], row0 = c.rowOffsets[b];
    if (this.q.length < M * D) { this.q = new Float64Array(M * D); this.lo = new Int32Array(M); this.hi = new Int32Array(M); }
    if (this.s.length < M * NK) this.s = new Float64Array(M * NK);
    const { q, lo, hi, kOff } = this;
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
      // The G rows of a token share its key range; 4 rows go together (4 independent sums).
      for (let m0 = 0; m0 < M; m0 += G) {
        const n0 = Math.max(lo[m0], kb) - kb, n1 = Math.min(hi[m0], kb + nk - 1) - kb;
        if (n0 > n1) continue;
        let g = 0;
        for (; g + 4 <= G; g += 4) this.rows4(m0 + g, n0, n1, st);
        for (; g < G; g++) this.row1(m0 + g, n0, n1, st);
      }
    }
  }

  /** Scores, online softmax and values of rows m .. m+3 over block keys n0 .. n1. */
  private rows4(m: number, n0: number, n1: number, st: ItemState): void {
    const { D, q, s, kOff, kPool, vPool } = this, o = st.o;
    const q0 = m * D, q1 = q0 + D, q2 = q1 + D, q3 = q2 + D;
    const s0 = m * NK, s1 = s0 + NK, s2 = s1 + NK, s3 = s2 + NK;
    // Two keys x four rows per pass: each q value loaded serves two keys.
    let n = n0;
    for (; n + 1 <= n1; n += 2) {
      const ka = kOff[n], kb = kOff[n + 1];
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
      for (let d = 0; d < D; d++) {
        const x = kPool[ka + d], y = kPool[kb + d];
        const u0 = q[q0 + d], u1 = q[q1 + d], u2 = q[q2 + d], u3 = q[q3 + d];
        a0 += u0 * x; a1 += u1 * x; a2 += u2 * x; a3 += u3 * x;
        b0 += u0 * y; b1 += u1 * y; b2 += u2 * y; b3 += u3 * y;
      }
      s[s0 + n] = a0; s[s1 + n] = a1; s[s2 + n] = a2; s[s3 + n] = a3;
      s[s0 + n + 1] = b0; s[s1 + n + 1] = b1; s[s2 + n + 1] = b2; s[s3 + n + 1] = b3;
    }
    if (n <= n1) {
      const ko = kOff[n];
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      for (let d = 0; d < D; d++) {
        const kv = kPool[ko + d];
        a0 += q[q0 + d] * kv; a1 += q[q1 + d] * kv; a2 += q[q2 + d] * kv; a3 += q[q3 + d] * kv;
      }
      s[s0 + n] = a0; s[s1 + n] = a1; s[s2 + n] = a2; s[s3 + n] = a3;
    }
    for (let r = 0; r < 4; r++) this.softmax(m + r, n0, n1, st);
    // Two keys per pass over the output rows (half the o loads and stores).
    n = n0;
    for (; n + 1 <= n1; n += 2) {
      const va = kOff[n], vb = kOff[n + 1];
      const p0 = s[s0 + n], p1 = s[s1 + n], p2 = s[s2 + n], p3 = s[s3 + n];
      const r0 = s[s0 + n + 1], r1 = s[s1 + n + 1], r2 = s[s2 + n + 1], r3 = s[s3 + n + 1];
      for (let d = 0; d < D; d++) {
        const x = vPool[va + d], y = vPool[vb + d];
        o[q0 + d] += p0 * x + r0 * y; o[q1 + d] += p1 * x + r1 * y;
        o[q2 + d] += p2 * x + r2 * y; o[q3 + d] += p3 * x + r3 * y;
      }
    }
    if (n <= n1) {
      const p0 = s[s0 + n], p1 = s[s1 + n], p2 = s[s2 + n], p3 = s[s3 + n], vo = kOff[n];
      for (let d = 0; d < D; d++) {
        const vv = vPool[vo + d];
        o[q0 + d] += p0 * vv; o[q1 + d] += p1 * vv; o[q2 + d] += p2 * vv; o[q3 + d] += p3 * vv;
      }
    }
  }

  private row1(m: number, n0: number, n1: number, st: ItemState): void {
    const { D, q, s, kOff, kPool, vPool } = this, o = st.o, qo = m * D, so = m * NK;
    for (let n = n0; n <= n1; n++) {
      const ko = kOff[n];
      let a0 = 0, a1 = 0, d = 0;
      for (; d + 1 < D; d += 2) { a0 += q[qo + d] * kPool[ko + d]; a1 += q[qo + d + 1] * kPool[ko + d + 1]; }
      if (d < D) a0 += q[qo + d] * kPool[ko + d];
      s[so + n] = a0 + a1;
    }
    this.softmax(m, n0, n1, st);
    for (let n = n0; n <= n1; n++) {
      const p = s[so + n], vo = kOff[n];
      for (let d = 0; d < D; d++) o[qo + d] += p * vPool[vo + d];
    }
  }

  /** Online softmax step of row m: scores -> probabilities, rescales the row's sum and output. */
  private softmax(m: number, n0: number, n1: number, st: ItemState): void {
    const { D, s } = this, so = m * NK, o = st.o;
    let bmax = -Infinity;
    for (let n = n0; n <= n1; n++) { const x = s[so + n]; if (x > bmax || x !== x) bmax = x; }
    const mold = st.m[m], mnew = mold > bmax ? mold : bmax;
    const alpha = Math.exp(mold - mnew);
    let lsum = 0;
    for (let n = n0; n <= n1; n++) { const p = Math.exp(s[so + n] - mnew); s[so + n] = p; lsum += p; }
    st.l[m] = st.l[m] * alpha + lsum;
    st.m[m] = mnew;
    if (alpha !== 1) for (let d = 0, qo = m * D; d < D; d++) o[qo + d] *= alpha;
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
