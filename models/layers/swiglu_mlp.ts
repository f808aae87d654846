/**
 * The gated MLP of the Llama family: `down(silu(gate(x)) * up(x))`.
 * Kernels are `[in, out]` (the Hugging Face weight transposed); biases when `mlp_bias`.
 * With `quant` (a quantized or half-precision checkpoint) gate/up/down are packed QuantLinear
 * projections instead (no float32 kernel exists; `packed` holds them).
 */
import * as tf from '@tensorflow/tfjs';

import { fusedSwiGluMlp } from '../../kernels/decoder_steps.js';
import { check } from '../../lib/errors.js';
import { QuantLinear, type ProjectionQuant } from '../../lib/attention/quant_linear.js';

export interface SwiGLUArgs {
  hiddenSize: number;
  intermediateSize: number;
  useBias?: boolean;
  name?: string;
  /** Packed gate/up/down weights (quantConfig or float16 / bfloat16 storage). */
  quant?: ProjectionQuant;
}

/** The packed projections of a quantized MLP. */
export interface PackedMlp { gate: QuantLinear; up: QuantLinear; down: QuantLinear }

/**
 * @example
 * const mlp = new SwiGLUMLP({ hiddenSize: 64, intermediateSize: 128 });
 * const y = mlp.apply(tf.randomNormal([5, 64])) as tf.Tensor; // [5, 64]
 */
export class SwiGLUMLP extends tf.layers.Layer {
  static className = 'SwiGLUMLP';
  readonly hiddenSize: number;
  readonly intermediateSize: number;
  private readonly kernels: [tf.LayerVariable, tf.LayerVariable, tf.LayerVariable] | null = null;
  /** Packed gate/up/down (their biases are theirs) when built with `quant`, else null. */
  readonly packed: PackedMlp | null = null;
  private readonly quant: ProjectionQuant | undefined;
  readonly gateBias: tf.LayerVariable | null;
  readonly upBias: tf.LayerVariable | null;
  readonly downBias: tf.LayerVariable | null;

  constructor(args: SwiGLUArgs) {
    super({ name: args.name });
    const { hiddenSize: h, intermediateSize: i } = args;
    this.hiddenSize = h;
    this.intermediateSize = i;
    const z = tf.initializers.zeros();
    const b = args.useBias ?? false;
    this.quant = args.quant;
    if (args.quant) {
      const addWeight = (n: string, shape: number[], init: tf.serialization.Serializable, trainable = false) =>
        this.addWeight(`${this.name}/${n}`, shape, 'float32', init as never, undefined, trainable);
      const addTypedWeight = (n: string, shape: number[], dtype: 'float32' | 'int32', init: tf.serialization.Serializable, trainable: boolean) =>
        this.addWeight(`${this.name}/${n}`, shape, dtype, init as never, undefined, trainable);
      const make = (name: string, inDim: number, outDim: number) =>
        new QuantLinear({ name, inDim, outDim, useBias: b, addWeight, addTypedWeight, quant: args.quant! });
      this.packed = { gate: make('gate_proj', h, i), up: make('up_proj', h, i), down: make('down_proj', i, h) };
      this.gateBias = this.packed.gate.bias;
      this.upBias = this.packed.up.bias;
      this.downBias = this.packed.down.bias;
    } else {
      this.kernels = [
        this.addWeight(`${this.name}/gate_proj/kernel`, [h, i], 'float32', z),
        this.addWeight(`${this.name}/up_proj/kernel`, [h, i], 'float32', z),
        this.addWeight(`${this.name}/down_proj/kernel`, [i, h], 'float32', z),
      ];
      this.gateBias = b ? this.addWeight(`${this.name}/gate_proj/bias`, [i], 'float32', z) : null;
      this.upBias = b ? this.addWeight(`${this.name}/up_proj/bias`, [i], 'float32', z) : null;
      this.downBias = b ? this.addWeight(`${this.name}/down_proj/bias`, [h], 'float32', z) : null;
    }
    this.built = true;
  }

  private floatKernel(k: 0 | 1 | 2): tf.LayerVariable {
    check(this.kernels !== null, 'SwiGLUMLP', () =>
      `${this.name}: the float kernel of ${['gate_proj', 'up_proj', 'down_proj'][k]} does not exist, its weight is packed (${this.packed!.gate.attrs.weightFormat}); use mlp.packed`);
    return this.kernels[k];
  }
  /** `[hidden, intermediate]` (float MLPs only). */
  get gateKernel(): tf.LayerVariable { return this.floatKernel(0); }
  get upKernel(): tf.LayerVariable { return this.floatKernel(1); }
  /** `[intermediate, hidden]` (float MLPs only). */
  get downKernel(): tf.LayerVariable { return this.floatKernel(2); }

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
    if (this.packed) {
      const p = this.packed;
      return tf.tidy(() => {
        const g = p.gate.apply(x); // [T, inter]
        const hid = tf.mul(tf.mul(g, tf.sigmoid(g)), p.up.apply(x)) as tf.Tensor2D; // silu(gate) * up
        const y = p.down.apply(hid); // [T, hidden]
        return residual ? tf.add(residual, y) : y;
      });
    }
    return fusedSwiGluMlp({
      x, gate: this.gateKernel.read() as tf.Tensor2D, up: this.upKernel.read() as tf.Tensor2D, down: this.downKernel.read() as tf.Tensor2D,
      gateBias: this.gateBias?.read(), upBias: this.upBias?.read(), downBias: this.downBias?.read(), residual,
    }); // [T, hidden]
  }

  override getConfig(): tf.serialization.ConfigDict {
    const quant: tf.serialization.ConfigDict = this.packed ? { quant: this.quant as unknown as tf.serialization.ConfigDict } : {};
    return { ...super.getConfig(), hiddenSize: this.hiddenSize, intermediateSize: this.intermediateSize, useBias: this.gateBias !== null, ...quant };
  }
}
tf.serialization.registerClass(SwiGLUMLP);
