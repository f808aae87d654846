/**
 * Quantized weights written by quantizeProjection from a float layer's weights, loaded back through
 * setHfWeights: the widened weights are the float ones to within the format's step, and the packed
 * layer's outputs equal those of a float32 layer holding the widened weights (weight-only formats
 * exactly; formats that also quantize activations within the fixtures' bar).
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import { quantOf } from '../../lib/attention/quant_layer';
import { quantizeProjection } from '../../lib/attention/quantize_weights';
import type { HfWeights } from '../../lib/attention/weights';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import { describeEachBackend } from '../support/backends';
import { randomArray } from '../support/random_layer';

const args = {
  rope: { headDim: 32, theta: 10000, maxSeqLen: 32 }, numAttentionHeads: 4, numKeyValueHeads: 2, hiddenSize: 128,
  kvParams: { nKvHeads: 2, headDim: 32, pageSize: 4, numLayers: 1, numPages: 16 },
};
const FORMATS: [string, object, number, number][] = [ // name, layer options, widened-weight bar (relative to max|w|), output bar
  ['bf16', { dtype: 'bfloat16' }, 2 ** -8, 1e-5], ['f16', { dtype: 'float16' }, 2 ** -11, 1e-5],
  ['gptq_int4', { quantConfig: { format: 'gptq_int4', weightScale: { granularity: 'block', blockSize: [1, 32] } } }, 1 / 15, 1e-5],
  ['fp8_dynamic', { quantConfig: { format: 'fp8_dynamic' } }, 1 / 16, 6e-2], ['fp8_static', { quantConfig: { format: 'fp8_static' } }, 1 / 16, 6e-2],
  ['fp8_block', { quantConfig: { format: 'fp8_block', weightScale: { granularity: 'block', blockSize: [64, 64] } } }, 1 / 16, 6e-2],
  ['int8_w8a8', { quantConfig: { format: 'int8_w8a8' } }, 1 / 254, 3e-2], ['nvfp4', { quantConfig: { format: 'nvfp4' } }, 1 / 4, 0.25],
];

async function run(layer: AttentionWithRope, x: tf.Tensor2D): Promise<Float32Array> {
  const cache = new PagedKVCache(layer.kvParams);
  cache.addSequence(0); cache.addSequence(1);
  const kv = cache.fetch([0, 1], [5, 4]);
  const y = layer.callRagged(0, x, kv);
  const v = await y.data() as Float32Array;
  y.dispose();
  return v;
}

describeEachBackend('quantized weights written from float and loaded back', () => {
  for (const [format, opts, wBar, yBar] of FORMATS) {
    it(`${format}`, async () => {
      const shapes: [string, number, number][] = [['q_proj', 128, 128], ['k_proj', 64, 128], ['v_proj', 64, 128], ['o_proj', 128, 128]];
      const floats = Object.fromEntries(shapes.map(([p, out, inDim], i) => [p, Float32Array.from(randomArray(out * inDim, 40 + i, 0.2))]));
      const hf: HfWeights = {};
      for (const [p, out, inDim] of shapes) {
        const f = format === 'bf16' || format === 'f16' ? format : (opts as { quantConfig: { format: string } }).quantConfig.format;
        Object.assign(hf, quantizeProjection(f as never, p, floats[p], out, inDim, { inputScale: 0.01, group: 32, block: [64, 64] }));
      }
      const q = new AttentionWithRope({ ...args, ...opts } as never);
      q.setHfWeights(hf);
      const f32 = new AttentionWithRope(args as never);
      for (const [p, out, inDim] of shapes) {
        const proj = quantOf((q as unknown as Record<string, never>)[{ q_proj: 'qProj', k_proj: 'kProj', v_proj: 'vProj', o_proj: 'oProj' }[p]!])!;
        const wide = proj.dequantized(); // [in, out]
        const got = wide.transpose().dataSync(), want = floats[p];
        let err = 0, m = 0;
        want.forEach((v, i) => { err = Math.max(err, Math.abs(v - got[i])); m = Math.max(m, Math.abs(v)); });
        expect([p, err / m <= wBar]).toEqual([p, true]);
        const fp = (f32 as unknown as Record<string, { kernel: tf.LayerVariable }>)[{ q_proj: 'qProj', k_proj: 'kProj', v_proj: 'vProj', o_proj: 'oProj' }[p]!];
        fp.kernel.write(wide);
        expect(wide.shape).toEqual([inDim, out]);
      }
      const x = tf.tensor2d(randomArray(9 * 128, 7), [9, 128]);
      const yq = await run(q, x), yf = await run(f32, x);
      let err = 0, m = 0;
      yf.forEach((v, i) => { err = Math.max(err, Math.abs(v - yq[i])); m = Math.max(m, Math.abs(v)); });
      expect(err / m).toBeLessThanOrEqual(yBar);
      q.dispose(); f32.dispose(); x.dispose();
    });
  }
});
