/**
 * RopeSplitStoreRagged in plain TypeScript (the browser / no-compiler path): per token, optional
 * qk RMSNorm per head, rotate q and k with the cos/sin row of the token's position, write k and v
 * into their page slots, write rotated q to `qOut`. With `rowsOut`, k and v go to packed rows
 * `[T, nKv * D]` instead (for a compact cache, which encodes them itself; kernels/cpu/packed_kv.ts).
 */
import type { RopeSplitStoreRaggedAttrs } from '../kernel_names.js';

export function ropeSplitStoreTs(
  qkv: Float32Array, // [T, (nHeads + 2 nKv) * D]
  qOut: Float32Array, // [T, nHeads * D]
  kPool: Float32Array, vPool: Float32Array, // [numPages, nKv, pageSize, D]
  a: RopeSplitStoreRaggedAttrs, qNormW: Float32Array | null, kNormW: Float32Array | null, rowsOut = false,
): void {
  const { nHeads, nKvHeads: nKv, headDim: D, rope, collection: c } = a;
  const { rotaryDim, interleaved, cos, sin } = rope;
  const half = rotaryDim >> 1, ps = c.cache.params.pageSize, eps = a.qkNormEps;
  const inStride = (nHeads + 2 * nKv) * D;
  const tmp = new Float32Array(D);
  const head = (src: number, dst: Float32Array, dOff: number, w: Float32Array | null, cs: number): void => {
    let x: Float32Array = qkv, xo = src;
    if (w !== null && eps >= 0) {
      let ss = 0;
      for (let d = 0; d < D; d++) ss += qkv[src + d] * qkv[src + d];
      const inv = 1 / Math.sqrt(ss / D + eps);
      for (let d = 0; d < D; d++) tmp[d] = qkv[src + d] * inv * w[d];
      x = tmp; xo = 0;
    }
    const step = interleaved ? 2 : 1, other = interleaved ? 1 : half;
    for (let i = 0; i < half; i++) {
      const ia = i * step, ib = ia + other;
      const xa = x[xo + ia], xb = x[xo + ib], co = cos[cs + i], si = sin[cs + i];
      dst[dOff + ia] = xa * co - xb * si;
      dst[dOff + ib] = xb * co + xa * si;
    }
    for (let d = rotaryDim; d < D; d++) dst[dOff + d] = x[xo + d];
  };
  for (let b = 0; b < c.seqIds.length; b++) {
    const r0 = c.rowOffsets[b], r1 = c.rowOffsets[b + 1], start = c.startPositions[b];
    for (let t = r0; t < r1; t++) {
      const pos = start + t - r0, cs = pos * half, row = t * inStride;
      for (let h = 0; h < nHeads; h++) head(row + h * D, qOut, (t * nHeads + h) * D, qNormW, cs);
      const page = c.pageTable[b * c.maxPagesPerSeq + Math.floor(pos / ps)], slot = pos % ps;
      for (let h = 0; h < nKv; h++) {
        const off = rowsOut ? (t * nKv + h) * D : ((page * nKv + h) * ps + slot) * D;
        head(row + (nHeads + h) * D, kPool, off, kNormW, cs);
        vPool.set(qkv.subarray(row + (nHeads + nKv + h) * D, row + (nHeads + nKv + h + 1) * D), off);
      }
    }
  }
}
