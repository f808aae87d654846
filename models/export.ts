/**
 * The one Hugging Face exporter of a model (fine-tuned or not): every tensor under its transformers name
 * (`model.layers.0.self_attn.q_proj.weight`, `[out, in]`), LoRA adapters folded in (without
 * touching the model), as `model.safetensors` beside a `config.json`: a folder `loadPretrained`
 * (and transformers) load. Adapters alone can also be written under PEFT's names.
 */
import * as tf from '@tensorflow/tfjs';
import { attentionHfTensors, hostTensor as host, type HfTensorMap } from '../lib/attention/hf_export.js';
import { check } from '../lib/errors.js';
import { LoRALinear } from '../lib/training/lora.js';
import type { DecoderForCausalLM } from './decoder_lm.js';

export { attentionHfTensors, type HfTensorMap };

/**
 * Every weight of a model under its Hugging Face name and layout (adapters folded in).
 *
 * @example
 * const tensors = exportHfWeights(model); // Map: 'model.layers.0.self_attn.q_proj.weight' -> { shape, data }
 */
export function exportHfWeights(model: DecoderForCausalLM): HfTensorMap {
  const out: HfTensorMap = new Map();
  for (const [name, t] of model.weightTargets()) {
    out.set(name, tf.tidy(() => host(t.transpose ? tf.transpose(t.variable.read()) : t.variable.read())));
  }
  model.blocks.forEach((b, i) => {
    for (const [n, t] of attentionHfTensors(b.attn)) out.set(`model.layers.${i}.self_attn.${n}`, t);
  });
  const specs = model.weightSpecs();
  for (const [name, shape] of specs) {
    const t = out.get(name);
    check(t !== undefined, 'exportHfWeights', () => `no tensor for '${name}'`);
    check(t.shape.join() === shape.join(), 'exportHfWeights', () => `tensor '${name}' has shape [${t.shape}], the model expects [${shape}]`);
  }
  return out;
}

/**
 * The LoRA adapters alone under PEFT's names and layout:
 * `base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_A.weight` `[r, in]`, `lora_B.weight` `[out, r]`.
 */
export function exportLoRAAdapters(model: DecoderForCausalLM): HfTensorMap {
  const out: HfTensorMap = new Map();
  model.blocks.forEach((b, i) => {
    const a = b.attn;
    for (const [name, p] of a.namedProjections()) {
      if (!(p instanceof LoRALinear) || !p.loraA) continue;
      const pre = `base_model.model.model.layers.${i}.self_attn.${name}`;
      out.set(`${pre}.lora_A.weight`, tf.tidy(() => host(tf.transpose(p.loraA!.read()))));
      out.set(`${pre}.lora_B.weight`, tf.tidy(() => host(tf.transpose(p.loraB!.read()))));
    }
  });
  return out;
}
