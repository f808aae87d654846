/**
 * The integer-argument blocks passed to the native addon (`ints`), one index per name: the same
 * table as native/kernel_args.h (spec/kernels/native_args.spec.ts compares the two). The addon
 * checks every array's length against these values before it reads or writes.
 */

/** ropeSplitStore's ints. */
export const ROPE_ARG = {
  T: 0, BATCH: 1, N_HEADS: 2, N_KV: 3, HEAD_DIM: 4, ROTARY_DIM: 5, INTERLEAVED: 6, PAGE_SIZE: 7, MAX_PAGES: 8, KV_DTYPE: 9, COUNT: 10,
} as const;

/** flashAttention's ints. */
export const ATTN_ARG = {
  BATCH: 0, N_HEADS: 1, N_KV: 2, HEAD_DIM: 3, PAGE_SIZE: 4, MAX_PAGES: 5, MASK: 6, WINDOW: 7, CHUNK: 8, VARIANT: 9, KV_DTYPE: 10, COUNT: 11,
} as const;

/** kvParams.dtype -> the addon's KvDtype code (native/kv_codec.h). */
export const KV_DTYPE_CODE = { float32: 0, float16: 1, bfloat16: 2, int8: 3, float8_e4m3: 4 } as const;

/** flashTrain's ints. */
export const TRAIN_ARG = { BATCH: 0, N_HEADS: 1, N_KV: 2, HEAD_DIM: 3, MASK: 4, WINDOW: 5, CHUNK: 6, COUNT: 7 } as const;

/** An `Int32Array` of `table.COUNT` values set by name: `packInts(ATTN_ARG, { BATCH: 2, ... })`. */
export function packInts<T extends { COUNT: number }>(table: T, values: Record<Exclude<keyof T, 'COUNT'>, number>): Int32Array {
  const out = new Int32Array(table.COUNT);
  for (const [name, v] of Object.entries(values) as [Exclude<keyof T, 'COUNT'>, number][]) out[table[name] as number] = v;
  return out;
}
