/**
 * Composite reference of RopeRagged (kernels/kernel_names.ts): cos/sin rows gathered for the
 * given positions, then the rotation of kernels/reference/rope.ts (sin negated for `inverse`).
 * Differentiable, so it also gives the gradient where no fused kernel runs.
 */
import * as tf from '@tensorflow/tfjs';

import type { RopeRaggedAttrs } from '../kernel_names.js';
import { applyRope, ropeRows } from './rope.js';

/** x `[T, H*hd]`, row r rotated at position positions[r] -> `[T, H*hd]`. */
export function ropeRaggedReference(x: tf.Tensor2D, a: RopeRaggedAttrs): tf.Tensor2D {
  return tf.tidy(() => {
    const { cos, sin } = ropeRows(a.tables, a.positions); // [T, rot/2]
    return applyRope(x, cos, a.inverse ? tf.neg(sin) : sin, a.tables);
  });
}
