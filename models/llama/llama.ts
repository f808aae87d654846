/**
 * Llama (1/2/3, incl. Llama 3 rope scaling via RotaryEmbedding.fromHfConfig): `attention_bias`
 * puts a bias on q/k/v and o; `mlp_bias` on the MLP; `layer_types` may mark sliding layers.
 */
import { DecoderForCausalLM } from '../decoder_lm.js';
import { defineFamily } from '../family.js';

export class LlamaForCausalLM extends DecoderForCausalLM {}

export const llama = defineFamily('llama', 'LlamaForCausalLM', {}, LlamaForCausalLM);
