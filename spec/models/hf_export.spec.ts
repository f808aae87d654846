/**
 * The one Hugging Face exporter: export -> saveHfCheckpoint -> loadPretrained is exact for every
 * family (every tensor bit for bit, and the same logits), and the layer exporter that sharding
 * uses (hfWeightsOf) is the same function, packed qkv split under q/k/v names.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { attentionHfTensors } from '../../lib/attention/hf_export';
import { hfWeightsOf } from '../../lib/sharding/shard_layer';
import { registerAllKernels } from '../../kernels/register_all';
import { exportHfWeights } from '../../models/export';
import { initializeWeights } from '../../models/init';
import { loadPretrained } from '../../models/load';
import { createModel } from '../../models/registry';
import { saveHfCheckpoint } from '../../models/save_checkpoint';
import { tinyLayer } from '../training/grad_support';
import { FAMILY_CONFIGS } from './support/families';

beforeAll(async () => {
  await tf.setBackend('cpu');
  registerAllKernels();
});

describe('HF export round trip', () => {
  for (const [name, cfg] of Object.entries(FAMILY_CONFIGS)) {
    it(`${name}: export -> loadPretrained gives every tensor and the logits exactly`, async () => {
      const before = tf.memory().numTensors;
      const model = createModel(cfg);
      initializeWeights(model, { seed: 5, std: 0.3 });
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hf-export-'));
      try {
        saveHfCheckpoint(model, dir, cfg);
        const { model: loaded } = await loadPretrained(dir);
        const a = exportHfWeights(model), b = exportHfWeights(loaded);
        expect([...b.keys()].sort()).toEqual([...model.weightSpecs().keys()].sort());
        expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
        for (const [n, t] of a) {
          expect([n, b.get(n)!.shape]).toEqual([n, t.shape]);
          expect([n, Buffer.from(b.get(n)!.data.buffer).equals(Buffer.from(t.data.buffer))]).toEqual([n, true]);
        }
        const ids = [1, 7, 3, 9, 2];
        const logits = (m: typeof model): Float32Array => {
          const cache = m.createCache();
          cache.addSequence(0);
          const kv = cache.fetch([0], [ids.length]);
          const y = m.forwardRagged(ids, kv);
          const out = y.dataSync() as Float32Array;
          y.dispose();
          cache.abandon(kv);
          return out;
        };
        expect(Array.from(logits(loaded))).toEqual(Array.from(logits(model)));
        loaded.dispose();
      } finally {
        model.dispose();
        fs.rmSync(dir, { recursive: true });
      }
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('one layer exporter: sharding reads attentionHfTensors, a packed qkv exports as q/k/v and loads back exactly', () => {
    const stacked = tinyLayer({ stackedQkv: true, hasBias: true }, 3);
    const plain = tinyLayer({ hasBias: true }, 4);
    const w = attentionHfTensors(stacked);
    expect([...w.keys()].sort()).toEqual(['k_proj.bias', 'k_proj.weight', 'o_proj.weight', 'q_proj.bias', 'q_proj.weight', 'v_proj.bias', 'v_proj.weight']);
    expect(hfWeightsOf(stacked)).toEqual(Object.fromEntries(w));
    plain.setHfWeights(Object.fromEntries([...w].map(([k, t]) => [k, t.data])));
    expect(Object.fromEntries(attentionHfTensors(plain))).toEqual(Object.fromEntries(w));
    stacked.dispose();
    plain.dispose();
  });
});
