/**
 * Runs one golden attention fixture folder (format: spec/fixtures/README.md) through
 * AttentionWithRope with one paged cache, step by step, and measures
 * max |out - expected| / max |expected| over every step.
 */
import * as tf from '@tensorflow/tfjs';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope.js';
import type { AttentionWithRopeArgs } from '../../lib/attention/options.js';
import type { HfWeights } from '../../lib/attention/weights.js';
import { PagedKVCache } from '../../lib/kv_cache/paged_kv_cache.js';
import type { RawTensor } from '../../lib/attention/quant_weights.js';
import { readSafetensors, safetensorsHeader, type LoadedTensor } from '../../lib/loaders/safetensors.js';
import { ropeOptionsFromHfConfig } from '../../lib/rope/rotary_embedding.js';
import type { MaskVariant } from '../../lib/types.js';
import type { KVCacheParams } from '../../lib/kv_cache/params.js';

export interface FixtureStep {
  input: string;
  input_row_offsets: number[];
  start_positions: number[];
  expected?: string;
  materialize?: boolean;
  /** Optional: which sequence each batch entry is (default: entry b is sequence b). */
  seq_ids?: number[];
}

export interface AttentionFixture {
  name: string;
  config: Record<string, any>;
  tensors: Map<string, LoadedTensor>;
  /** quant/ fixtures: every tensor's bytes as stored (F8_E4M3, U8, I8, I32, F16, BF16, F32). */
  raw?: Map<string, RawTensor>;
}

export interface FixtureResult {
  name: string;
  error: number;
  passed: boolean;
  detail: string;
}

export interface RunOptions {
  /** Composite path only: no fused kernels, separate rope/split/store ops. */
  unfused?: boolean;
  pageSize?: number;
  /** Overrides for the layer (e.g. stackedQkv). */
  layerOverrides?: Partial<AttentionWithRopeArgs>;
  /** Hand out pages in a scrambled order so no page maps to itself. */
  scramblePages?: boolean;
  /** Cache format instead of the fixture's own (e.g. a float32 fixture through a float16 cache). */
  kvFormat?: Pick<KVCacheParams, 'dtype' | 'kScale' | 'vScale'>;
  /** Pass bar instead of the fixture's (fixtureTolerance). */
  tolerance?: number;
}

export const TOLERANCE = 1e-4;

/**
 * A fixture from its parsed (or raw JSON) config.json and the bytes of tensors.safetensors, for
 * hosts without a file system (browsers fetch both files); `fallbackName` is used when the config has none.
 */
export function attentionFixtureFromBytes(config: Record<string, any> | string, bytes: Uint8Array, fallbackName = 'fixture'): AttentionFixture {
  const c = typeof config === 'string' ? JSON.parse(config) as Record<string, any> : config;
  if (c.quant) {
    // quantized weights stay as stored; inputs and expected outputs are F32
    const { entries, dataStart } = safetensorsHeader(bytes);
    const raw = new Map<string, RawTensor>(), tensors = new Map<string, LoadedTensor>();
    for (const [name, e] of Object.entries(entries)) {
      const b = bytes.subarray(dataStart + e.data_offsets[0], dataStart + e.data_offsets[1]);
      raw.set(name, { dtype: e.dtype, shape: e.shape, bytes: b });
      if (e.dtype === 'F32') tensors.set(name, { dtype: 'F32', shape: e.shape, data: new Float32Array(b.slice().buffer) });
    }
    return { name: c.name ?? fallbackName, config: c, tensors, raw };
  }
  return { name: c.name ?? fallbackName, config: c, tensors: readSafetensors(bytes) };
}

const MASKS: Record<string, MaskVariant> = {
  causal: 'causal', null: 'null', sliding_window: 'sliding_window_causal',
  sliding_window_causal: 'sliding_window_causal', sliding_window_bidirectional: 'sliding_window', chunked_causal: 'chunked_causal',
};

/** The longest sequence a fixture builds. */
function maxContext(steps: FixtureStep[]): number {
  let m = 1;
  for (const s of steps) {
    for (let b = 0; b < s.start_positions.length; b++) {
      m = Math.max(m, s.start_positions[b] + s.input_row_offsets[b + 1] - s.input_row_offsets[b]);
    }
  }
  return m;
}

