/**
 * One pre-norm decoder layer of the Llama family:
 *   h = h + attn(norm1(h));  h = h + mlp(norm2(h))
 * One packed forward (`forwardPacked`) serves generation (`callRagged`, the paged cache) and
 * training (`callRaggedTrain`, no cache); `applySymbolic` builds the padded `[B, S, hidden]`
 * graph for tf.model / fit from the same layers.
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope.js';
import type { PagedKVCollection } from '../../lib/kv_cache/collection.js';
import { attentionRaggedTrain } from '../../lib/training/ragged_train.js';
import type { RotaryEmbedding } from '../../lib/rope/rotary_embedding.js';
import type { KVCacheParams } from '../../lib/kv_cache/params.js';
import { resolveQuantConfig } from '../../lib/attention/quant_config.js';
import type { LayerQuant } from '../../lib/loaders/hf_quantization.js';
import type { DecoderConfig } from '../config.js';
import { RMSNorm } from './norm.js';
import { SwiGLUMLP } from './swiglu_mlp.js';

/**
 * @example
 * const block = new DecoderBlock(config, 0, rope, kvParams);
 * const h2 = block.callRagged(h, kv); // [T, hidden]; the block passes its own layerIdx to the cache
 */
export class DecoderBlock {
  readonly inputNorm: RMSNorm;
  readonly attn: AttentionWithRope;
  readonly postNorm: RMSNorm;
  readonly mlp: SwiGLUMLP;

  /** `quant`: packed projections (attention and MLP) of a quantized or half-precision checkpoint. */
  constructor(readonly config: DecoderConfig, readonly layerIdx: number, rope: RotaryEmbedding, kvParams: KVCacheParams, quant?: LayerQuant) {
    const c = config;
    const p = `layers_${layerIdx}_`;
    const affine = c.norm === 'rms';
    const normArgs = { size: c.hiddenSize, eps: c.rmsNormEps, center: !affine, affine };
    this.inputNorm = new RMSNorm({ ...normArgs, name: `${p}input_layernorm` });
    this.postNorm = new RMSNorm({ ...normArgs, name: `${p}post_attention_layernorm` });
    const spec = c.layers[layerIdx];
    this.attn = new AttentionWithRope({
      rope,
      numAttentionHeads: c.numAttentionHeads,
      numKeyValueHeads: c.numKeyValueHeads,
      hiddenSize: c.hiddenSize,
      kvParams,
      hasBias: c.qkvBias,
      hasOutputBias: c.outputBias,
      useQkNorm: c.useQkNorm,
      rmsNormEps: c.rmsNormEps,
      ...(c.clipQkv !== null ? { clipQkv: c.clipQkv, clipQkvTarget: 'activations' as const } : {}),
      maskVariant: spec.maskVariant,
      ...(spec.slidingWindow > 0 ? { slidingWindow: spec.slidingWindow } : {}),
      ...(quant ? { quantConfig: quant.quantConfig, dtype: quant.dtype } : {}),
      name: `${p}self_attn`,
    });
    this.attn.build([null, c.hiddenSize]);
    const H = c.hiddenSize, I = c.intermediateSize;
    const mlpQuant = quant && (quant.quantConfig || quant.dtype !== 'float32') ? {
      quant: quant.quantConfig && resolveQuantConfig(quant.quantConfig, [
        { name: 'mlp.gate_proj', inDim: H, outDim: I }, { name: 'mlp.up_proj', inDim: H, outDim: I }, { name: 'mlp.down_proj', inDim: I, outDim: H }]),
      dtype: quant.dtype,
    } : undefined;
    this.mlp = new SwiGLUMLP({ hiddenSize: H, intermediateSize: I, useBias: c.mlpBias, name: `${p}mlp`, quant: mlpQuant });
  }

  /**
   * The block's one packed forward, `[T, hidden]` -> `[T, hidden]`: h + attn(norm1(h)), then
   * h1 + mlp(norm2(h1)). Inference (`callRagged`) and training (`callRaggedTrain`) differ only in
   * `attend`: the paged cache, or the packed no-cache path. A new model family changes this one place.
   */
  forwardPacked(h: tf.Tensor2D, attend: (x: tf.Tensor2D) => tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const a = attend(this.inputNorm.call(h) as tf.Tensor2D); // [T, hidden]
      const h1 = tf.add(h, a) as tf.Tensor2D; // [T, hidden]
      // FusedSwiGLUMLP at inference; projectionMatMul ops (gradient registered) under a gradient tape
      return this.mlp.callWithResidual(this.postNorm.call(h1) as tf.Tensor2D, h1); // [T, hidden] = h1 + mlp(norm(h1))
    });
  }

  /** Packed rows `[T, hidden]` of the step described by `kv` -> `[T, hidden]` (generation). */
  callRagged(h: tf.Tensor2D, kv: PagedKVCollection): tf.Tensor2D {
    return this.forwardPacked(h, (x) => this.attn.callRagged(this.layerIdx, x, kv));
  }

  /**
   * Packed sequences `[T, hidden]` with `[batch + 1]` row offsets, no cache (training): differentiable,
   * the same numbers as `callRagged` over each sequence from an empty cache.
   */
  callRaggedTrain(h: tf.Tensor2D, rowOffsets: Int32Array | readonly number[]): tf.Tensor2D {
    return this.forwardPacked(h, (x) => attentionRaggedTrain(this.attn, x, rowOffsets));
  }

  /** Padded, cache-free path for building a tf.LayersModel: `[B, S, hidden]` -> `[B, S, hidden]`. */
  applySymbolic(h: tf.SymbolicTensor): tf.SymbolicTensor {
    const a = this.attn.apply(this.inputNorm.apply(h)) as tf.SymbolicTensor;
    const h1 = tf.layers.add({ name: `layers_${this.layerIdx}_attn_residual` }).apply([h, a]) as tf.SymbolicTensor;
    const m = this.mlp.apply(this.postNorm.apply(h1)) as tf.SymbolicTensor;
    return tf.layers.add({ name: `layers_${this.layerIdx}_mlp_residual` }).apply([h1, m]) as tf.SymbolicTensor;
  }

  /** Trainable weights of the block, attention included. */
  get trainableWeights(): tf.LayerVariable[] {
    return [...this.inputNorm.trainableWeights, ...this.attn.trainableWeights, ...this.postNorm.trainableWeights, ...this.mlp.trainableWeights];
  }
}
