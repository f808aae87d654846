/**
 * Model-level numbers: decode tokens/s of the tiny Llama fixture at batch 1 and 8 (continuous
 * batching on the paged cache) against the way a tfjs user without a KV cache decodes (the same
 * weights as a tf.LayersModel, `predict` over the whole padded sequence each token); and the
 * peak RSS of loading a 55M-parameter BF16 checkpoint (loadPretrained, streamed per tensor)
 * against reading the whole file and decoding it at once (readFileSync + readSafetensors).
 * RSS is measured in fresh child processes.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../lib/backends/select.js';
import { Generator } from '../models/generation/generator.js';
import { packageRoot } from '../lib/util/package_root.js';
import { loadPretrained } from '../models/load.js';
import { type BenchModule, type BenchOptions, type BenchRow, row, timeMs } from './harness.js';

const TINY = path.join(packageRoot, 'spec', 'fixtures', 'models', 'tiny_llama');
const CONTEXT = 32;

async function decodeRows(opts: BenchOptions): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const { model } = await loadPretrained(TINY, { pageSize: 16, numPages: 8 * 16 });
  const lm = model.toLayersModel();
  try {
    for (const batch of [1, 8]) {
      const gen = new Generator(model, { maxBatchTokens: 512 });
      for (let b = 0; b < batch; b++) {
        const prompt = Array.from({ length: CONTEXT - 8 }, (_, i) => (7 * i + 13 * b + 1) % 256);
        gen.submit({ promptIds: prompt, maxNewTokens: 200 });
      }
      await gen.step(); // prefill
      const iters = { warmup: 3, minIters: opts.quick ? 5 : 20, maxIters: opts.quick ? 10 : 60, minMs: 200, maxMs: 3000 };
      const oursMs = await timeMs(() => gen.step(), iters); // one token for each of `batch` sequences
      gen.dispose();
      const ids = tf.tensor2d(Array.from({ length: batch * CONTEXT }, (_, i) => i % 256), [batch, CONTEXT], 'int32');
      const peerMs = await timeMs(async () => {
        const next = tf.tidy(() => {
          const logits = lm.predict(ids) as tf.Tensor3D; // [B, S, vocab]
          return tf.argMax(logits.slice([0, CONTEXT - 1, 0], [batch, 1, -1]), -1);
        });
        await next.data();
        next.dispose();
      }, iters);
      ids.dispose();
      opts.log(`models_decode tiny_llama ${tf.getBackend()} batch ${batch}: ${((1000 * batch) / oursMs).toFixed(0)} tokens/s ` +
        `(${oursMs.toFixed(2)} ms/step at context ~${CONTEXT}); no-cache predict ${((1000 * batch) / peerMs).toFixed(0)} tokens/s`);
      rows.push(row(`tiny_llama decode step, batch ${batch}`, tf.getBackend(), oursMs, `no-cache LayersModel.predict [${batch}, ${CONTEXT}]`, peerMs));
    }
  } finally {
    model.dispose();
  }
  return rows;
}

/** Writes a random 55M-parameter BF16 Llama checkpoint, streamed (no full copy in memory). */
export function writeBigCheckpoint(dir: string): number {
  const cfg = {
    model_type: 'llama', hidden_size: 512, intermediate_size: 1408, num_hidden_layers: 8, num_attention_heads: 8,
    num_key_value_heads: 2, vocab_size: 32000, max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000.0,
    tie_word_embeddings: false,
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  const H = 512, I = 1408, kv = 2 * 64;
  const shapes: [string, number[]][] = [['model.embed_tokens.weight', [32000, H]]];
  for (let l = 0; l < 8; l++) {
    const p = `model.layers.${l}.`;
    shapes.push([`${p}self_attn.q_proj.weight`, [H, H]], [`${p}self_attn.k_proj.weight`, [kv, H]], [`${p}self_attn.v_proj.weight`, [kv, H]],
      [`${p}self_attn.o_proj.weight`, [H, H]], [`${p}mlp.gate_proj.weight`, [I, H]], [`${p}mlp.up_proj.weight`, [I, H]],
      [`${p}mlp.down_proj.weight`, [H, I]], [`${p}input_layernorm.weight`, [H]], [`${p}post_attention_layernorm.weight`, [H]]);
  }
  shapes.push(['model.norm.weight', [H]], ['lm_head.weight', [32000, H]]);
  const header: Record<string, unknown> = {};
  let off = 0, params = 0;
  for (const [n, s] of shapes) {
    const count = s.reduce((a, b) => a * b, 1);
    header[n] = { dtype: 'BF16', shape: s, data_offsets: [off, off + 2 * count] };
    off += 2 * count; params += count;
  }
  let json = JSON.stringify(header);
  while (json.length % 8) json += ' ';
  const fd = fs.openSync(path.join(dir, 'model.safetensors'), 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeSync(fd, len);
  fs.writeSync(fd, json);
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i += 2) chunk.writeUInt16LE(0x3c00 + ((i >> 1) % 255), i); // small BF16 values
  for (let left = off; left > 0; left -= chunk.length) fs.writeSync(fd, chunk, 0, Math.min(left, chunk.length));
  fs.closeSync(fd);
  return params;
}

function childPeakRss(script: string): { baseline: number; peak: number; ms: number } {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: packageRoot, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop()!) as { baseline: number; peak: number; ms: number };
}

