/**
 * Gradients of the ragged no-cache training path (attentionRaggedTrain: fused FlashAttentionRagged
 * and RopeRagged kernels with registered gradients) against (1) the composite path's gradient
 * (ATTENTION_ROPE_FORCE_COMPOSITE), (2) the padded path `layer.apply` on each sequence, and
 * (3) central finite differences; <= 1e-3 relative, for every mask, RoPE layout and scaling, GQA
 * ratio, qk-norm, bias, clip mode and stacked qkv. Tiny shapes.
 */
import * as tf from '@tensorflow/tfjs';
import type { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import type { AttentionWithRopeArgs } from '../../lib/attention/options';
import { registerAllKernels } from '../../kernels/register_all';
import { trainAttentionVariant } from '../../kernels/train_ops';
import { attentionRaggedTrain } from '../../lib/training/ragged_train';
import { describeEachBackend } from '../support/backends';
import { randomArray } from '../support/random_layer';
import { fdCheck, hostLoss, relErr, tinyLayer } from './grad_support';

const OFFSETS = [0, 3, 3, 8, 12]; // sequences of 3, 0, 5 and 4 rows
const T = 12;
const rope = (extra: object = {}) => ({ headDim: 8, theta: 10000, maxSeqLen: 32, ...extra });

const CASES: [string, Partial<AttentionWithRopeArgs>][] = [
  ['causal, GQA 4/2', {}],
  ['null mask, MHA', { maskVariant: 'null', numKeyValueHeads: 4 }],
  ['sliding window causal, MQA', { maskVariant: 'sliding_window_causal', slidingWindow: 2, numKeyValueHeads: 1 }],
  ['sliding window non-causal', { maskVariant: 'sliding_window', slidingWindow: 2 }],
  ['chunked causal', { maskVariant: 'chunked_causal', chunkSize: 2 }],
  ['interleaved rope, custom scale', { rope: rope({ interleaved: true }), scale: 0.7 }],
  ['linear scaling', { rope: rope({ scaling: { ropeType: 'linear', factor: 2 } }) }],
  ['dynamic NTK', { rope: rope({ scaling: { ropeType: 'dynamic', factor: 2, originalMaxPositionEmbeddings: 4, maxPositionEmbeddings: 32 } }) }],
  ['llama3 scaling', { rope: rope({ scaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8 } }) }],
  ['yarn scaling', { rope: rope({ scaling: { ropeType: 'yarn', factor: 4, originalMaxPositionEmbeddings: 8 } }) }],
  ['longrope', { rope: rope({ scaling: { ropeType: 'longrope', shortFactor: [1, 1.1, 1.2, 1.3], longFactor: [2, 2.1, 2.2, 2.3], originalMaxPositionEmbeddings: 16, maxPositionEmbeddings: 32 } }) }],
  ['partial rotary (StableLM)', { rope: rope({ partialRotaryFactor: 0.5 }) }],
  ['qk-norm, MQA', { useQkNorm: true, rmsNormEps: 1e-5, numKeyValueHeads: 1 }],
  ['q/k/v and output bias', { hasBias: true, hasOutputBias: true }],
  ['clip on weights', { clipQkv: 0.3 }],
  ['clip on activations (OLMo)', { clipQkv: 0.8, clipQkvTarget: 'activations' }],
  ['stacked qkv with bias', { stackedQkv: true, hasBias: true }],
];

/** Moves q/k/v weights within 0.01 of the clip value 0.01 away from it, so finite differences do not straddle the kink. */
function keepOffKink(layer: AttentionWithRope, clip: number): void {
  for (const p of [layer.qProj, layer.kProj, layer.vProj]) {
    const w = p!.kernel.read().dataSync().map((x) => (Math.abs(Math.abs(x) - clip) < 0.01 ? Math.sign(x) * (Math.abs(x) < clip ? clip - 0.01 : clip + 0.01) : x));
    p!.kernel.write(tf.tensor(w, p!.kernel.shape as number[]));
  }
}

