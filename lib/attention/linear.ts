import * as tf from '@tensorflow/tfjs';

import { projectionMatMul } from '../../kernels/projection_matmul.js';

/** A tfjs-layers weight initializer. */
export type Initializer = ReturnType<typeof tf.initializers.glorotUniform>;

/** Creates a weight on the owning layer (tf.layers.Layer.addWeight). */
export type AddWeight = (
  name: string, shape: number[], initializer: Initializer, trainable?: boolean,
) => tf.LayerVariable;

export interface LinearOptions {
  name: string;
  inDim: number;
  outDim: number;
  useBias: boolean;
  addWeight: AddWeight;
  /** The layer's addWeight with a dtype (packed int32 words of quantized projections). */
  addTypedWeight?: (name: string, shape: number[], dtype: 'float32' | 'int32', init: tf.serialization.Serializable, trainable: boolean) => tf.LayerVariable;
  /**
   * Set when the layer's weights are packed (quantConfig or a float16 / bfloat16 dtype): the class
   * must keep them packed (LoRALinear builds a QuantLinear base), or the layer refuses it.
   */
  quant?: import('./quant_linear.js').ProjectionQuant;
  /** The stacked q/k/v projection. */
  stacked?: boolean;
}

let skipRandomInit = 0;

/**
 * Runs `build` with Linear's random kernel init replaced by zeros, for models whose every weight
 * is overwritten right after (loadPretrained). glorotUniform draws its numbers on the host, one
 * by one: ~3-5 s for a 1B model's projections, all thrown away by the load.
 *
 * @example
 * const model = withoutRandomInit(() => createModel(hfConfig));
 */
export function withoutRandomInit<T>(build: () => T): T {
  skipRandomInit++;
  try { return build(); } finally { skipRandomInit--; }
}

/** A projection the layer can use: y = x · kernel (+ bias), kernel `[inDim, outDim]`. */
export interface LinearLike {
  readonly inDim: number;
  readonly outDim: number;
  readonly kernel: tf.LayerVariable;
  readonly bias: tf.LayerVariable | null;
  /** x `[T, inDim]` -> `[T, outDim]`; `kernelOverride` replaces the kernel's value (e.g. clipped). */
  apply(x: tf.Tensor2D, kernelOverride?: tf.Tensor2D): tf.Tensor2D;
}

export type LinearCls = new (opts: LinearOptions) => LinearLike;

/**
 * Plain dense projection with a pre-transposed kernel `[inDim, outDim]` (Hugging Face's
 * `[out, in]` weight transposed once at load), so every call is one unbatched, untransposed
 * 2-D matMul.
 *
 * @example
 * new AttentionWithRope({ ..., linearCls: Linear });
 */
export class Linear implements LinearLike {
  static readonly className = 'Linear';
  readonly inDim: number;
  readonly outDim: number;
  readonly kernel: tf.LayerVariable;
  readonly bias: tf.LayerVariable | null;

  constructor(o: LinearOptions) {
    this.inDim = o.inDim;
    this.outDim = o.outDim;
    const init = skipRandomInit > 0 ? tf.initializers.zeros() : tf.initializers.glorotUniform({});
    this.kernel = o.addWeight(`${o.name}/kernel`, [o.inDim, o.outDim], init);
    this.bias = o.useBias ? o.addWeight(`${o.name}/bias`, [o.outDim], tf.initializers.zeros()) : null;
  }

  /** On cpu the native ProjectionMatMul kernel (bias fused); elsewhere tf.matMul + tf.add. */
  apply(x: tf.Tensor2D, kernelOverride?: tf.Tensor2D): tf.Tensor2D {
    const kernel = kernelOverride ?? (this.kernel.read() as tf.Tensor2D); // [inDim, outDim]
    return projectionMatMul(x, kernel, { bias: this.bias?.read() }); // [T, outDim]
  }
}

/** Linear classes getConfig/fromConfig can name; register your own with registerLinearClass. */
const linearClasses = new Map<string, LinearCls>([['Linear', Linear]]);

export function registerLinearClass(name: string, cls: LinearCls): void { linearClasses.set(name, cls); }
export function linearClassByName(name: string): LinearCls | undefined {
  // saved models come back with lower-cased names ('Linear' -> 'linear')
  for (const [n, c] of linearClasses) if (n.toLowerCase() === name.toLowerCase()) return c;
  for (const resolve of linearResolvers) {
    const cls = resolve(name);
    if (cls) { linearClasses.set(name, cls); return cls; }
  }
  return undefined;
}
/** Resolvers of parameterised names (e.g. `lora(r=8,...)`), asked when no class is registered under a name. */
const linearResolvers: ((name: string) => LinearCls | undefined)[] = [];
/** Adds a resolver for names no class was registered under (it may build the class). */
export function registerLinearClassResolver(resolve: (name: string) => LinearCls | undefined): void { linearResolvers.push(resolve); }
export function linearClassName(cls: LinearCls): string | undefined {
  for (const [name, c] of linearClasses) if (c === cls) return name;
  return undefined;
}
