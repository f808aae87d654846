import { familyOf } from '../../models/registry';
import { readDecoderConfig } from '../../models/config';

const base = { hidden_size: 64, intermediate_size: 128, num_hidden_layers: 4, num_attention_heads: 4, vocab_size: 100 };
const read = (cfg: Record<string, unknown>) => readDecoderConfig(cfg, familyOf(cfg).traits);

describe('reading HF configs', () => {
  it('fills what older configs leave null or absent', () => {
    const c = read({ ...base, model_type: 'mistral', head_dim: null, num_key_value_heads: null, sliding_window: null, eos_token_id: [2, 7] });
    expect([c.headDim, c.numKeyValueHeads, c.rmsNormEps, c.tieWordEmbeddings]).toEqual([16, 4, 1e-6, false]);
    expect(c.layers.every((l) => l.maskVariant === 'causal')).toBe(true);
    expect(c.eosTokenIds).toEqual([2, 7]);
  });

  it('decides sliding layers per family', () => {
    const mistral = read({ ...base, model_type: 'mistral', sliding_window: 4096 });
    expect(mistral.layers.map((l) => l.slidingWindow)).toEqual([4096, 4096, 4096, 4096]);
    const qwenOff = read({ ...base, model_type: 'qwen2', use_sliding_window: false, sliding_window: 32768, max_window_layers: 2 });
    expect(qwenOff.layers.map((l) => l.maskVariant)).toEqual(['causal', 'causal', 'causal', 'causal']);
    const qwenOn = read({ ...base, model_type: 'qwen2', use_sliding_window: true, sliding_window: 8, max_window_layers: 2 });
    expect(qwenOn.layers.map((l) => l.slidingWindow)).toEqual([0, 0, 8, 8]);
    const typed = read({ ...base, model_type: 'llama', sliding_window: 5,
      layer_types: ['full_attention', 'sliding_attention', 'full_attention', 'sliding_attention'] });
    expect(typed.layers.map((l) => l.maskVariant)).toEqual(['causal', 'sliding_window_causal', 'causal', 'sliding_window_causal']);
    expect(() => read({ ...base, model_type: 'llama', layer_types: ['full_attention'] })).toThrow(
      '[readDecoderConfig] config.layer_types has 1 entries, num_hidden_layers is 4');
  });

  it("takes each family's bias, norm and clip rules", () => {
    expect(read({ ...base, model_type: 'qwen2' })).toMatchObject({ qkvBias: true, outputBias: false });
    expect(read({ ...base, model_type: 'llama', attention_bias: true })).toMatchObject({ qkvBias: true, outputBias: true });
    expect(read({ ...base, model_type: 'mistral', attention_bias: true })).toMatchObject({ qkvBias: false, outputBias: false });
    expect(read({ ...base, model_type: 'qwen3' })).toMatchObject({ useQkNorm: true, qkvBias: false });
    expect(read({ ...base, model_type: 'olmo', clip_qkv: 8, rms_norm_eps: 1e-6 })).toMatchObject({
      clipQkv: 8, norm: 'layer_norm_no_affine', rmsNormEps: 1e-5 });
    expect(read({ ...base, model_type: 'llama', clip_qkv: 8 }).clipQkv).toBeNull();
  });

  it('names bad values', () => {
    expect(() => read({ ...base, model_type: 'llama', hidden_size: '64' })).toThrow('[readDecoderConfig] config.hidden_size must be a number, got "64"');
    expect(() => read({ ...base, model_type: 'llama', num_attention_heads: 5 })).toThrow(/head_dim .* must be an integer >= 1, got 12.8/);
  });
});