async function loadRows(opts: BenchOptions): Promise<BenchRow[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-ckpt-'));
  try {
    const params = writeBigCheckpoint(dir);
    const dist = path.join(packageRoot, 'dist');
    const measure = (body: string) => `
      import * as tf from '@tensorflow/tfjs';
      const baseline = process.memoryUsage().rss; const t0 = performance.now();
      ${body}
      const ms = performance.now() - t0;
      console.log(JSON.stringify({ baseline, peak: process.resourceUsage().maxRSS * 1024, ms }));`;
    const ours = childPeakRss(measure(`
      const { loadPretrained } = await import(${JSON.stringify(path.join(dist, 'models', 'load.js'))});
      await loadPretrained(${JSON.stringify(dir)});`));
    const peer = childPeakRss(measure(`
      const fs = await import('node:fs');
      const { readSafetensors } = await import(${JSON.stringify(path.join(dist, 'lib', 'loaders', 'safetensors.js'))});
      const m = readSafetensors(fs.readFileSync(${JSON.stringify(path.join(dir, 'model.safetensors'))}));
      const ts = [...m.values()].map((t) => tf.tensor(t.data, t.shape));`));
    const mb = (b: number) => (b / 2 ** 20).toFixed(0);
    const f32 = params * 4;
    opts.log(`models_decode load ${(params / 1e6).toFixed(1)}M params BF16 (${mb(params * 2)} MiB file, ${mb(f32)} MiB as float32): ` +
      `peak RSS over baseline ${mb(ours.peak - ours.baseline)} MiB streamed (loadPretrained, ${ours.ms.toFixed(0)} ms) vs ` +
      `${mb(peer.peak - peer.baseline)} MiB whole-file (readFileSync + readSafetensors + tf.tensor, ${peer.ms.toFixed(0)} ms)`);
    return [row(`load ${(params / 1e6).toFixed(0)}M-param BF16 checkpoint`, 'cpu', ours.ms, 'readFileSync + readSafetensors', peer.ms)];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export const modelsDecodeBench: BenchModule = {
  name: 'models_decode',
  async run(opts: BenchOptions): Promise<BenchRow[]> {
    const rows: BenchRow[] = [];
    for (const backend of ['cpu', 'wasm']) {
      await useBackend(backend);
      rows.push(...(await decodeRows(opts)));
    }
    return [...rows, ...(await loadRows(opts))];
  },
};
