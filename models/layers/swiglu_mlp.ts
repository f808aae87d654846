/**
 * The gated MLP of the Llama family: `down(silu(gate(x)) * up(x))`.
 * Kernels are `[in, out]` (the Hugging Face weight transposed); biases when `mlp_bias`.
 */
import * as tf from '@tensorflow/tfjs';

import { fusedSwiGluMlp } from '../../kernels/decoder_steps.js';

export interface SwiGLUArgs {
  hiddenSize: number;
  intermediateSize: number;
  useBias?: boolean;
  name?: string;
}

/**
 * @example
 * const mlp = new SwiGLUMLP({ hiddenSize: 64, intermediateSize: 128 });
 * const y = mlp.apply(tf.randomNormal([5, 64])) as tf.Tensor; // [5, 64]
 */
export class SwiGLUMLP extends tf.layers.Layer {
  static className = 'SwiGLUMLP';
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  /** `[hidden, intermediate]` each. */
  readonly gateKernel: tf.LayerVariable;
  readonly upKernel: tf.LayerVariable;
  /** `[intermediate, hidden]`. */
  readonly downKernel: tf.LayerVariable;
  readonly gateBias: tf.LayerVariable | null;
  readonly upBias: tf.LayerVariable | null;
  readonly downBias: tf.LayerVariable | null;

  constructor(args: SwiGLUArgs) {
    super({ name: args.name });
    const { hiddenSize: h, intermediateSize: i } = args;
    this.hiddenSize = h;
    this.intermediateSize = i;
    const z = tf.initializers.zeros();
    this.gateKernel = this.addWeight(`${this.name}/gate_proj/kernel`, [h, i], 'float32', z);
    this.upKernel = this.addWeight(`${this.name}/up_proj/kernel`, [h, i], 'float32', z);
    this.downKernel = this.addWeight(`${this.name}/down_proj/kernel`, [i, h], 'float32', z);
    const b = args.useBias ?? false;
    this.gateBias = b ? this.addWeight(`${this.name}/gate_proj/bias`, [i], 'float32', z) : null;
    this.upBias = b ? this.addWeight(`${this.name}/up_proj/bias`, [i], 'float32', z) : null;
    this.downBias = b ? this.addWeight(`${this.name}/down_proj/bias`, [h], 'float32', z) : null;
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs; // [..., hidden]
      const lead = x.shape.slice(0, -1);
      const y = this.callWithResidual(tf.reshape(x, [-1, this.hiddenSize]) as tf.Tensor2D); // [N, hidden]
      return tf.reshape(y, [...lead, this.hiddenSize]);
    });
  }

  /**
   * `x [T, hidden]` -> `(residual +) mlp(x)` `[T, hidden]`: one FusedSwiGLUMLP kernel at inference
   * on cpu / wasm with the addon; projectionMatMul (native sgemm, differentiable) and tfjs ops
   * otherwise. Earlier versions ran tf.fused.matMul: tfjs-cpu's JavaScript matMul (~0.7 GFLOP/s).
   */
  callWithResidual(x: tf.Tensor2D, residual?: tf.Tensor2D): tf.Tensor2D {
    return fusedSwiGluMlp({
      x, gate: this.gateKernel.read() as tf.Tensor2D, up: this.upKernel.read() as tf.Tensor2D, down: this.downKernel.read() as tf.Tensor2D,
      gateBias: this.gateBias?.read(), upBias: this.upBias?.read(), downBias: this.downBias?.read(), residual,
    }); // [T, hidden]
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), hiddenSize: this.hiddenSize, intermediateSize: this.intermediateSize, useBias: this.gateBias !== null };
  }
}
tf.serialization.registerClass(SwiGLUMLP);
