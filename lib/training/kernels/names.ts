/**
 * Kernels of the training path: attention over packed ragged rows with no cache, q, k and v as
 * explicit (differentiable) inputs. Each sequence b owns rows rowOffsets[b] .. rowOffsets[b+1]-1
 * at positions 0 .. n-1; query i sees key j of its own sequence when the mask allows
 * (lib/types.ts MaskVariant with start 0). The visible keys of a query are always one
 * contiguous range that includes the query itself.
 *
 * - `FlashAttentionRagged`: inputs q `[T, nH*hd]`, k, v `[T, nKv*hd]`; outputs
 *   out `[T, nH*hd]` and the log-sum-exp of each query head's scores `[T, nH]` (kept for the backward).
 * - `FlashAttentionRaggedGrad`: inputs dy, q, k, v, out, lse; outputs dq, dk, dv (FlashAttention-2's
 *   backward: probabilities recomputed from lse, no `[T, T]` matrix stored).
 */
import type { MaskSpec } from '../../types.js';

export const FlashAttentionRagged = 'FlashAttentionRagged';
export const FlashAttentionRaggedGrad = 'FlashAttentionRaggedGrad';

export interface FlashAttentionRaggedAttrs {
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  scale: number;
  mask: MaskSpec;
  /** `[batch + 1]` packed row offsets (int32, non-decreasing, last = T). */
  rowOffsets: Int32Array;
}

/** Visible key range [lo, hi) of query i in a sequence of n rows, positions from 0. */
export function visibleRange(mask: MaskSpec, i: number, n: number): [number, number] {
  switch (mask.variant) {
    case 'causal': return [0, i + 1];
    case 'null': return [0, n];
    case 'sliding_window_causal': return [Math.max(0, i - mask.window + 1), i + 1];
    case 'sliding_window': return [Math.max(0, i - mask.window + 1), Math.min(n, i + mask.window)];
    case 'chunked_causal': return [Math.floor(i / mask.chunk) * mask.chunk, i + 1];
  }
}
