/**
 * One pipeline stage of a decoder model: layers `[layerStart, layerEnd)` of the whole model, as a
 * DecoderForCausalLM of its own (local layer indices, its own paged KV cache of that many layers).
 * The first stage embeds token ids, the last applies the final norm and the LM head; in between
 * only `[tokens, hidden]` activations cross from stage to stage.
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderConfig } from '../config.js';
import { DecoderForCausalLM, type ModelBuildOptions } from '../decoder_lm.js';
import { fusedForwardRagged, fusedForwardSupported } from '../fused_forward.js';
import { check, checkInt } from '../../lib/errors.js';
import type { PagedKVCollection } from '../../lib/kv_cache/collection.js';
import { hfWeightsOf } from '../../lib/sharding/shard_layer.js';
import { locateTensors, type TensorLocation } from '../../lib/loaders/checkpoint.js';
import { loadWeights } from '../load.js';

/** Layers `[start, end)` of each of `numStages` stages: `numLayers / numStages` each, the remainder to the first stages. */
export function splitLayers(numLayers: number, numStages: number, where = 'splitLayers'): [number, number][] {
  checkInt(numStages, where, 'stages', 1);
  check(numStages <= numLayers, where, () => `stages (${numStages}) must be <= the model's layers (${numLayers}): every stage needs a layer`);
  const base = Math.floor(numLayers / numStages), rem = numLayers % numStages;
  const out: [number, number][] = [];
  let start = 0;
  for (let s = 0; s < numStages; s++) {
    const end = start + base + (s < rem ? 1 : 0);
    out.push([start, end]);
    start = end;
  }
  return out;
}

/** What a stage worker needs to build its part: config, position and weights (plain data: it crosses threads and processes). */
export interface StageSpec {
  /** The whole model's config with `layers` / `numHiddenLayers` cut to this stage. */
  config: DecoderConfig;
  options: ModelBuildOptions;
  first: boolean;
  last: boolean;
  /** Per local layer: Hugging Face attention weights (`q_proj.weight`, ...). Absent with `checkpoint`. */
  attention?: Record<string, Float32Array>[];
  /** Every other variable this stage holds, in its variable layout, by local Hugging Face name. Absent with `checkpoint`. */
  variables?: Record<string, { data: Float32Array; shape: number[] }>;
  /** Instead: the stage reads its own tensors from this checkpoint folder (layers `[layerStart, layerEnd)`). */
  checkpoint?: { dir: string; layerStart: number; layerEnd: number };
}

/** The spec of stage `[start, end)` of the checkpoint in `dir` (config read and shapes checked by the caller). */
export function stageSpecOfCheckpoint(config: DecoderConfig, dir: string, start: number, end: number, options: ModelBuildOptions): StageSpec {
  const c = config;
  return {
    config: { ...c, numHiddenLayers: end - start, layers: c.layers.slice(start, end) }, options,
    first: start === 0, last: end === c.numHiddenLayers, checkpoint: { dir, layerStart: start, layerEnd: end },
  };
}

/** The spec of stage `[start, end)` of `model`, its weights copied out (the model is not changed). */
export function stageSpecOf(model: DecoderForCausalLM, start: number, end: number, options: ModelBuildOptions): StageSpec {
  const c = model.config;
  const first = start === 0, last = end === c.numHiddenLayers;
  const config: DecoderConfig = { ...c, numHiddenLayers: end - start, layers: c.layers.slice(start, end) };
  const attention = model.blocks.slice(start, end).map((b) => {
    const w: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(hfWeightsOf(b.attn))) w[k] = v.data;
    return w;
  });
  const variables: StageSpec['variables'] = {};
  for (const [name, t] of model.weightTargets()) {
    const local = localName(name, start, end, first, last, c.tieWordEmbeddings);
    if (local === null) continue;
    const v = t.variable.read();
    variables[local] = { data: new Float32Array(v.dataSync() as Float32Array), shape: v.shape.slice() }; // own copy
  }
  return { config, options: { ...options, maxSeqLen: model.rope.maxSeqLen }, first, last, attention, variables };
}

