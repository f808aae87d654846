import * as tf from '@tensorflow/tfjs';
import { RotaryEmbedding, ropeOptionsFromHfConfig, ropeTablesOf } from '../../lib/rope/rotary_embedding';

describe('RotaryEmbedding', () => {
  it('freqsCis is [maxSeqLen, rotaryDim] with cos and sin interleaved; cos/sin views agree', () => {
    const rope = new RotaryEmbedding({ headDim: 8, theta: 10000, maxSeqLen: 5 });
    const f = rope.freqsCis.arraySync();
    expect(rope.freqsCis.shape).toEqual([5, 8]);
    const inv1 = 1 / Math.pow(10000, 2 / 8);
    expect(f[3][2]).toBeCloseTo(Math.cos(3 * inv1), 6);
    expect(f[3][3]).toBeCloseTo(Math.sin(3 * inv1), 6);
    expect(rope.cos().arraySync()[3][1]).toBeCloseTo(Math.cos(3 * inv1), 6);
    expect(rope.sin().arraySync()[3][1]).toBeCloseTo(Math.sin(3 * inv1), 6);
    // a freqsCis tensor passed on its own gives back the same tables
    const copy = tf.tensor2d(rope.freqsCis.dataSync(), [5, 8]);
    expect(Array.from(ropeTablesOf(copy, 8, false).cos)).toEqual(Array.from(rope.tables().cos));
  });

  it('reads both Hugging Face spellings the same way', () => {
    const v4 = { hidden_size: 64, num_attention_heads: 4, rope_theta: 5e5, max_position_embeddings: 128,
      rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 } };
    const v5 = { hidden_size: 64, num_attention_heads: 4, max_position_embeddings: 128,
      rope_parameters: { rope_type: 'llama3', rope_theta: 5e5, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 32 } };
    expect(ropeOptionsFromHfConfig(v4)).toEqual(ropeOptionsFromHfConfig(v5));
    const a = RotaryEmbedding.fromHfConfig(v4), b = RotaryEmbedding.fromHfConfig(v5);
    expect(a.headDim).toBe(16);
    expect(Array.from(a.tables().cos)).toEqual(Array.from(b.tables().cos));
    // old 'type' key of rope_scaling
    expect(RotaryEmbedding.fromHfConfig({ ...v4, rope_scaling: { type: 'linear', factor: 2 } }).scaling?.ropeType).toBe('linear');
  });

  it('YaRN multiplies cos and sin by 0.1 ln(factor) + 1', () => {
    const rope = new RotaryEmbedding({ headDim: 8, theta: 10000, maxSeqLen: 4, scaling: { ropeType: 'yarn', factor: 4, originalMaxPositionEmbeddings: 64 } });
    expect(rope.tables().cos[0]).toBeCloseTo(0.1 * Math.log(4) + 1, 6);
  });

  it('dynamic NTK keeps the plain schedule up to the original length and grows the base after it', () => {
    const plain = new RotaryEmbedding({ headDim: 8, theta: 10000, maxSeqLen: 40 });
    const dyn = new RotaryEmbedding({ headDim: 8, theta: 10000, maxSeqLen: 40, scaling: { ropeType: 'dynamic', factor: 2, originalMaxPositionEmbeddings: 16 } });
    const half = 4;
    expect(dyn.tables().cos.slice(0, 16 * half)).toEqual(plain.tables().cos.slice(0, 16 * half));
    const p = 30, seqLen = p + 1;
    const base = 10000 * Math.pow((2 * seqLen) / 16 - 1, 8 / 6);
    expect(dyn.tables().cos[p * half + 1]).toBeCloseTo(Math.cos(p / Math.pow(base, 2 / 8)), 6);
  });

  it('partial rotary rotates only the first dims', () => {
    const rope = new RotaryEmbedding({ headDim: 16, theta: 10000, partialRotaryFactor: 0.25, maxSeqLen: 8 });
    expect(rope.rotaryDim).toBe(4);
    expect(rope.freqsCis.shape).toEqual([8, 4]);
  });

  it('getConfig round trips', () => {
    const rope = new RotaryEmbedding({ headDim: 16, theta: 10000, interleaved: true, maxSeqLen: 32,
      scaling: { ropeType: 'longrope', originalMaxPositionEmbeddings: 16, maxPositionEmbeddings: 32, shortFactor: [1, 1, 1, 1, 1, 1, 1, 1], longFactor: [2, 2, 2, 2, 2, 2, 2, 2] } });
    const again = RotaryEmbedding.fromConfig(JSON.parse(JSON.stringify(rope.getConfig())));
    expect(Array.from(again.tables().sin)).toEqual(Array.from(rope.tables().sin));
  });
});
