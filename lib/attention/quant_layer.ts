/**
 * The quantized side of AttentionWithRope: which projections are packed, loading Hugging Face
 * tensors into them, and the reference's scale properties (`qkvInputScale`, `qkvWeightScale`,
 * `qkvWeightScale2`).
 */
import * as tf from '@tensorflow/tfjs';

import { check } from '../errors.js';
import type { AttentionWithRope } from './attention_with_rope.js';
import type { LinearLike } from './linear.js';
import { QuantLinear, quantAttrs } from './quant_linear.js';
import { concatPacked, isRawTensor, rawToFloat, packProjection, type PackedProjection, type RawTensor, writePacked } from './quant_weights.js';

const W = 'AttentionWithRope.setHfWeights';

/** The packed projection behind p (itself, or a LoRA adapter's base), or null for a float projection. */
export function quantOf(p: LinearLike | null): QuantLinear | null {
  if (p instanceof QuantLinear) return p;
  const base = (p as { base?: unknown } | null)?.base;
  return base instanceof QuantLinear ? base : null;
}

/** True when the layer's projections hold packed weights (quantConfig or a float16 / bfloat16 dtype). */
export function isQuantized(layer: AttentionWithRope): boolean {
  return layer.opts.quantConfig !== null || layer.opts.dtype !== 'float32';
}

type Weights = Record<string, Float32Array | tf.Tensor | RawTensor>;

/** Loads q/k/v/o (+ biases, qk-norm) from Hugging Face tensors into a quantized layer. */
export function setQuantHfWeights(layer: AttentionWithRope, w: Weights): void {
  const o = layer.opts, H = o.hiddenSize, qDim = layer.qDim, kvDim = layer.kvDim;
  const get = (name: string, shape: number[], dtypes: string[]): RawTensor | Float32Array => {
    const v = w[name];
    check(v !== undefined, W, () => `missing tensor '${name}' (expected ${dtypes.join(' or ')} [${shape}]); given: ${Object.keys(w).join(', ')}`);
    if (isRawTensor(v)) {
      check(dtypes.includes(v.dtype), W, () => `tensor '${name}' is ${v.dtype}, expected ${dtypes.join(' or ')}`);
      const n = shape.reduce((a, b) => a * b, 1), got = v.shape.reduce((a, b) => a * b, 1);
      check(n === got, W, () => `tensor '${name}' has shape [${v.shape}], expected [${shape}]`);
      return v;
    }
    const f = v instanceof tf.Tensor ? v.dataSync() as Float32Array : v;
    check(f instanceof Float32Array && f.length === shape.reduce((a, b) => a * b, 1), W, () =>
      `tensor '${name}' has ${f.length} values, expected [${shape}]`);
    return f;
  };
  const floats = (name: string, n: number) => {
    const v = get(name, [n], ['F32', 'F16', 'BF16']);
    return v instanceof Float32Array ? v : rawToFloat(name, v);
  };
  const parts: [string, number][] = [['q_proj', qDim], ['k_proj', kvDim], ['v_proj', kvDim]];
  const pack = (p: QuantLinear, name: string, out: number, inDim: number, stackedPart = false): PackedProjection =>
    packProjection(stackedPart ? quantAttrs({ quant: o.quantConfig, dtype: o.dtype }, inDim, out) : p.attrs, p.inputScale !== null, name, out, inDim, get);
  if (layer.qkvProj) {
    const qkv = quantOf(layer.qkvProj)!;
    const attrs = parts.map(([, out]) => quantAttrs({ quant: o.quantConfig, dtype: o.dtype }, H, out));
    writePacked(qkv, concatPacked(parts.map(([name, out]) => pack(qkv, name, out, H, true)), attrs));
    if (layer.qkvProj.bias) layer.qkvProj.bias.write(tf.tensor(concatFloats(parts.map(([n, out]) => floats(`${n}.bias`, out)))));
  } else {
    const projs = [layer.qProj!, layer.kProj!, layer.vProj!];
    const packed = parts.map(([name, out], i) => pack(quantOf(projs[i])!, name, out, H));
    // q, k and v share one quantization of x: the max of their static input scales (the reference's fused projection)
    const shared = packed[0].inputScale === undefined ? undefined : Math.max(...packed.map((p) => p.inputScale!));
    packed.forEach((p, i) => {
      writePacked(quantOf(projs[i])!, p);
      quantOf(projs[i])!.activationScale = shared ?? null;
      if (projs[i].bias) projs[i].bias!.write(tf.tensor(floats(`${parts[i][0]}.bias`, parts[i][1])));
    });
  }
  writePacked(quantOf(layer.oProj)!, pack(quantOf(layer.oProj)!, 'o_proj', H, qDim));
  if (layer.oProj!.bias) layer.oProj!.bias.write(tf.tensor(floats('o_proj.bias', H)));
  if (layer.qNormWeight) {
    layer.qNormWeight.write(tf.tensor(floats('q_norm.weight', o.headDim)));
    layer.kNormWeight!.write(tf.tensor(floats('k_norm.weight', o.headDim)));
  }
}


function concatFloats(xs: Float32Array[]): Float32Array {
  const out = new Float32Array(xs.reduce((n, x) => n + x.length, 0));
  let at = 0;
  for (const x of xs) { out.set(x, at); at += x.length; }
  return out;
}

function qkvQuants(layer: AttentionWithRope): QuantLinear[] {
  return (layer.qkvProj ? [layer.qkvProj] : [layer.qProj, layer.kProj, layer.vProj]).map((p) => quantOf(p)).filter((p): p is QuantLinear => p !== null);
}

const scalarOf = (v: tf.LayerVariable) => (v.read().dataSync() as Float32Array)[0];

/** Max of the q/k/v static input scales (a scalar), or null when the format quantizes dynamically or not at all. */
export function qkvInputScale(layer: AttentionWithRope): tf.Tensor | null {
  const qs = qkvQuants(layer);
  if (qs.length === 0 || qs[0].inputScale === null) return null;
  return tf.scalar(Math.max(...qs.map((q) => q.activationScale ?? scalarOf(q.inputScale!))));
}

/** NVFP4: max of the q/k/v global weight scales (a scalar); null for other formats. */
export function qkvWeightScale2(layer: AttentionWithRope): tf.Tensor | null {
  const qs = qkvQuants(layer);
  if (qs.length === 0 || qs[0].weightScale2 === null) return null;
  return tf.scalar(Math.max(...qs.map((q) => scalarOf(q.weightScale2!))));
}

/**
 * q/k/v weight scales concatenated over the output rows: per-tensor scales broadcast to `[rows, 1]`,
 * rowwise `[rows, 1]`, block scales stacked along their first axis (nvfp4 `[rows, in/16]` without
 * weight_scale_2; gptq `[groups, rows]` along columns); null for float16 / bfloat16 weights.
 */
export function qkvWeightScale(layer: AttentionWithRope): tf.Tensor | null {
  const qs = qkvQuants(layer);
  if (qs.length === 0 || qs[0].scale === null) return null;
  return tf.tidy(() => {
    const parts = qs.map((q) => {
      const s = q.scale!.read();
      if (q.attrs.weightScale === 'tensor') return tf.fill([q.outDim, 1], scalarOf(q.scale!));
      if (q.attrs.weightScale === 'rowwise') return s.reshape([q.outDim, 1]);
      if (q.weightScale2) return tf.div(s, q.weightScale2.read());
      return s;
    });
    return tf.concat(parts, qs[0].attrs.weightFormat === 'gptq' ? 1 : 0);
  });
}
