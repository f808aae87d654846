import * as tf from '@tensorflow/tfjs';
import { loadPretrained } from '../../models/load';
import { describeEachBackend } from '../support/backends';
import { FAMILY_CONFIGS, familyWeights } from './support/families';
import { referenceLogits } from './support/reference_lm';
import { type StoreDtype, writeCheckpoint } from './support/tiny_checkpoint';

const PROMPT = [3, 17, 42, 5, 63, 0, 9, 11];
const STORE: Record<string, { dtype: StoreDtype; shards: number }> = {
  llama_bias_hf4: { dtype: 'F32', shards: 1 },
  llama3_scaled: { dtype: 'F16', shards: 1 },
  mistral_window: { dtype: 'BF16', shards: 3 },
  qwen2_bias_window: { dtype: 'F16', shards: 2 },
  qwen3_layer_types: { dtype: 'F32', shards: 2 },
  olmo_clip: { dtype: 'BF16', shards: 1 },
};

function relError(got: Float32Array, want: Float64Array[]): number {
  let d = 0, m = 0;
  want.forEach((row, i) => row.forEach((v, j) => { d = Math.max(d, Math.abs(got[i * row.length + j] - v)); m = Math.max(m, Math.abs(v)); }));
  return d / m;
}

describeEachBackend('model families against a float64 reference', () => {
  for (const [name, cfg] of Object.entries(FAMILY_CONFIGS)) {
    it(`${name} (${STORE[name].dtype}, ${STORE[name].shards} shard(s)): one prefill, chunked steps and the padded LayersModel`, async () => {
      const weights = familyWeights(cfg);
      const dir = writeCheckpoint(cfg, weights, STORE[name]);
      const want = referenceLogits(cfg, weights, PROMPT);
      const { model } = await loadPretrained(dir, { pageSize: 2, numPages: 32 });
      const before = tf.memory().numTensors;
      const cache = model.createCache();
      // one prefill
      const s0 = cache.addSequence();
      let kv = cache.fetch([s0], [PROMPT.length]);
      const all = model.forwardRagged(PROMPT, kv);
      cache.step(kv);
      expect(relError((await all.data()) as Float32Array, want)).toBeLessThan(1e-4);
      all.dispose();
      // chunks of 3, 1, 4 beside the first sequence decoding nothing: logits of each chunk's rows
      const s1 = cache.addSequence();
      const got: number[] = [];
      for (const [from, n] of [[0, 3], [3, 1], [4, 4]]) {
        kv = cache.fetch([s1], [n]);
        const l = model.forwardRagged(PROMPT.slice(from, from + n), kv);
        cache.step(kv);
        got.push(...((await l.data()) as Float32Array));
        l.dispose();
      }
      expect(relError(Float32Array.from(got), want)).toBeLessThan(1e-4);
      cache.releaseSequence(s0); cache.releaseSequence(s1);
      expect(cache.numFreePages).toBe(32);
      expect(tf.memory().numTensors).toBe(before);
      // padded LayersModel (no cache), batch of 2 identical rows
      const lm = model.toLayersModel();
      const ids = tf.tensor2d([PROMPT, PROMPT], [2, PROMPT.length], 'int32');
      const out = lm.predict(ids) as tf.Tensor;
      expect(out.shape).toEqual([2, PROMPT.length, cfg.vocab_size as number]);
      const rows = (await out.data()) as Float32Array;
      expect(relError(rows.subarray(rows.length / 2), want)).toBeLessThan(1e-4);
      tf.dispose([ids, out]);
      model.dispose();
    });
  }
});
