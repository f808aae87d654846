/** Shared option types of the public API. */

/**
 * Which keys a query sees (positions are absolute within one sequence; query at i, key at j):
 * - `causal`: j <= i
 * - `null`: every key of its own sequence present after this step's store
 * - `sliding_window_causal`: i - W < j <= i
 * - `sliding_window`: |i - j| < W (non-causal, among keys present after this step's store)
 * - `chunked_causal`: j <= i and floor(i / C) == floor(j / C)  (Llama 4)
 */
export type MaskVariant = 'causal' | 'null' | 'sliding_window_causal' | 'sliding_window' | 'chunked_causal';

export const MASK_VARIANTS: readonly MaskVariant[] = [
  'causal',
  'null',
  'sliding_window_causal',
  'sliding_window',
  'chunked_causal',
];

/** Integer code of each mask variant, as kernels receive it. */
export const MASK_CODE: Record<MaskVariant, number> = {
  causal: 0,
  null: 1,
  sliding_window_causal: 2,
  sliding_window: 3,
  chunked_causal: 4,
};

/** Mask as kernels see it: the variant plus its window (W) or chunk (C) size, 0 when unused. */
export interface MaskSpec {
  variant: MaskVariant;
  window: number;
  chunk: number;
}

/** A device is a backend placement. */
export interface DevicePlacement {
  backend: 'cpu' | 'wasm' | 'webgpu' | 'webgl' | 'tensorflow' | string;
  index: number;
}

export type DType = 'float32';
