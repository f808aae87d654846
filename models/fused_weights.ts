/**
 * The decoder's weights in the layout of the whole-model kernels (kernels/kernel_names.ts
 * DenseMatMul / SwiGluMlp): Hugging Face `[out, in]` rows, q/k/v stacked, gate/up in blocks of
 * SWIGLU_BLOCK rows. Built once from the model's variables on the active backend (a transpose
 * on the device) and rebuilt when any variable is reassigned (training, loading).
 *
 * @example
 * const packed = fusedWeightsOf(model); // packed.layers[0].qkv: [qDim + 2 kvDim, hidden]
 */
import * as tf from '@tensorflow/tfjs';
import { SWIGLU_BLOCK } from '../kernels/kernel_names.js';
import type { DecoderForCausalLM } from './decoder_lm.js';

/** Gate and up `[I, ...]` (weights or biases) -> blocked `[2 * Ip, ...]` (Ip = I rounded up to 64, zero rows). */
export function packGateUp<T extends tf.Tensor>(gate: T, up: T): T {
  return tf.tidy(() => {
    const I = gate.shape[0];
    const rest = gate.shape.slice(1);
    const blocks = Math.ceil(I / SWIGLU_BLOCK);
    const pad = (t: tf.Tensor) => tf.pad(t, [[0, blocks * SWIGLU_BLOCK - I], ...rest.map(() => [0, 0] as [number, number])]);
    const g = pad(gate).reshape([blocks, 1, SWIGLU_BLOCK, ...rest]); // [blocks, 1, 64, ...]
    const u = pad(up).reshape([blocks, 1, SWIGLU_BLOCK, ...rest]);
    return tf.concat([g, u], 1).reshape([2 * blocks * SWIGLU_BLOCK, ...rest]) as T; // [2 Ip, ...]
  });
}

export interface FusedLayerWeights {
  inputNorm: tf.Tensor1D;
  postNorm: tf.Tensor1D;
  /** `[qDim + 2 kvDim, hidden]` */
  qkv: tf.Tensor2D;
  qkvBias?: tf.Tensor1D;
  /** `[hidden, qDim]` */
  o: tf.Tensor2D;
  oBias?: tf.Tensor1D;
  /** `[2 Ip, hidden]` blocked */
  gateUp: tf.Tensor2D;
  gateUpBias?: tf.Tensor1D;
  /** `[hidden, I]` */
  down: tf.Tensor2D;
  downBias?: tf.Tensor1D;
}

export interface FusedWeights {
  layers: FusedLayerWeights[];
  /** Data ids of the variables the packing was made from (an assign gives a variable a new one: stale). */
  sources: object[];
  backend: string;
}

const cache = new WeakMap<DecoderForCausalLM, FusedWeights>();

function sourcesOf(model: DecoderForCausalLM): object[] {
  return model.blocks.flatMap((b) => {
    const a = b.attn;
    const lin = [a.qProj, a.kProj, a.vProj, a.oProj].flatMap((p) => (p ? [p.kernel, ...(p.bias ? [p.bias] : [])] : []));
    const m = b.mlp;
    return [...lin, m.gateKernel, m.upKernel, m.downKernel, ...[m.gateBias, m.upBias, m.downBias].filter((v) => v !== null)]
      .map((v) => v!.read().dataId);
  });
}

/** The packed weights of `model` on the active backend (made on first use, remade when stale). */
export function fusedWeightsOf(model: DecoderForCausalLM): FusedWeights {
  const sources = sourcesOf(model);
  const hit = cache.get(model);
  if (hit && hit.backend === tf.getBackend() && hit.sources.length === sources.length && hit.sources.every((s, i) => s === sources[i])) {
    return hit;
  }
  if (hit) disposeFusedWeights(model);
  const layers = model.blocks.map((b): FusedLayerWeights => tf.tidy((): tf.TensorContainer => {
    const a = b.attn;
    const m = b.mlp;
    const read = (v: tf.LayerVariable) => v.read();
    const t = (v: tf.LayerVariable) => tf.transpose(read(v)) as tf.Tensor2D; // [in, out] -> [out, in]
    const w: FusedLayerWeights = {
      inputNorm: read(b.inputNorm.weight!) as tf.Tensor1D,
      postNorm: read(b.postNorm.weight!) as tf.Tensor1D,
      qkv: tf.concat([t(a.qProj!.kernel), t(a.kProj!.kernel), t(a.vProj!.kernel)], 0) as tf.Tensor2D,
      o: t(a.oProj!.kernel),
      gateUp: packGateUp(t(m.gateKernel), t(m.upKernel)),
      down: t(m.downKernel),
    };
    if (a.qProj!.bias) w.qkvBias = tf.concat([read(a.qProj!.bias), read(a.kProj!.bias!), read(a.vProj!.bias!)]) as tf.Tensor1D;
    if (a.oProj!.bias) w.oBias = read(a.oProj!.bias) as tf.Tensor1D;
    if (m.gateBias) {
      w.gateUpBias = packGateUp(read(m.gateBias) as tf.Tensor1D, read(m.upBias!) as tf.Tensor1D);
      w.downBias = read(m.downBias!) as tf.Tensor1D;
    }
    return w as unknown as tf.TensorContainer; // norms and lone biases are the variables themselves (tidy never disposes variables)
  }) as unknown as FusedLayerWeights);
  const made: FusedWeights = { layers, sources, backend: tf.getBackend() };
  cache.set(model, made);
  return made;
}

/** Frees the packed copies (the variables stay). */
export function disposeFusedWeights(model: DecoderForCausalLM): void {
  const hit = cache.get(model);
  if (!hit) return;
  for (const l of hit.layers) for (const t of [l.qkv, l.qkvBias, l.o, l.gateUp, l.gateUpBias, l.down]) if (t && !(t instanceof tf.Variable)) t.dispose();
  cache.delete(model);
}
