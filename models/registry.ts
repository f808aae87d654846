/**
 * Model families by Hugging Face `model_type`.
 *
 * @example
 * const model = createModel(JSON.parse(fs.readFileSync('config.json', 'utf8')));
 */
import { check } from '../lib/errors.js';
import type { HfConfig } from './config.js';
import type { DecoderForCausalLM, ModelBuildOptions } from './decoder_lm.js';
import type { ModelFamily } from './family.js';
import { llama } from './llama/llama.js';
import { mistral } from './mistral/mistral.js';
import { olmo } from './olmo/olmo.js';
import { qwen2 } from './qwen2/qwen2.js';
import { qwen3 } from './qwen3/qwen3.js';

export const MODEL_REGISTRY: ReadonlyMap<string, ModelFamily> = new Map([llama, mistral, qwen2, qwen3, olmo].map((f) => [f.modelType, f]));

/** The `model_type`s this package can build. */
export function supportedModelTypes(): string[] {
  return [...MODEL_REGISTRY.keys()];
}

/** The family of a config; unknown types name the supported ones. */
export function familyOf(cfg: HfConfig): ModelFamily {
  const type = cfg.model_type;
  const family = typeof type === 'string' ? MODEL_REGISTRY.get(type) : undefined;
  check(family, 'createModel', () => `config.model_type (${JSON.stringify(type)}) is not supported; supported: ${supportedModelTypes().join(', ')}`);
  return family;
}

/** Builds the model of an HF config with zero weights (load them with `loadPretrained` or `loadWeights`). */
export function createModel(cfg: HfConfig, options?: ModelBuildOptions): DecoderForCausalLM {
  return familyOf(cfg).create(cfg, options);
}
