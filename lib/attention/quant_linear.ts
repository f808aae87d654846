/**
 * A projection whose weight stays packed (fp8 / int8 bytes, e2m1 or int4 nibbles, bf16 / f16
 * halves in int32 words) and is widened inside the QuantMatMul kernel; activations are quantized
 * as the format says. The weights are non-trainable layer weights (saved and loaded with the
 * layer); LoRA adapters can train on top (lib/training/lora.ts).
 *
 * @example
 * new AttentionWithRope({ ...args, quantConfig: { format: 'fp8_dynamic' } }); // q/k/v/o become QuantLinear
 */
import * as tf from '@tensorflow/tfjs';

import type { QuantActivation, QuantMatMulAttrs, QuantWeightFormat } from '../../kernels/kernel_names.js';
import { quantMatMulShapes } from '../../kernels/cpu/QuantMatMul.js';
import { quantMatMul } from '../../kernels/quant_matmul.js';
import { dequantizeWeightReference } from '../../kernels/reference/QuantMatMul.js';
import { check } from '../errors.js';
import type { AddWeight, LinearLike } from './linear.js';
import type { ResolvedQuantConfig } from './quant_config.js';

/** What a projection needs to know to be quantized: the layer's quantConfig or half dtype. */
export interface ProjectionQuant {
  quant: ResolvedQuantConfig | null;
  dtype: WeightDType;
}

/** Storage of float weights: float32, or float16 / bfloat16 packed two a word and widened in the kernel. */
export type WeightDType = 'float32' | 'float16' | 'bfloat16';
export const WEIGHT_DTYPES: readonly WeightDType[] = ['float32', 'float16', 'bfloat16'];

export interface QuantLinearOptions {
  name: string;
  inDim: number;
  outDim: number;
  useBias: boolean;
  addWeight: AddWeight;
  /** The layer's own addWeight with a dtype (packed words are int32). */
  addTypedWeight: (name: string, shape: number[], dtype: 'float32' | 'int32', init: tf.serialization.Serializable, trainable: boolean) => tf.LayerVariable;
  quant: ProjectionQuant;
  /** Stacked q/k/v: per-tensor scales become rowwise (each part keeps its own). */
  stacked?: boolean;
}

const ACTIVATION: Record<ResolvedQuantConfig['format'], QuantActivation> = {
  fp8_static: 'e4m3_static', fp8_dynamic: 'e4m3_token', fp8_block: 'e4m3_group', nvfp4: 'nvfp4', int8_w8a8: 'int8_token', gptq_int4: 'none',
};
const WEIGHT: Record<ResolvedQuantConfig['format'], QuantWeightFormat> = {
  fp8_static: 'e4m3', fp8_dynamic: 'e4m3', fp8_block: 'e4m3', nvfp4: 'nvfp4', int8_w8a8: 'int8', gptq_int4: 'gptq',
};

/** Kernel attrs of a projection (inputScale filled at call time). */
export function quantAttrs(q: ProjectionQuant, inDim: number, outDim: number, stacked = false): QuantMatMulAttrs {
  if (!q.quant) {
    return { weightFormat: q.dtype === 'bfloat16' ? 'bf16' : 'f16', weightScale: 'none', blockRows: 0, blockCols: 0, activation: 'none',
      actGroup: 0, inputScale: 0, weightScale2: 1, inDim, outDim };
  }
  const c = q.quant, ws = c.weightScale;
  const weightScale = stacked && ws.granularity === 'tensor' ? 'rowwise' : ws.granularity;
  return { weightFormat: WEIGHT[c.format], weightScale, blockRows: ws.blockSize[0], blockCols: ws.blockSize[1], activation: ACTIVATION[c.format],
    actGroup: c.inputScale?.blockSize ?? 0, inputScale: 0, weightScale2: 1, inDim, outDim };
}

/** Packed projection: y = quantize(x) · widen(W)ᵀ (+ bias). */
export class QuantLinear implements LinearLike {
  static readonly className = 'QuantLinear';
  readonly inDim: number;
  readonly outDim: number;
  /** The packed int32 words (non-trainable). */
  readonly kernel: tf.LayerVariable;
  readonly bias: tf.LayerVariable | null;
  /** Weight scales as the kernel reads them (float32; nvfp4 block scales already times weight_scale_2). */
  readonly scale: tf.LayerVariable | null = null;
  readonly zeros: tf.LayerVariable | null = null;
  readonly gIdx: tf.LayerVariable | null = null;
  /** Checkpoint scalars kept for the layer's properties: static input scale, nvfp4 weight_scale_2. */
  readonly inputScale: tf.LayerVariable | null = null;
  readonly weightScale2: tf.LayerVariable | null = null;
  readonly attrs: QuantMatMulAttrs;
  /** The static activation scale this projection uses (q/k/v share the max of theirs); read once. */
  activationScale: number | null = null;

  constructor(o: QuantLinearOptions) {
    this.inDim = o.inDim;
    this.outDim = o.outDim;
    this.attrs = quantAttrs(o.quant, o.inDim, o.outDim, o.stacked);
    const shapes = quantMatMulShapes(this.attrs);
    const zerosInit = tf.initializers.zeros();
    const add = (n: string, shape: number[], dtype: 'float32' | 'int32', init: tf.serialization.Serializable = zerosInit) =>
      o.addTypedWeight(`${o.name}/${n}`, shape, dtype, init, false);
    this.kernel = add('qweight', shapes.weight, 'int32');
    if (shapes.scale) this.scale = add('scale', shapes.scale, 'float32', tf.initializers.ones());
    if (shapes.zeros) this.zeros = add('qzeros', shapes.zeros, 'int32');
    if (shapes.gIdx) this.gIdx = add('g_idx', shapes.gIdx, 'int32');
    const c = o.quant.quant;
    if (c?.inputScale?.origin === 'static') this.inputScale = add('input_scale', [1], 'float32', tf.initializers.ones());
    if (c?.format === 'nvfp4') this.weightScale2 = add('weight_scale_2', [1], 'float32', tf.initializers.ones());
    this.bias = o.useBias ? o.addWeight(`${o.name}/bias`, [o.outDim], tf.initializers.zeros(), false) : null;
  }

  /** The static input scale in use: set by the layer (shared q/k/v max) or read from the weight once. */
  private staticScale(): number {
    if (this.activationScale === null) this.activationScale = (this.inputScale!.read().dataSync() as Float32Array)[0];
    return this.activationScale;
  }

  apply(x: tf.Tensor2D, kernelOverride?: tf.Tensor2D): tf.Tensor2D {
    check(kernelOverride === undefined, 'QuantLinear', () => 'a kernel override (clipQkv on weights) cannot apply to packed weights');
    const inputScale = this.inputScale ? this.staticScale() : 0;
    return quantMatMul(x, {
      weight: this.kernel.read(), scale: this.scale?.read(), zeros: this.zeros?.read(), gIdx: this.gIdx?.read(), bias: this.bias?.read(),
    }, { ...this.attrs, inputScale }); // [T, outDim]
  }

  /** The weight widened to float32, `[inDim, outDim]` (what a float Linear's kernel would hold). */
  dequantized(): tf.Tensor2D {
    return dequantizeWeightReference(this.kernel.read(), this.scale?.read(), this.zeros?.read(), this.gIdx?.read(), this.attrs);
  }
}
