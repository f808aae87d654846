/**
 * The gradient of 2-D `BatchMatMul` with every product untransposed: `dA = dY · transpose(B)`
 * instead of `matMul(dY, B, false, true)`. Same numbers; on `wasm` it is several times faster,
 * since tfjs-wasm hands only untransposed, unbatched matMuls to XNNPACK and runs the rest in a
 * scalar loop. Other ranks keep tfjs's own gradient.
 */
import * as tf from '@tensorflow/tfjs';

const T = (x: tf.Tensor) => tf.transpose(x);
const mm = (a: tf.Tensor, b: tf.Tensor) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D);

let original: tf.GradConfig | undefined;
let installed = false;

/** Installs the untransposed 2-D matMul gradient (idempotent). */
export function installMatMulGradient(): void {
  if (installed) return;
  original ??= tf.getGradient('BatchMatMul');
  if (original === undefined) return;
  const stock = original;
  installed = true;
  tf.registerGradient({
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      const [a, b] = saved;
      const d = dy as tf.Tensor;
      if (a.rank !== 2 || b.rank !== 2) return stock.gradFunc(dy, saved, attrs);
      const { transposeA, transposeB } = attrs as unknown as { transposeA: boolean; transposeB: boolean };
      if (!transposeA && !transposeB) return { a: () => mm(d, T(b)), b: () => mm(T(a), d) };
      if (!transposeA && transposeB) return { a: () => mm(d, b), b: () => mm(T(d), a) };
      if (transposeA && !transposeB) return { a: () => mm(b, T(d)), b: () => mm(a, d) };
      return { a: () => mm(T(b), T(d)), b: () => mm(T(d), T(a)) };
    },
  });
}

/** Puts tfjs's own BatchMatMul gradient back (benchmarks compare against it). */
export function uninstallMatMulGradient(): void {
  if (!installed || original === undefined) return;
  tf.registerGradient(original);
  installed = false;
}
