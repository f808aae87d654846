/**
 * Whole quantized checkpoints: a tiny Llama written in every format from float weights (our
 * quantizers, the formats' real quantization_config), loaded by loadPretrained with every
 * projection packed (q/k/v/o and gate/up/down), generating the same greedy tokens as a float32
 * model holding the dequantized weights, logits within the format's bar, and tfjs memory after
 * loading equal to the float model's minus exactly the float projections plus the packed bytes.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { generate } from '../../models/generation/generator';
import { quantOf } from '../../lib/attention/quant_layer';
import type { QuantLinear } from '../../lib/attention/quant_linear';
import { writeSafetensors } from '../../lib/loaders/safetensors';
import { type CheckpointFormat, writeQuantizedCheckpoint } from '../../lib/loaders/write_quantized';
import type { DecoderForCausalLM } from '../../models/decoder_lm';
import { loadPretrained, transpose2d } from '../../models/load';
import { packedBytes } from '../../models/load_packed';
import { describeEachBackend } from '../support/backends';
import { CONFIG, floatWeights } from './support/tiny_quant_llama';

const PROMPTS = [[1, 17, 42, 99, 5], [1, 200, 3]];
const NEW_TOKENS = 10;
/** Format, logits bar (max |Δ| over max |logit|, vs the dequantized float32 model). */
const FORMATS: [CheckpointFormat, number][] = [
  ['bf16', 1e-5], ['f16', 1e-5], ['gptq_int4', 1e-5], ['fp8_static', 2e-3], ['fp8_dynamic', 2e-3], ['fp8_block', 2e-3], ['int8_w8a8', 5e-4], ['nvfp4', 1e-2],
];

/** Every packed projection of a loaded model by HF prefix. */
function packedProjections(m: DecoderForCausalLM): Map<string, QuantLinear> {
  const out = new Map<string, QuantLinear>();
  m.blocks.forEach((b, i) => {
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as const) {
      const p = quantOf(n === 'q_proj' ? b.attn.qProj : n === 'k_proj' ? b.attn.kProj : n === 'v_proj' ? b.attn.vProj : b.attn.oProj);
      if (p) out.set(`model.layers.${i}.self_attn.${n}`, p);
    }
    const mlp = b.mlp.packed;
    if (mlp) for (const n of ['gate', 'up', 'down'] as const) out.set(`model.layers.${i}.mlp.${n}_proj`, mlp[n]);
  });
  return out;
}

async function lastLogits(model: DecoderForCausalLM, prompt: number[]): Promise<Float32Array> {
  const cache = model.createCache();
  cache.addSequence(0);
  const kv = cache.fetch([0], [prompt.length]);
  const y = model.forwardRagged(prompt, kv, [prompt.length - 1]); // [1, vocab]
  const v = await y.data() as Float32Array;
  y.dispose();
  return v;
}

describeEachBackend('whole quantized checkpoints through loadPretrained', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'quant-ckpt-'));
  const weights = floatWeights();
  const projections = [...weights.keys()].filter((n) => /(_proj)\.weight$/.test(n));
  const floatBytesOf = (names: string[]) => names.reduce((n, k) => n + weights.get(k)!.data.byteLength, 0);
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  for (const [format, bar] of FORMATS) {
    it(`${format}: packed everywhere, memory is the packed size, same greedy tokens as the dequantized float32 weights`, async () => {
      const dir = path.join(root, format);
      // static activation scales near what calibration gives for these inputs (|x| up to ~4 after the norms)
      const inputScales = new Map(projections.map((n) => [n.slice(0, -'.weight'.length), 6 / 448]));
      writeQuantizedCheckpoint(dir, CONFIG, weights, format, { inputScales, group: 32, block: [32, 32] });

      const before = tf.memory().numBytes;
      const { model } = await loadPretrained(dir, { packHalfWeights: true, pageSize: 4, numPages: 32 });
      const quantBytes = tf.memory().numBytes - before;
      const packed = packedProjections(model);
      const half = format === 'bf16' || format === 'f16';
      expect(packed.size).toBe(projections.length); // q/k/v/o and gate/up/down of every layer
      expect(model.lmHead.packed !== null).toBe(half); // the quantized formats leave lm_head float32 (`ignore`), half checkpoints store it half
      if (half) packed.set('lm_head', model.lmHead.packed!);
      for (const p of packed.values()) expect(p.kernel.dtype).toBe('int32');

      // the float32 twin: the dequantized weights, loaded as a plain float checkpoint
      const floatDir = path.join(root, `${format}-dequantized`);
      fs.mkdirSync(floatDir);
      const dequantized = new Map(weights);
      for (const [p, q] of packed) {
        const w = q.dequantized(); // [in, out]
        dequantized.set(`${p}.weight`, { shape: [q.outDim, q.inDim], data: transpose2d(w.dataSync() as Float32Array, q.inDim, q.outDim) });
        w.dispose();
      }
      fs.writeFileSync(path.join(floatDir, 'config.json'), JSON.stringify(CONFIG));
      fs.writeFileSync(path.join(floatDir, 'model.safetensors'), writeSafetensors(dequantized));
      const before2 = tf.memory().numBytes;
      const { model: reference } = await loadPretrained(floatDir, { pageSize: 4, numPages: 32 });
      const floatBytes = tf.memory().numBytes - before2;
      // no float32 copy of a packed weight is kept: the difference is exactly float projections vs packed bytes
      const floatProjectionBytes = floatBytesOf([...packed.keys()].map((p) => `${p}.weight`));
      expect(floatBytes - quantBytes).toBe(floatProjectionBytes - packedBytes(model));
      expect(packedBytes(model)).toBeLessThan(floatProjectionBytes * (half ? 0.51 : 0.35));

      for (const prompt of PROMPTS) {
        const got = await lastLogits(model, prompt), want = await lastLogits(reference, prompt);
        let err = 0, scale = 0;
        for (let i = 0; i < got.length; i++) { err = Math.max(err, Math.abs(got[i] - want[i])); scale = Math.max(scale, Math.abs(want[i])); }
        expect(err / scale).toBeLessThanOrEqual(bar);
      }
      const tokens = await generate(model, PROMPTS, { maxNewTokens: NEW_TOKENS });
      const wantTokens = await generate(reference, PROMPTS, { maxNewTokens: NEW_TOKENS });
      expect(tokens).toEqual(wantTokens);
      expect(tokens.every((t) => t.length > 0)).toBe(true);
      model.dispose();
      reference.dispose();
    });
  }
});
