/**
 * Host (TypeScript) forward and backward of FlashAttentionRagged (see names.ts), on flat
 * float32 rows. One query row at a time: scores over its contiguous visible key range,
 * softmax in place, then the weighted sum; GQA query head h*g + i reads KV head h.
 */
import { type FlashAttentionRaggedAttrs, visibleRange } from './names.js';

interface Views { q: Float32Array; k: Float32Array; v: Float32Array }

/** out `[T, nH*hd]` and lse `[T, nH]` (both written in full). */
export function flashAttentionRaggedForward({ q, k, v }: Views, out: Float32Array, lse: Float32Array, a: FlashAttentionRaggedAttrs): void {
  const { nHeads, nKvHeads, headDim: hd, scale, mask, rowOffsets } = a;
  const g = nHeads / nKvHeads, qW = nHeads * hd, kW = nKvHeads * hd;
  let scores = new Float32Array(64);
  for (let b = 0; b + 1 < rowOffsets.length; b++) {
    const r0 = rowOffsets[b], n = rowOffsets[b + 1] - r0;
    if (scores.length < n) scores = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      const [lo, hi] = visibleRange(mask, i, n);
      for (let h = 0; h < nHeads; h++) {
        const qo = (r0 + i) * qW + h * hd, kh = Math.floor(h / g) * hd;
        let m = -Infinity;
        for (let j = lo; j < hi; j++) {
          const ko = (r0 + j) * kW + kh;
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[qo + d] * k[ko + d];
          s *= scale;
          scores[j] = s;
          if (s > m) m = s;
        }
        let sum = 0;
        for (let j = lo; j < hi; j++) { const p = Math.exp(scores[j] - m); scores[j] = p; sum += p; }
        const inv = 1 / sum;
        for (let d = 0; d < hd; d++) out[qo + d] = 0;
        for (let j = lo; j < hi; j++) {
          const p = scores[j] * inv, vo = (r0 + j) * kW + kh;
          for (let d = 0; d < hd; d++) out[qo + d] += p * v[vo + d];
        }
        lse[(r0 + i) * nHeads + h] = m + Math.log(sum);
      }
    }
  }
}

/** dq `[T, nH*hd]`, dk, dv `[T, nKv*hd]` from dy, the forward's out and lse. dq, dk, dv are overwritten. */
export function flashAttentionRaggedBackward({ q, k, v }: Views, dy: Float32Array, out: Float32Array, lse: Float32Array,
  dq: Float32Array, dk: Float32Array, dv: Float32Array, a: FlashAttentionRaggedAttrs): void {
  const { nHeads, nKvHeads, headDim: hd, scale, mask, rowOffsets } = a;
  const g = nHeads / nKvHeads, qW = nHeads * hd, kW = nKvHeads * hd;
  dq.fill(0); dk.fill(0); dv.fill(0);
  for (let b = 0; b + 1 < rowOffsets.length; b++) {
    const r0 = rowOffsets[b], n = rowOffsets[b + 1] - r0;
    for (let i = 0; i < n; i++) {
      const [lo, hi] = visibleRange(mask, i, n);
      for (let h = 0; h < nHeads; h++) {
        const qo = (r0 + i) * qW + h * hd, kh = Math.floor(h / g) * hd;
        const l = lse[(r0 + i) * nHeads + h];
        let D = 0;
        for (let d = 0; d < hd; d++) D += dy[qo + d] * out[qo + d];
        for (let j = lo; j < hi; j++) {
          const ko = (r0 + j) * kW + kh;
          let s = 0, dp = 0;
          for (let d = 0; d < hd; d++) { s += q[qo + d] * k[ko + d]; dp += dy[qo + d] * v[ko + d]; }
          const p = Math.exp(s * scale - l);
          const ds = p * (dp - D) * scale;
          for (let d = 0; d < hd; d++) {
            dq[qo + d] += ds * k[ko + d];
            dk[ko + d] += ds * q[qo + d];
            dv[ko + d] += p * dy[qo + d];
          }
        }
      }
    }
  }
}
