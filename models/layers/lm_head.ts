/**
 * The language-model head: logits = x · Wᵀ with W `[vocab, hidden]` in Hugging Face layout.
 * Untied heads own W (`lm_head.weight`); tied heads read the embedding table (Qwen3 small, Gemma)
 * and own no weight, so the table is trained once.
 */
import * as tf from '@tensorflow/tfjs';

import { projectionMatMul } from '../../kernels/projection_matmul.js';
import { check } from '../../lib/errors.js';
import { QuantLinear, type ProjectionQuant } from '../../lib/attention/quant_linear.js';

export interface LMHeadArgs {
  hiddenSize: number;
  vocabSize: number;
  /** The embedding table `[vocab, hidden]` to share, or undefined for an own weight. */
  tiedTo?: tf.LayerVariable;
  name?: string;
  /** A packed (quantized or half-precision) untied head. */
  quant?: ProjectionQuant;
}

/**
 * @example
 * const head = new LMHead({ hiddenSize: 64, vocabSize: 256 });
 * const logits = head.apply(tf.randomNormal([5, 64])) as tf.Tensor; // [5, 256]
 */
export class LMHead extends tf.layers.Layer {
  static className = 'LMHead';
  readonly hiddenSize: number;
  readonly vocabSize: number;
  readonly tied: boolean;
  private readonly floatWeight: tf.LayerVariable | null = null;
  /** The packed head of a quantized / half-precision checkpoint, else null. */
  readonly packed: QuantLinear | null = null;
  private readonly quant: ProjectionQuant | undefined;

  constructor(args: LMHeadArgs) {
    super({ name: args.name });
    this.hiddenSize = args.hiddenSize;
    this.vocabSize = args.vocabSize;
    this.tied = args.tiedTo !== undefined;
    this.quant = args.quant;
    check(!(args.quant && args.tiedTo), 'LMHead', () => 'a tied head reads the embedding table and cannot be packed (quant given with tiedTo)');
    if (args.quant) {
      this.packed = new QuantLinear({
        name: 'lm_head', inDim: args.hiddenSize, outDim: args.vocabSize, useBias: false, quant: args.quant,
        addWeight: (n, shape, init, trainable = false) => this.addWeight(`${this.name}/${n}`, shape, 'float32', init, undefined, trainable),
        addTypedWeight: (n, shape, dtype, init, trainable) => this.addWeight(`${this.name}/${n}`, shape, dtype, init as never, undefined, trainable),
      });
    } else {
      this.floatWeight = args.tiedTo ?? this.addWeight(`${this.name}/weight`, [args.vocabSize, args.hiddenSize], 'float32', tf.initializers.zeros());
    }
    this.built = true;
  }

  /** `[vocab, hidden]`: the own weight, or the shared embedding table (float heads only). */
  get weight(): tf.LayerVariable {
    check(this.floatWeight !== null, 'LMHead', () => `${this.name}: the head's weight is packed (${this.packed!.attrs.weightFormat}), there is no float weight; use lmHead.packed`);
    return this.floatWeight;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [...s.slice(0, -1), this.vocabSize];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs; // [..., hidden]
      const lead = x.shape.slice(0, -1);
      const x2 = tf.reshape(x, [-1, this.hiddenSize]) as tf.Tensor2D; // [N, hidden]
      // native sgemm / GEMV on cpu and wasm (reads W [vocab, hidden] in place), tf.matMul elsewhere
      const logits = this.packed ? this.packed.apply(x2) // [N, vocab]
        : projectionMatMul(x2, this.weight.read() as tf.Tensor2D, { transposeB: true }); // [N, vocab]
      return tf.reshape(logits, [...lead, this.vocabSize]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    const quant: tf.serialization.ConfigDict = this.packed ? { quant: this.quant as unknown as tf.serialization.ConfigDict } : {};
    return { ...super.getConfig(), hiddenSize: this.hiddenSize, vocabSize: this.vocabSize, ...quant };
  }
}
tf.serialization.registerClass(LMHead);
