/**
 * Eager functional API, PyTorch / MLX style: plain functions of tensors, no layer and (except
 * `pagedAttention`) no cache, differentiable with `tf.grad`. Each runs the fused kernel where the
 * active backend has one (FlashAttentionRagged, RopeRagged, FlashAttentionRaggedPaged,
 * ProjectionMatMul) and the composite reference elsewhere, and validates its arguments first.
 *
 * Shapes: padded `[B, H, S, D]` for `attention` and `rope`; packed rows `[T, H, D]` for the ragged
 * and paged forms (sequence b owns rows rowOffsets[b] .. rowOffsets[b+1]-1). GQA: query head h
 * reads KV head floor(h / (Hq / Hkv)).
 */
import * as tf from '@tensorflow/tfjs';

import { check } from '../core/errors.js';
import type { PagedKVCollection } from '../core/paged_kv_store.js';
import type { RopeTables } from '../core/rope_tables.js';
import { MASK_CODE, type MaskSpec, type MaskVariant } from '../core/types.js';
import { flashAttentionRaggedPaged } from '../kernels/ops.js';
import { flashAttentionRagged, ropeRagged } from '../kernels/train_ops.js';
import type { RotaryEmbedding } from './rope/rotary_embedding.js';

export { projectionMatMul, type ProjectionMatMulOptions } from '../kernels/projection_matmul.js';

/** Attention options shared by the functions below. */
export interface AttentionOptions {
  /** Score scale (default 1 / sqrt(D)). */
  scale?: number;
  /** Which keys a query sees (default 'causal'; see MaskVariant). */
  mask?: MaskVariant;
  /** Window W for the sliding-window masks; given alone it makes the mask 'sliding_window_causal'. */
  slidingWindow?: number;
  /** Chunk C for 'chunked_causal'. */
  chunk?: number;
}

function maskSpec(where: string, o: AttentionOptions): MaskSpec {
  const variant: MaskVariant = o.mask ?? (o.slidingWindow !== undefined ? 'sliding_window_causal' : 'causal');
  check(MASK_CODE[variant] !== undefined, where, () => `mask must be one of ${Object.keys(MASK_CODE).join(', ')}, got '${variant}'`);
  return { variant, window: o.slidingWindow ?? 0, chunk: o.chunk ?? 0 };
}

/** Head counts and head dim of q, k, v of rank `rank` (heads on axis 1, D last). */
function heads(where: string, q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, rank: number): { nH: number; nKv: number; D: number } {
  for (const [n, t] of [['q', q], ['k', k], ['v', v]] as const) {
    check(t instanceof tf.Tensor && !t.isDisposed, where, () => `${n} must be a live tf.Tensor`);
    check(t.rank === rank, where, () => `${n} must have rank ${rank}, got shape [${t.shape}]`);
  }
  const [qs, ks, vs] = [q.shape, k.shape, v.shape] as number[][];
  const nH = qs[1], nKv = ks[1], D = qs[rank - 1];
  check(nKv >= 1 && nH % nKv === 0, where, () => `q heads (${nH}) must be a multiple of k heads (${nKv})`);
  check(vs[1] === nKv && ks[rank - 1] === D && vs[rank - 1] === D, where,
    () => `k and v must have ${nKv} heads of ${D} dims like q's head dim, got k [${k.shape}], v [${v.shape}]`);
  return { nH, nKv, D };
}

/**
 * Rotary position embedding. `x` is padded `[B, H, S, D]` (positions `[S]`, shared by the batch)
 * or packed rows `[T, H, D]` (positions `[T]`). `rotary`: a RotaryEmbedding or its tables.
 *
 * @example
 * const rotary = new RotaryEmbedding({ headDim: 64, theta: 10000, maxSeqLen: 2048 });
 * const q = tf.randomNormal([2, 8, 16, 64]);
 * const qr = rope(q, Array.from({ length: 16 }, (_, i) => i), rotary);   // [2, 8, 16, 64]
 */
export function rope(x: tf.Tensor, positions: ArrayLike<number>, rotary: RotaryEmbedding | RopeTables): tf.Tensor {
  const W = 'rope';
  check(x instanceof tf.Tensor && (x.rank === 3 || x.rank === 4), W, () => `x must be [B, H, S, D] or [T, H, D], got shape [${(x as tf.Tensor)?.shape}]`);
  const tables = 'tables' in rotary && typeof rotary.tables === 'function' ? rotary.tables() : rotary as RopeTables;
  return tf.tidy(() => {
    if (x.rank === 3) {
      const [T, H, D] = x.shape;
      return ropeRagged(x.reshape([T, H * D]) as tf.Tensor2D, tables, Int32Array.from(positions)).reshape([T, H, D]);
    }
    const [B, H, S, D] = x.shape;
    check(positions.length === S, W, () => `positions length (${positions.length}) must equal S (${S})`);
    const pos = new Int32Array(B * S);
    for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) pos[b * S + s] = positions[s];
    const rows = x.transpose([0, 2, 1, 3]).reshape([B * S, H * D]) as tf.Tensor2D; // [B*S, H*D]
    return ropeRagged(rows, tables, pos).reshape([B, S, H, D]).transpose([0, 2, 1, 3]); // [B, H, S, D]
  });
}

