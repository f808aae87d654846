/**
 * FlashAttentionRagged forward and backward through the native addon (native/flash_train.cc:
 * K/V packed once per (sequence, KV head) and shared by its query heads, register-blocked tiles,
 * FlashAttention-2 backward; items on both threads), for the
 * `cpu` backend when the addon loaded and `TFJS_ATTENTION_CPU_IMPL` is not `ts`. The wasm
 * backend keeps the TypeScript host kernel (flash_attention_ragged_ts.ts).
 */
import { MASK_CODE } from '../../core/types.js';
import type { FlashAttentionRaggedAttrs } from '../kernel_names.js';
import { activeNative } from './native.js';
import { packInts, TRAIN_ARG } from './native_args.js';

interface Views { q: Float32Array; k: Float32Array; v: Float32Array }

export interface NativeFlashTrain {
  forward(x: Views, out: Float32Array, lse: Float32Array, a: FlashAttentionRaggedAttrs): void;
  backward(x: Views, dy: Float32Array, out: Float32Array, lse: Float32Array, dq: Float32Array, dk: Float32Array, dv: Float32Array,
    a: FlashAttentionRaggedAttrs): void;
}

const ints = (a: FlashAttentionRaggedAttrs) => packInts(TRAIN_ARG, { BATCH: a.rowOffsets.length - 1, N_HEADS: a.nHeads, N_KV: a.nKvHeads,
  HEAD_DIM: a.headDim, MASK: MASK_CODE[a.mask.variant], WINDOW: a.mask.window ?? 0, CHUNK: a.mask.chunk ?? 0 });

/** The native training attention, or null (no addon, an addon without it, or the TS path forced). */
export function nativeFlashTrain(): NativeFlashTrain | null {
  const n = activeNative();
  if (n === null || typeof n.flashTrain !== 'function') return null;
  return {
    forward: ({ q, k, v }, out, lse, a) => n.flashTrain(q, k, v, a.rowOffsets, out, lse, null, null, null, null, ints(a), a.scale),
    backward: ({ q, k, v }, dy, out, lse, dq, dk, dv, a) => n.flashTrain(q, k, v, a.rowOffsets, out, lse, dy, dq, dk, dv, ints(a), a.scale),
  };
}
