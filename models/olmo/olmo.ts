/**
 * OLMo (v1): LayerNorm without learned scale or shift in place of RMSNorm (eps 1e-5), and
 * `clip_qkv` clamping the q/k/v projection outputs to ±clip_qkv.
 */
import { DecoderForCausalLM } from '../decoder_lm.js';
import { defineFamily } from '../family.js';

export class OlmoForCausalLM extends DecoderForCausalLM {}

export const olmo = defineFamily('olmo', 'OlmoForCausalLM', { clipQkv: true, norm: 'layer_norm_no_affine', normEps: 1e-5 }, OlmoForCausalLM);
