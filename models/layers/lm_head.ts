/**
 * The language-model head: logits = x · Wᵀ with W `[vocab, hidden]` in Hugging Face layout.
 * Untied heads own W (`lm_head.weight`); tied heads read the embedding table (Qwen3 small, Gemma)
 * and own no weight, so the table is trained once.
 */
import * as tf from '@tensorflow/tfjs';

import { projectionMatMul } from '../../kernels/projection_matmul.js';

export interface LMHeadArgs {
  hiddenSize: number;
  vocabSize: number;
  /** The embedding table `[vocab, hidden]` to share, or undefined for an own weight. */
  tiedTo?: tf.LayerVariable;
  name?: string;
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
  /** `[vocab, hidden]`: the own weight, or the shared embedding table. */
  readonly weight: tf.LayerVariable;

  constructor(args: LMHeadArgs) {
    super({ name: args.name });
    this.hiddenSize = args.hiddenSize;
    this.vocabSize = args.vocabSize;
    this.tied = args.tiedTo !== undefined;
    this.weight = args.tiedTo ?? this.addWeight(`${this.name}/weight`, [args.vocabSize, args.hiddenSize], 'float32', tf.initializers.zeros());
    this.built = true;
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
      const logits = projectionMatMul(x2, this.weight.read() as tf.Tensor2D, { transposeB: true }); // [N, vocab]
      return tf.reshape(logits, [...lead, this.vocabSize]);
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), hiddenSize: this.hiddenSize, vocabSize: this.vocabSize };
  }
}
tf.serialization.registerClass(LMHead);
