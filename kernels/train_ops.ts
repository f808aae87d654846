/**
 * Ops of the training path, differentiable, with no cache:
 * - `flashAttentionRagged(q, k, v, attrs)`: attention over packed ragged rows. Runs the fused
 *   kernel where the active backend has it (cpu, wasm) and the composite reference elsewhere, or
 *   everywhere when `ATTENTION_ROPE_FORCE_COMPOSITE` is set (kernels/ops.ts); see trainAttentionVariant.
 * - `ropeRagged(x, tables, positions, inverse)`: rotates packed rows at given positions.
 *
 * @example
 * const out = flashAttentionRagged(q, k, v, { nHeads: 4, nKvHeads: 2, headDim: 16, scale: 0.25,
 *   mask: { variant: 'causal', window: 0, chunk: 0 }, rowOffsets: new Int32Array([0, 5, 8]) }); // [8, 64]
 */
import * as tf from '@tensorflow/tfjs';
import { check } from '../core/errors.js';
import type { RopeTables } from '../core/rope_tables.js';
import { FlashAttentionRagged, type FlashAttentionRaggedAttrs, RopeRagged, type RopeRaggedAttrs } from './kernel_names.js';
import { hasFusedKernel } from './ops.js';
import { flashAttentionRaggedReference } from './reference/FlashAttentionRagged.js';
import { ropeRaggedReference } from './reference/RopeRagged.js';
import { validateFlashAttentionRagged, validateRopeRagged } from './validate.js';

const env = tf.env();
if (!env.getFlags().hasOwnProperty('ATTENTION_ROPE_TRAIN_ATTENTION')) {
  try { env.registerFlag('ATTENTION_ROPE_TRAIN_ATTENTION', () => 'auto' as unknown as boolean); } catch { /* registered by a twin module */ }
}

export type TrainAttentionVariant = 'auto' | 'fused' | 'composite';

/**
 * Which implementation of the training attention runs. Flag `ATTENTION_ROPE_TRAIN_ATTENTION`
 * ('auto' | 'fused' | 'composite') forces one. `auto`: the fused host kernel, except on wasm
 * for few long sequences, where the composite's XNNPACK matMuls beat the scalar host loops
 * (its cost is mostly a fixed ~0.7 ms of op overhead per (sequence, KV head) block, the host
 * kernel's ~9 ns per query-key pair and head dim; measured on 2 cores: 64 sequences of ~14
 * tokens, fused 5x faster; 4 sequences of 32-128 tokens, composite 1.5x faster).
 */
export function trainAttentionVariant(a: FlashAttentionRaggedAttrs): 'fused' | 'composite' {
  const forced = tf.env().get('ATTENTION_ROPE_TRAIN_ATTENTION') as unknown as TrainAttentionVariant;
  if (!hasFusedKernel(FlashAttentionRagged)) return 'composite';
  if (forced === 'fused' || forced === 'composite') return forced;
  if (tf.getBackend() !== 'wasm') return 'fused';
  let pairs = 0, blocks = 0;
  const r = a.rowOffsets;
  for (let b = 0; b + 1 < r.length; b++) {
    const n = r[b + 1] - r[b];
    if (n > 0) { pairs += (n * (n + 1)) / 2; blocks += a.nKvHeads; }
  }
  const hostMs = 9e-6 * pairs * a.nHeads * a.headDim;
  const compositeMs = 0.7 * blocks;
  return hostMs <= compositeMs ? 'fused' : 'composite';
}

/** Attention of each packed sequence over itself: `[T, nH*hd]`. Differentiable in q, k and v. */
export function flashAttentionRagged(q: tf.Tensor2D, k: tf.Tensor2D, v: tf.Tensor2D, attrs: FlashAttentionRaggedAttrs): tf.Tensor2D {
  validateFlashAttentionRagged(q, k, v, attrs);
  if (trainAttentionVariant(attrs) === 'composite') return flashAttentionRaggedReference(q, k, v, attrs);
  const [out, lse] = tf.engine().runKernel(FlashAttentionRagged, { q, k, v }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  lse.dispose();
  return out as tf.Tensor2D;
}

/**
 * Rotates x `[T, H*hd]`, row r at position positions[r]; differentiable (the gradient is the
 * inverse rotation).
 *
 * @example
 * const qr = ropeRagged(q, rope.tables(), new Int32Array([0, 1, 2, 0, 1])); // [5, H*hd]
 */
export function ropeRagged(x: tf.Tensor2D, tables: RopeTables, positions: Int32Array, inverse = false): tf.Tensor2D {
  const attrs: RopeRaggedAttrs = { tables, positions, inverse };
  validateRopeRagged(x, attrs);
  if (!hasFusedKernel(RopeRagged)) return ropeRaggedReference(x, attrs);
  return tf.engine().runKernel(RopeRagged, { x }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}
