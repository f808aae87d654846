/** Loading Hugging Face attention weights (`[out, in]` layout) into the layer's `[in, out]` kernels. */
import * as tf from '@tensorflow/tfjs';
import { check } from '../errors.js';
import type { AttentionWithRope } from './attention_with_rope.js';
import { isRawTensor, rawToFloat, type RawTensor } from './quant_weights.js';

/** Tensors by Hugging Face name: float values, or (quantized / half-precision layers) the bytes as stored. */
export type HfWeights = Record<string, Float32Array | tf.Tensor | RawTensor>;

const W = 'AttentionWithRope.setHfWeights';

function tensorOf(w: HfWeights, name: string, shape: number[]): tf.Tensor {
  const given = w[name];
  const v = isRawTensor(given) ? rawToFloat(name, given) : given;
  check(v !== undefined, W, () => `missing tensor '${name}' (expected shape [${shape}]); given: ${Object.keys(w).join(', ')}`);
  const size = shape.reduce((a, b) => a * b, 1);
  if (v instanceof tf.Tensor) {
    check(v.size === size && (v.rank === shape.length), W, () => `tensor '${name}' has shape [${v.shape}], expected [${shape}]`);
    return v.reshape(shape);
  }
  check(v.length === size, W, () => `tensor '${name}' has ${v.length} values, expected shape [${shape}] (${size})`);
  return tf.tensor(v, shape);
}

export function setHfWeights(layer: AttentionWithRope, w: HfWeights): void {
  const o = layer.opts;
  const H = o.hiddenSize, q = layer.qDim, kv = layer.kvDim;
  tf.tidy(() => {
    const kernel = (name: string, out: number, inDim: number) => tensorOf(w, name, [out, inDim]).transpose(); // [in, out]
    if (layer.qkvProj) {
      const stacked = w['qkv_proj.weight'] !== undefined ? kernel('qkv_proj.weight', q + 2 * kv, H)
        : tf.concat([kernel('q_proj.weight', q, H), kernel('k_proj.weight', kv, H), kernel('v_proj.weight', kv, H)], 1);
      layer.qkvProj.kernel.write(stacked);
      if (layer.qkvProj.bias) {
        layer.qkvProj.bias.write(w['qkv_proj.bias'] !== undefined ? tensorOf(w, 'qkv_proj.bias', [q + 2 * kv])
          : tf.concat([tensorOf(w, 'q_proj.bias', [q]), tensorOf(w, 'k_proj.bias', [kv]), tensorOf(w, 'v_proj.bias', [kv])]));
      }
    } else {
      for (const [p, name, out] of [[layer.qProj!, 'q_proj', q], [layer.kProj!, 'k_proj', kv], [layer.vProj!, 'v_proj', kv]] as const) {
        p.kernel.write(kernel(`${name}.weight`, out, H));
        if (p.bias) p.bias.write(tensorOf(w, `${name}.bias`, [out]));
      }
    }
    layer.oProj!.kernel.write(kernel('o_proj.weight', H, q));
    if (layer.oProj!.bias) layer.oProj!.bias.write(tensorOf(w, 'o_proj.bias', [H]));
    if (layer.qNormWeight) {
      layer.qNormWeight.write(tensorOf(w, 'q_norm.weight', [o.headDim]));
      layer.kNormWeight!.write(tensorOf(w, 'k_norm.weight', [o.headDim]));
    }
  });
}
