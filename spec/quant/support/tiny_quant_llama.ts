/** The tiny Llama of the quantized-checkpoint specs: config and float32 HF weights. */
import { randomTensor } from '../../models/support/tiny_checkpoint';

export const CONFIG = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: 256, max_position_embeddings: 256, rms_norm_eps: 1e-5,
  rope_theta: 10000, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
};

/**
 * Float32 HF weights of the tiny Llama: projections multiples of 1/4096 in [-1/16, 1/16], norms
 * near 1 (exact in bf16 and f16). Like a trained model it is confident: the embedding is 8x larger
 * than the projections' contributions and lm_head row v is the embedding of the token x with next(x) = v, so the residual stream
 * predicts next(x) with a margin that the activation quantizers' noise does not close (a random
 * network's top two logits are often closer than fp8's rounding, where greedy tokens would differ
 * for reasons that have nothing to do with loading).
 */
export function floatWeights(): Map<string, { shape: number[]; data: Float32Array }> {
  const c = CONFIG, H = c.hidden_size, I = c.intermediate_size, q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  const shapes: [string, number[], boolean?][] = [['model.embed_tokens.weight', [c.vocab_size, H]], ['model.norm.weight', [H], true], ['lm_head.weight', [c.vocab_size, H]]];
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}.`;
    shapes.push([`${p}self_attn.q_proj.weight`, [q, H]], [`${p}self_attn.k_proj.weight`, [kv, H]], [`${p}self_attn.v_proj.weight`, [kv, H]],
      [`${p}self_attn.o_proj.weight`, [H, q]], [`${p}mlp.gate_proj.weight`, [I, H]], [`${p}mlp.up_proj.weight`, [I, H]], [`${p}mlp.down_proj.weight`, [H, I]],
      [`${p}input_layernorm.weight`, [H], true], [`${p}post_attention_layernorm.weight`, [H], true]);
  }
  const w = new Map(shapes.map(([n, s, ones], k) => [n, { shape: s, data: Float32Array.from(randomTensor(s, 7 + k, ones).data) }]));
  for (const [n, t] of w) if (n.endsWith('_proj.weight')) t.data.set(t.data.map((x) => x / 4));
  const embed = w.get('model.embed_tokens.weight')!.data.map((x) => 8 * x), head = w.get('lm_head.weight')!.data;
  for (let x = 0; x < c.vocab_size; x++) head.set(embed.subarray(x * H, (x + 1) * H).map((e) => e / 8), nextToken(x) * H);
  w.get('model.embed_tokens.weight')!.data.set(embed);
  return w;
}

/** The planted bigram: a bijection of the vocabulary. */
const nextToken = (x: number) => (x * 37 + 11) % CONFIG.vocab_size;
