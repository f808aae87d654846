/**
 * `projectionMatMul(a, b, { transposeA, transposeB, bias })`: the product of a dense projection,
 * `op(a) · op(b) (+ bias)`. On `cpu` and `wasm` with the native addon (and the composite path not
 * forced) it runs the ProjectionMatMul kernel (kernels/cpu/ProjectionMatMul.ts,
 * kernels/wasm/ProjectionMatMul.ts: a compiled sgemm, and for up to 16 rows a GEMV that streams
 * each weight once); everywhere else its composite reference (kernels/reference/ProjectionMatMul.ts:
 * `tf.matMul` then `tf.add`, exactly what a tfjs user would write).
 *
 * The kernel's gradient (kernels/gradients.ts) runs this same op: `dA = dY · op(B)ᵀ`, `dB = op(A)ᵀ · dY` with the
 * transposes passed as attrs (no materialized transpose), `dBias = Σ_rows dY`. Gradients are
 * only computed for inputs on the path to what is differentiated (frozen kernels get none).
 *
 * @example
 * const y = projectionMatMul(x, kernel, { bias });            // [T, out] = x [T, in] · kernel [in, out] + bias
 * const dx = projectionMatMul(dy, kernel, { transposeB: true }); // [T, in]
 */
import * as tf from '@tensorflow/tfjs';

import { check } from '../core/errors.js';
import { nativeSgemm, projectionMatMulDims } from './cpu/ProjectionMatMul.js';
import { ProjectionMatMul, type ProjectionMatMulAttrs } from './kernel_names.js';
import { hasFusedKernel } from './ops.js';
import { projectionMatMulReference } from './reference/ProjectionMatMul.js';
import { wasmSimdActive } from './wasm/simd_module.js';

const W = 'projectionMatMul';

export interface ProjectionMatMulOptions {
  transposeA?: boolean;
  transposeB?: boolean;
  /** `[N]`, added to every row. */
  bias?: tf.Tensor1D | tf.Tensor;
}

/** True when projectionMatMul runs the native kernel: cpu or wasm, addon loaded, composite not forced. */
export function projectionUsesNative(): boolean {
  const backend = tf.getBackend();
  if (backend !== 'cpu' && backend !== 'wasm') return false;
  const native = nativeSgemm() !== null;
  return hasFusedKernel(ProjectionMatMul) && (native || wasmSimdActive(native)); // wasm without the addon: its SIMD module
}

/** `op(a) · op(b) (+ bias)`: a `[M, K]` (`[K, M]` transposed), b `[K, N]` (`[N, K]` transposed) -> `[M, N]`. */
export function projectionMatMul(a: tf.Tensor2D, b: tf.Tensor2D, o: ProjectionMatMulOptions = {}): tf.Tensor2D {
  const attrs: ProjectionMatMulAttrs = { transposeA: o.transposeA ?? false, transposeB: o.transposeB ?? false };
  check(a instanceof tf.Tensor && b instanceof tf.Tensor, W, () => `a and b must be tensors, got ${typeof a} and ${typeof b}`);
  for (const [name, t] of [['a', a], ['b', b], ['bias', o.bias]] as const) {
    check(t === undefined || !t.isDisposed, W, () => `${name} (shape [${t!.shape}]) was disposed before the call`);
  }
  const dims = projectionMatMulDims(W, a.shape, b.shape, o.bias?.shape, attrs); // [M, N, K]
  const floats = a.dtype === 'float32' && b.dtype === 'float32' && (o.bias === undefined || o.bias.dtype === 'float32');
  if (dims[2] === 0 || !floats || !projectionUsesNative()) return projectionMatMulReference(a, b, o.bias, attrs, dims);
  const inputs: tf.NamedTensorMap = o.bias ? { a, b, bias: o.bias } : { a, b };
  return tf.engine().runKernel(ProjectionMatMul, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}
