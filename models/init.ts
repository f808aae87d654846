/**
 * Random initialisation of a DecoderForCausalLM built with zero weights (models/ builds for
 * loading checkpoints): normal(0, std) for every matrix, ones for norm scales, zeros for biases.
 * Output projections (o_proj, down_proj) are scaled by 1/sqrt(2 * layers), as in GPT-2.
 * Deterministic for a seed (tfjs treats a seed of 0 as none, so every weight's seed is >= 1).
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderForCausalLM } from './decoder_lm.js';
import { checkInt } from '../lib/errors.js';

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
  const norms = new Set<tf.LayerVariable | null>([model.norm.weight, ...model.blocks.flatMap((b) =>
    [b.inputNorm.weight, b.postNorm.weight, b.attn.qNormWeight, b.attn.kNormWeight])]);
  const outProj = new Set<tf.LayerVariable | null>(model.blocks.flatMap((b) => [b.attn.oProj?.kernel ?? null, b.mlp.downKernel]));
  const vars = [...model.trainableWeights, ...model.blocks.flatMap((b) => b.attn.weights)];
  tf.tidy(() => {
    for (const v of vars) {
      if (seen.has(v)) continue;
      seen.add(v);
      const shape = v.shape as number[];
      if (norms.has(v)) v.write(tf.ones(shape));
      else if (shape.length === 1) v.write(tf.zeros(shape));
      else {
        const out = outProj.has(v) ? std / Math.sqrt(2 * layers) : std;
        v.write(tf.randomNormal(shape, 0, out, 'float32', seed * 7919 + 1 + k++));
      }
    }
  });
}
