/**
 * Host-side cost of one decode step on webgpu (what the CPU spends encoding a step, GPU work not
 * awaited): a random 16-layer Llama of small width, so the software GPU driver is not the
 * bottleneck. Prints ms per step for batch 1 and 8. `node --cpu-prof dist/bench/decode_host_profile.js`
 * shows where it goes.
 */
import { performance } from 'node:perf_hooks';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../lib/backends/select.js';
import { createModel } from '../models/registry.js';

async function main(): Promise<void> {
  await useBackend(process.argv[2] ?? 'webgpu');
  const model = createModel({
    model_type: 'llama', hidden_size: 256, intermediate_size: 512, num_hidden_layers: 16, num_attention_heads: 8,
    num_key_value_heads: 2, head_dim: 32, vocab_size: 1024, rms_norm_eps: 1e-5, max_position_embeddings: 4096, tie_word_embeddings: true,
    rope_theta: 500000,
  } as never);
  for (const b of [1, 8]) {
    const cache = model.createCache({ numPages: 64 * b });
    const seqs = Array.from({ length: b }, (_, i) => cache.addSequence(i));
    let kv = cache.fetch(seqs, seqs.map(() => 16));
    let y = model.forwardRagged(new Array(16 * b).fill(3), kv, seqs.map((_, i) => 16 * i + 15));
    cache.step(kv); await y.data(); y.dispose();
    const times: number[] = [];
    for (let s = 0; s < 40; s++) {
      const t = performance.now();
      kv = cache.fetch(seqs, seqs.map(() => 1));
      y = model.forwardRagged(new Array(b).fill(5), kv, seqs.map((_, i) => i));
      cache.step(kv);
      times.push(performance.now() - t);
      await y.data(); y.dispose();
    }
    times.sort((x, z) => x - z);
    console.log(`batch ${b}: host encode ${times[20].toFixed(2)} ms per step (median of 40), tensors ${tf.memory().numTensors}`);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
