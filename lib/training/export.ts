/**
 * Saving fine-tuned weights in Hugging Face layout: every tensor under its transformers name
 * (`model.layers.0.self_attn.q_proj.weight`, `[out, in]`), LoRA adapters folded in (without
 * touching the model), as `model.safetensors` beside a `config.json`: a folder `loadPretrained`
 * (and transformers) load. Adapters alone can also be written under PEFT's names.
 */
import * as tf from '@tensorflow/tfjs';
import type { AttentionWithRope } from '../attention/attention_with_rope.js';
import type { LinearLike } from '../attention/linear.js';
import { check } from '../errors.js';
import type { DecoderForCausalLM } from '../../models/decoder_lm.js';
import { LoRALinear } from './lora.js';

export type HfTensorMap = Map<string, { shape: number[]; data: Float32Array }>;

function host(t: tf.Tensor): { shape: number[]; data: Float32Array } {
  const data = t.dataSync() as Float32Array;
  return { shape: t.shape.slice(), data: Float32Array.from(data) };
}

/** `[in, out]` kernel (adapter included) -> HF `[out, in]`. */
function hfKernel(p: LinearLike): { shape: number[]; data: Float32Array } {
  return tf.tidy(() => host(tf.transpose(p instanceof LoRALinear ? p.effectiveKernel() : p.kernel.read())));
}

/** The attention weights of one layer under HF names relative to `self_attn.`. */
export function attentionHfTensors(layer: AttentionWithRope): HfTensorMap {
  const out: HfTensorMap = new Map();
  const o = layer.opts;
  if (layer.qkvProj) {
    const w = hfKernel(layer.qkvProj); // [q + 2kv, hidden]
    const q = layer.qDim * o.hiddenSize, kv = layer.kvDim * o.hiddenSize;
    out.set('q_proj.weight', { shape: [layer.qDim, o.hiddenSize], data: w.data.slice(0, q) });
    out.set('k_proj.weight', { shape: [layer.kvDim, o.hiddenSize], data: w.data.slice(q, q + kv) });
    out.set('v_proj.weight', { shape: [layer.kvDim, o.hiddenSize], data: w.data.slice(q + kv) });
    if (layer.qkvProj.bias) {
      const b = host(layer.qkvProj.bias.read());
      out.set('q_proj.bias', { shape: [layer.qDim], data: b.data.slice(0, layer.qDim) });
      out.set('k_proj.bias', { shape: [layer.kvDim], data: b.data.slice(layer.qDim, layer.qDim + layer.kvDim) });
      out.set('v_proj.bias', { shape: [layer.kvDim], data: b.data.slice(layer.qDim + layer.kvDim) });
    }
  } else {
    for (const [name, p] of [['q_proj', layer.qProj!], ['k_proj', layer.kProj!], ['v_proj', layer.vProj!]] as const) {
      out.set(`${name}.weight`, hfKernel(p));
      if (p.bias) out.set(`${name}.bias`, host(p.bias.read()));
    }
  }
  out.set('o_proj.weight', hfKernel(layer.oProj!));
  if (layer.oProj!.bias) out.set('o_proj.bias', host(layer.oProj!.bias.read()));
  if (layer.qNormWeight) {
    out.set('q_norm.weight', host(layer.qNormWeight.read()));
    out.set('k_norm.weight', host(layer.kNormWeight!.read()));
  }
  return out;
}

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
    for (const [name, p] of [['q_proj', a.qProj], ['k_proj', a.kProj], ['v_proj', a.vProj], ['qkv_proj', a.qkvProj], ['o_proj', a.oProj]] as const) {
      if (!(p instanceof LoRALinear) || !p.loraA) continue;
      const pre = `base_model.model.model.layers.${i}.self_attn.${name}`;
      out.set(`${pre}.lora_A.weight`, tf.tidy(() => host(tf.transpose(p.loraA!.read()))));
      out.set(`${pre}.lora_B.weight`, tf.tidy(() => host(tf.transpose(p.loraB!.read()))));
    }
  });
  return out;
}
