/**
 * A Llama-family causal language model built from layers: token embedding, N decoder blocks
 * (RMSNorm, AttentionWithRope, SwiGLU MLP), a final norm and a tied or untied LM head.
 *
 * Two ways to run it, on the same weights:
 * - `forwardRagged(ids, kv)`: packed ragged rows on the paged KV cache (generation, continuous batching);
 * - `toLayersModel()`: a `tf.LayersModel` over padded `[B, S]` ids, no cache (predict / fit).
 */
import * as tf from '@tensorflow/tfjs';
import { check } from '../lib/errors.js';
import type { PagedKVCollection } from '../lib/kv_cache/collection.js';
import { PagedKVCache } from '../lib/kv_cache/paged_kv_cache.js';
import type { KVCacheParams } from '../lib/kv_cache/params.js';
import type { LayerQuant } from '../lib/loaders/hf_quantization.js';
import { resolveQuantConfig } from '../lib/attention/quant_config.js';
import { RotaryEmbedding } from '../lib/rope/rotary_embedding.js';
import type { DecoderConfig } from './config.js';
import { fusedForwardRagged, fusedForwardSupported } from './fused_forward.js';
import { disposeFusedWeights } from './fused_weights.js';
import { nativeForwardAddon, nativeForwardRagged } from './native_forward.js';
import { disposeNativeWeights } from './native_weights.js';
import { DecoderBlock } from './layers/decoder_block.js';
import { LMHead } from './layers/lm_head.js';
import { TokenEmbedding } from './layers/token_embedding.js';
import { RMSNorm } from './layers/norm.js';

export interface ModelBuildOptions {
  /** Tokens per KV page (default 16). */
  pageSize?: number;
  /** Pages in the KV pool shared by all sequences (default: 4096 tokens' worth). */
  numPages?: number;
  /** Positions RoPE tables cover (default min(max_position_embeddings, 32768)). */
  maxSeqLen?: number;
  /**
   * Packed weights (set by loadPretrained from config.json's quantization_config / torch_dtype):
   * q/k/v/o and the MLP as QuantLinear, the untied LM head too when `lmHead`.
   */
  quant?: ModelQuant;
}

/** How a model's projections are stored: lib/loaders/hf_quantization.ts reads it from a checkpoint. */
export interface ModelQuant extends LayerQuant {
  /** The untied LM head is packed as well (the checkpoint stores it quantized / in half precision). */
  lmHead: boolean;
}

/** Where a Hugging Face weight goes: a variable, transposed from `[out, in]` when `transpose`. */
export interface WeightTarget {
  variable: tf.LayerVariable;
  transpose: boolean;
}

function lmHeadQuant(c: DecoderConfig, q: ModelQuant | undefined) {
  if (!q?.lmHead || c.tieWordEmbeddings) return undefined;
  return { quant: q.quantConfig && resolveQuantConfig(q.quantConfig, [{ name: 'lm_head', inDim: c.hiddenSize, outDim: c.vocabSize }]), dtype: q.dtype };
}

/**
 * @example
 * const { model } = await loadPretrained('spec/fixtures/models/tiny_llama');
 * const cache = model.createCache();
 * cache.addSequence(0);
 * const kv = cache.fetch([0], [3]);
 * const logits = model.forwardRagged(new Int32Array([1, 17, 42]), kv); // [3, vocab]
 * cache.step(kv);
 */
export class DecoderForCausalLM {
  readonly rope: RotaryEmbedding;
  readonly embed: TokenEmbedding;
  readonly blocks: DecoderBlock[];
  readonly norm: RMSNorm;
  readonly lmHead: LMHead;
  readonly kvParams: Required<Pick<KVCacheParams, 'nKvHeads' | 'headDim' | 'pageSize' | 'numLayers' | 'numPages'>>;

  constructor(readonly config: DecoderConfig, options: ModelBuildOptions = {}) {
    const c = config;
    const maxSeqLen = options.maxSeqLen ?? Math.min(c.maxPositionEmbeddings, 32768);
    this.rope = RotaryEmbedding.fromHfConfig(c.raw, { maxSeqLen });
    const pageSize = options.pageSize ?? 16;
    this.kvParams = {
      nKvHeads: c.numKeyValueHeads,
      headDim: c.headDim,
      pageSize,
      numLayers: c.numHiddenLayers,
      numPages: options.numPages ?? Math.ceil(4096 / pageSize),
    };
    this.embed = new TokenEmbedding({ vocabSize: c.vocabSize, hiddenSize: c.hiddenSize, name: 'embed_tokens' });
    this.blocks = [];
    for (let i = 0; i < c.numHiddenLayers; i++) this.blocks.push(new DecoderBlock(c, i, this.rope, this.kvParams, options.quant));
    const affine = c.norm === 'rms';
    this.norm = new RMSNorm({ size: c.hiddenSize, eps: c.rmsNormEps, center: !affine, affine, name: 'norm' });
    this.lmHead = new LMHead({
      hiddenSize: c.hiddenSize, vocabSize: c.vocabSize, tiedTo: c.tieWordEmbeddings ? this.embedTable : undefined, name: 'lm_head',
      quant: lmHeadQuant(c, options.quant),
    });
  }

