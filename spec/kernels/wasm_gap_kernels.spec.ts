import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../../lib/backends/select';

/** tf.unsortedSegmentSum on `backend`, as plain arrays. */
async function segmentSum(backend: string, x: number[], shape: number[], ids: number[], n: number, dtype: 'float32' | 'int32') {
  await useBackend(backend);
  return tf.tidy(() => tf.unsortedSegmentSum(tf.tensor(x, shape, dtype), tf.tensor1d(ids, 'int32'), n)).array();
}

describe('UnsortedSegmentSum on wasm (added by this package)', () => {
  it.each([['float32'], ['int32']] as const)('equals tfjs-cpu (%s), ids out of range dropped', async (dtype) => {
    const x = Array.from({ length: 6 * 3 }, (_, i) => (dtype === 'float32' ? i * 0.5 - 3 : i - 4));
    const ids = [2, 0, 2, 5, 1, -1];
    const cpu = await segmentSum('cpu', x, [6, 3], ids, 4, dtype);
    const wasm = await segmentSum('wasm', x, [6, 3], ids, 4, dtype);
    expect(wasm).toEqual(cpu);
  });

  it('gives tf.gather a gradient on wasm', async () => {
    await useBackend('wasm');
    const table = tf.variable(tf.ones([5, 2]));
    const g = tf.grad((t: tf.Tensor) => tf.gather(t, tf.tensor1d([1, 1, 3], 'int32')).sum())(table);
    expect(await g.array()).toEqual([[0, 0], [2, 2], [0, 0], [1, 1], [0, 0]]);
  });
});