/** The cache format a fixture's `kv_cache` asks for (fixtures README, quant/); float32 when absent. */
export function kvCacheFormat(c: Record<string, any>): Pick<KVCacheParams, 'dtype' | 'kScale' | 'vScale'> {
  const kv = c.kv_cache;
  if (kv === undefined || kv === null) return {};
  return {
    dtype: kv.dtype, ...(kv.k_scale !== undefined ? { kScale: kv.k_scale } : {}), ...(kv.v_scale !== undefined ? { vScale: kv.v_scale } : {}),
  };
}

/** The case's bar: its config's `tolerance` (quant/ cases), else TOLERANCE. */
export function fixtureTolerance(c: Record<string, any>): number {
  return typeof c.tolerance === 'number' ? c.tolerance : TOLERANCE;
}

/** Layer options that reproduce a fixture's config. */
export function layerArgsFromFixture(c: Record<string, any>, pageSize: number): AttentionWithRopeArgs {
  const steps = c.steps as FixtureStep[];
  const rope = c.rope ?? {};
  const ropeOpts = ropeOptionsFromHfConfig({
    head_dim: c.head_dim, hidden_size: c.hidden_size, num_attention_heads: c.num_attention_heads,
    rope_theta: rope.theta, rope_scaling: rope.scaling, partial_rotary_factor: rope.partial_rotary_factor,
    max_position_embeddings: c.max_position_embeddings,
  }, { interleaved: rope.interleaved ?? false, maxSeqLen: Math.max(c.max_position_embeddings ?? 0, maxContext(steps), 64) });
  const batch = Math.max(...steps.map((s) => s.start_positions.length));
  const maskName = c.mask === null ? 'null' : (c.mask ?? 'causal');
  const maskVariant = MASKS[maskName];
  if (!maskVariant) throw new Error(`[conformance] fixture ${c.name}: unknown mask '${maskName}'`);
  return {
    rope: ropeOpts,
    numAttentionHeads: c.num_attention_heads,
    numKeyValueHeads: c.num_key_value_heads,
    hiddenSize: c.hidden_size,
    kvParams: {
      nKvHeads: c.num_key_value_heads, headDim: c.head_dim, pageSize, numLayers: 1,
      numPages: 2 * batch * (Math.ceil(maxContext(steps) / pageSize) + 1) + 8,
      ...kvCacheFormat(c),
    },
    hasBias: c.has_bias ?? false,
    hasOutputBias: c.weights?.['o_proj.bias'] !== undefined,
    useQkNorm: c.use_qk_norm ?? false,
    rmsNormEps: c.rms_norm_eps ?? 1e-6,
    clipQkv: c.clip_qkv ?? null,
    clipQkvTarget: c.clip_target ?? 'weights',
    maskVariant,
    slidingWindow: c.sliding_window ?? undefined,
    chunkSize: c.chunk_size ?? undefined,
    scale: c.scale ?? undefined,
    ...quantArgs(c),
  };
}

/** quantConfig / dtype of a quant/ fixture (`quant.format`; bf16 and f16 are weight dtypes). */
function quantArgs(c: Record<string, any>): Partial<AttentionWithRopeArgs> {
  const format = c.quant?.format as string | undefined;
  if (format === undefined) return {};
  if (format === 'bf16') return { dtype: 'bfloat16' };
  if (format === 'f16') return { dtype: 'float16' };
  return { quantConfig: { format: format as never } };
}

/** Fixture weights keyed by Hugging Face name. */
export function fixtureWeights(f: AttentionFixture): HfWeights {
  const w: HfWeights = {};
  for (const name of Object.keys(f.config.weights)) {
    if (f.raw) {
      const r = f.raw.get(name);
      if (!r) throw new Error(`[conformance] fixture ${f.name}: tensor '${name}' missing from tensors.safetensors`);
      w[name] = r;
      continue;
    }
    const t = f.tensors.get(name);
    if (!t) throw new Error(`[conformance] fixture ${f.name}: tensor '${name}' missing from tensors.safetensors`);
    w[name] = t.data as Float32Array;
  }
  return w;
}