  /** The embedding table `[vocab, hidden]`. */
  get embedTable(): tf.LayerVariable {
    return this.embed.table;
  }

  /** A paged KV cache shaped for this model (`options` override the build-time page settings). */
  createCache(options: { numPages?: number; pageSize?: number } = {}): PagedKVCache {
    return new PagedKVCache({ ...this.kvParams, ...options });
  }

  /**
   * One step of a ragged batch: `ids` are the new tokens of every sequence of `kv`, packed in
   * its row order. Returns logits `[R, vocab]` of the rows in `logitRows` (default: every row).
   * The caller commits the step with `kv.cache.step(kv)` afterwards.
   */
  forwardRagged(ids: Int32Array | readonly number[], kv: PagedKVCollection, logitRows?: Int32Array | readonly number[]): tf.Tensor2D {
    check(ids.length === kv.totalTokens, 'DecoderForCausalLM.forwardRagged', () =>
      `ids.length (${ids.length}) must equal kv.totalTokens (${kv.totalTokens})`);
    const vocab = this.config.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i];
      check(Number.isInteger(t) && t >= 0 && t < vocab, 'DecoderForCausalLM.forwardRagged', () => `ids[${i}] (${t}) must be in [0, ${vocab})`);
    }
    if (logitRows) {
      for (let i = 0; i < logitRows.length; i++) {
        const r = logitRows[i];
        check(Number.isInteger(r) && r >= 0 && r < ids.length, 'DecoderForCausalLM.forwardRagged', () => `logitRows[${i}] (${r}) must be in [0, ${ids.length})`);
      }
    }
    // Whole-model kernels where the backend has them (models/fused_forward.ts; cpu: the addon, models/native_forward.ts), else the layers.
    const addon = ids.length > 0 ? nativeForwardAddon(this, kv) : null;
    if (addon) return nativeForwardRagged(this, addon, Int32Array.from(ids), kv, logitRows ? Int32Array.from(logitRows) : undefined);
    if (ids.length > 0 && fusedForwardSupported(this)) {
      return fusedForwardRagged(this, Int32Array.from(ids), kv, logitRows ? Int32Array.from(logitRows) : undefined);
    }
    return tf.tidy(() => {
      let h = tf.gather(this.embedTable.read(), tf.tensor1d(Int32Array.from(ids), 'int32')) as tf.Tensor2D; // [T, hidden]
      for (const block of this.blocks) h = block.callRagged(h, kv); // [T, hidden]
      if (logitRows) h = tf.gather(h, tf.tensor1d(Int32Array.from(logitRows), 'int32')); // [R, hidden]
      return this.lmHead.call(this.norm.call(h)) as tf.Tensor2D; // [R, vocab]
    });
  }

  /**
   * A tf.LayersModel over padded ids `[B, S]` (int32) -> logits `[B, S, vocab]`, causal per row,
   * no cache. Shares this model's weights: training it trains this model.
   */
  toLayersModel(): tf.LayersModel {
    const ids = tf.input({ shape: [null], dtype: 'int32', name: 'input_ids' });
    let h = this.embed.apply(ids) as tf.SymbolicTensor; // [B, S, hidden]
    for (const block of this.blocks) h = block.applySymbolic(h);
    const normed = this.norm.apply(h) as tf.SymbolicTensor; // [B, S, hidden]
    // A tied head is the embedding layer applied a second time (a shared layer saves and loads tied).
    const head = this.lmHead.tied ? this.embed : this.lmHead;
    const logits = head.apply(normed) as tf.SymbolicTensor; // [B, S, vocab]
    return tf.model({ inputs: ids, outputs: logits, name: `${this.config.modelType}_for_causal_lm` });
  }

  /**
   * Hugging Face names and shapes of every weight this model loads (HF layout), e.g.
   * `model.layers.0.self_attn.q_proj.weight: [nHeads * headDim, hidden]`.
   */
  weightSpecs(): Map<string, number[]> {
    const c = this.config;
    const H = c.hiddenSize, I = c.intermediateSize;
    const s = new Map<string, number[]>([['model.embed_tokens.weight', [c.vocabSize, H]]]);
    for (let i = 0; i < c.numHiddenLayers; i++) {
      const p = `model.layers.${i}.`;
      for (const [n, shape] of Object.entries(this.attentionSpecs())) s.set(`${p}self_attn.${n}`, shape);
      s.set(`${p}mlp.gate_proj.weight`, [I, H]).set(`${p}mlp.up_proj.weight`, [I, H]).set(`${p}mlp.down_proj.weight`, [H, I]);
      if (c.mlpBias) s.set(`${p}mlp.gate_proj.bias`, [I]).set(`${p}mlp.up_proj.bias`, [I]).set(`${p}mlp.down_proj.bias`, [H]);
      if (c.norm === 'rms') s.set(`${p}input_layernorm.weight`, [H]).set(`${p}post_attention_layernorm.weight`, [H]);
    }
    if (c.norm === 'rms') s.set('model.norm.weight', [H]);
    if (!c.tieWordEmbeddings) s.set('lm_head.weight', [c.vocabSize, H]);
    return s;
  }

  /** Attention weight names (relative to `self_attn.`) and HF shapes of one layer. */
  attentionSpecs(): Record<string, number[]> {
    const c = this.config;
    const H = c.hiddenSize, qDim = c.numAttentionHeads * c.headDim, kvDim = c.numKeyValueHeads * c.headDim;
    const s: Record<string, number[]> = {
      'q_proj.weight': [qDim, H], 'k_proj.weight': [kvDim, H], 'v_proj.weight': [kvDim, H], 'o_proj.weight': [H, qDim],
    };
    if (c.qkvBias) Object.assign(s, { 'q_proj.bias': [qDim], 'k_proj.bias': [kvDim], 'v_proj.bias': [kvDim] });
    if (c.outputBias) s['o_proj.bias'] = [H];
    if (c.useQkNorm) Object.assign(s, { 'q_norm.weight': [c.headDim], 'k_norm.weight': [c.headDim] });
    return s;
  }

  /** Variables of every non-attention weight, by HF name. */
  weightTargets(): Map<string, WeightTarget> {
    const t = new Map<string, WeightTarget>([['model.embed_tokens.weight', { variable: this.embedTable, transpose: false }]]);
    this.blocks.forEach((b, i) => {
      const p = `model.layers.${i}.`;
      if (!b.mlp.packed) t.set(`${p}mlp.gate_proj.weight`, { variable: b.mlp.gateKernel, transpose: true });
      if (!b.mlp.packed) t.set(`${p}mlp.up_proj.weight`, { variable: b.mlp.upKernel, transpose: true });
      if (!b.mlp.packed) t.set(`${p}mlp.down_proj.weight`, { variable: b.mlp.downKernel, transpose: true });
      if (b.mlp.gateBias) t.set(`${p}mlp.gate_proj.bias`, { variable: b.mlp.gateBias, transpose: false });
      if (b.mlp.upBias) t.set(`${p}mlp.up_proj.bias`, { variable: b.mlp.upBias, transpose: false });
      if (b.mlp.downBias) t.set(`${p}mlp.down_proj.bias`, { variable: b.mlp.downBias, transpose: false });
      if (b.inputNorm.weight) t.set(`${p}input_layernorm.weight`, { variable: b.inputNorm.weight, transpose: false });
      if (b.postNorm.weight) t.set(`${p}post_attention_layernorm.weight`, { variable: b.postNorm.weight, transpose: false });
    });
    if (this.norm.weight) t.set('model.norm.weight', { variable: this.norm.weight, transpose: false });
    if (!this.lmHead.tied && !this.lmHead.packed) t.set('lm_head.weight', { variable: this.lmHead.weight, transpose: false });
    return t;
  }

  /** Every trainable weight (the tied head adds none). */
  get trainableWeights(): tf.LayerVariable[] {
    return [...this.embed.trainableWeights, ...this.blocks.flatMap((b) => b.trainableWeights), ...this.norm.trainableWeights, ...this.lmHead.trainableWeights];
  }

  /** Frees the weights and the RoPE tables. */
  dispose(): void {
    disposeFusedWeights(this);
    disposeNativeWeights(this);
    for (const v of this.trainableWeights) v.dispose();
    this.rope.dispose();
  }
}
