/**
 * The decoder's ragged step on `cpu` straight through the native addon (issue 11): per layer
 * rmsNorm, one sgemm for q/k/v (weights packed `[hidden, qDim + 2 kvDim]` once), ropeSplitStore,
 * flashAttention, the output sgemm added onto the residual in place, rmsNorm, and swiglu added in
 * place: 7 addon calls a layer on Float32Array scratch, no tfjs tensor, op dispatch or allocation
 * per layer (those cost ~15% of a prefill and ~5 ms of every decode step through the layers). The
 * LM head runs only on the rows that are sampled. Same math and the same kernels as the layers
 * (models/layers/*, kernels/cpu/*): the layers' results are reproduced to float rounding.
 *
 * `DecoderForCausalLM.forwardRagged` takes this path when `nativeForwardSupported(model, kv)`:
 * backend `cpu` with the addon active, no gradient being recorded, composite not forced, a float32
 * cache, and a model the kernels cover (RMSNorm with weights, plain `Linear` q/k/v/o projections,
 * the fused RoPE + store, no clip-qkv, no sharding). `tf.env().set('ATTENTION_ROPE_NATIVE_FORWARD', false)`
 * sends `cpu` through the layers instead (A/B benchmarks); `ATTENTION_ROPE_HUGE_PAGES` false keeps the
 * weights where they are (see models/native_weights.ts).
 *
 * @example
 * const logits = nativeForwardRagged(model, ids, kv, new Int32Array([ids.length - 1])); // [1, vocab]
 */
import * as tf from '@tensorflow/tfjs';
import { check } from '../lib/errors.js';
import { attentionArgs, ropeArgs } from '../kernels/cpu/args.js';
import { activeNative, type NativeKernels } from '../kernels/cpu/native.js';
import { FlashAttentionRaggedPaged, RopeSplitStoreRagged } from '../kernels/kernel_names.js';
import { hasFusedKernel } from '../kernels/ops.js';
import { Linear } from '../lib/attention/linear.js';
import type { PagedKVCollection } from '../lib/kv_cache/collection.js';
import { ropeTablesOf } from '../lib/rope/rotary_embedding.js';
import type { DecoderForCausalLM } from './decoder_lm.js';
import { type HugePages, nativeWeightsOf, type NativeScratch } from './native_weights.js';

const W = 'DecoderForCausalLM.forwardRagged';
const FLAG = 'ATTENTION_ROPE_NATIVE_FORWARD';
/** Whether the first native step moves the weights onto huge pages (models/native_weights.ts). */
const HUGE_FLAG = 'ATTENTION_ROPE_HUGE_PAGES';
for (const f of [FLAG, HUGE_FLAG]) {
  if (!tf.env().getFlags().hasOwnProperty(f)) {
    try { tf.env().registerFlag(f, () => true); } catch { /* registered by a twin module */ }
  }
}
const REQUIRED = ['rmsNorm', 'swiglu', 'sgemm', 'ropeSplitStore', 'flashAttention'] as const;

/** The addon with every function the step calls. */
export type NativeStepKernels = NativeKernels & Required<Pick<NativeKernels, 'rmsNorm' | 'swiglu'>>;

