/**
 * Mistral: Llama with a sliding window on every layer when `sliding_window` is set
 * (`sliding_window_causal`: query i sees keys i - W < j <= i); no attention bias.
 */
import { DecoderForCausalLM } from '../decoder_lm.js';
import { defineFamily } from '../family.js';

export class MistralForCausalLM extends DecoderForCausalLM {}

export const mistral = defineFamily('mistral', 'MistralForCausalLM', {
  qkvBias: () => false,
  outputBias: () => false,
  sliding: (cfg, n) => new Array<boolean>(n).fill(typeof cfg.sliding_window === 'number'),
}, MistralForCausalLM);