/** `model.layers.{i}.x` -> `model.layers.{i - start}.x` inside the stage, the embedding / head where the stage needs them, else null. */
function localName(name: string, start: number, end: number, first: boolean, last: boolean, tied: boolean): string | null {
  const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
  if (m) {
    const i = Number(m[1]);
    return i >= start && i < end ? `model.layers.${i - start}.${m[2]}` : null;
  }
  if (name === 'model.embed_tokens.weight') return first || (last && tied) ? name : null;
  return last ? name : null; // model.norm.weight, lm_head.weight
}

/** Builds the stage's model from its spec (in the stage worker). */
export function buildStage(spec: StageSpec): DecoderForCausalLM {
  const model = new DecoderForCausalLM(spec.config, spec.options);
  if (spec.checkpoint) {
    try { loadStageWeights(model, spec.checkpoint); } catch (e) { model.dispose(); throw e; }
    return model;
  }
  spec.attention!.forEach((w, i) => model.blocks[i].attn.setHfWeights(w));
  const targets = model.weightTargets();
  for (const [name, { data, shape }] of Object.entries(spec.variables!)) {
    const t = targets.get(name);
    check(t !== undefined, 'PipelineModel stage', () => `weight ${name} has no variable in the stage model`);
    const v = tf.tensor(data, shape);
    t.variable.write(v);
    v.dispose();
  }
  return model;
}

/**
 * Reads the stage's tensors from the checkpoint: its layers (renamed to local indices), the
 * embedding, the final norm and an untied head (the stage model holds those whatever its place;
 * reading them everywhere keeps loadWeights' every-tensor check).
 */
function loadStageWeights(model: DecoderForCausalLM, ck: { dir: string; layerStart: number; layerEnd: number }): void {
  const local = new Map<string, TensorLocation>();
  for (const [name, loc] of locateTensors(ck.dir)) {
    const m = /^model\.layers\.(\d+)\.(.*)$/.exec(name);
    if (!m) { local.set(name, loc); continue; }
    const i = Number(m[1]);
    if (i < ck.layerStart || i >= ck.layerEnd) continue;
    const n = `model.layers.${i - ck.layerStart}.${m[2]}`;
    local.set(n, { ...loc, name: n });
  }
  loadWeights(model, local);
}

/** What a stage returns: the activations for the next stage, or (last stage) logits or greedy tokens of `logitRows`. */
export type StageOutput = 'hidden' | 'logits' | 'argmax';

/**
 * The stage's part of `DecoderForCausalLM.forwardRagged`: embed (first stage) or take `hidden`
 * `[T, hidden]`, run the stage's blocks on the step `kv`, and (last stage) norm + LM head on
 * `logitRows`. Returns `[T, hidden]`, `[R, vocab]` logits or `[R]` int32 tokens. Runs the
 * whole-model kernels where the backend has them (models/fused_forward.ts), else the layers, as
 * the unsplit model does.
 */
export function forwardStage(model: DecoderForCausalLM, input: Int32Array | tf.Tensor2D, kv: PagedKVCollection,
  output: StageOutput, logitRows?: Int32Array): tf.Tensor {
  const head = output !== 'hidden';
  // The fused path packs its weights on first use, outside any tidy (they outlive this call).
  const h = kv.totalTokens > 0 && fusedForwardSupported(model)
    ? fusedForwardRagged(model, input, kv, logitRows, head) // [T, hidden] or [R, vocab]
    : tf.tidy(() => {
      let x = input instanceof Int32Array
        ? tf.gather(model.embedTable.read(), tf.tensor1d(input, 'int32')) as tf.Tensor2D // [T, hidden]
        : input; // [T, hidden]
      for (const block of model.blocks) x = block.callRagged(x, kv); // [T, hidden]
      if (!head) return x;
      if (logitRows) x = tf.gather(x, tf.tensor1d(logitRows, 'int32')); // [R, hidden]
      return model.lmHead.call(model.norm.call(x)) as tf.Tensor2D; // [R, vocab]
    });
  if (output !== 'argmax') return h;
  const tokens = tf.tidy(() => tf.argMax(h, 1).toInt()); // [R]
  h.dispose();
  return tokens;
}
