/**
 * Bad input: each case gets a clear error naming the argument and both values, and the cache
 * is left exactly as it was.
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';
import { RotaryEmbedding } from '../../lib/rope/rotary_embedding';
import type { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache';
import { rows, smallLayer } from '../support/random_layer';

const base = {
  rope: { headDim: 16, theta: 10000, maxSeqLen: 64 },
  numAttentionHeads: 4, numKeyValueHeads: 2, hiddenSize: 32,
  kvParams: { nKvHeads: 2, headDim: 16, pageSize: 4, numLayers: 1, numPages: 8 },
};

function snapshot(cache: PagedKVCache) {
  return {
    seqs: cache.sequenceIds.map((s) => [s, cache.cacheLength(s), [...cache.pagesOf(s)]]),
    free: cache.numFreePages,
    k: Array.from(cache.keys(0)), v: Array.from(cache.values(0)),
  };
}

describe('AttentionWithRope rejects bad options in the constructor', () => {
  it.each([
    [{ numAttentionHeads: 6, numKeyValueHeads: 4, kvParams: { ...base.kvParams, nKvHeads: 4 } }, /numAttentionHeads \(6\) must be a multiple of numKeyValueHeads \(4\)/],
    [{ rope: { headDim: 15, theta: 10000 }, kvParams: { ...base.kvParams, headDim: 15 } }, /rotary dim must be even.*15/],
    [{ rope: { headDim: 12, theta: 10000, partialRotaryFactor: 0.25 }, kvParams: { ...base.kvParams, headDim: 12 } }, /rotary dim must be even and > 0, got 3 \(headDim 12 x partialRotaryFactor 0.25\)/],
    [{ stackedQkv: true, clipQkv: 0.5 }, /clipQkv \(0.5\) is not supported with stackedQkv \(true\)/],
    [{ maskVariant: 'sliding_window_causal' as const }, /maskVariant 'sliding_window_causal' needs slidingWindow >= 1, got undefined/],
    [{ maskVariant: 'chunked_causal' as const }, /needs chunkSize >= 1, got undefined/],
    [{ quantConfig: { bits: 4 } }, /quantConfig.format must be one of .*got 'undefined'/],
    [{ kvParams: { ...base.kvParams, nKvHeads: 4 } }, /kvParams.nKvHeads \(4\) must equal numKeyValueHeads \(2\)/],
    [{ dtype: 'float8' as 'float32' }, /dtype must be one of float32, float16, bfloat16, got 'float8'/],
    [{ maskVariant: 'diagonal' as 'causal' }, /maskVariant must be one of .*got 'diagonal'/],
  ])('%#: %j', (over, message) => {
    expect(() => new AttentionWithRope({ ...base, ...over } as never)).toThrow(message);
  });

  it('names the rope scaling parameter that is missing', () => {
    expect(() => new RotaryEmbedding({ headDim: 16, theta: 1e4, scaling: { ropeType: 'llama3', factor: 8 } }))
      .toThrow(/rope scaling 'llama3' needs a positive number lowFreqFactor, got undefined/);
  });
});

describe('AttentionWithRope rejects bad call arguments and leaves the cache as it was', () => {
  let s: ReturnType<typeof smallLayer>;
  beforeEach(() => {
    s = smallLayer({ rope: { headDim: 16, theta: 10000, maxSeqLen: 12 } }, { pageSize: 4, numPages: 6 });
    s.cache.addSequence(0); s.cache.addSequence(1);
    const kv = s.cache.fetch([0, 1], [3, 2]);
    s.layer.callRagged(0, rows(5, s.hidden, 1), kv).dispose();
    s.cache.step(kv);
  });

  function expectRejected(fn: (kv: ReturnType<PagedKVCache['fetch']> | null) => unknown, message: RegExp, counts = [2, 1]) {
    const before = snapshot(s.cache);
    let kv: ReturnType<PagedKVCache['fetch']> | null = null;
    expect(() => { kv = s.cache.fetch([0, 1], counts); fn(kv); }).toThrow(message);
    // a fetched-but-failed step keeps lengths and contents; pages reserved for it are reused next time
    const after = snapshot(s.cache);
    expect(after.seqs.map((x) => x.slice(0, 2))).toEqual(before.seqs.map((x) => x.slice(0, 2)));
    expect(after.k).toEqual(before.k);
    expect(after.v).toEqual(before.v);
  }

  it('hidden size mismatch', () => expectRejected((kv) => s.layer.callRagged(0, rows(3, 16, 2), kv!), /hidden size \(16\) must equal hiddenSize \(32\)/));
  it('hidden rows disagree with the new tokens', () => expectRejected((kv) => s.layer.callRagged(0, rows(4, 32, 2), kv!), /hidden has 4 rows, the kv collection brings 3 new tokens/));
  it('row offsets of the wrong length', () => expectRejected((kv) => s.layer.callRagged(0, rows(3, 32, 2), kv!, undefined, [0, 3]), /inputRowOffsets has length 2, must be batch \+ 1 \(3\)/));
  it('row offsets not int32', () => expectRejected((kv) => s.layer.callRagged(0, rows(3, 32, 2), kv!, undefined, tf.tensor1d([0, 2, 3], 'float32')), /inputRowOffsets must be int32, got float32/));
  it('row offsets decreasing', () => expectRejected((kv) => s.layer.callRagged(0, rows(3, 32, 2), kv!, undefined, [0, 4, 3]), /must not decrease, got 4 then 3 at index 2/));
  it('row offsets not ending at totalTokens', () => expectRejected((kv) => s.layer.callRagged(0, rows(3, 32, 2), kv!, undefined, [0, 2, 2]), /must end at totalTokens \(3 rows of hidden\), got 2/));
  it('row offsets disagreeing with the cache step', () => expectRejected((kv) => s.layer.callRagged(0, rows(3, 32, 2), kv!, undefined, [0, 1, 3]), /disagree with the kv collection's \[0,2,3\] at index 1/));
  it('unknown layer', () => expectRejected((kv) => s.layer.callRagged(2, rows(3, 32, 2), kv!), /layerIdx \(2\) must be an integer in \[0, 2\)/));
  it('positions past the rope table', () => expectRejected((kv) => s.layer.callRagged(0, rows(12, 32, 2), kv!), /positions up to 12 exceed the rope table's 12 positions/, [10, 2]));
  it('unknown sequence', () => {
    const before = snapshot(s.cache);
    expect(() => s.cache.fetch([0, 7], [1, 1])).toThrow(/7/);
    expect(snapshot(s.cache)).toEqual(before);
  });
  it('out of pages', () => {
    const before = snapshot(s.cache);
    expect(() => s.cache.fetch([0, 1], [20, 9])).toThrow(/out of pages: step needs \d+ free pages, \d+ are free/);
    expect(snapshot(s.cache)).toEqual(before);
  });
  it('still works after every rejection', () => {
    const kv = s.cache.fetch([0, 1], [1, 1]);
    expect(s.layer.callRagged(0, rows(2, 32, 3), kv).shape).toEqual([2, 32]);
  });
});
