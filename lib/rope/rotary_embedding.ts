import * as tf from '@tensorflow/tfjs';
import { check, checkInt } from '../errors.js';
import type { RopeTables } from './rope_tables.js';
import { type RopeScaling, invFreqAt, isPositionDependent, validateScaling } from './scaling.js';

export interface RotaryEmbeddingOptions {
  /** Per-head dimension. */
  headDim: number;
  /** RoPE base (Hugging Face `rope_theta`). */
  theta: number;
  /** Positions the tables cover; a call past them is an error. Default 4096. */
  maxSeqLen?: number;
  /** GPT-J / GGUF pairs (2i, 2i+1) when true; rotate-half pairs (i, i + d/2) when false (default). */
  interleaved?: boolean;
  /** Frequency scaling; absent means the plain schedule. */
  scaling?: RopeScaling;
  /** Fraction of each head that rotates (StableLM); the first headDim * factor dims. Default 1. */
  partialRotaryFactor?: number;
}

/**
 * Rotary position embedding tables (the reference's `RotaryEmbedding`, with every common scaling).
 *
 * @example
 * const rope = new RotaryEmbedding({ headDim: 64, theta: 500000, maxSeqLen: 8192,
 *   scaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4,
 *              originalMaxPositionEmbeddings: 8192 } });
 * rope.freqsCis;   // tf.Tensor2D [8192, 64]: cos, sin interleaved per frequency
 * rope.tables();   // host cos/sin tables [8192, 32] for kernels
 */
export class RotaryEmbedding {
  readonly headDim: number;
  readonly theta: number;
  readonly maxSeqLen: number;
  readonly interleaved: boolean;
  readonly scaling: RopeScaling | undefined;
  readonly partialRotaryFactor: number;
  /** Dims of each head that rotate (even). */
  readonly rotaryDim: number;
  private hostTables: RopeTables | undefined;
  private freqsCisTensor: tf.Tensor2D | undefined;

  constructor(opts: RotaryEmbeddingOptions) {
    const where = 'RotaryEmbedding';
    checkInt(opts.headDim, where, 'headDim', 1);
    check(typeof opts.theta === 'number' && opts.theta > 0, where, () => `theta must be > 0, got ${opts.theta}`);
    this.headDim = opts.headDim;
    this.theta = opts.theta;
    this.maxSeqLen = opts.maxSeqLen ?? 4096;
    checkInt(this.maxSeqLen, where, 'maxSeqLen', 1);
    this.interleaved = opts.interleaved ?? false;
    this.partialRotaryFactor = opts.partialRotaryFactor ?? 1;
    const f = this.partialRotaryFactor;
    check(f > 0 && f <= 1, where, () => `partialRotaryFactor must be in (0, 1], got ${f}`);
    this.rotaryDim = Math.floor(this.headDim * f);
    check(this.rotaryDim % 2 === 0 && this.rotaryDim > 0, where, () =>
      `rotary dim must be even and > 0, got ${this.rotaryDim} (headDim ${this.headDim} x partialRotaryFactor ${f})`);
    // configs that went through JSON or a saved model carry null for unset keys
    const scaling = opts.scaling ? Object.fromEntries(Object.entries(opts.scaling).filter(([, v]) => v !== null && v !== undefined)) as unknown as RopeScaling : undefined;
    this.scaling = scaling && scaling.ropeType !== 'default' ? scaling : undefined;
    if (this.scaling) validateScaling(this.scaling, this.rotaryDim);
  }

  /** Host cos/sin tables `[maxSeqLen, rotaryDim / 2]`, attention factor included; built once. */
  tables(): RopeTables {
    if (this.hostTables) return this.hostTables;
    const half = this.rotaryDim / 2;
    const cos = new Float32Array(this.maxSeqLen * half);
    const sin = new Float32Array(this.maxSeqLen * half);
    const perPosition = isPositionDependent(this.scaling);
    let sched = invFreqAt(this.theta, this.rotaryDim, this.scaling, 0);
    for (let p = 0; p < this.maxSeqLen; p++) {
      if (perPosition && p > 0) sched = invFreqAt(this.theta, this.rotaryDim, this.scaling, p);
      for (let i = 0; i < half; i++) {
        const angle = p * sched.inv[i];
        cos[p * half + i] = Math.cos(angle) * sched.attentionFactor;
        sin[p * half + i] = Math.sin(angle) * sched.attentionFactor;
      }
    }
    this.hostTables = {
      cos, sin, headDim: this.headDim, rotaryDim: this.rotaryDim, maxPositions: this.maxSeqLen, interleaved: this.interleaved,
    };
    return this.hostTables;
  }

  /** Reference layout `[maxSeqLen, rotaryDim]`: (cos, sin) of each frequency interleaved. Kept alive by this object. */
  get freqsCis(): tf.Tensor2D {
    if (!this.freqsCisTensor || this.freqsCisTensor.isDisposed) {
      const t = this.tables();
      const half = this.rotaryDim / 2;
      const data = new Float32Array(this.maxSeqLen * this.rotaryDim);
      for (let j = 0; j < this.maxSeqLen * half; j++) { data[2 * j] = t.cos[j]; data[2 * j + 1] = t.sin[j]; }
      this.freqsCisTensor = tf.keep(tf.tensor2d(data, [this.maxSeqLen, this.rotaryDim])); // [maxSeqLen, rotaryDim]
      freqsCisOwner.set(this.freqsCisTensor, this);
    }
    return this.freqsCisTensor;
  }

