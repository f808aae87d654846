/**
 * Rotary frequency schedules, after Hugging Face `modeling_rope_utils` (same names, same math).
 * Each returns the inverse frequencies for one position (most are position-independent) and the
 * attention factor that multiplies cos and sin.
 */
import { check } from '../errors.js';

export type RopeType = 'default' | 'linear' | 'dynamic' | 'llama3' | 'yarn' | 'longrope';
export const ROPE_TYPES: readonly RopeType[] = ['default', 'linear', 'dynamic', 'llama3', 'yarn', 'longrope'];

/** Scaling parameters, camelCased Hugging Face `rope_scaling` keys. */
export interface RopeScaling {
  ropeType: RopeType;
  /** linear, dynamic, llama3, yarn (and longrope, where it overrides max/original) */
  factor?: number;
  /** llama3 */
  lowFreqFactor?: number;
  highFreqFactor?: number;
  /** llama3, yarn, longrope, dynamic: the context length the model was trained with */
  originalMaxPositionEmbeddings?: number;
  /** yarn */
  betaFast?: number;
  betaSlow?: number;
  mscale?: number;
  mscaleAllDim?: number;
  truncate?: boolean;
  /** yarn, longrope: overrides the computed factor on cos and sin */
  attentionFactor?: number;
  /** longrope: per-frequency divisors below / above originalMaxPositionEmbeddings */
  shortFactor?: number[];
  longFactor?: number[];
  /** longrope, dynamic: the extended context (Hugging Face `max_position_embeddings`) */
  maxPositionEmbeddings?: number;
}

/** `1 / theta^(2i / dim)` for i < dim / 2, in float64. */
export function defaultInvFreq(theta: number, dim: number): Float64Array {
  const half = dim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / dim);
  return inv;
}

function need(s: RopeScaling, key: keyof RopeScaling): number {
  const v = s[key];
  check(typeof v === 'number' && Number.isFinite(v) && v > 0, 'RotaryEmbedding', () =>
    `rope scaling '${s.ropeType}' needs a positive number ${String(key)}, got ${JSON.stringify(v)}`);
  return v as number;
}

/** Checks a scaling's parameters up front (constructor time), naming what is missing. */
export function validateScaling(s: RopeScaling, rotaryDim: number): void {
  check(ROPE_TYPES.includes(s.ropeType), 'RotaryEmbedding', () =>
    `ropeType must be one of ${ROPE_TYPES.join(', ')}, got '${s.ropeType}'`);
  if (s.ropeType === 'linear' || s.ropeType === 'dynamic' || s.ropeType === 'yarn') need(s, 'factor');
  if (s.ropeType === 'dynamic') need(s, 'originalMaxPositionEmbeddings');
  if (s.ropeType === 'llama3') {
    need(s, 'factor'); need(s, 'lowFreqFactor'); need(s, 'highFreqFactor'); need(s, 'originalMaxPositionEmbeddings');
  }
  if (s.ropeType === 'yarn') need(s, 'originalMaxPositionEmbeddings');
  if (s.ropeType === 'longrope') {
    need(s, 'originalMaxPositionEmbeddings');
    for (const key of ['shortFactor', 'longFactor'] as const) {
      const f = s[key];
      check(Array.isArray(f) && f.length === rotaryDim / 2, 'RotaryEmbedding', () =>
        `longrope ${key} must have rotaryDim / 2 (${rotaryDim / 2}) entries, got ${Array.isArray(f) ? f.length : JSON.stringify(f)}`);
    }
  }
}

function llama3InvFreq(base: Float64Array, s: RopeScaling): Float64Array {
  const factor = s.factor!, low = s.lowFreqFactor!, high = s.highFreqFactor!;
  const oldLen = s.originalMaxPositionEmbeddings!;
  const lowWavelen = oldLen / low, highWavelen = oldLen / high;
  return base.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / factor;
    const smooth = (oldLen / wavelen - low) / (high - low);
    return (1 - smooth) * (f / factor) + smooth * f;
  });
}

function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

function yarnInvFreq(theta: number, dim: number, s: RopeScaling): { inv: Float64Array; attentionFactor: number } {
  const factor = s.factor!;
  const orig = s.originalMaxPositionEmbeddings!;
  let attentionFactor = s.attentionFactor;
  if (attentionFactor === undefined) {
    attentionFactor = s.mscale && s.mscaleAllDim
      ? yarnMscale(factor, s.mscale) / yarnMscale(factor, s.mscaleAllDim)
      : yarnMscale(factor);
  }
  const betaFast = s.betaFast ?? 32, betaSlow = s.betaSlow ?? 1;
  const correctionDim = (rot: number) => (dim * Math.log(orig / (rot * 2 * Math.PI))) / (2 * Math.log(theta));
  let low = correctionDim(betaFast), high = correctionDim(betaSlow);
  if (s.truncate ?? true) { low = Math.floor(low); high = Math.ceil(high); }
  low = Math.max(low, 0); high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const half = dim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    const posFreq = Math.pow(theta, (2 * i) / dim);
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const extrapolationFactor = 1 - ramp;
    inv[i] = (1 / (factor * posFreq)) * (1 - extrapolationFactor) + (1 / posFreq) * extrapolationFactor;
  }
  return { inv, attentionFactor };
}

/**
 * Inverse frequencies used at `position` and the factor on cos and sin.
 * Position matters only for `dynamic` (NTK base grows once the sequence passes the original
 * length, as Hugging Face recomputes it when the sequence reaches position + 1 tokens) and
 * `longrope` (long factors from the original length on).
 */
export function invFreqAt(
  theta: number, dim: number, scaling: RopeScaling | undefined, position: number,
): { inv: Float64Array; attentionFactor: number } {
  if (!scaling || scaling.ropeType === 'default') return { inv: defaultInvFreq(theta, dim), attentionFactor: 1 };
  const s = scaling;
  switch (s.ropeType) {
    case 'linear':
      return { inv: defaultInvFreq(theta, dim).map((f) => f / s.factor!), attentionFactor: 1 };
    case 'dynamic': {
      const orig = s.originalMaxPositionEmbeddings!;
      const seqLen = position + 1;
      if (seqLen <= orig) return { inv: defaultInvFreq(theta, dim), attentionFactor: 1 };
      const base = theta * Math.pow((s.factor! * seqLen) / orig - (s.factor! - 1), dim / (dim - 2));
      return { inv: defaultInvFreq(base, dim), attentionFactor: 1 };
    }
    case 'llama3':
      return { inv: llama3InvFreq(defaultInvFreq(theta, dim), s), attentionFactor: 1 };
    case 'yarn':
      return yarnInvFreq(theta, dim, s);
    case 'longrope': {
      const orig = s.originalMaxPositionEmbeddings!;
      const f = s.factor ?? (s.maxPositionEmbeddings ? s.maxPositionEmbeddings / orig : 1);
      const attentionFactor = s.attentionFactor ?? (f <= 1 ? 1 : Math.sqrt(1 + Math.log(f) / Math.log(orig)));
      const ext = position < orig ? s.shortFactor! : s.longFactor!;
      const base = defaultInvFreq(theta, dim);
      return { inv: base.map((b, i) => b / ext[i]), attentionFactor };
    }
    default:
      throw new Error(`unreachable rope type ${(s as RopeScaling).ropeType}`);
  }
}

/** True when the schedule changes with position (tables are then built row by row). */
export function isPositionDependent(scaling: RopeScaling | undefined): boolean {
  return scaling?.ropeType === 'dynamic' || scaling?.ropeType === 'longrope';
}
