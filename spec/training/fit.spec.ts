/** Training APIs: model.fit (with LoRA and frozen weights), every tf.train optimizer in a custom loop, save/load of a LoRA model. */
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import { initializeWeights } from '../../models/init';
import { registerAllKernels } from '../../kernels/register_all';
import { maskedCrossEntropy } from '../../lib/training/loss';
import { loraLinearClass } from '../../lib/training/lora';
import { modelRaggedTrain } from '../../models/train_forward';
import { createModel } from '../../models/registry';
import { describeEachBackend } from '../support/backends';
import { randomArray } from '../support/random_layer';
import { relErr } from './grad_support';

const attnArgs = {
  rope: { headDim: 8, theta: 10000, maxSeqLen: 16 }, numAttentionHeads: 4, numKeyValueHeads: 2, hiddenSize: 16,
  kvParams: { nKvHeads: 2, headDim: 8, pageSize: 4, numLayers: 1, numPages: 8 },
};

describeEachBackend('training APIs', () => {
  beforeAll(() => registerAllKernels());

  it('model.fit trains a LoRA attention layer: adapters move, frozen weights stay; save/load keeps outputs', async () => {
    const model = tf.sequential();
    model.add(new AttentionWithRope({ ...attnArgs, linearCls: loraLinearClass({ rank: 2, alpha: 4, targets: ['q', 'v', 'o'] }), inputShape: [6, 16] } as never));
    model.add(tf.layers.dense({ units: 3, trainable: false }));
    model.compile({ optimizer: tf.train.adam(0.02), loss: 'meanSquaredError' });
    const attn = model.layers[0] as AttentionWithRope;
    const frozen = [attn.qProj!.kernel, attn.kProj!.kernel, ...model.layers[1].weights].map((w) => w.read().dataSync().slice());
    const x = tf.tensor3d(randomArray(8 * 6 * 16, 21), [8, 6, 16]);
    const y = tf.tensor3d(randomArray(8 * 6 * 3, 22, 0.5), [8, 6, 3]);
    const h = await model.fit(x, y, { epochs: 6, batchSize: 4, verbose: 0 });
    const loss = h.history.loss as number[];
    expect(loss[loss.length - 1]).toBeLessThan(loss[0]);
    [attn.qProj!.kernel, attn.kProj!.kernel, ...model.layers[1].weights].forEach((w, i) => expect(relErr(w.read().dataSync(), frozen[i])).toBe(0));
    expect(model.trainableWeights.map((w) => w.name.replace(/.*\//, '').replace(/_\d+$/, '')).sort())
      .toEqual(['lora_A', 'lora_A', 'lora_A', 'lora_B', 'lora_B', 'lora_B']); // every base weight frozen, as PEFT does

    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(tf.io.withSaveHandler(async (a) => { saved = a; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }; }));
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    expect(relErr((loaded.predict(x) as tf.Tensor).dataSync(), (model.predict(x) as tf.Tensor).dataSync())).toBe(0);
  });

  const OPTIMIZERS: [string, () => tf.Optimizer][] = [
    ['sgd', () => tf.train.sgd(0.5)], ['momentum', () => tf.train.momentum(0.2, 0.9)], ['adam', () => tf.train.adam(0.02)],
    ['adamax', () => tf.train.adamax(0.02)], ['rmsprop', () => tf.train.rmsprop(0.01)], ['adagrad', () => tf.train.adagrad(0.1)],
    ['adadelta', () => tf.train.adadelta(1, 0.95, 1e-6)],
  ];
  for (const [name, make] of OPTIMIZERS) {
    it(`custom loop with tf.train.${name} over the ragged path lowers the loss`, () => {
      const model = createModel({ model_type: 'llama', vocab_size: 12, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1,
        num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 16, rope_theta: 10000 });
      initializeWeights(model, { seed: 5, std: 0.3 });
      const ids = new Int32Array([1, 4, 5, 6, 2, 1, 7, 8, 2]), offsets = [0, 5, 9];
      const targets = tf.tensor1d(ids.map((t) => (t + 3) % 12), 'int32'), weights = tf.ones([9]) as tf.Tensor1D;
      const opt = make();
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const losses: number[] = [];
      let afterFirst = 0;
      for (let i = 0; i < 6; i++) {
        const l = opt.minimize(() => maskedCrossEntropy(modelRaggedTrain(model, ids, offsets), targets, weights), true, vars)!;
        losses.push(l.dataSync()[0]);
        l.dispose();
        if (i === 0) afterFirst = tf.memory().numTensors; // optimizer slots appear at the first step
        else expect(tf.memory().numTensors).toBe(afterFirst); // no tensor leaks per step
      }
      expect(losses[5]).toBeLessThan(losses[0]);
      opt.dispose();
      tf.dispose([targets, weights]);
      model.dispose();
    });
  }
});