  /** cos view `[maxSeqLen, rotaryDim / 2]` (a new tensor; the caller disposes it). */
  cos(): tf.Tensor2D { return tf.tensor2d(this.tables().cos, [this.maxSeqLen, this.rotaryDim / 2]); }
  /** sin view `[maxSeqLen, rotaryDim / 2]` (a new tensor; the caller disposes it). */
  sin(): tf.Tensor2D { return tf.tensor2d(this.tables().sin, [this.maxSeqLen, this.rotaryDim / 2]); }

  /** Frees the freqsCis tensor (host tables are plain arrays). */
  dispose(): void { this.freqsCisTensor?.dispose(); this.freqsCisTensor = undefined; }

  getConfig(): RotaryEmbeddingOptions {
    return {
      headDim: this.headDim, theta: this.theta, maxSeqLen: this.maxSeqLen, interleaved: this.interleaved,
      scaling: this.scaling ? { ...this.scaling } : undefined, partialRotaryFactor: this.partialRotaryFactor,
    };
  }

  static fromConfig(config: RotaryEmbeddingOptions): RotaryEmbedding { return new RotaryEmbedding(config); }

  /**
   * Builds from a Hugging Face `config.json` object in either spelling: `rope_theta` + `rope_scaling`
   * (transformers 4) or `rope_parameters` (transformers 5). Reads `head_dim` (else hidden / heads),
   * `partial_rotary_factor`, `max_position_embeddings`.
   */
  static fromHfConfig(config: Record<string, unknown>, opts: { maxSeqLen?: number; interleaved?: boolean } = {}): RotaryEmbedding {
    return new RotaryEmbedding(ropeOptionsFromHfConfig(config, opts));
  }
}

/** freqsCis tensors made by a RotaryEmbedding, so callers passing the tensor skip a device read. */
const freqsCisOwner = new WeakMap<tf.Tensor, RotaryEmbedding>();
const tablesOfTensor = new WeakMap<tf.Tensor, RopeTables>();

/**
 * Host tables for a `freqsCis` argument: a RotaryEmbedding, its freqsCis tensor, or any
 * `[positions, rotaryDim]` tensor in the reference layout (read once and remembered).
 */
export function ropeTablesOf(freqs: RotaryEmbedding | tf.Tensor, headDim: number, interleaved: boolean): RopeTables {
  if (freqs instanceof RotaryEmbedding) return freqs.tables();
  const owner = freqsCisOwner.get(freqs);
  if (owner) return owner.tables();
  const known = tablesOfTensor.get(freqs);
  if (known) return known;
  const width = freqs.shape[1] ?? 0;
  check(freqs.rank === 2 && width % 2 === 0 && width <= headDim, 'AttentionWithRope', () =>
    `freqsCis must be [positions, rotaryDim] with an even rotaryDim <= headDim (${headDim}), got [${freqs.shape}]`);
  const [positions, rotaryDim] = freqs.shape as [number, number];
  const data = freqs.dataSync() as Float32Array;
  const half = rotaryDim / 2;
  const cos = new Float32Array(positions * half), sin = new Float32Array(positions * half);
  for (let j = 0; j < positions * half; j++) { cos[j] = data[2 * j]; sin[j] = data[2 * j + 1]; }
  const t: RopeTables = { cos, sin, headDim, rotaryDim, maxPositions: positions, interleaved };
  tablesOfTensor.set(freqs, t);
  return t;
}

function num(v: unknown): number | undefined { return typeof v === 'number' ? v : undefined; }

/** RotaryEmbeddingOptions from a Hugging Face config (both spellings). */
export function ropeOptionsFromHfConfig(
  c: Record<string, unknown>, opts: { maxSeqLen?: number; interleaved?: boolean } = {},
): RotaryEmbeddingOptions {
  const params = (c.rope_parameters ?? {}) as Record<string, unknown>;
  const legacy = (c.rope_scaling ?? {}) as Record<string, unknown>;
  const merged: Record<string, unknown> = { ...legacy, ...params };
  const theta = num(merged.rope_theta) ?? num(c.rope_theta) ?? 10000;
  const heads = num(c.num_attention_heads);
  const hiddenSize = num(c.hidden_size);
  const headDim = num(c.head_dim) ?? (heads && hiddenSize ? hiddenSize / heads : undefined);
  check(headDim !== undefined, 'RotaryEmbedding.fromHfConfig', () => 'config needs head_dim or hidden_size and num_attention_heads');
  const ropeType = (merged.rope_type ?? merged.type ?? 'default') as RopeScaling['ropeType'];
  const maxPos = num(c.max_position_embeddings);
  const scaling: RopeScaling | undefined = ropeType === 'default' ? undefined : {
    ropeType,
    factor: num(merged.factor),
    lowFreqFactor: num(merged.low_freq_factor),
    highFreqFactor: num(merged.high_freq_factor),
    originalMaxPositionEmbeddings: num(merged.original_max_position_embeddings)
      ?? num(c.original_max_position_embeddings) ?? (ropeType === 'dynamic' ? maxPos : undefined),
    betaFast: num(merged.beta_fast),
    betaSlow: num(merged.beta_slow),
    mscale: num(merged.mscale),
    mscaleAllDim: num(merged.mscale_all_dim),
    truncate: typeof merged.truncate === 'boolean' ? merged.truncate : undefined,
    attentionFactor: num(merged.attention_factor),
    shortFactor: merged.short_factor as number[] | undefined,
    longFactor: merged.long_factor as number[] | undefined,
    maxPositionEmbeddings: maxPos,
  };
  const partial = num(merged.partial_rotary_factor) ?? num(c.partial_rotary_factor) ?? 1;
  return {
    headDim: headDim!, theta, interleaved: opts.interleaved ?? false, scaling,
    partialRotaryFactor: partial, maxSeqLen: opts.maxSeqLen ?? maxPos ?? 4096,
  };
}
