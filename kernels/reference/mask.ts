import type { MaskSpec } from '../../core/types.js';

/** Whether a query at absolute position `i` sees the key at `j` (keys 0 .. len-1 exist). */
export function keyVisible(mask: MaskSpec, i: number, j: number): boolean {
  switch (mask.variant) {
    case 'causal': return j <= i;
    case 'null': return true;
    case 'sliding_window_causal': return j <= i && i - j < mask.window;
    case 'sliding_window': return Math.abs(i - j) < mask.window;
    case 'chunked_causal': return j <= i && Math.floor(i / mask.chunk) === Math.floor(j / mask.chunk);
  }
}

/**
 * Additive mask `[n * group, len]` for n queries at positions start .. start+n-1, each repeated
 * for the `group` query heads sharing a KV head (row = i * group + g): 0 where visible, -Infinity else.
 */
export function additiveMask(mask: MaskSpec, start: number, n: number, group: number, len: number): Float32Array {
  const out = new Float32Array(n * group * len);
  for (let i = 0; i < n; i++) {
    const row = out.subarray(i * group * len, (i * group + 1) * len);
    for (let j = 0; j < len; j++) if (!keyVisible(mask, start + i, j)) row[j] = -Infinity;
    for (let g = 1; g < group; g++) out.copyWithin((i * group + g) * len, i * group * len, (i * group + 1) * len);
  }
  return out;
}

/** Visible key range [lo, hi) of query i in a sequence of n rows, positions from 0 (the training kernels). */
export function visibleRange(mask: MaskSpec, i: number, n: number): [number, number] {
  switch (mask.variant) {
    case 'causal': return [0, i + 1];
    case 'null': return [0, n];
    case 'sliding_window_causal': return [Math.max(0, i - mask.window + 1), i + 1];
    case 'sliding_window': return [Math.max(0, i - mask.window + 1), Math.min(n, i + mask.window)];
    case 'chunked_causal': return [Math.floor(i / mask.chunk) * mask.chunk, i + 1];
  }
}
