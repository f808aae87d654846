/**
 * The native FlashAttentionRagged forward and backward (native/flash_train.cc, cpu) against the
 * TypeScript host kernel (TFJS_ATTENTION_CPU_IMPL=ts) for every mask, GQA ratios, head dims that
 * are and are not multiples of 16, and empty sequences. The gradient specs (gradients.spec.ts)
 * check the same path against the composite reference and finite differences.
 */
import * as tf from '@tensorflow/tfjs';
import { setCpuKernelImpl } from '../../kernels/cpu/native';
import { nativeFlashTrain } from '../../lib/training/kernels/flash_attention_ragged_native';
import { flashAttentionRagged, registerTrainingKernels } from '../../lib/training/kernels/ops';
import type { MaskSpec } from '../../lib/types';
import { maxRelDiff, randomArray } from '../support/random_layer';

const MASKS: MaskSpec[] = [
  { variant: 'causal', window: 0, chunk: 0 }, { variant: 'null', window: 0, chunk: 0 },
  { variant: 'sliding_window_causal', window: 3, chunk: 0 }, { variant: 'sliding_window', window: 2, chunk: 0 },
  { variant: 'chunked_causal', window: 0, chunk: 4 },
];
const SHAPES = [{ nHeads: 4, nKvHeads: 2, headDim: 8 }, { nHeads: 8, nKvHeads: 4, headDim: 32 }, { nHeads: 3, nKvHeads: 1, headDim: 20 }];
const OFFSETS = Int32Array.from([0, 7, 7, 20, 21, 40]); // 7, 0, 13, 1 and 19 rows

/** out and the gradients of sum(out * R) in q, k, v. */
function run(shape: typeof SHAPES[number], mask: MaskSpec): Float32Array[] {
  const T = OFFSETS[OFFSETS.length - 1], qW = shape.nHeads * shape.headDim, kW = shape.nKvHeads * shape.headDim;
  return tf.tidy(() => {
    const q = tf.tensor2d(randomArray(T * qW, 1), [T, qW]), k = tf.tensor2d(randomArray(T * kW, 2), [T, kW]);
    const v = tf.tensor2d(randomArray(T * kW, 3), [T, kW]), R = tf.tensor2d(randomArray(T * qW, 4), [T, qW]);
    const attrs = { ...shape, scale: 1 / Math.sqrt(shape.headDim), mask, rowOffsets: OFFSETS };
    const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => flashAttentionRagged(a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor2D, attrs);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a, b, c), R)))([q, k, v]);
    return [f(q, k, v), ...grads].map((t) => t.dataSync() as Float32Array);
  });
}

const ifNative = nativeFlashTrain() !== null ? describe : describe.skip; // skip reason: the addon did not build here

ifNative('native FlashAttentionRagged vs the TypeScript host kernel [cpu]', () => {
  beforeAll(async () => { await tf.setBackend('cpu'); registerTrainingKernels(); });
  afterEach(() => setCpuKernelImpl('auto'));

  for (const shape of SHAPES) {
    for (const mask of MASKS) {
      it(`${mask.variant}, ${shape.nHeads}/${shape.nKvHeads} heads, head dim ${shape.headDim}: out, dq, dk, dv`, () => {
        const ours = run(shape, mask);
        setCpuKernelImpl('ts');
        const host = run(shape, mask);
        ['out', 'dq', 'dk', 'dv'].forEach((_, i) => expect(maxRelDiff(ours[i], host[i])).toBeLessThanOrEqual(1e-5));
      });
    }
  }
});
