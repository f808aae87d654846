/**
 * The decoder's ragged step through the whole-model kernels (kernels/model_ops.ts): per layer
 * RmsNorm, one DenseMatMul for q/k/v, RopeSplitStoreRagged, FlashAttentionRaggedPaged, the output
 * DenseMatMul with the residual add fused, RmsNorm, and SwiGluMlp with its residual fused: 7 kernel
 * calls a layer instead of ~20 tfjs ops, activations never leave the device, and the LM head runs
 * only on the rows that are sampled. Same math as the layers (models/layers/*), weights packed by
 * models/fused_weights.ts.
 *
 * `DecoderForCausalLM.forwardRagged` takes this path when `fusedForwardSupported(model)`: every
 * kernel it needs is registered for the active backend (webgpu today) and the model has nothing
 * these kernels lack (RMSNorm with weights, plain `Linear` projections: no LoRA, no quantized or
 * sharded projections, no clip-qkv, the fused RoPE + store).
 *
 * @example
 * const logits = fusedForwardRagged(model, ids, kv, [ids.length - 1]); // [1, vocab]
 */
import * as tf from '@tensorflow/tfjs';
import {
  ArgMaxRows, DenseMatMul, FlashAttentionRaggedPaged, RmsNorm, RopeSplitStoreRagged, SwiGluMlp,
} from '../kernels/kernel_names.js';
import { denseMatMul, rmsNorm, swiGluMlp } from '../kernels/model_ops.js';
import { flashAttentionRaggedPaged, hasFusedKernel, ropeSplitStoreRagged } from '../kernels/ops.js';
import { Linear } from '../lib/attention/linear.js';
import type { PagedKVCollection } from '../lib/kv_cache/collection.js';
import { ropeTablesOf } from '../lib/rope/rotary_embedding.js';
import type { DecoderForCausalLM } from './decoder_lm.js';
import { fusedWeightsOf } from './fused_weights.js';

const KERNELS = [DenseMatMul, RmsNorm, SwiGluMlp, RopeSplitStoreRagged, FlashAttentionRaggedPaged];

/** Whether the fused step serves this model on the active backend (else the layers run). */
export function fusedForwardSupported(model: DecoderForCausalLM): boolean {
  if (!KERNELS.every(hasFusedKernel)) return false;
  const c = model.config;
  if (c.norm !== 'rms' || c.clipQkv !== null) return false;
  return model.blocks.every((b) => {
    const a = b.attn;
    const plain = [a.qProj, a.kProj, a.vProj, a.oProj].every((p) => p !== null && p.constructor === Linear);
    return plain && a.opts.fuseRopeAndStore && a.shardingStrategy.numDevices <= 1 && b.inputNorm.weight !== null && b.postNorm.weight !== null;
  });
}

/** Whether greedy tokens can be picked on the device (ArgMaxRows registered for the backend). */
export function deviceArgMax(): boolean {
  return hasFusedKernel(ArgMaxRows);
}

/**
 * forwardRagged's body on the fused kernels; arguments checked by the caller. A pipeline stage
 * (models/pipeline/stage_model.ts) passes the previous stage's activations `[T, hidden]` instead of
 * ids, and `head: false` to stop after its blocks (returning `[T, hidden]`).
 */
export function fusedForwardRagged(model: DecoderForCausalLM, ids: Int32Array | tf.Tensor2D, kv: PagedKVCollection, logitRows?: Int32Array,
  head = true): tf.Tensor2D {
  const packed = fusedWeightsOf(model);
  const c = model.config;
  return tf.tidy(() => {
    let h = ids instanceof Int32Array ? tf.gather(model.embedTable.read(), tf.tensor1d(ids, 'int32')) as tf.Tensor2D : ids; // [T, hidden]
    model.blocks.forEach((b, layerIdx) => {
      const w = packed.layers[layerIdx];
      const a = b.attn;
      const o = a.opts;
      const tables = ropeTablesOf(a.rope, o.headDim, a.rope.interleaved);
      const x = rmsNorm(h, w.inputNorm, c.rmsNormEps); // [T, hidden]
      const qkv = denseMatMul(x, w.qkv, { bias: w.qkvBias }); // [T, qDim + 2 kvDim]
      const q = ropeSplitStoreRagged(qkv, {
        nHeads: o.numAttentionHeads, nKvHeads: o.numKeyValueHeads, headDim: o.headDim, rope: tables,
        qkNormEps: o.useQkNorm ? o.rmsNormEps : -1, collection: kv, layerIdx,
      }, a.qNormWeight?.read() as tf.Tensor1D | undefined, a.kNormWeight?.read() as tf.Tensor1D | undefined); // [T, qDim]
      const attn = flashAttentionRaggedPaged(q, {
        nHeads: o.numAttentionHeads, nKvHeads: o.numKeyValueHeads, headDim: o.headDim, scale: o.scale, mask: a.mask,
        collection: kv, layerIdx, variant: 'auto',
      }); // [T, qDim]
      const h1 = denseMatMul(attn, w.o, { bias: w.oBias, residual: h }); // [T, hidden]
      const x2 = rmsNorm(h1, w.postNorm, c.rmsNormEps); // [T, hidden]
      h = swiGluMlp(x2, w.gateUp, w.down, { gateUpBias: w.gateUpBias, downBias: w.downBias, residual: h1 }); // [T, hidden]
    });
    if (!head) return h;
    if (logitRows) h = tf.gather(h, tf.tensor1d(logitRows, 'int32')); // [R, hidden]
    const normed = rmsNorm(h, model.norm.weight!.read() as tf.Tensor1D, c.rmsNormEps); // [R, hidden]
    return denseMatMul(normed, model.lmHead.weight.read() as tf.Tensor2D); // [R, vocab]
  });
}