/** The addon when the native step serves `model` on the active backend, else null (the layers run). */
export function nativeForwardAddon(model: DecoderForCausalLM, kv: PagedKVCollection): NativeStepKernels | null {
  if (tf.getBackend() !== 'cpu' || !tf.env().getBool(FLAG) || (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn()) return null;
  const n = activeNative();
  if (!n || !REQUIRED.every((f) => typeof n[f] === 'function')) return null;
  if (!hasFusedKernel(RopeSplitStoreRagged) || !hasFusedKernel(FlashAttentionRaggedPaged)) return null;  // composite forced
  if (kv.cache.params.dtype !== undefined && kv.cache.params.dtype !== 'float32') return null;
  const c = model.config;
  if (c.norm !== 'rms' || c.clipQkv !== null || model.norm.weight === null) return null;
  const plain = model.blocks.every((b) => {
    const a = b.attn;
    return [a.qProj, a.kProj, a.vProj, a.oProj].every((p) => p !== null && p.constructor === Linear) && a.opts.fuseRopeAndStore
      && a.shardingStrategy.numDevices <= 1 && b.inputNorm.weight !== null && b.postNorm.weight !== null;
  });
  return plain ? n as NativeStepKernels : null;
}

/** Rows of a `[rows, width]` scratch, grown when too small. */
function rows(s: NativeScratch, name: keyof NativeScratch, n: number): Float32Array {
  if (s[name].length < n) s[name] = new Float32Array(n);
  return s[name];
}

/** forwardRagged's body on the addon (ids checked by the caller); logits `[R, vocab]`. */
export function nativeForwardRagged(model: DecoderForCausalLM, n: NativeStepKernels, ids: Int32Array, kv: PagedKVCollection,
  logitRows?: Int32Array): tf.Tensor2D {
  const c = model.config, p = kv.cache.params;
  const a0 = model.blocks[0].attn, o = a0.opts;
  const tables = ropeTablesOf(a0.rope, o.headDim, a0.rope.interleaved);
  check(p.numLayers >= model.blocks.length && p.nKvHeads === o.numKeyValueHeads && p.headDim === o.headDim, W, () =>
    `cache holds ${p.numLayers} layers of ${p.nKvHeads} KV heads of dim ${p.headDim}, the model needs ${model.blocks.length} of ${o.numKeyValueHeads} of dim ${o.headDim}`);
  kv.cache.validateCollection(kv, W);
  check(kv.maxContext <= tables.maxPositions, W, () =>
    `positions up to ${kv.maxContext - 1} exceed the rope table's ${tables.maxPositions} positions (maxSeqLen)`);
  const huge = tf.env().getBool(HUGE_FLAG) && n.allocHuge ? n as HugePages : undefined;
  const w = nativeWeightsOf(model, huge);
  const T = ids.length, H = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize;
  const qDim = o.numAttentionHeads * o.headDim, qkvN = qDim + 2 * o.numKeyValueHeads * o.headDim;
  const s = w.scratch;
  const h = rows(s, 'h', T * H), x = rows(s, 'x', T * H); // [T, H]
  const qkv = rows(s, 'qkv', T * qkvN), q = rows(s, 'q', T * qDim), attn = rows(s, 'attn', T * qDim);
  for (let t = 0; t < T; t++) h.set(w.embed.subarray(ids[t] * H, (ids[t] + 1) * H), t * H); // [T, H] embedding rows
  const ropeInts = ropeArgs({ nHeads: o.numAttentionHeads, nKvHeads: o.numKeyValueHeads, headDim: o.headDim, rope: tables,
    qkNormEps: o.useQkNorm ? o.rmsNormEps : -1, collection: kv, layerIdx: 0 }, [T, qkvN], o.useQkNorm);
  model.blocks.forEach((b, layerIdx) => {
    const l = w.layers[layerIdx], a = b.attn.opts;
    const kPool = kv.cache.keys(layerIdx), vPool = kv.cache.values(layerIdx);
    const attnInts = attentionArgs({ nHeads: a.numAttentionHeads, nKvHeads: a.numKeyValueHeads, headDim: a.headDim, scale: a.scale,
      mask: b.attn.mask, collection: kv, layerIdx, variant: 'auto' }, [T, qDim]);
    n.rmsNorm(h, l.inputNorm, x, T, H, c.rmsNormEps, 0); // x [T, H]
    n.sgemm(x, l.qkv, l.qkvBias, qkv, T, qkvN, H, 0, 0); // [T, qDim + 2 kvDim]
    n.ropeSplitStore(qkv, q, kPool, vPool, tables.cos, tables.sin, l.qNorm, l.kNorm, ropeInts, kv.rowOffsets, kv.startPositions,
      kv.pageTable, a.useQkNorm ? a.rmsNormEps : -1); // q [T, qDim]; K, V into the pages
    n.flashAttention(q, attn, kPool, vPool, kv.rowOffsets, kv.startPositions, kv.numNewTokens, kv.pageTable, attnInts, a.scale); // [T, qDim]
    n.sgemm(attn, l.o, l.oBias, h, T, H, qDim, 0, 0, 1); // h += attn · o (+ bias)
    n.rmsNorm(h, l.postNorm, x, T, H, c.rmsNormEps, 0); // x [T, H]
    n.swiglu(x, l.gate, l.up, l.down, l.gateBias, l.upBias, l.downBias, h, h, T, H, I); // h += mlp(x)
  });
  const R = logitRows ? logitRows.length : T;
  const picked = rows(s, 'x', R * H); // [R, H]
  if (logitRows) for (let r = 0; r < R; r++) picked.set(h.subarray(logitRows[r] * H, logitRows[r] * H + H), r * H);
  n.rmsNorm(logitRows ? picked : h, w.finalNorm, picked, R, H, c.rmsNormEps, 0); // [R, H]
  const logits = new Float32Array(R * V);
  n.sgemm(picked, w.lmHead, null, logits, R, V, H, 0, 1); // [R, vocab] = x · lmHeadᵀ
  return tf.tensor2d(logits, [R, V]);
}
