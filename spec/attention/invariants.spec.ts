/**
 * Invariants the layer and its cache keep (STYLE.md point 4): decode token by token equals one
 * prefill; a ragged batch equals a loop over its sequences; no tensor leaks over 200 decode steps;
 * the padded no-cache path equals the ragged cached path.
 */
import * as tf from '@tensorflow/tfjs';
import { describeEachBackend } from '../support/backends';
import { maxRelDiff, rows, smallLayer } from '../support/random_layer';
import type { MaskVariant } from '../../lib/types';

const MASKS: Array<{ maskVariant: MaskVariant; slidingWindow?: number; chunkSize?: number }> = [
  { maskVariant: 'causal' }, { maskVariant: 'sliding_window_causal', slidingWindow: 3 }, { maskVariant: 'chunked_causal', chunkSize: 4 },
];

describeEachBackend('AttentionWithRope invariants', () => {
  for (const mask of MASKS) {
    for (const fuseRopeAndStore of [true, false]) {
      it(`decode token by token equals one prefill (${mask.maskVariant}, fuse ${fuseRopeAndStore})`, () => {
        const { layer, cache, hidden } = smallLayer({ ...mask, fuseRopeAndStore });
        const n = 11;
        const x = rows(n, hidden, 42);
        cache.addSequence(0); cache.addSequence(1);
        const kvA = cache.fetch([0], [n]);
        const prefill = layer.callRagged(0, x, kvA).dataSync();
        cache.step(kvA);
        const steps: number[] = [];
        for (let i = 0; i < n; i++) {
          const kv = cache.fetch([1], [1]);
          const out = tf.tidy(() => layer.callRagged(0, x.slice([i, 0], [1, hidden]), kv));
          steps.push(...out.dataSync());
          out.dispose();
          cache.step(kv);
        }
        expect(maxRelDiff(Float32Array.from(steps), prefill as Float32Array)).toBeLessThan(1e-5);
        x.dispose(); layer.dispose();
      });
    }
  }

  it('a ragged batch (prefill beside decodes, an empty entry) equals a loop over its sequences', () => {
    const { layer, cache, hidden } = smallLayer({ numAttentionHeads: 4, numKeyValueHeads: 1 });
    const lens = [[5, 1, 1], [3, 0, 2], [1, 7, 1]]; // per step, tokens per sequence
    for (const s of [0, 1, 2, 10, 11, 12]) cache.addSequence(s);
    let seed = 100;
    for (const counts of lens) {
      const xs = counts.map((n) => rows(n, hidden, seed++));
      const packed = tf.concat(xs, 0) as tf.Tensor2D;
      const kv = cache.fetch([0, 1, 2], counts);
      const batched = layer.callRagged(1, packed, kv).dataSync() as Float32Array;
      cache.step(kv);
      const singles: number[] = [];
      counts.forEach((n, b) => {
        const kv1 = cache.fetch([10 + b], [n]);
        singles.push(...layer.callRagged(1, xs[b], kv1).dataSync());
        cache.step(kv1);
      });
      expect(maxRelDiff(batched, Float32Array.from(singles))).toBeLessThan(1e-5);
    }
    layer.dispose();
  });

  it('holds tf.memory().numTensors constant over 200 decode steps', () => {
    const { layer, cache, hidden } = smallLayer({}, { numPages: 128 });
    cache.addSequence(0); cache.addSequence(1);
    const x = rows(2, hidden, 7);
    const warm = cache.fetch([0, 1], [1, 1]); layer.callRagged(0, x, warm).dispose(); cache.step(warm);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 200; i++) {
      const kv = cache.fetch([0, 1], [1, 1]);
      layer.callRagged(0, x, kv).dispose();
      cache.step(kv);
    }
    expect(tf.memory().numTensors).toBe(before);
    x.dispose(); layer.dispose();
  });

  for (const mask of MASKS) {
    it(`padded no-cache apply() equals the ragged cached call (${mask.maskVariant})`, () => {
      const { layer, cache, hidden } = smallLayer({ ...mask, useQkNorm: true, hasBias: true });
      const x = tf.tensor3d(rows(2 * 6, hidden, 9).dataSync(), [2, 6, hidden]);
      const padded = (layer.apply(x) as tf.Tensor).dataSync() as Float32Array;
      cache.addSequence(0); cache.addSequence(1);
      const kv = cache.fetch([0, 1], [6, 6]);
      const ragged = layer.callRagged(0, x.reshape([12, hidden]) as tf.Tensor2D, kv).dataSync() as Float32Array;
      expect(maxRelDiff(padded, ragged)).toBeLessThan(1e-5);
      layer.dispose();
    });
  }

  it('stackedQkv gives the same output as separate q/k/v weights', () => {
    const a = smallLayer({ hasBias: true });
    const b = smallLayer({ hasBias: true, stackedQkv: true });
    for (const { cache } of [a, b]) cache.addSequence(0);
    const x = rows(5, a.hidden, 3);
    const kvA = a.cache.fetch([0], [5]), kvB = b.cache.fetch([0], [5]);
    const outA = a.layer.callRagged(0, x, kvA).dataSync() as Float32Array;
    const outB = b.layer.callRagged(0, x, kvB).dataSync() as Float32Array;
    expect(maxRelDiff(outB, outA)).toBeLessThan(1e-6);
    const [wa, wb, bb] = [a.layer.wqkv, b.layer.wqkv, b.layer.wqkvBias!];
    expect(wb.shape).toEqual([4 * 16 + 2 * 2 * 16, 32]);
    expect(maxRelDiff(wb.dataSync() as Float32Array, wa.dataSync() as Float32Array)).toBe(0);
    expect(bb.shape).toEqual([128]);
    tf.dispose([wa, wb, bb]);
  });

  it('a NaN in one sequence stays in that sequence', () => {
    const { layer, cache, hidden } = smallLayer();
    cache.addSequence(0); cache.addSequence(1);
    const data = rows(7, hidden, 5).dataSync() as Float32Array;
    data[3 * hidden + 2] = NaN; // row 3: sequence 0 (rows 0..3)
    const kv = cache.fetch([0, 1], [4, 3]);
    const out = layer.callRagged(0, tf.tensor2d(data, [7, hidden]), kv).dataSync();
    cache.step(kv);
    expect(Number.isNaN(out[3 * hidden])).toBe(true);
    expect(Array.from(out.slice(4 * hidden)).every(Number.isFinite)).toBe(true);
    const kv2 = cache.fetch([0, 1], [1, 1]);
    const next = layer.callRagged(0, rows(2, hidden, 6), kv2).dataSync();
    expect(Number.isNaN(next[0])).toBe(true);
    expect(Array.from(next.slice(hidden)).every(Number.isFinite)).toBe(true);
  });
});
