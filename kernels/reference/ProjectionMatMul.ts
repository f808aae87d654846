/**
 * Composite reference of ProjectionMatMul (kernels/kernel_names.ts): `tf.matMul` then `tf.add`,
 * exactly what a tfjs user would write (wasm hands untransposed 2-D matMuls to XNNPACK). An empty
 * inner dimension gives zeros (+ bias) without calling tf.matMul: tfjs-wasm's returns
 * uninitialised memory there.
 */
import * as tf from '@tensorflow/tfjs';

import type { ProjectionMatMulAttrs } from '../kernel_names.js';

/** `op(a) · op(b) (+ bias)` -> `[M, N]`; shapes already checked (kernels/projection_matmul.ts). */
export function projectionMatMulReference(a: tf.Tensor2D, b: tf.Tensor2D, bias: tf.Tensor | undefined, attrs: ProjectionMatMulAttrs,
  dims: readonly [number, number, number]): tf.Tensor2D {
  const [M, N, K] = dims;
  return tf.tidy((): tf.Tensor2D => {
    const y = K === 0 ? tf.zeros([M, N]) as tf.Tensor2D : tf.matMul(a, b, attrs.transposeA, attrs.transposeB) as tf.Tensor2D; // [M, N]
    return bias ? tf.add(y, bias) as tf.Tensor2D : y;
  });
}
