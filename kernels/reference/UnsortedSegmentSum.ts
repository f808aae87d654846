/**
 * Composite reference of the wasm gap kernel UnsortedSegmentSum (kernels/wasm/UnsortedSegmentSum.ts):
 * `oneHot(segmentIds, numSegments)ᵀ · x` over x's rows flattened to `[n, inner]`; ids outside
 * [0, numSegments) select no segment (oneHot gives them a zero row), as the kernel drops them.
 */
import * as tf from '@tensorflow/tfjs';

/** out `[numSegments, ...x.shape[segmentIds.rank:]]`, float32. */
export function unsortedSegmentSumReference(x: tf.Tensor, segmentIds: tf.Tensor, numSegments: number): tf.Tensor {
  return tf.tidy(() => {
    const n = segmentIds.size, rest = x.shape.slice(segmentIds.rank);
    const inner = rest.reduce((p, d) => p * d, 1);
    const sel = tf.oneHot(tf.cast(segmentIds.reshape([n]), 'int32'), numSegments).toFloat(); // [n, numSegments]
    const rows = tf.cast(x, 'float32').reshape([n, inner]); // [n, inner]
    return tf.matMul(sel, rows, true, false).reshape([numSegments, ...rest]); // [numSegments, ...rest]
  });
}
