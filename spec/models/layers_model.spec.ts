import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadPretrained } from '../../models/load';
import { describeEachBackend } from '../support/backends';

const DIR = path.join(__dirname, '..', 'fixtures', 'models', 'tiny_qwen3');

describeEachBackend('models as tf.LayersModel', () => {
  it('fits: the padded LayersModel trains the shared weights (tied head counted once)', async () => {
    const { model } = await loadPretrained(DIR);
    const lm = model.toLayersModel();
    expect(lm.trainableWeights.length).toBe(model.trainableWeights.length);
    lm.compile({ optimizer: tf.train.adam(1e-2), loss: 'sparseCategoricalCrossentropy' });
    const x = tf.tensor2d([[7, 7, 7, 100, 200], [9, 3, 4, 5, 6]], [2, 5], 'int32');
    const y = tf.tensor3d([[[7], [7], [100], [200], [1]], [[3], [4], [5], [6], [7]]], [2, 5, 1]);
    const embedBefore = ((await model.embedTable.read().data()) as Float32Array).slice();
    const h = await lm.fit(x, y, { epochs: 5, batchSize: 2, verbose: 0 });
    const loss = h.history.loss as number[];
    expect(loss[4]).toBeLessThan(loss[0]);
    expect(Array.from((await model.embedTable.read().data()) as Float32Array)).not.toEqual(Array.from(embedBefore));
    tf.dispose([x, y]);
    model.dispose();
  });
  // On wasm, fit needs gather's gradient (UnsortedSegmentSum), which this package adds there
  // (kernels/wasm/UnsortedSegmentSum.ts).
}, ['cpu', 'wasm']);