describeEachBackend('training gradients', () => {
  beforeAll(() => registerAllKernels());

  for (const [name, over] of CASES) {
    it(`${name}: fused = composite = finite differences (and forward = padded path)`, () => {
      const layer = tinyLayer(over);
      if (over.clipQkv && over.clipQkvTarget !== 'activations') keepOffKink(layer, over.clipQkv);
      const x = tf.variable(tf.tensor2d(randomArray(T * 16, 7, 1), [T, 16]));
      const Rh = randomArray(T * 16, 8, 1);
      const R = tf.tensor2d(Rh, [T, 16]);
      // tf.grads differentiates w.r.t. the tensors it is given: the weights are read inside the
      // layer, so differentiate w.r.t. x and the weights through variableGrads instead.
      tf.env().set('ATTENTION_ROPE_TRAIN_ATTENTION', 'fused' as unknown as boolean);
      const fusedAll = tf.variableGrads(() => tf.sum(tf.mul(attentionRaggedTrain(layer, x, OFFSETS), R)) as tf.Scalar,
        [x, ...layer.trainableWeights.map((w) => w.read() as tf.Variable)]);
      tf.env().set('ATTENTION_ROPE_TRAIN_ATTENTION', 'auto' as unknown as boolean);
      tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', true);
      const compAll = tf.variableGrads(() => tf.sum(tf.mul(attentionRaggedTrain(layer, x, OFFSETS), R)) as tf.Scalar,
        [x, ...layer.trainableWeights.map((w) => w.read() as tf.Variable)]);
      tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', false);
      const names = Object.keys(compAll.grads);
      expect(names.length).toBe(1 + layer.trainableWeights.length);
      for (const n of names) {
        const err = relErr(fusedAll.grads[n].dataSync(), compAll.grads[n].dataSync());
        expect({ n, ok: err <= 1e-3, err }).toEqual({ n, ok: true, err });
      }
      // forward equals the padded path on each sequence alone
      const ragged = tf.tidy(() => attentionRaggedTrain(layer, x, OFFSETS).dataSync());
      for (let b = 0; b + 1 < OFFSETS.length; b++) {
        const n = OFFSETS[b + 1] - OFFSETS[b];
        if (n === 0) continue;
        const padded = tf.tidy(() => (layer.apply(x.slice([OFFSETS[b], 0], [n, 16]).reshape([1, n, 16])) as tf.Tensor).dataSync());
        expect(relErr(ragged.subarray(OFFSETS[b] * 16, OFFSETS[b + 1] * 16), padded)).toBeLessThanOrEqual(1e-5);
      }
      // central finite differences through the fused path, for x and every weight
      const f = () => tf.tidy(() => hostLoss(attentionRaggedTrain(layer, x, OFFSETS), Rh));
      const targets: (tf.Variable | tf.LayerVariable)[] = [x, ...layer.trainableWeights];
      // clipping has kinks: a smaller step keeps the differences on one side of them
      const eps = over.clipQkv ? 1e-3 : 1e-2;
      targets.forEach((v, i) => {
        const key = names[i];
        const err = fdCheck(f, v, Float32Array.from(fusedAll.grads[key].dataSync()), 50 + i, eps);
        expect({ key, ok: err <= 1e-3, err }).toEqual({ key, ok: true, err });
      });
      tf.dispose([fusedAll.value, compAll.value, ...Object.values(fusedAll.grads), ...Object.values(compAll.grads), x, R]);
      layer.dispose();
    });
  }

  it('trainAttentionVariant: the flag forces each version; auto takes the host kernel for many short sequences', () => {
    const a = (lens: number[]) => ({ nHeads: 8, nKvHeads: 4, headDim: 32, scale: 1, mask: { variant: 'causal' as const, window: 0, chunk: 0 },
      rowOffsets: Int32Array.from(lens.reduce((o, n) => [...o, o[o.length - 1] + n], [0])) });
    expect(trainAttentionVariant(a(new Array(64).fill(14)))).toBe('fused');
    expect(trainAttentionVariant(a([512, 512]))).toBe(tf.getBackend() === 'wasm' ? 'composite' : 'fused');
    for (const v of ['fused', 'composite'] as const) {
      tf.env().set('ATTENTION_ROPE_TRAIN_ATTENTION', v as unknown as boolean);
      expect(trainAttentionVariant(a([512]))).toBe(v);
    }
    tf.env().set('ATTENTION_ROPE_TRAIN_ATTENTION', 'auto' as unknown as boolean);
    tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', true);
    expect(trainAttentionVariant(a([4]))).toBe('composite');
    tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', false);
  });

  it('the padded path (layer.apply) has the same weight gradients as the ragged path', () => {
    const layer = tinyLayer({ useQkNorm: true, hasBias: true, maskVariant: 'sliding_window_causal', slidingWindow: 3 });
    const x = tf.variable(tf.tensor2d(randomArray(2 * 5 * 16, 9, 1), [10, 16]));
    const R = tf.tensor2d(randomArray(10 * 16, 10, 1), [10, 16]);
    const vars = layer.trainableWeights.map((w) => w.read() as tf.Variable);
    const ragged = tf.variableGrads(() => tf.sum(tf.mul(attentionRaggedTrain(layer, x, [0, 5, 10]), R)) as tf.Scalar, vars);
    const padded = tf.variableGrads(() => tf.sum(tf.mul((layer.apply(x.reshape([2, 5, 16])) as tf.Tensor).reshape([10, 16]), R)) as tf.Scalar, vars);
    for (const n of Object.keys(padded.grads)) expect(relErr(ragged.grads[n].dataSync(), padded.grads[n].dataSync())).toBeLessThanOrEqual(1e-4);
    layer.dispose();
  });
});

