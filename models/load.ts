/**
 * Loads a Hugging Face checkpoint folder into a model of this package: config -> registry ->
 * model with zero weights -> shapes checked against the safetensors headers -> tensors streamed in.
 */
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { check } from '../lib/errors.js';
import { checkTensorShapes, locateTensors, readHfConfig, readTensors, type TensorLocation } from '../lib/loaders/checkpoint.js';
import { confinedPath, readJsonObject } from '../lib/loaders/checkpoint_files.js';
import { withoutRandomInit } from '../lib/attention/linear.js';
import { type HfTokenizer, loadTokenizer } from '../lib/loaders/tokenizer.js';
import { type DecoderConfig, type HfConfig, readDecoderConfig } from './config.js';
import { DecoderForCausalLM, type ModelBuildOptions } from './decoder_lm.js';
import { createModel, familyOf } from './registry.js';
import { checkPackedTensors } from '../lib/loaders/quant_checkpoint.js';
import { loadWeightsInPlace } from './load_in_place.js';
import { loadPackedWeights, modelQuantOf, packedWeightSpecs } from './load_packed.js';

export interface LoadOptions extends ModelBuildOptions {
  /**
   * torch_dtype float16 / bfloat16 checkpoints: keep q/k/v/o, the MLP and an untied LM head packed
   * (2 bytes a weight, widened in the QuantMatMul kernel) instead of widening to float32 (default
   * false: the float32 path runs the fused whole-model kernels). Quantized checkpoints
   * (`quantization_config`) are always loaded packed.
   */
  packHalfWeights?: boolean;
}

export interface Pretrained {
  model: DecoderForCausalLM;
  /** The raw config.json. */
  hfConfig: HfConfig;
  /** generation_config.json when present. */
  generationConfig: Record<string, unknown> | null;
  /** From tokenizer.json when present. */
  tokenizer: HfTokenizer | null;
}

const GPU_BACKENDS = new Set(['webgpu', 'webgl']);

/** `[rows, cols]` -> `[cols, rows]` on the host, in 32x32 tiles (several times faster than tf.transpose on cpu). */
export function transpose2d(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  const B = 32;
  for (let r0 = 0; r0 < rows; r0 += B) {
    const r1 = Math.min(rows, r0 + B);
    for (let c0 = 0; c0 < cols; c0 += B) {
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) out[c * rows + r] = a[r * cols + c];
    }
  }
  return out;
}

/**
 * Copies checkpoint tensors into the model. Every expected tensor must be there with its shape
 * (checked from the headers before any data is read); extra tensors are ignored. On `cpu` with
 * plain float layers the tensors are read straight into the variables' storage
 * (models/load_in_place.ts; `fresh`: the model was just built and nothing else holds its values,
 * so they are filled where they are); elsewhere each is read, made a tensor and written.
 */
export function loadWeights(model: DecoderForCausalLM, locations: Map<string, TensorLocation>, fresh = false): void {
  const specs = model.weightSpecs();
  checkTensorShapes(locations, specs, 'loadWeights');
  if (loadWeightsInPlace(model, locations, fresh)) return; // cpu: read into the variables' storage, no tensor per weight
  const targets = model.weightTargets();
  const attnNames = Object.keys(model.attentionSpecs());
  const pending = new Map<number, Record<string, tf.Tensor>>();
  // On a GPU backend the `[out, in]` -> `[in, out]` turn runs on the device (milliseconds for GBs)
  // instead of a host loop over every float (most of the load time of a 1B model, issue 11).
  const onGpu = GPU_BACKENDS.has(tf.getBackend());
  for (const t of readTensors(locations, specs.keys())) {
    const m = /^model\.layers\.(\d+)\.self_attn\.(.+)$/.exec(t.name);
    if (m) {
      const layer = Number(m[1]);
      const group = pending.get(layer) ?? {};
      group[m[2]] = tf.tensor(t.data, t.shape);
      pending.set(layer, group);
      if (Object.keys(group).length === attnNames.length) {
        model.blocks[layer].attn.setHfWeights(group);
        tf.dispose(Object.values(group));
        pending.delete(layer);
      }
      continue;
    }
    const target = targets.get(t.name);
    check(target, 'loadWeights', () => `no variable for tensor '${t.name}'`);
    const value = !target.transpose ? tf.tensor(t.data, t.shape)
      : onGpu ? tf.tidy(() => tf.transpose(tf.tensor2d(t.data, t.shape as [number, number]))) // uploaded as read, turned on the device
        : tf.tensor(transpose2d(t.data, t.shape[0], t.shape[1]), [t.shape[1], t.shape[0]]);
    target.variable.write(value);
    value.dispose();
  }
  check(pending.size === 0, 'loadWeights', () => `attention weights of layer(s) ${[...pending.keys()].join(', ')} incomplete`);
}

/**
 * Builds and loads the model of a checkpoint folder (`config.json`, `model.safetensors` or a
 * sharded index, optional `tokenizer.json` and `generation_config.json`).
 *
 * @example
 * const { model, tokenizer } = await loadPretrained('spec/fixtures/models/tiny_llama');
 */
export async function loadPretrained(dir: string, options: LoadOptions = {}): Promise<Pretrained> {
  // Everything that can fail is read and checked before the first weight is allocated.
  const hfConfig = readHfConfig(dir);
  const genFile = confinedPath(dir, 'generation_config.json', 'loadPretrained', 'generation_config.json');
  const generationConfig = fs.existsSync(genFile) ? readJsonObject(genFile, 'loadPretrained') : null;
  const tokenizer = await loadTokenizer(dir);
  const locations = locateTensors(dir);
  const config = readDecoderConfig(hfConfig, familyOf(hfConfig).traits);
  const { packHalfWeights, ...buildOptions } = options;
  const quant = modelQuantOf(hfConfig, locations, packHalfWeights ?? false);
  const packed = quant && packedWeightSpecs(config, quant, expectedWeightShapes(config), locations);
  if (packed) {
    checkTensorShapes(locations, packed.float, 'loadPretrained');
    checkPackedTensors(locations, packed.packed);
  } else {
    checkTensorShapes(locations, expectedWeightShapes(config), 'loadWeights');
  }
  const model = withoutRandomInit(() => createModel(hfConfig, { ...buildOptions, ...(quant ? { quant } : {}) })); // every weight is read next
  try {
    if (packed) loadPackedWeights(model, locations, packed, true);
    else loadWeights(model, locations, true);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, hfConfig, generationConfig, tokenizer };
}

/** HF names and shapes of every weight a config's model loads, computed without building (allocating) it. */
export function expectedWeightShapes(config: DecoderConfig): Map<string, number[]> {
  const probe = Object.assign(Object.create(DecoderForCausalLM.prototype) as DecoderForCausalLM, { config });
  return probe.weightSpecs();
}

/** Stop tokens of a checkpoint: generation_config's `eos_token_id`, else config's. */
export function stopTokensOf(p: Pretrained): number[] {
  const v = p.generationConfig?.eos_token_id ?? p.hfConfig.eos_token_id;
  if (typeof v === 'number') return [v];
  return Array.isArray(v) ? v.filter((x): x is number => typeof x === 'number') : [];
}
