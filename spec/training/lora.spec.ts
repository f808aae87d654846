/** LoRA adapters: a fresh adapter changes nothing, merge/split keep outputs, config round trip, only adapters train, HF export round trip. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import { linearClassByName } from '../../lib/attention/linear';
import { initializeWeights } from '../../models/init';
import { registerAllKernels } from '../../kernels/register_all';
import { applyLoRA, LoRALinear, loraLinearClass, loraProjections, loraTraining, mergeLoRA, splitLoRA } from '../../lib/training/lora';
import { exportHfWeights, exportLoRAAdapters } from '../../models/export';
import { saveHfCheckpoint } from '../../models/save_checkpoint';
import { maskedCrossEntropy } from '../../lib/training/loss';
import { modelRaggedTrain } from '../../models/train_forward';
import { loadPretrained } from '../../models/load';
import { createModel } from '../../models/registry';
import { randomArray } from '../support/random_layer';
import { relErr, tinyLayer } from './grad_support';

const HF = {
  model_type: 'llama', vocab_size: 20, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, max_position_embeddings: 32, rope_theta: 10000, rms_norm_eps: 1e-5, attention_bias: true, tie_word_embeddings: false,
};
const IDS = new Int32Array([1, 5, 6, 7, 2, 1, 9, 2, 1, 4, 4, 11, 12]);
const OFFSETS = [0, 5, 8, 13];

function trainSteps(model: ReturnType<typeof createModel>, steps: number, lr = 0.05): number[] {
  const targets = tf.tensor1d(IDS.map((_, i) => (IDS[i] * 3 + 1) % 20), 'int32'), weights = tf.ones([IDS.length]) as tf.Tensor1D;
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const opt = tf.train.adam(lr);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const loss = opt.minimize(() => maskedCrossEntropy(modelRaggedTrain(model, IDS, OFFSETS), targets, weights), true, vars)!;
    losses.push(loss.dataSync()[0]);
    loss.dispose();
  }
  opt.dispose();
  tf.dispose([targets, weights]);
  return losses;
}

describe('LoRA', () => {
  beforeAll(async () => { await tf.setBackend('cpu'); registerAllKernels(); });

  it('a fresh adapter changes nothing; merge and split keep the outputs; split restores the kernel', () => {
    const layer = tinyLayer({ hasBias: true, hasOutputBias: true });
    const x = tf.tensor3d(randomArray(2 * 5 * 16, 3, 1), [2, 5, 16]);
    const before = (layer.apply(x) as tf.Tensor).dataSync();
    const wq = layer.qProj!.kernel.read().dataSync().slice();
    applyLoRA(layer, { rank: 2, alpha: 4, targets: ['q', 'k', 'v', 'o'] });
    expect(relErr((layer.apply(x) as tf.Tensor).dataSync(), before)).toBe(0);
    for (const p of loraProjections(layer)) if (p.loraB) p.loraB.write(tf.tensor(randomArray(p.loraB!.shape.reduce((a, b) => a! * b!, 1)!, 5, 0.2), p.loraB!.shape as number[]));
    const adapted = (layer.apply(x) as tf.Tensor).dataSync();
    expect(relErr(adapted, before)).toBeGreaterThan(1e-3);
    mergeLoRA(layer);
    expect(relErr((layer.apply(x) as tf.Tensor).dataSync(), adapted)).toBeLessThan(1e-5);
    expect(relErr(layer.qProj!.kernel.read().dataSync(), wq)).toBeGreaterThan(1e-3);
    splitLoRA(layer);
    expect(relErr((layer.apply(x) as tf.Tensor).dataSync(), adapted)).toBeLessThan(1e-5);
    expect(relErr(layer.qProj!.kernel.read().dataSync(), wq)).toBeLessThan(1e-6);
  });

  it('adapter dropout runs only in training mode', () => {
    const layer = tinyLayer({});
    applyLoRA(layer, { rank: 2, alpha: 4, dropout: 0.5, targets: ['q', 'v'] });
    for (const p of loraProjections(layer)) p.loraB?.write(tf.ones(p.loraB.shape as number[]));
    const x = tf.tensor3d(randomArray(5 * 16, 4, 1), [1, 5, 16]);
    const a = (layer.apply(x) as tf.Tensor).dataSync(), b = (layer.apply(x) as tf.Tensor).dataSync();
    expect(relErr(a, b)).toBe(0);
    loraTraining(layer, true);
    expect(relErr((layer.apply(x) as tf.Tensor).dataSync(), a)).toBeGreaterThan(1e-4);
    loraTraining(layer, false);
    expect(relErr((layer.apply(x) as tf.Tensor).dataSync(), a)).toBe(0);
  });

  it('as linearCls: only the chosen projections get adapters; the config names the class and round-trips', () => {
    const cls = loraLinearClass({ rank: 3, alpha: 6, dropout: 0.1, targets: ['q', 'o'] });
    const layer = tinyLayer({ linearCls: cls });
    expect(layer.qProj).toBeInstanceOf(LoRALinear);
    expect((layer.qProj as LoRALinear).loraA!.shape).toEqual([16, 3]);
    expect((layer.kProj as LoRALinear).loraA).toBeNull();
    expect((layer.oProj as LoRALinear).loraB!.shape).toEqual([3, 16]);
    expect(layer.trainableWeights.map((w) => w.name).filter((n) => /lora/.test(n)).length).toBe(4);
    expect(layer.trainableWeights.some((w) => /q_proj\/kernel/.test(w.name))).toBe(false);
    const config = layer.getConfig();
    expect(config.linearCls).toBe('lora(r=3,alpha=6,dropout=0.1,targets=q+o)');
    expect(linearClassByName('lora(r=2,alpha=2,dropout=0,targets=v)')).toBeDefined();
    const again = AttentionWithRope.fromConfig(AttentionWithRope, config) as AttentionWithRope;
    again.build([null, 16]);
    const names = (l: AttentionWithRope) => l.weights.map((w) => w.name.replace(/.*\//, '').replace(/_\d+$/, '')).sort();
    expect(names(again)).toEqual(names(layer));
  });

  it('fine-tunes only the adapters; export folds them in with HF names; the loader reads the folder back', async () => {
    const model = createModel(HF);
    initializeWeights(model, { seed: 3, std: 0.2 });
    for (const b of model.blocks) applyLoRA(b.attn, { rank: 2, alpha: 4, targets: ['q', 'k', 'v', 'o'] });
    const frozen = model.blocks[0].attn.qProj!.kernel.read().dataSync().slice();
    const loraNames = model.trainableWeights.filter((w) => /lora/.test(w.name)).length;
    expect(loraNames).toBe(2 * 4 * 2);
    // freeze everything else: only adapters train
    for (const w of model.trainableWeights) if (!/lora/.test(w.name)) w.trainable = false;
    const losses = trainSteps(model, 15);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0]);
    expect(relErr(model.blocks[0].attn.qProj!.kernel.read().dataSync(), frozen)).toBe(0);

    const logits = modelRaggedTrain(model, IDS, OFFSETS).dataSync();
    const hf = exportHfWeights(model);
    expect(hf.get('model.layers.1.self_attn.q_proj.weight')!.shape).toEqual([16, 16]);
    expect(hf.get('model.layers.0.self_attn.k_proj.bias')!.shape).toEqual([8]);
    expect(exportLoRAAdapters(model).get('base_model.model.model.layers.0.self_attn.o_proj.lora_B.weight')!.shape).toEqual([16, 2]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lora-export-'));
    saveHfCheckpoint(model, dir, HF);
    const { model: loaded } = await loadPretrained(dir);
    registerAllKernels();
    expect(relErr(modelRaggedTrain(loaded, IDS, OFFSETS).dataSync(), logits)).toBeLessThan(1e-5);
    // and through the paged cache (generation path)
    const cache = loaded.createCache();
    cache.addSequence(0);
    const kv = cache.fetch([0], [5]);
    const cached = loaded.forwardRagged(IDS.subarray(0, 5), kv).dataSync();
    expect(relErr(cached, logits.subarray(0, 5 * 20))).toBeLessThan(1e-4);
    loaded.dispose();
    model.dispose();
    fs.rmSync(dir, { recursive: true });
  });
});
