/**
 * Host-side cos/sin tables that kernels read. Row p holds the angles of position p:
 * `cos[p * half + i] = cos(p * invFreq[i]) * attentionFactor` (same for sin), half = rotaryDim / 2.
 *
 * Pairs rotated: rotate-half layout (`interleaved: false`, Hugging Face) rotates dims (i, i + half);
 * GPT-J layout (`interleaved: true`) rotates dims (2i, 2i + 1). Only the first `rotaryDim` dims of
 * each head rotate; dims rotaryDim .. headDim - 1 pass through (partial rotary, StableLM).
 *   out[a] = x[a] * cos - x[b] * sin;  out[b] = x[b] * cos + x[a] * sin
 */
export interface RopeTables {
  /** `[maxPositions, rotaryDim / 2]` */
  cos: Float32Array;
  /** `[maxPositions, rotaryDim / 2]` */
  sin: Float32Array;
  headDim: number;
  rotaryDim: number;
  maxPositions: number;
  interleaved: boolean;
}
