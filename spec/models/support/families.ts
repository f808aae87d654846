/** Tiny configs of every supported family, each exercising one quirk, and their random weights. */
import { randomTensor, type Tensor64 } from './tiny_checkpoint';

const base = {
  hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  vocab_size: 64, max_position_embeddings: 128, rms_norm_eps: 1e-6, hidden_act: 'silu', tie_word_embeddings: false,
};

export const FAMILY_CONFIGS: Record<string, Record<string, unknown>> = {
  // transformers-4 spelling, attention_bias on q/k/v/o, mlp_bias, head_dim absent (32 / 4 = 8)
  llama_bias_hf4: { ...base, model_type: 'llama', attention_bias: true, mlp_bias: true, rope_theta: 500.0, rope_scaling: null },
  // Llama 3 rope scaling (transformers-5 spelling); wavelengths fall in all three bands
  llama3_scaled: {
    ...base, model_type: 'llama', head_dim: 8, rope_parameters: {
      rope_type: 'llama3', rope_theta: 500.0, factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 16,
    },
  },
  // every layer slides, window 3; head_dim 16 != hidden / heads
  mistral_window: { ...base, model_type: 'mistral', head_dim: 16, sliding_window: 3, rope_parameters: { rope_type: 'default', rope_theta: 10000.0 } },
  // q/k/v bias; slides from layer 1 on (use_sliding_window, max_window_layers); tied embeddings
  qwen2_bias_window: {
    ...base, model_type: 'qwen2', use_sliding_window: true, sliding_window: 3, max_window_layers: 1, tie_word_embeddings: true,
    rope_theta: 1000000.0,
  },
  // qk-norm, layer_types says which layer slides, attention_bias, GQA 4:1
  qwen3_layer_types: {
    ...base, model_type: 'qwen3', num_key_value_heads: 1, head_dim: 8, attention_bias: true, sliding_window: 2,
    layer_types: ['sliding_attention', 'full_attention'], rope_parameters: { rope_type: 'default', rope_theta: 10000.0 },
  },
  // weightless LayerNorm, clip_qkv on activations
  olmo_clip: { ...base, model_type: 'olmo', clip_qkv: 0.5, attention_bias: false, rope_theta: 10000.0 },
};

/** Random HF tensors for a config (names and shapes as transformers saves them). */
export function familyWeights(cfg: Record<string, any>): Map<string, Tensor64> {
  const H = cfg.hidden_size, I = cfg.intermediate_size, V = cfg.vocab_size;
  const hd = cfg.head_dim ?? H / cfg.num_attention_heads;
  const q = cfg.num_attention_heads * hd, kv = cfg.num_key_value_heads * hd;
  const olmo = cfg.model_type === 'olmo';
  const qkvBias = cfg.model_type === 'qwen2' || (cfg.model_type !== 'mistral' && cfg.attention_bias === true);
  const oBias = cfg.model_type !== 'qwen2' && cfg.model_type !== 'mistral' && cfg.attention_bias === true;
  const w = new Map<string, Tensor64>();
  let seed = 1;
  const put = (n: string, shape: number[], ones = false) => w.set(n, randomTensor(shape, seed++, ones));
  put('model.embed_tokens.weight', [V, H]);
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    put(`${p}self_attn.q_proj.weight`, [q, H]); put(`${p}self_attn.k_proj.weight`, [kv, H]);
    put(`${p}self_attn.v_proj.weight`, [kv, H]); put(`${p}self_attn.o_proj.weight`, [H, q]);
    if (qkvBias) { put(`${p}self_attn.q_proj.bias`, [q]); put(`${p}self_attn.k_proj.bias`, [kv]); put(`${p}self_attn.v_proj.bias`, [kv]); }
    if (oBias) put(`${p}self_attn.o_proj.bias`, [H]);
    if (cfg.model_type === 'qwen3') { put(`${p}self_attn.q_norm.weight`, [hd], true); put(`${p}self_attn.k_norm.weight`, [hd], true); }
    put(`${p}mlp.gate_proj.weight`, [I, H]); put(`${p}mlp.up_proj.weight`, [I, H]); put(`${p}mlp.down_proj.weight`, [H, I]);
    if (cfg.mlp_bias) { put(`${p}mlp.gate_proj.bias`, [I]); put(`${p}mlp.up_proj.bias`, [I]); put(`${p}mlp.down_proj.bias`, [H]); }
    if (!olmo) { put(`${p}input_layernorm.weight`, [H], true); put(`${p}post_attention_layernorm.weight`, [H], true); }
  }
  if (!olmo) put('model.norm.weight', [H], true);
  if (!cfg.tie_word_embeddings) put('lm_head.weight', [V, H]);
  return w;
}
