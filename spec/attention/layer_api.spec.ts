/** The layer behaves like a tfjs layer: config round trip, sequential/functional models, save and load. */
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import { maxRelDiff, randomArray, smallLayer } from '../support/random_layer';

const args = {
  rope: { headDim: 16, theta: 10000, maxSeqLen: 64, scaling: { ropeType: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 } },
  numAttentionHeads: 4, numKeyValueHeads: 2, hiddenSize: 32,
  kvParams: { nKvHeads: 2, headDim: 16, pageSize: 8, numLayers: 2, numPages: 16 },
  hasBias: true, hasOutputBias: true, useQkNorm: true, rmsNormEps: 1e-5, clipQkv: 2, clipQkvTarget: 'activations' as const,
  maskVariant: 'sliding_window_causal' as const, slidingWindow: 5, scale: 0.2, fuseRopeAndStore: false, name: 'attn',
};

describe('AttentionWithRope as a tfjs layer', () => {
  it('getConfig / fromConfig round trip keeps every option', () => {
    const layer = new AttentionWithRope(args);
    const config = layer.getConfig();
    const again = tf.serialization.SerializationMap.getMap().classNameMap.AttentionWithRope[1](AttentionWithRope, config) as AttentionWithRope;
    expect(again.getConfig()).toEqual(config);
    expect(again.opts.rope.scaling).toEqual(layer.opts.rope.scaling);
    expect(again.opts.maskVariant).toBe('sliding_window_causal');
    expect(config.slidingWindow).toBe(5);
  });

  it('exposes the reference properties', () => {
    const { layer } = smallLayer({ hasBias: true });
    const before = tf.memory().numTensors;
    const w = layer.wqkv, b = layer.wqkvBias!;   // new tensors the caller owns
    expect(w.shape).toEqual([4 * 16 + 2 * 2 * 16, 32]);
    expect(b.shape).toEqual([128]);
    tf.dispose([w, b]);
    expect(tf.memory().numTensors).toBe(before);   // no other tensor made or kept per access
    expect(layer.rope.headDim).toBe(16);
    expect(layer.shardingStrategy.kind).toBe('replicate');
    expect([layer.qkvWeightScale, layer.qkvInputScale, layer.qkvWeightScale2]).toEqual([null, null, null]);
  });

  it('drops into tf.sequential and a functional model; saves and loads back with identical outputs', async () => {
    const model = tf.sequential();
    model.add(tf.layers.dense({ units: 32, inputShape: [6, 32] }));
    model.add(new AttentionWithRope({ ...args, fuseRopeAndStore: true }));
    model.add(tf.layers.dense({ units: 3 }));
    const x = tf.tensor3d(randomArray(2 * 6 * 32, 11), [2, 6, 32]);
    const y = (model.predict(x) as tf.Tensor).dataSync() as Float32Array;

    let saved: tf.io.ModelArtifacts | undefined;
    await model.save(tf.io.withSaveHandler(async (a) => { saved = a; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }; }));
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    const y2 = (loaded.predict(x) as tf.Tensor).dataSync() as Float32Array;
    expect(maxRelDiff(y2, y)).toBe(0);

    const input = tf.input({ shape: [6, 32] });
    const attn = new AttentionWithRope({ ...args, name: 'attn_fn' });
    const out = tf.layers.dense({ units: 2 }).apply(attn.apply(input)) as tf.SymbolicTensor;
    const fn = tf.model({ inputs: input, outputs: out });
    expect(fn.outputs[0].shape).toEqual([null, 6, 2]);
    expect((fn.predict(x) as tf.Tensor).shape).toEqual([2, 6, 2]);
  });

  it('trains with model.fit (loss goes down)', async () => {
    const model = tf.sequential();
    model.add(new AttentionWithRope({ ...args, inputShape: [6, 32] } as never));
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'meanSquaredError' });
    const x = tf.tensor3d(randomArray(4 * 6 * 32, 12), [4, 6, 32]);
    const y = tf.tensor3d(randomArray(4 * 6 * 32, 13, 0.5), [4, 6, 32]);
    const h = await model.fit(x, y, { epochs: 8, verbose: 0 });
    const loss = h.history.loss as number[];
    expect(loss[loss.length - 1]).toBeLessThan(loss[0]);
  });
});
