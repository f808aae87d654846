/**
 * The native FlashAttentionRagged forward and backward (native/flash_train.cc, cpu) against the
 * TypeScript host kernel (TFJS_ATTENTION_CPU_IMPL=ts) for every mask, GQA ratios, head dims that
 * are and are not multiples of 16, and empty sequences. The gradient specs (gradients.spec.ts)
 * check the same path against the composite reference and finite differences.
 */
import * as tf from '@tensorflow/tfjs';
import { setCpuKernelImpl } from '../../kernels/cpu/native';
import { nativeFlashTrain } from '../../kernels/cpu/flash_attention_ragged_native';
import { registerAllKernels } from '../../kernels/register_all';
import { flashAttentionRagged } from '../../kernels/train_ops';
import type { MaskSpec } from '../../lib/types';
import { maxRelDiff, randomArray } from '../support/random_layer';

const MASKS: MaskSpec[] = [
  { variant: 'causal', window: 0, chunk: 0 }, { variant: 'null', window: 0, chunk: 0 },
  { variant: 'sliding_window_causal', window: 3, chunk: 0 }, { variant: 'sliding_window', window: 2, chunk: 0 },
  { variant: 'chunked_causal', window: 0, chunk: 4 },
];
const SHAPES = [{ nHeads: 4, nKvHeads: 2, headDim: 8 }, { nHeads: 8, nKvHeads: 4, headDim: 32 }, { nHeads: 3, nKvHeads: 1, headDim: 20 }];
const OFFSETS = Int32Array.from([0, 7, 7, 20, 21, 40]); // 7, 0, 13, 1 and 19 rows

/** Long sequences (150, 1 and 80 rows): several 64-row query blocks and key blocks per sequence. */
const LONG_OFFSETS = Int32Array.from([0, 150, 151, 231]);

/** out and the gradients of sum(out * R) in q, k, v; `poison` edits the inputs first. */
function run(shape: typeof SHAPES[number], mask: MaskSpec, offsets = OFFSETS,
  poison?: (q: Float32Array, k: Float32Array, v: Float32Array) => void): Float32Array[] {
  const T = offsets[offsets.length - 1], qW = shape.nHeads * shape.headDim, kW = shape.nKvHeads * shape.headDim;
  const [qd, kd, vd] = [randomArray(T * qW, 1), randomArray(T * kW, 2), randomArray(T * kW, 3)];
  poison?.(qd, kd, vd);
  return tf.tidy(() => {
    const q = tf.tensor2d(qd, [T, qW]), k = tf.tensor2d(kd, [T, kW]);
    const v = tf.tensor2d(vd, [T, kW]), R = tf.tensor2d(randomArray(T * qW, 4), [T, qW]);
    const attrs = { ...shape, scale: 1 / Math.sqrt(shape.headDim), mask, rowOffsets: offsets };
    const f = (a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => flashAttentionRagged(a as tf.Tensor2D, b as tf.Tensor2D, c as tf.Tensor2D, attrs);
    const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(f(a, b, c), R)))([q, k, v]);
    return [f(q, k, v), ...grads].map((t) => t.dataSync() as Float32Array);
  });
}

const ifNative = nativeFlashTrain() !== null ? describe : describe.skip; // skip reason: the addon did not build here

ifNative('native FlashAttentionRagged vs the TypeScript host kernel [cpu]', () => {
  beforeAll(async () => { await tf.setBackend('cpu'); registerAllKernels(); });
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

  for (const mask of [...MASKS, { variant: 'sliding_window_causal', window: 70, chunk: 0 } as MaskSpec,
    { variant: 'chunked_causal', window: 0, chunk: 100 } as MaskSpec]) {
    it(`${mask.variant}${mask.window || mask.chunk ? ` ${mask.window || mask.chunk}` : ''}, sequences of 150 / 1 / 80 rows (several blocks): out, dq, dk, dv`, () => {
      const shape = { nHeads: 8, nKvHeads: 2, headDim: 24 };
      const ours = run(shape, mask, LONG_OFFSETS);
      setCpuKernelImpl('ts');
      const host = run(shape, mask, LONG_OFFSETS);
      ['out', 'dq', 'dk', 'dv'].forEach((_, i) => expect(maxRelDiff(ours[i], host[i])).toBeLessThanOrEqual(1e-5));
    });
  }

  it('a NaN in q and an inf in k stay where the TypeScript kernel puts them; other sequences are untouched', () => {
    const shape = { nHeads: 4, nKvHeads: 2, headDim: 8 };
    const mask: MaskSpec = { variant: 'causal', window: 0, chunk: 0 };
    const poison = (q: Float32Array, k: Float32Array) => { q[3 * 32 + 5] = NaN; k[25 * 16 + 2] = Infinity; }; // rows 3 and 25
    const ours = run(shape, mask, LONG_OFFSETS, poison);
    setCpuKernelImpl('ts');
    const host = run(shape, mask, LONG_OFFSETS, poison);
    ours.forEach((a, i) => {
      const b = host[i];
      expect(Array.from(a, Number.isNaN)).toEqual(Array.from(b, Number.isNaN));
      const fin = (x: Float32Array) => x.map((y) => (Number.isFinite(y) ? y : 0));
      expect(maxRelDiff(fin(a), fin(b))).toBeLessThanOrEqual(1e-5);
    });
    // The third sequence (rows 151..230) saw neither.
    const out = ours[0].subarray(151 * 32);
    expect(out.every(Number.isFinite)).toBe(true);
  });
});
