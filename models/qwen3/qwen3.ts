/**
 * Qwen3: RMSNorm over each head of Q and K before RoPE (`q_norm`, `k_norm`), `attention_bias`
 * on q/k/v/o, often tied embeddings; sliding layers as in Qwen2.
 */
import { DecoderForCausalLM } from '../decoder_lm.js';
import { defineFamily } from '../family.js';
import { qwenSlidingLayers } from '../qwen2/qwen2.js';

export class Qwen3ForCausalLM extends DecoderForCausalLM {}

export const qwen3 = defineFamily('qwen3', 'Qwen3ForCausalLM', { useQkNorm: true, sliding: qwenSlidingLayers }, Qwen3ForCausalLM);
