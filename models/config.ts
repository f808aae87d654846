/**
 * A Hugging Face decoder config read into one typed shape shared by every family in models/.
 * Accepts both spellings of the RoPE keys (`rope_parameters` of transformers 5, `rope_theta` /
 * `rope_scaling` of transformers 4); RoPE itself is resolved by `RotaryEmbedding.fromHfConfig`.
 */
import { check, checkInt } from '../lib/errors.js';
import type { MaskVariant } from '../lib/types.js';

export type HfConfig = Record<string, unknown>;

/** Attention flavour of one decoder layer. */
export interface LayerAttentionSpec {
  maskVariant: MaskVariant;
  /** Window W of `sliding_window_causal`, 0 otherwise. */
  slidingWindow: number;
}

export interface DecoderConfig {
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  rmsNormEps: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections have a bias. */
  qkvBias: boolean;
  /** o_proj has a bias. */
  outputBias: boolean;
  mlpBias: boolean;
  useQkNorm: boolean;
  /** Clamp of the q/k/v activations (OLMo), or null. */
  clipQkv: number | null;
  /** Normalisation layer kind: RMSNorm with a weight, or OLMo's weightless LayerNorm. */
  norm: 'rms' | 'layer_norm_no_affine';
  /** Per layer: causal or sliding window. */
  layers: LayerAttentionSpec[];
  bosTokenId: number | null;
  /** Stop tokens (config `eos_token_id`, a number or a list). */
  eosTokenIds: number[];
  /** The raw config, for RotaryEmbedding.fromHfConfig. */
  raw: HfConfig;
}

function num(cfg: HfConfig, key: string, fallback?: number): number {
  const v = cfg[key] ?? fallback;
  check(typeof v === 'number' && Number.isFinite(v), 'readDecoderConfig', () => `config.${key} must be a number, got ${JSON.stringify(cfg[key])}`);
  return v;
}

/** A size of the config: an integer in [1, 2^31). */
function count(cfg: HfConfig, key: string, fallback?: number): number {
  const v = num(cfg, key, fallback);
  check(Number.isInteger(v) && v >= 1 && v < 2 ** 31, 'readDecoderConfig', () => `config.${key} must be an integer >= 1, got ${JSON.stringify(cfg[key])}`);
  return v;
}

function positive(cfg: HfConfig, key: string, fallback: number): number {
  const v = num(cfg, key, fallback);
  check(v > 0, 'readDecoderConfig', () => `config.${key} must be > 0, got ${JSON.stringify(cfg[key])}`);
  return v;
}

function ids(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

/** Family-specific choices the registry passes in. */
export interface FamilyTraits {
  qkvBias?: (cfg: HfConfig) => boolean;
  outputBias?: (cfg: HfConfig) => boolean;
  useQkNorm?: boolean;
  clipQkv?: boolean;
  norm?: 'rms' | 'layer_norm_no_affine';
  /** Norm epsilon the family fixes whatever the config says (OLMo's LayerNorm: 1e-5). */
  normEps?: number;
  /** How the family decides which layers slide. */
  sliding?: (cfg: HfConfig, numLayers: number) => boolean[];
}

/** Layer types from `layer_types` when present, else the family rule, else none slide. */
function slidingLayers(cfg: HfConfig, n: number, traits: FamilyTraits): boolean[] {
  const types = cfg.layer_types;
  if (Array.isArray(types)) {
    check(types.length === n, 'readDecoderConfig', () => `config.layer_types has ${types.length} entries, num_hidden_layers is ${n}`);
    return types.map((t) => t === 'sliding_attention');
  }
  return traits.sliding ? traits.sliding(cfg, n) : new Array<boolean>(n).fill(false);
}

/** Reads an HF config into a DecoderConfig; `traits` supply what the family fixes. */
export function readDecoderConfig(cfg: HfConfig, traits: FamilyTraits = {}): DecoderConfig {
  const hiddenSize = count(cfg, 'hidden_size');
  const numAttentionHeads = count(cfg, 'num_attention_heads');
  const numKeyValueHeads = count(cfg, 'num_key_value_heads', numAttentionHeads);
  const numHiddenLayers = count(cfg, 'num_hidden_layers');
  check(numAttentionHeads % numKeyValueHeads === 0, 'readDecoderConfig', () =>
    `config.num_attention_heads (${numAttentionHeads}) must be a multiple of config.num_key_value_heads (${numKeyValueHeads})`);
  const headDim = typeof cfg.head_dim === 'number' ? cfg.head_dim : hiddenSize / numAttentionHeads;
  checkInt(headDim, 'readDecoderConfig', 'head_dim (config.head_dim or hidden_size / num_attention_heads)', 1);
  const window = typeof cfg.sliding_window === 'number' ? cfg.sliding_window : 0;
  const slides = slidingLayers(cfg, numHiddenLayers, traits);
  const layers = slides.map((s): LayerAttentionSpec =>
    s && window > 0 ? { maskVariant: 'sliding_window_causal', slidingWindow: window } : { maskVariant: 'causal', slidingWindow: 0 });
  const clip = cfg.clip_qkv;
  return {
    modelType: String(cfg.model_type),
    vocabSize: count(cfg, 'vocab_size'),
    hiddenSize,
    intermediateSize: count(cfg, 'intermediate_size'),
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: traits.normEps ?? positive(cfg, 'rms_norm_eps', 1e-6),
    maxPositionEmbeddings: count(cfg, 'max_position_embeddings', 2048),
    tieWordEmbeddings: cfg.tie_word_embeddings === true,
    qkvBias: traits.qkvBias ? traits.qkvBias(cfg) : cfg.attention_bias === true,
    outputBias: traits.outputBias ? traits.outputBias(cfg) : cfg.attention_bias === true,
    mlpBias: cfg.mlp_bias === true,
    useQkNorm: traits.useQkNorm ?? false,
    clipQkv: traits.clipQkv && typeof clip === 'number' ? clip : null,
    norm: traits.norm ?? 'rms',
    layers,
    bosTokenId: typeof cfg.bos_token_id === 'number' ? cfg.bos_token_id : null,
    eosTokenIds: ids(cfg.eos_token_id),
    raw: cfg,
  };
}
