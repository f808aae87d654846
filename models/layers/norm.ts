/**
 * Normalisation layers of the decoder families: RMSNorm (Llama, Mistral, Qwen) and OLMo's
 * LayerNorm without learned scale or shift. Both work on any rank, over the last axis.
 */
import * as tf from '@tensorflow/tfjs';

import { fusedRmsNorm } from '../../kernels/decoder_steps.js';

export interface NormArgs {
  /** Size of the last axis. */
  size: number;
  eps: number;
  name?: string;
  /** Subtract the mean first (LayerNorm) instead of RMS only. Default false. */
  center?: boolean;
  /** Learned per-channel scale (`weight`). Default true. */
  affine?: boolean;
}

/**
 * `y = x / sqrt(mean(x^2) + eps) * weight` (Hugging Face LlamaRMSNorm); with `center` it is
 * `(x - mean) / sqrt(var + eps)` (OlmoLayerNorm, `affine: false`).
 *
 * @example
 * const norm = new RMSNorm({ size: 64, eps: 1e-5 });
 * const y = norm.apply(tf.randomNormal([2, 3, 64])) as tf.Tensor; // [2, 3, 64]
 */
export class RMSNorm extends tf.layers.Layer {
  static className = 'RMSNorm';
  readonly size: number;
  readonly eps: number;
  readonly center: boolean;
  /** `[size]` scale, or null when not affine. */
  readonly weight: tf.LayerVariable | null;

  constructor(args: NormArgs) {
    super({ name: args.name });
    this.size = args.size;
    this.eps = args.eps;
    this.center = args.center ?? false;
    this.weight = args.affine === false ? null : this.addWeight(`${this.name}/weight`, [args.size], 'float32', tf.initializers.ones());
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs; // [..., size]
    // one FusedRMSNorm kernel at inference on cpu / wasm; plain tfjs ops otherwise (and under a gradient)
    return fusedRmsNorm(x, this.weight ? this.weight.read() : null, { eps: this.eps, center: this.center }); // [..., size]
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), size: this.size, eps: this.eps, center: this.center, affine: this.weight !== null };
  }
}
tf.serialization.registerClass(RMSNorm);