/**
 * Scaled dot-product attention over padded `[B, H, S, D]` q, k, v (self-attention: k and v have
 * q's length; GQA when k has fewer heads). Every sequence of the batch is full length (pad
 * sequences of different lengths at the end and use the ragged form to skip the padding).
 *
 * @example
 * const q = tf.randomNormal([2, 8, 16, 64]), k = tf.randomNormal([2, 2, 16, 64]), v = tf.randomNormal([2, 2, 16, 64]);
 * const y = attention(q, k, v, { mask: 'causal' });                   // [2, 8, 16, 64]
 * const dq = tf.grad((x: tf.Tensor) => attention(x, k, v).sum())(q);  // differentiable
 */
export function attention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, opts: AttentionOptions = {}): tf.Tensor {
  const W = 'attention';
  const { nH, nKv, D } = heads(W, q, k, v, 4);
  const [B, , S] = q.shape;
  check(k.shape[0] === B && v.shape[0] === B && k.shape[2] === S && v.shape[2] === S, W,
    () => `k and v must be [${B}, ${nKv}, ${S}, ${D}] (q's batch and length), got k [${k.shape}], v [${v.shape}]`);
  const rowOffsets = Int32Array.from({ length: B + 1 }, (_, b) => b * S);
  return tf.tidy(() => {
    const rows = (t: tf.Tensor, h: number) => t.transpose([0, 2, 1, 3]).reshape([B * S, h * D]) as tf.Tensor2D; // [B*S, h*D]
    const out = flashAttentionRagged(rows(q, nH), rows(k, nKv), rows(v, nKv), {
      nHeads: nH, nKvHeads: nKv, headDim: D, scale: opts.scale ?? 1 / Math.sqrt(D), mask: maskSpec(W, opts), rowOffsets,
    });
    return out.reshape([B, S, nH, D]).transpose([0, 2, 1, 3]); // [B, H, S, D]
  });
}

/**
 * Attention of packed ragged sequences: q `[T, Hq, D]`, k and v `[T, Hkv, D]`, sequence b owns
 * rows rowOffsets[b] .. rowOffsets[b+1]-1 (positions from 0). No padding is computed.
 *
 * @example
 * const q = tf.randomNormal([8, 4, 16]), k = tf.randomNormal([8, 2, 16]), v = tf.randomNormal([8, 2, 16]);
 * const y = raggedAttention(q, k, v, [0, 5, 8]);   // [8, 4, 16]: sequences of 5 and 3 tokens
 */
export function raggedAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, rowOffsets: ArrayLike<number>, opts: AttentionOptions = {}): tf.Tensor {
  const W = 'raggedAttention';
  const { nH, nKv, D } = heads(W, q, k, v, 3);
  const T = q.shape[0];
  return tf.tidy(() => flashAttentionRagged(q.reshape([T, nH * D]) as tf.Tensor2D, k.reshape([k.shape[0], nKv * D]) as tf.Tensor2D,
    v.reshape([v.shape[0], nKv * D]) as tf.Tensor2D, {
      nHeads: nH, nKvHeads: nKv, headDim: D, scale: opts.scale ?? 1 / Math.sqrt(D), mask: maskSpec(W, opts), rowOffsets: Int32Array.from(rowOffsets),
    }).reshape([T, nH, D]));
}

/**
 * Attention of new tokens' queries `[T, Hq, D]` (already rotated) over a paged cache's keys and
 * values of layer `layer`, for the step `collection` (from `cache.fetch`; K and V of the new tokens
 * stored already, e.g. by `ropeSplitStoreRagged` or `cache.writeTokens`). Differentiable in q.
 *
 * @example
 * const kv = cache.fetch([0, 1], [7, 3]);
 * cache.writeTokens(0, kv, k, v);                           // k, v Float32Array [10 * nKv * D]
 * const y = pagedAttention(q, kv, 0, { mask: 'causal' });   // q [10, Hq, D] -> [10, Hq, D]
 * cache.step(kv);
 */
export function pagedAttention(q: tf.Tensor, collection: PagedKVCollection, layer: number, opts: AttentionOptions = {}): tf.Tensor {
  const W = 'pagedAttention';
  check(q instanceof tf.Tensor && q.rank === 3, W, () => `q must be [T, Hq, D], got shape [${(q as tf.Tensor)?.shape}]`);
  const [T, nH, D] = q.shape;
  const nKv = collection?.cache?.params?.nKvHeads;
  return tf.tidy(() => flashAttentionRaggedPaged(q.reshape([T, nH * D]) as tf.Tensor2D, {
    nHeads: nH, nKvHeads: nKv, headDim: D, scale: opts.scale ?? 1 / Math.sqrt(D), mask: maskSpec(W, opts),
    collection, layerIdx: layer, variant: 'auto',
  }).reshape([T, nH, D]));
}
