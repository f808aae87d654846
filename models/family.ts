/** What a model family contributes to the registry: its HF `model_type`, config traits and class. */
import { type FamilyTraits, type HfConfig, readDecoderConfig } from './config.js';
import { DecoderForCausalLM, type ModelBuildOptions } from './decoder_lm.js';

export interface ModelFamily {
  /** Hugging Face `model_type`. */
  modelType: string;
  /** Hugging Face class it mirrors, e.g. `LlamaForCausalLM`. */
  architecture: string;
  traits: FamilyTraits;
  create(cfg: HfConfig, options?: ModelBuildOptions): DecoderForCausalLM;
}

/** A family whose model is the shared decoder with `traits` applied. */
export function defineFamily(
  modelType: string,
  architecture: string,
  traits: FamilyTraits,
  Model: new (c: ReturnType<typeof readDecoderConfig>, o?: ModelBuildOptions) => DecoderForCausalLM,
): ModelFamily {
  return { modelType, architecture, traits, create: (cfg, options) => new Model(readDecoderConfig(cfg, traits), options) };
}
