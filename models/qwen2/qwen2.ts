/**
 * Qwen2: q/k/v projections carry a bias, o_proj none. Sliding window only with
 * `use_sliding_window`, on layers >= `max_window_layers` (or as `layer_types` says).
 */
import type { HfConfig } from '../config.js';
import { DecoderForCausalLM } from '../decoder_lm.js';
import { defineFamily } from '../family.js';

export class Qwen2ForCausalLM extends DecoderForCausalLM {}

/** transformers' rule: layer i slides when use_sliding_window and i >= max_window_layers. */
export function qwenSlidingLayers(cfg: HfConfig, n: number): boolean[] {
  const on = cfg.use_sliding_window === true && typeof cfg.sliding_window === 'number';
  const from = typeof cfg.max_window_layers === 'number' ? cfg.max_window_layers : 0;
  return Array.from({ length: n }, (_, i) => on && i >= from);
}

export const qwen2 = defineFamily('qwen2', 'Qwen2ForCausalLM', {
  qkvBias: () => true,
  outputBias: () => false,
  sliding: qwenSlidingLayers,
}, Qwen2ForCausalLM);
