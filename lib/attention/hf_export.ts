/**
 * The one Hugging Face exporter of an attention layer: every weight under its transformers name
 * relative to `self_attn.` (`q_proj.weight` `[out, in]`, ..., `q_norm.weight`), a packed qkv
 * projection split into q/k/v, LoRA adapters folded in (without touching the layer), quantized
 * weights dequantized. `setHfWeights` loads the result back exactly; the model exporter
 * (models/export.ts) and sharding (lib/sharding/shard_layer.ts) both use it.
 */
import * as tf from '@tensorflow/tfjs';
import type { AttentionWithRope } from './attention_with_rope.js';
import type { LinearLike } from './linear.js';

/** A host copy of one tensor: its shape and float values. */
export type HfTensor = { shape: number[]; data: Float32Array };
export type HfTensorMap = Map<string, HfTensor>;

/** Own copy of a tensor's values (the caller disposes `t`). */
export function hostTensor(t: tf.Tensor): HfTensor {
  return { shape: t.shape.slice(), data: Float32Array.from(t.dataSync() as Float32Array) };
}

/** The kernel a projection applies `[in, out]`: adapters folded (LoRALinear), packed weights widened (QuantLinear). */
function appliedKernel(p: LinearLike): tf.Tensor2D {
  const q = p as LinearLike & { effectiveKernel?: () => tf.Tensor2D; dequantized?: () => tf.Tensor2D };
  if (q.effectiveKernel) return q.effectiveKernel();
  if (q.dequantized) return q.dequantized();
  return p.kernel.read() as tf.Tensor2D;
}

/** `[in, out]` applied kernel -> HF `[out, in]`. */
function hfKernel(p: LinearLike): HfTensor {
  return tf.tidy(() => hostTensor(tf.transpose(appliedKernel(p))));
}

/**
 * The attention weights of one layer under HF names relative to `self_attn.`.
 *
 * @example
 * const w = attentionHfTensors(attn); // Map: 'q_proj.weight' -> { shape: [qDim, hidden], data }
 * other.setHfWeights(Object.fromEntries([...w].map(([k, t]) => [k, t.data]))); // same numbers
 */
export function attentionHfTensors(layer: AttentionWithRope): HfTensorMap {
  if (!layer.built) layer.build([null, layer.opts.hiddenSize]);
  const out: HfTensorMap = new Map();
  const o = layer.opts;
  if (layer.qkvProj) {
    const w = hfKernel(layer.qkvProj); // [q + 2kv, hidden]
    const q = layer.qDim * o.hiddenSize, kv = layer.kvDim * o.hiddenSize;
    out.set('q_proj.weight', { shape: [layer.qDim, o.hiddenSize], data: w.data.slice(0, q) });
    out.set('k_proj.weight', { shape: [layer.kvDim, o.hiddenSize], data: w.data.slice(q, q + kv) });
    out.set('v_proj.weight', { shape: [layer.kvDim, o.hiddenSize], data: w.data.slice(q + kv) });
    if (layer.qkvProj.bias) {
      const b = hostTensor(layer.qkvProj.bias.read());
      out.set('q_proj.bias', { shape: [layer.qDim], data: b.data.slice(0, layer.qDim) });
      out.set('k_proj.bias', { shape: [layer.kvDim], data: b.data.slice(layer.qDim, layer.qDim + layer.kvDim) });
      out.set('v_proj.bias', { shape: [layer.kvDim], data: b.data.slice(layer.qDim + layer.kvDim) });
    }
  } else {
    for (const [name, p] of [['q_proj', layer.qProj!], ['k_proj', layer.kProj!], ['v_proj', layer.vProj!]] as const) {
      out.set(`${name}.weight`, hfKernel(p));
      if (p.bias) out.set(`${name}.bias`, hostTensor(p.bias.read()));
    }
  }
  out.set('o_proj.weight', hfKernel(layer.oProj!));
  if (layer.oProj!.bias) out.set('o_proj.bias', hostTensor(layer.oProj!.bias.read()));
  if (layer.qNormWeight) {
    out.set('q_norm.weight', hostTensor(layer.qNormWeight.read()));
    out.set('k_norm.weight', hostTensor(layer.kNormWeight!.read()));
  }
  return out;
}