function maxAbs(a: Float32Array): number { let m = 0; for (const x of a) m = Math.max(m, Math.abs(x)); return m; }

/**
 * Runs every step of a fixture; returns the worst relative error. Reads outputs with
 * `await data()`: webgpu has no synchronous readback in Node, and in headless Chromium its
 * `dataSync()` returns zeros.
 */
export async function runAttentionFixture(f: AttentionFixture, opts: RunOptions = {}): Promise<FixtureResult> {
  const c = f.config;
  const steps = c.steps as FixtureStep[];
  const args = { ...layerArgsFromFixture(c, opts.pageSize ?? 16), ...opts.layerOverrides };
  if (opts.unfused) args.fuseRopeAndStore = false;
  if (opts.kvFormat) args.kvParams = { ...args.kvParams, dtype: undefined, kScale: undefined, vScale: undefined, ...opts.kvFormat };
  const layer = new AttentionWithRope(args);
  layer.setHfWeights(fixtureWeights(f));
  const cache = new PagedKVCache(args.kvParams);
  if (opts.scramblePages) scramble(cache);
  const prevForce = tf.env().getBool('ATTENTION_ROPE_FORCE_COMPOSITE');
  if (opts.unfused) tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', true);
  let worst = 0;
  const details: string[] = [];
  try {
    for (const [i, s] of steps.entries()) {
      const batch = s.start_positions.length;
      const seqIds = s.seq_ids ?? Array.from({ length: batch }, (_, b) => b);
      for (const id of seqIds) if (!cache.hasSequence(id)) cache.addSequence(id);
      seqIds.forEach((id, b) => {
        if (cache.cacheLength(id) !== s.start_positions[b]) {
          throw new Error(`[conformance] ${f.name} step ${i}: sequence ${id} holds ${cache.cacheLength(id)} tokens, fixture says ${s.start_positions[b]}`);
        }
      });
      const counts = seqIds.map((_, b) => s.input_row_offsets[b + 1] - s.input_row_offsets[b]);
      const kv = cache.fetch(seqIds, counts);
      const input = f.tensors.get(s.input)!;
      const hidden = tf.tensor2d(input.data as Float32Array, input.shape as [number, number]); // [T, hidden]
      const offsets = tf.tensor1d(s.input_row_offsets, 'int32');
      if (s.materialize) {
        layer.materializeKvFromHidden(0, hidden, kv, layer.rope.freqsCis, offsets);
      } else {
        const out = layer.callRagged(0, hidden, kv, layer.rope.freqsCis, offsets);
        const got = await out.data() as Float32Array;
        const exp = f.tensors.get(s.expected!)!.data as Float32Array;
        let diff = 0;
        for (let j = 0; j < exp.length; j++) diff = Math.max(diff, Math.abs(got[j] - exp[j]));
        if (Number.isNaN(maxAbs(got))) diff = Infinity;
        const err = diff / maxAbs(exp);
        details.push(`step${i}=${err.toExponential(1)}`);
        worst = Math.max(worst, Number.isNaN(err) ? Infinity : err);
        out.dispose();
      }
      hidden.dispose(); offsets.dispose();
      cache.step(kv);
    }
  } finally {
    tf.env().set('ATTENTION_ROPE_FORCE_COMPOSITE', prevForce);
    layer.dispose();
  }
  return { name: f.name, error: worst, passed: worst <= (opts.tolerance ?? fixtureTolerance(c)), detail: details.join(' ') };
}

/** Takes and returns pages so the free list hands them out in a scrambled order. */
export function scramble(cache: PagedKVCache): void {
  const n = Math.min(cache.params.numPages, 64);
  const ids: number[] = [];
  for (let i = 0; i < n; i++) { const id = cache.addSequence(); ids.push(id); cache.step(cache.fetch([id], [cache.params.pageSize])); }
  for (let i = 0; i < ids.length; i++) { const j = (i * 7 + 3) % ids.length; [ids[i], ids[j]] = [ids[j], ids[i]]; }
  for (const id of ids) cache.releaseSequence(id);
}
