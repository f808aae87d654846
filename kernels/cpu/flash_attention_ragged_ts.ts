/**
 * Host (TypeScript) forward and backward of FlashAttentionRagged (see kernel_names.ts), on flat
 * float32 rows. Work split: one (sequence, KV head) block at a time; its K and V rows are
 * copied once into contiguous `[n, hd]` scratch so every inner loop runs over contiguous
 * memory; each query head of the group then walks its contiguous visible key range.
 * Forward: scores, softmax in place, weighted sum of V; saves lse = max + log(sum).
 * Backward (FlashAttention-2): p = exp(s - lse) recomputed, D = dO·O,
 *   dV += p·dO, dS = p·(dO·V - D), dQ += scale·dS·K, dK += scale·dS·Q.
 * Versions kept out: a loop over rows with K read in place (strided by nKv*hd): 1.5-2x slower.
 */
import type { FlashAttentionRaggedAttrs } from '../kernel_names.js';
import { visibleRange } from '../reference/mask.js';

interface Views { q: Float32Array; k: Float32Array; v: Float32Array }

class Scratch {
  k = new Float32Array(0); v = new Float32Array(0); dk = new Float32Array(0); dv = new Float32Array(0); s = new Float32Array(0);
  ensure(n: number, hd: number): void {
    if (this.k.length >= n * hd && this.s.length >= n) return;
    const m = Math.max(n, 64);
    this.k = new Float32Array(m * hd); this.v = new Float32Array(m * hd);
    this.dk = new Float32Array(m * hd); this.dv = new Float32Array(m * hd); this.s = new Float32Array(m);
  }
}
const scratch = new Scratch();

/** Copies rows r0..r0+n-1, columns c0..c0+hd-1 of a `[T, width]` array into `[n, hd]`. */
function gatherBlock(src: Float32Array, width: number, r0: number, n: number, c0: number, hd: number, dst: Float32Array): void {
  for (let j = 0; j < n; j++) {
    const o = (r0 + j) * width + c0;
    dst.set(src.subarray(o, o + hd), j * hd);
  }
}

/** out `[T, nH*hd]` and lse `[T, nH]` (both written in full). */
export function flashAttentionRaggedForward({ q, k, v }: Views, out: Float32Array, lse: Float32Array, a: FlashAttentionRaggedAttrs): void {
  const { nHeads, nKvHeads, headDim: hd, scale, mask, rowOffsets } = a;
  const g = nHeads / nKvHeads, qW = nHeads * hd, kW = nKvHeads * hd;
  const acc = new Float64Array(hd), Q = new Float32Array(hd);
  for (let b = 0; b + 1 < rowOffsets.length; b++) {
    const r0 = rowOffsets[b], n = rowOffsets[b + 1] - r0;
    if (n === 0) continue;
    scratch.ensure(n, hd);
    const K = scratch.k, V = scratch.v, S = scratch.s;
    for (let kh = 0; kh < nKvHeads; kh++) {
      gatherBlock(k, kW, r0, n, kh * hd, hd, K);
      gatherBlock(v, kW, r0, n, kh * hd, hd, V);
      for (let i = 0; i < n; i++) {
        const [lo, hi] = visibleRange(mask, i, n);
        for (let h = kh * g; h < (kh + 1) * g; h++) {
          const qo = (r0 + i) * qW + h * hd;
          for (let d = 0; d < hd; d++) Q[d] = q[qo + d];
          let m = -Infinity;
          for (let j = lo; j < hi; j++) {
            const ko = j * hd;
            let s = 0;
            for (let d = 0; d < hd; d++) s += Q[d] * K[ko + d];
            s *= scale;
            S[j] = s;
            if (s > m) m = s;
          }
          let sum = 0;
          acc.fill(0);
          for (let j = lo; j < hi; j++) {
            const p = Math.exp(S[j] - m);
            sum += p;
            const vo = j * hd;
            for (let d = 0; d < hd; d++) acc[d] += p * V[vo + d];
          }
          const inv = 1 / sum;
          for (let d = 0; d < hd; d++) out[qo + d] = acc[d] * inv;
          lse[(r0 + i) * nHeads + h] = m + Math.log(sum);
        }
      }
    }
  }
}

/** dq `[T, nH*hd]`, dk, dv `[T, nKv*hd]` from dy, the forward's out and lse. dq, dk, dv are overwritten. */
export function flashAttentionRaggedBackward({ q, k, v }: Views, dy: Float32Array, out: Float32Array, lse: Float32Array,
  dq: Float32Array, dk: Float32Array, dv: Float32Array, a: FlashAttentionRaggedAttrs): void {
  const { nHeads, nKvHeads, headDim: hd, scale, mask, rowOffsets } = a;
  const g = nHeads / nKvHeads, qW = nHeads * hd, kW = nKvHeads * hd;
  const dqAcc = new Float64Array(hd), Q = new Float32Array(hd), G = new Float32Array(hd);
  for (let b = 0; b + 1 < rowOffsets.length; b++) {
    const r0 = rowOffsets[b], n = rowOffsets[b + 1] - r0;
    if (n === 0) continue;
    scratch.ensure(n, hd);
    const K = scratch.k, V = scratch.v, dK = scratch.dk, dV = scratch.dv;
    for (let kh = 0; kh < nKvHeads; kh++) {
      gatherBlock(k, kW, r0, n, kh * hd, hd, K);
      gatherBlock(v, kW, r0, n, kh * hd, hd, V);
      dK.fill(0, 0, n * hd); dV.fill(0, 0, n * hd);
      for (let i = 0; i < n; i++) {
        const [lo, hi] = visibleRange(mask, i, n);
        for (let h = kh * g; h < (kh + 1) * g; h++) {
          const qo = (r0 + i) * qW + h * hd;
          const l = lse[(r0 + i) * nHeads + h];
          let D = 0;
          for (let d = 0; d < hd; d++) D += dy[qo + d] * out[qo + d];
          dqAcc.fill(0);
          for (let d = 0; d < hd; d++) { Q[d] = q[qo + d]; G[d] = dy[qo + d]; }
          for (let j = lo; j < hi; j++) {
            const ko = j * hd;
            let s = 0, dp = 0;
            for (let d = 0; d < hd; d++) { s += Q[d] * K[ko + d]; dp += G[d] * V[ko + d]; }
            const p = Math.exp(s * scale - l);
            const ds = p * (dp - D) * scale;
            for (let d = 0; d < hd; d++) {
              dqAcc[d] += ds * K[ko + d];
              dK[ko + d] += ds * Q[d];
              dV[ko + d] += p * G[d];
            }
          }
          for (let d = 0; d < hd; d++) dq[qo + d] = dqAcc[d];
        }
      }
      for (let j = 0; j < n; j++) {
        const o = (r0 + j) * kW + kh * hd;
        dk.set(dK.subarray(j * hd, (j + 1) * hd), o);
        dv.set(dV.subarray(j * hd, (j + 1) * hd), o);
      }
    }
  }
}
