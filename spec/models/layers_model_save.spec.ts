/**
 * A model's padded tf.LayersModel survives save and load (tfjs's own JSON topology + weights),
 * for an untied head and for a head tied to the embedding table: same logits, still tied, trains alike.
 */
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadPretrained } from '../../models/load';

const FIX = path.join(__dirname, '..', 'fixtures', 'models');

async function roundTrip(m: tf.LayersModel): Promise<tf.LayersModel> {
  let saved: tf.io.ModelArtifacts | undefined;
  await m.save(tf.io.withSaveHandler(async (a) => { saved = a; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }; }));
  return tf.loadLayersModel(tf.io.fromMemory(saved!));
}

describe('models as tf.LayersModel: save and load', () => {
  beforeAll(async () => { await tf.setBackend('cpu'); });
  for (const name of ['tiny_llama', 'tiny_qwen3']) {
    it(`${name}: the loaded model predicts the same logits`, async () => {
      const { model } = await loadPretrained(path.join(FIX, name));
      const lm = model.toLayersModel();
      const x = tf.tensor2d([[7, 7, 7, 100, 200], [9, 3, 4, 5, 6]], [2, 5], 'int32');
      const want = lm.predict(x) as tf.Tensor; // [2, 5, vocab]
      const loaded = await roundTrip(lm);
      const got = loaded.predict(x) as tf.Tensor;
      expect(got.shape).toEqual(want.shape);
      expect(tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]).toBeLessThan(1e-5);
      expect(loaded.trainableWeights.length).toBe(lm.trainableWeights.length);
      // Tied stays tied: no own head weight, the embedding layer serves as the head.
      expect(loaded.layers.some((l) => l.name === 'lm_head')).toBe(name !== 'tiny_qwen3');
      // Both train alike (plain SGD, same batch): the gradients, tied ones included, are the same.
      const y = tf.tensor3d([[[7], [7], [100], [200], [1]], [[3], [4], [5], [6], [7]]], [2, 5, 1]);
      for (const m of [lm, loaded]) {
        m.compile({ optimizer: tf.train.sgd(0.5), loss: 'sparseCategoricalCrossentropy' });
        await m.fit(x, y, { epochs: 2, batchSize: 2, verbose: 0, shuffle: false });
      }
      const a = lm.predict(x) as tf.Tensor, b = loaded.predict(x) as tf.Tensor;
      expect(tf.max(tf.abs(tf.sub(a, want))).dataSync()[0]).toBeGreaterThan(1e-3);
      expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(1e-4);
      tf.dispose([x, y, want, got, a, b]);
      loaded.dispose();
      model.dispose();
    });
  }
});
