/**
 * Random initialisation of a DecoderForCausalLM built with zero weights (models/ builds for
 * loading checkpoints): normal(0, std) for every matrix, ones for norm scales, zeros for biases.
 * Output projections (o_proj, down_proj) are scaled by 1/sqrt(2 * layers), as in GPT-2.
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderForCausalLM } from '../../models/decoder_lm.js';
import { checkInt } from '../errors.js';

/**
 * @example
 * const model = createModel(cfg);
 * initializeWeights(model, { seed: 1 });
 */
export function initializeWeights(model: DecoderForCausalLM, options: { seed?: number; std?: number } = {}): void {
  const seed = options.seed ?? 0;
  checkInt(seed, 'initializeWeights', 'seed', 0);
  const std = options.std ?? 0.02;
  const layers = model.blocks.length;
  let k = 0;
  const seen = new Set<tf.LayerVariable>();
  const vars = [...model.trainableWeights, ...model.blocks.flatMap((b) => b.attn.weights)];
  tf.tidy(() => {
    for (const v of vars) {
      if (seen.has(v)) continue;
      seen.add(v);
      const name = v.name;
      const shape = v.shape as number[];
      if (/norm/.test(name) && shape.length === 1) v.write(tf.ones(shape));
      else if (shape.length === 1) v.write(tf.zeros(shape));
      else {
        const out = /o_proj|down_proj/.test(name) ? std / Math.sqrt(2 * layers) : std;
        v.write(tf.randomNormal(shape, 0, out, 'float32', seed * 7919 + k++));
      }
    }
  });
}