/**
 * The cached path's kernels (RopeSplitStoreRagged, FlashAttentionRaggedPaged): their registered
 * gradients reach qkv / q and the qk-norm weights, not the cache (K and V live in pages, not tensors).
 * Checked against the composite references' gradients and finite differences.
 */
import { ropeSplitStoreRagged, flashAttentionRaggedPaged } from '../../kernels/ops';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import { RotaryEmbedding } from '../../lib/rope/rotary_embedding';

describeEachBackend('cached-path kernel gradients (w.r.t. q / qkv; none through the cache)', () => {
  beforeAll(() => registerAllKernels());

  it('RopeSplitStoreRagged with qk-norm and FlashAttentionRaggedPaged: fused = composite = finite differences', () => {
    const nH = 4, nKv = 2, hd = 8, W = (nH + 2 * nKv) * hd;
    const cache = new PagedKVCache({ nKvHeads: nKv, headDim: hd, pageSize: 4, numPages: 16 });
    cache.addSequence(0); cache.addSequence(1);
    const kv = cache.fetch([0, 1], [5, 3]);
    const tables = new RotaryEmbedding({ headDim: hd, theta: 10000, maxSeqLen: 32 }).tables();
    const ropeAttrs = { nHeads: nH, nKvHeads: nKv, headDim: hd, rope: tables, qkNormEps: 1e-5, collection: kv, layerIdx: 0 };
    const attnAttrs = { nHeads: nH, nKvHeads: nKv, headDim: hd, scale: 0.35, mask: { variant: 'causal' as const, window: 0, chunk: 0 }, collection: kv, layerIdx: 0, variant: 'auto' as const };
    const qkv = tf.variable(tf.tensor2d(randomArray(8 * W, 31, 1), [8, W]));
    const qw = tf.variable(tf.tensor1d(randomArray(hd, 32, 0.3).map((x) => 1 + x)));
    const kw = tf.variable(tf.tensor1d(randomArray(hd, 33, 0.3).map((x) => 1 + x)));
    const Rh = randomArray(8 * nH * hd, 34, 1);
    const R = tf.tensor2d(Rh, [8, nH * hd]);
    const out = () => flashAttentionRaggedPaged(ropeSplitStoreRagged(qkv, ropeAttrs, qw, kw), attnAttrs);
    const run = (composite: boolean) => {
      tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', composite);
      try {
        const { grads } = tf.variableGrads(() => tf.sum(tf.mul(out(), R)) as tf.Scalar, [qkv, qw, kw]);
        // kw has no gradient: normed K goes to the cache only (composite: not connected; fused: zeros)
        return [qkv, qw, kw].map((v) => (grads[v.name] ? Float32Array.from(grads[v.name].dataSync()) : new Float32Array(v.size)));
      } finally { tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', false); }
    };
    const fused = run(false), composite = run(true);
    fused.forEach((g, i) => expect(relErr(g, composite[i])).toBeLessThanOrEqual(1e-3));
    // K/V columns of qkv get no gradient: they reach attention only through the cache
    for (let r = 0; r < 8; r++) for (let c = nH * hd; c < W; c++) expect(fused[0][r * W + c]).toBe(0);
    // finite differences with the cache's K/V held fixed (the store rewrites the same values each call)
    const f = () => tf.tidy(() => hostLoss(out(), Rh));
    const qCols = fused[0].map((_, i) => (i % W < nH * hd ? 1 : 0));
    const err = fdCheck(f, qkv, fused[0], 35, 1e-2, qCols);
    expect(err).toBeLessThanOrEqual(1e-3);
    cache.step(kv);
  });
});
