/**
 * Dispatch of the fused ops: the kernel registered for the active backend when there is one
 * (and the composite path is not forced), else the composite reference beside it. Every op
 * validates its arguments first (kernels/validate.ts), the same on every path.
 *
 * Flags (tf.env()):
 * - `ATTENTION_ROPE_FORCE_COMPOSITE` (bool, default false, or the environment switch
 *   `TFJS_ATTENTION_FORCE_COMPOSITE=1`; its old name `ATTENTION_ROPE_FORCE_COMPOSITE=1` still works):
 *   always run the composite references.
 * - `ATTENTION_ROPE_FLASH_VARIANT` ('auto' | 'prefill' | 'decode', default 'auto'): which
 *   FlashAttentionRaggedPaged path a fused kernel takes, so specs can force each one.
 */
import * as tf from '@tensorflow/tfjs';

import { envSwitch } from '../core/env.js';
import {
  FlashAttentionRaggedPaged, type FlashAttentionRaggedPagedAttrs, type FlashAttentionVariant,
  RopeSplitStoreRagged, type RopeSplitStoreRaggedAttrs,
} from './kernel_names.js';
import { flashAttentionRaggedPagedReference } from './reference/FlashAttentionRaggedPaged.js';
import { ropeSplitStoreRaggedReference } from './reference/RopeSplitStoreRagged.js';
import { registerAllKernels } from './register_all.js';
import { validateFlashAttentionRaggedPaged, validateRopeSplitStoreRagged } from './validate.js';

const env = tf.env();
if (!env.getFlags().hasOwnProperty('ATTENTION_ROPE_FORCE_COMPOSITE')) {
  try { env.registerFlag('ATTENTION_ROPE_FORCE_COMPOSITE', () =>
    envSwitch('FORCE_COMPOSITE', 'ATTENTION_ROPE_FORCE_COMPOSITE') === '1'); } catch { /* registered by a twin module */ }
  try { env.registerFlag('ATTENTION_ROPE_FLASH_VARIANT', () => 'auto' as unknown as boolean); } catch { /* same */ }
}

/**
 * True when a fused kernel named `name` serves the active backend and is not switched off.
 * Registers every kernel first (once: kernels/register_all.ts), so no op silently runs its
 * composite path because nobody called `useBackend`.
 */
export function hasFusedKernel(name: string): boolean {
  registerAllKernels();
  if (tf.env().getBool('ATTENTION_ROPE_FORCE_COMPOSITE')) return false;
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

/** The flash variant flag's value. */
export function flashVariant(): FlashAttentionVariant {
  return tf.env().get('ATTENTION_ROPE_FLASH_VARIANT') as unknown as FlashAttentionVariant;
}

/** RopeSplitStoreRagged: fused kernel or composite reference. Returns q `[T, nH*hd]`. */
export function ropeSplitStoreRagged(
  qkv: tf.Tensor2D, attrs: RopeSplitStoreRaggedAttrs, qNormWeight?: tf.Tensor1D, kNormWeight?: tf.Tensor1D,
): tf.Tensor2D {
  validateRopeSplitStoreRagged(qkv, attrs, qNormWeight, kNormWeight);
  if (!hasFusedKernel(RopeSplitStoreRagged)) return ropeSplitStoreRaggedReference(qkv, attrs, qNormWeight, kNormWeight);
  const inputs: tf.NamedTensorMap = attrs.qkNormEps >= 0 ? { qkv, qNormWeight: qNormWeight!, kNormWeight: kNormWeight! } : { qkv };
  return tf.engine().runKernel(RopeSplitStoreRagged, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}

/** FlashAttentionRaggedPaged: fused kernel or composite reference. Returns `[T, nH*hd]`. */
export function flashAttentionRaggedPaged(q: tf.Tensor2D, attrs: FlashAttentionRaggedPagedAttrs): tf.Tensor2D {
  validateFlashAttentionRaggedPaged(q, attrs);
  if (!hasFusedKernel(FlashAttentionRaggedPaged)) return flashAttentionRaggedPagedReference(q, attrs);
  return tf.engine().runKernel(FlashAttentionRaggedPaged, { q }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}
