/**
 * The gated MLP of the Llama family: `down(silu(gate(x)) * up(x))`.
 * Kernels are `[in, out]` (the Hugging Face weight transposed); biases when `mlp_bias`.
 */
import * as tf from '@tensorflow/tfjs';

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
      const x2 = tf.reshape(x, [-1, this.hiddenSize]) as tf.Tensor2D; // [N, hidden]
      const proj = (k: tf.LayerVariable, bias: tf.LayerVariable | null) =>
        tf.fused.matMul({ a: x2, b: k.read() as tf.Tensor2D, bias: bias?.read() });
      const g = proj(this.gateKernel, this.gateBias); // [N, inter]
      const h = tf.mul(tf.mul(g, tf.sigmoid(g)), proj(this.upKernel, this.upBias)); // [N, inter] silu(gate) * up
      const y = tf.fused.matMul({ a: h as tf.Tensor2D, b: this.downKernel.read() as tf.Tensor2D, bias: this.downBias?.read() }); // [N, hidden]
      return tf.reshape(y, [...lead, this.hiddenSize]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), hiddenSize: this.hiddenSize, intermediateSize: this.intermediateSize, useBias: this.gateBias !== null };
  }
}
tf.serialization.registerClass(SwiGLUMLP);
