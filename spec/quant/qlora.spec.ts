/**
 * QLoRA: LoRA adapters trained with model.fit over a frozen packed base (every quantConfig format and
 * the half dtypes), the base's packed words untouched, the gradient to x through the packed weights
 * matching the float layer's; packed weights are what the layer holds (bytes per weight).
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import { quantOf } from '../../lib/attention/quant_layer';
import { registerAllKernels } from '../../kernels/register_all';
import { loraLinearClass, mergeLoRA } from '../../lib/training/lora';
import { describeEachBackend } from '../support/backends';
import { randomArray } from '../support/random_layer';

const attnArgs = {
  rope: { headDim: 16, theta: 10000, maxSeqLen: 16 }, numAttentionHeads: 4, numKeyValueHeads: 2, hiddenSize: 64,
  kvParams: { nKvHeads: 2, headDim: 16, pageSize: 4, numLayers: 1, numPages: 8 },
};
const VARIANTS: [string, object][] = [
  ['fp8_dynamic', { quantConfig: { format: 'fp8_dynamic' } }], ['nvfp4', { quantConfig: { format: 'nvfp4' } }],
  ['gptq_int4', { quantConfig: { format: 'gptq_int4', weightScale: { granularity: 'block', blockSize: [1, 16] } } }],
  ['int8_w8a8', { quantConfig: { format: 'int8_w8a8' } }], ['bfloat16', { dtype: 'bfloat16' }],
];

/** Fills every packed weight with valid random words and the scales with small positive numbers. */
function randomize(layer: AttentionWithRope, seed: number): void {
  for (const p of [layer.qProj, layer.kProj, layer.vProj, layer.oProj]) {
    const q = quantOf(p)!;
    const n = q.kernel.shape.reduce((a, b) => a! * b!, 1)!;
    const fmt = q.attrs.weightFormat;
    const mask = fmt === 'e4m3' ? 0x3e3e3e3e : fmt === 'bf16' || fmt === 'f16' ? 0x3bff3bff : -1;
    q.kernel.write(tf.tensor(Int32Array.from({ length: n }, (_, i) => (Math.imul(i + seed, 2654435761) ^ (i << 11)) & mask), q.kernel.shape as number[], 'int32'));
    if (q.scale) q.scale.write(tf.fill(q.scale.shape as number[], fmt === 'e4m3' ? 0.05 : fmt === 'nvfp4' ? 0.2 : 0.02));
    if (q.gIdx) q.gIdx.write(tf.tensor(Int32Array.from({ length: q.inDim }, (_, k) => Math.floor(k / 16)), [q.inDim], 'int32'));
    if (q.inputScale) q.inputScale.write(tf.tensor([0.05], [1]));
  }
}

describeEachBackend('QLoRA over packed weights', () => {
  beforeAll(() => registerAllKernels());
  for (const [name, extra] of VARIANTS) {
    it(`${name}: model.fit trains the adapters, the packed base stays frozen and packed`, async () => {
      const model = tf.sequential();
      model.add(new AttentionWithRope({ ...attnArgs, ...extra, linearCls: loraLinearClass({ rank: 2, alpha: 4, targets: ['q', 'v', 'o'] }), inputShape: [6, 64] } as never));
      const attn = model.layers[0] as AttentionWithRope;
      randomize(attn, 3);
      model.compile({ optimizer: tf.train.adam(0.02), loss: 'meanSquaredError' });
      const packed = [attn.qProj!, attn.kProj!, attn.oProj!].map((p) => p.kernel.read().dataSync().slice());
      expect(attn.qProj!.kernel.dtype).toBe('int32');
      const x = tf.tensor3d(randomArray(8 * 6 * 64, 21), [8, 6, 64]);
      const y = tf.tensor3d(randomArray(8 * 6 * 64, 22, 0.5), [8, 6, 64]);
      const h = await model.fit(x, y, { epochs: 5, batchSize: 4, verbose: 0 });
      const loss = h.history.loss as number[];
      expect(loss[loss.length - 1]).toBeLessThan(loss[0]);
      [attn.qProj!, attn.kProj!, attn.oProj!].forEach((p, i) => expect(Array.from(p.kernel.read().dataSync())).toEqual(Array.from(packed[i])));
      expect(model.trainableWeights.map((w) => w.name.replace(/.*\//, '').replace(/_\d+$/, '')).sort())
        .toEqual(['lora_A', 'lora_A', 'lora_A', 'lora_B', 'lora_B', 'lora_B']);
      expect(() => mergeLoRA(attn)).toThrow(/cannot fold the adapter into packed weights/);
    });
  }

  it('the gradient to x through packed bf16 weights equals the float layer\'s with the same (widened) weights', () => {
    const q = new AttentionWithRope({ ...attnArgs, dtype: 'bfloat16' } as never);
    randomize(q, 5);
    const f = new AttentionWithRope(attnArgs as never);
    for (const [pq, pf] of [[q.qProj, f.qProj], [q.kProj, f.kProj], [q.vProj, f.vProj], [q.oProj, f.oProj]] as const) pf!.kernel.write(quantOf(pq)!.dequantized());
    const x = tf.tensor3d(randomArray(2 * 5 * 64, 7), [2, 5, 64]);
    const loss = (l: AttentionWithRope) => (v: tf.Tensor) => tf.sum(tf.square(l.apply(v) as tf.Tensor));
    const gq = tf.grad(loss(q))(x).dataSync(), gf = tf.grad(loss(f))(x).dataSync();
    let err = 0, m = 0;
    gf.forEach((v, i) => { err = Math.max(err, Math.abs(v - gq[i])); m = Math.max(m, Math.abs(v)); });
    expect(err / m).toBeLessThan(1e-5);
  });

  it('holds the packed size: bytes of the layer\'s weights per projection weight', () => {
    const bytes = (extra: object) => {
      const l = new AttentionWithRope({ ...attnArgs, hiddenSize: 256, rope: { headDim: 64, theta: 10000, maxSeqLen: 16 }, numAttentionHeads: 4,
        kvParams: { nKvHeads: 2, headDim: 64, pageSize: 4, numLayers: 1, numPages: 8 }, ...extra } as never);
      const total = l.weights.reduce((n, w) => n + w.read().size * 4, 0);
      l.dispose();
      return total / (256 * 256 * 2 + 256 * 128 * 2); // bytes per weight element
    };
    expect(bytes({})).toBe(4);
    expect(bytes({ dtype: 'float16' })).toBe(2);
    expect(bytes({ quantConfig: { format: 'fp8_dynamic' } })).toBeLessThan(1.02);   // 1 byte + a scale per row
    expect(bytes({ quantConfig: { format: 'gptq_int4' } })).toBeLessThan(0.6);      // 0.5 byte + float32 scale and zero per 64, g_idx
    expect(bytes({ quantConfig: { format: 'nvfp4' } })).toBeLessThan(0.76);         // 0.5 byte + a float32 scale per 16
  });
});
