/**
 * The token embedding table `[vocab, hidden]` (Hugging Face `model.embed_tokens.weight`), usable
 * twice in one tf.LayersModel when the LM head is tied to it:
 * - ids `[B, S]` (rank 2) -> embeddings `[B, S, hidden]`;
 * - hidden states `[B, S, hidden]` (rank 3) -> logits `[B, S, vocab]` = h · tableᵀ.
 * One layer applied twice is a shared layer to tfjs, so a tied model saves one table and loads
 * back tied (an LM head holding a reference to another layer's weight cannot be serialized).
 * The weight is created in the constructor, named `<layer name>/embeddings`, so its name is the
 * same in a saved model and in the model `tf.loadLayersModel` rebuilds.
 */
import * as tf from '@tensorflow/tfjs';
import { check } from '../../lib/errors.js';

const W = 'TokenEmbedding';

export interface TokenEmbeddingArgs {
  vocabSize: number;
  hiddenSize: number;
  name?: string;
}

/**
 * @example
 * const emb = new TokenEmbedding({ vocabSize: 256, hiddenSize: 64, name: 'embed_tokens' });
 * const ids = tf.input({ shape: [null], dtype: 'int32' });
 * const h = emb.apply(ids) as tf.SymbolicTensor;            // [B, S, 64]
 * const logits = emb.apply(h) as tf.SymbolicTensor;         // [B, S, 256] (tied head)
 */
export class TokenEmbedding extends tf.layers.Layer {
  static className = 'TokenEmbedding';
  readonly vocabSize: number;
  readonly hiddenSize: number;
  /** `[vocab, hidden]` */
  readonly table: tf.LayerVariable;

  constructor(args: TokenEmbeddingArgs) {
    super({ name: args.name });
    for (const k of ['vocabSize', 'hiddenSize'] as const) {
      check(Number.isInteger(args[k]) && args[k] >= 1, W, () => `${k} (${args[k]}) must be an integer >= 1`);
    }
    this.vocabSize = args.vocabSize;
    this.hiddenSize = args.hiddenSize;
    this.table = this.addWeight(`${this.name}/embeddings`, [args.vocabSize, args.hiddenSize], 'float32', tf.initializers.zeros());
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    if (s.length === 2) return [...s, this.hiddenSize];
    check(s.length === 3 && (s[2] === null || s[2] === this.hiddenSize), W,
      () => `input must be ids [batch, seq] or hidden states [batch, seq, hiddenSize (${this.hiddenSize})], got shape [${s}]`);
    return [s[0], s[1], this.vocabSize];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = Array.isArray(inputs) ? inputs[0] : inputs;
    this.computeOutputShape(x.shape);
    return tf.tidy(() => {
      if (x.rank === 2) {
        const [b, s] = x.shape;
        const ids = tf.reshape(x.dtype === 'int32' ? x : tf.cast(x, 'int32'), [-1]); // [B*S]
        return tf.reshape(tf.gather(this.table.read(), ids), [b, s, this.hiddenSize]); // [B, S, hidden]
      }
      const [b, s] = x.shape;
      const h = tf.reshape(x, [-1, this.hiddenSize]) as tf.Tensor2D; // [B*S, hidden]
      const logits = tf.matMul(h, this.table.read() as tf.Tensor2D, false, true); // [B*S, vocab]
      return tf.reshape(logits, [b, s, this.vocabSize]); // [B, S, vocab]
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), vocabSize: this.vocabSize, hiddenSize: this.hiddenSize };
  }
}
tf.serialization.registerClass(TokenEmbedding);
