/**
 * `projectionMatMul(a, b, { transposeA, transposeB, bias })`: the product of a dense projection,
 * `op(a) · op(b) (+ bias)`. On `cpu` and `wasm` with the native addon (and
 * `ATTENTION_ROPE_FORCE_COMPOSITE` off) it runs the ProjectionMatMul kernel
 * (kernels/cpu/ProjectionMatMul.ts, kernels/wasm/ProjectionMatMul.ts: a compiled sgemm, and for
 * up to 16 rows a GEMV that streams each weight once); everywhere else it is `tf.matMul` then
 * `tf.add` (kernels/reference/ProjectionMatMul.ts), exactly what a tfjs user would write.
 *
 * The kernel's gradient runs this same op: `dA = dY · op(B)ᵀ`, `dB = op(A)ᵀ · dY` with the
 * transposes passed as attrs (no materialized transpose), `dBias = Σ_rows dY`. Gradients are
 * only computed for inputs on the path to what is differentiated (frozen kernels get none).
 *
 * @example
 * const y = projectionMatMul(x, kernel, { bias });            // [T, out] = x [T, in] · kernel [in, out] + bias
 * const dx = projectionMatMul(dy, kernel, { transposeB: true }); // [T, in]
 */
import * as tf from '@tensorflow/tfjs';

import { check } from '../lib/errors.js';
import { nativeSgemm, projectionMatMulCpuConfig, projectionMatMulDims } from './cpu/ProjectionMatMul.js';
import { ProjectionMatMul, type ProjectionMatMulAttrs } from './kernel_names.js';
import { hasFusedKernel } from './ops.js';
import { projectionMatMulReference } from './reference/ProjectionMatMul.js';
import { projectionMatMulWasmConfig } from './wasm/ProjectionMatMul.js';

const W = 'projectionMatMul';

export interface ProjectionMatMulOptions {
  transposeA?: boolean;
  transposeB?: boolean;
  /** `[N]`, added to every row. */
  bias?: tf.Tensor1D | tf.Tensor;
}

function registerGradient(): void {
  if (tf.getGradient(ProjectionMatMul) !== undefined) return;
  tf.registerGradient({
    kernelName: ProjectionMatMul,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      const [a, b] = saved as tf.Tensor2D[];
      const d = dy as tf.Tensor2D; // [M, N]
      const pm = (x: tf.Tensor2D, y: tf.Tensor2D, tA: boolean, tB: boolean) => projectionMatMul(x, y, { transposeA: tA, transposeB: tB });
      const { transposeA: tA, transposeB: tB } = attrs as unknown as ProjectionMatMulAttrs;
      const bias = () => tf.sum(d, 0);
      if (!tA && !tB) return { a: () => pm(d, b, false, true), b: () => pm(a, d, true, false), bias };
      if (!tA && tB) return { a: () => pm(d, b, false, false), b: () => pm(d, a, true, false), bias };
      if (tA && !tB) return { a: () => pm(b, d, false, true), b: () => pm(a, d, false, false), bias };
      return { a: () => pm(b, d, true, true), b: () => pm(d, a, true, true), bias };
    },
  });
}

/** Registers the cpu and wasm kernels and the gradient (idempotent; projectionMatMul does it on first use). */
export function registerProjectionMatMul(): void {
  for (const k of [projectionMatMulCpuConfig, projectionMatMulWasmConfig]) {
    if (tf.getKernel(ProjectionMatMul, k.backendName) === undefined) tf.registerKernel(k);
  }
  registerGradient();
}

/** True when projectionMatMul runs the native kernel: cpu or wasm, addon loaded, composite not forced. */
export function projectionUsesNative(): boolean {
  registerProjectionMatMul();
  const backend = tf.getBackend();
  return (backend === 'cpu' || backend === 'wasm') && hasFusedKernel(ProjectionMatMul) && nativeSgemm() !== null;
}

/** `op(a) · op(b) (+ bias)`: a `[M, K]` (`[K, M]` transposed), b `[K, N]` (`[N, K]` transposed) -> `[M, N]`. */
export function projectionMatMul(a: tf.Tensor2D, b: tf.Tensor2D, o: ProjectionMatMulOptions = {}): tf.Tensor2D {
  const attrs: ProjectionMatMulAttrs = { transposeA: o.transposeA ?? false, transposeB: o.transposeB ?? false };
  check(a instanceof tf.Tensor && b instanceof tf.Tensor, W, () => `a and b must be tensors, got ${typeof a} and ${typeof b}`);
  const [M, N, K] = projectionMatMulDims(W, a.shape, b.shape, o.bias?.shape, attrs);
  if (K === 0) {
    // An empty sum: zeros (+ bias). Not left to tf.matMul: tfjs-wasm's returns uninitialised memory here.
    return tf.tidy(() => {
      const y = tf.zeros([M, N]) as tf.Tensor2D; // [M, N]
      return o.bias ? tf.add(y, o.bias) as tf.Tensor2D : y;
    });
  }
  const floats = a.dtype === 'float32' && b.dtype === 'float32' && (o.bias === undefined || o.bias.dtype === 'float32');
  if (!floats || !projectionUsesNative()) return projectionMatMulReference(a, b, attrs, o.bias); // [M, N]
  const inputs: tf.NamedTensorMap = o.bias ? { a, b, bias: o.bias } : { a, b };
  return tf.engine().runKernel(ProjectionMatMul, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor2D;
}
