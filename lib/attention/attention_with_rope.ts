import * as tf from '@tensorflow/tfjs';
import { flashAttentionRaggedPaged, ropeSplitStoreRagged } from '../../kernels/ops.js';
import type { RopeSplitStoreRaggedAttrs } from '../../kernels/kernel_names.js';
import { ropeSplitReference, storeKvReference } from '../../kernels/reference/RopeSplitStoreRagged.js';
import { headRmsNorm, splitQkv } from '../../kernels/reference/rope.js';
import { check } from '../errors.js';
import type { PagedKVCollection } from '../kv_cache/collection.js';
import type { RopeTables } from '../rope/rope_tables.js';
import { RotaryEmbedding, ropeTablesOf } from '../rope/rotary_embedding.js';
import type { ShardingStrategy } from '../sharding/strategy.js';
import { shardLayer } from '../sharding/shard_layer.js';
import type { DevicePlacement, MaskSpec } from '../types.js';
import { layerConfig, argsFromConfig } from './config.js';
import { type AddWeight, type Initializer, Linear, type LinearCls, type LinearLike } from './linear.js';
import { isQuantized, qkvInputScale, qkvWeightScale, qkvWeightScale2, quantOf } from './quant_layer.js';
import { QuantLinear, type ProjectionQuant } from './quant_linear.js';
import { type AttentionWithRopeArgs, type ResolvedArgs, resolveArgs } from './options.js';
import { attentionPadded, ropePadded } from './padded.js';
import { validateRaggedCall } from './validate_call.js';
import { setQuantHfWeights } from './quant_layer.js';
import { setHfWeights, type HfWeights } from './weights.js';

const W = 'AttentionWithRope';

/**
 * Attention with rotary position embeddings, grouped-query heads and a paged KV cache: the
 * reference's `AttentionWithRope` as a tfjs layer.
 *
 * Two ways to call it:
 * - `callRagged(layerIdx, hidden [T, hidden], kv, freqsCis?, rowOffsets?)`: packed rows of a ragged
 *   batch over the paged cache (prefill, decode, chunked prefill mixed).
 * - `apply(x [batch, seq, hidden])`: padded rows, no cache, mask within each row; for
 *   `tf.sequential`, functional models and `model.fit`.
 *
 * @example
 * const rope = new RotaryEmbedding({ headDim: 16, theta: 10000, maxSeqLen: 256 });
 * const attn = new AttentionWithRope({ rope, numAttentionHeads: 4, numKeyValueHeads: 2, hiddenSize: 64,
 *   kvParams: { nKvHeads: 2, headDim: 16, pageSize: 16, numLayers: 1, numPages: 32 } });
 * const cache = new PagedKVCache(attn.kvParams);
 * cache.addSequence(0); cache.addSequence(1);
 * const kv = cache.fetch([0, 1], [5, 3]);              // prefill 5 and 3 tokens
 * const y = attn.callRagged(0, tf.randomNormal([8, 64]), kv); // [8, 64]
 * cache.step(kv);
 */
export class AttentionWithRope extends tf.layers.Layer {
  static className = 'AttentionWithRope';
  private resolved: ResolvedArgs;
  /** The resolved options (read-only; `useLinearClass` replaces the object rather than mutating it). */
  get opts(): ResolvedArgs { return this.resolved; }
  qProj: LinearLike | null = null;
  kProj: LinearLike | null = null;
  vProj: LinearLike | null = null;
  /** Present with stackedQkv instead of q/k/v projections. */
  qkvProj: LinearLike | null = null;
  oProj: LinearLike | null = null;
  qNormWeight: tf.LayerVariable | null = null;
  kNormWeight: tf.LayerVariable | null = null;

  constructor(args: AttentionWithRopeArgs) {
    super({ name: args?.name, trainable: args?.trainable ?? true, dtype: 'float32', inputShape: args?.inputShape ?? undefined,
      batchInputShape: args?.batchInputShape ?? undefined });
    this.resolved = resolveArgs(args);
    // Weights exist from construction, named `<layer name>/<weight>` whether the layer is first
    // used through apply, callRagged or loadLayersModel: saved and loaded names always match.
    this.build([null, this.opts.hiddenSize]);
  }

  get rope(): RotaryEmbedding { return this.opts.rope; }
  get shardingStrategy(): ShardingStrategy { return this.opts.shardingStrategy; }
  get kvParams() { return this.opts.kvParams; }
  get headDim(): number { return this.opts.headDim; }
  get qDim(): number { return this.opts.numAttentionHeads * this.opts.headDim; }
  get kvDim(): number { return this.opts.numKeyValueHeads * this.opts.headDim; }
  get mask(): MaskSpec {
    return { variant: this.opts.maskVariant, window: this.opts.slidingWindow, chunk: this.opts.chunkSize };
  }
  /**
   * q/k/v weight scales concatenated (per-tensor broadcast to `[rows, 1]`; rowwise `[rows, 1]`; block
   * scales stacked), or null without quantConfig. See lib/attention/quant_layer.ts.
   */
  get qkvWeightScale(): tf.Tensor | null { this.ensureBuilt(); return qkvWeightScale(this); }
  /** Max of the q/k/v static input scales (scalar); null when activations are quantized dynamically or not at all. */
  get qkvInputScale(): tf.Tensor | null { this.ensureBuilt(); return qkvInputScale(this); }
  /** NVFP4: max of the q/k/v global weight scales (`weight_scale_2`, scalar); null otherwise. */
  get qkvWeightScale2(): tf.Tensor | null { this.ensureBuilt(); return qkvWeightScale2(this); }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const last = shape[shape.length - 1];
    check(last === null || last === this.opts.hiddenSize, W, () => `input's last dim (${last}) must equal hiddenSize (${this.opts.hiddenSize})`);
    if (this.built) return;
    const o = this.opts;
    const addWeight = (name: string, shape: number[], init: Initializer, trainable = true) =>
      this.addWeight(`${this.name}/${name}`, shape, 'float32', init, undefined, trainable);
    const addTypedWeight = (name: string, shape: number[], dtype: 'float32' | 'int32', init: tf.serialization.Serializable, trainable: boolean) =>
      this.addWeight(`${this.name}/${name}`, shape, dtype, init as Initializer, undefined, trainable);
    const quant: ProjectionQuant | undefined = isQuantized(this) ? { quant: o.quantConfig, dtype: o.dtype } : undefined;
    const make = (name: string, outDim: number, useBias: boolean, inDim = o.hiddenSize) => {
      const opts = { name, inDim, outDim, useBias, addWeight, addTypedWeight, quant, stacked: name === 'qkv_proj' };
      const p = quant && o.linearCls === Linear ? new QuantLinear({ ...opts, quant }) : new o.linearCls(opts);
      check(!quant || quantOf(p) !== null, W, () =>
        `linearCls ${o.linearCls.name} does not support packed weights (quantConfig ${JSON.stringify(o.quantConfig?.format ?? null)}, dtype '${o.dtype}'); use Linear or LoRALinear`);
      return p;
    };
    if (o.stackedQkv) this.qkvProj = make('qkv_proj', this.qDim + 2 * this.kvDim, o.hasBias);
    else {
      this.qProj = make('q_proj', this.qDim, o.hasBias);
      this.kProj = make('k_proj', this.kvDim, o.hasBias);
      this.vProj = make('v_proj', this.kvDim, o.hasBias);
    }
    this.oProj = make('o_proj', o.hiddenSize, o.hasOutputBias, this.qDim);
    if (o.useQkNorm) {
      this.qNormWeight = addWeight('q_norm/weight', [o.headDim], tf.initializers.ones());
      this.kNormWeight = addWeight('k_norm/weight', [o.headDim], tf.initializers.ones());
    }
    this.built = true;
  }

  private ensureBuilt(): void { if (!this.built) this.build([null, this.opts.hiddenSize]); }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const last = shape[shape.length - 1];
    check(last === null || last === this.opts.hiddenSize, W, () => `input's last dim (${last}) must equal hiddenSize (${this.opts.hiddenSize})`);
    return inputShape;
  }

  /** Clamps q/k/v projection outputs to ±clipQkv when clipQkv targets activations (OLMo). */
  private clipActivations(y: tf.Tensor2D): tf.Tensor2D {
    const { clipQkv, clipQkvTarget } = this.opts;
    return clipQkv !== null && clipQkvTarget === 'activations' ? tf.clipByValue(y, -clipQkv, clipQkv) : y;
  }

  /**
   * q `[T, qDim]`, k and v `[T, kvDim]` projections of rows x `[T, hidden]`, clipped as configured
   * (no concat: what the no-cache training path wants).
   */
  projectQkvParts(x: tf.Tensor2D): [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D] {
    return tf.tidy(() => {
      const o = this.opts;
      if (this.qkvProj) return splitQkv(this.projectQkv(x), o.numAttentionHeads, o.numKeyValueHeads, o.headDim);
      const clipW = (p: LinearLike) => o.clipQkv !== null && o.clipQkvTarget === 'weights'
        ? tf.clipByValue(p.kernel.read(), -o.clipQkv, o.clipQkv) as tf.Tensor2D : undefined;
      const part = (p: LinearLike) => this.clipActivations(p.apply(x, clipW(p)));
      return [part(this.qProj!), part(this.kProj!), part(this.vProj!)];
    });
  }

  /** Packed q, k, v projections of rows x `[T, hidden]` -> `[T, qDim + 2 kvDim]`, clipped as configured. */
  projectQkv(x: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => this.qkvProj ? this.clipActivations(this.qkvProj.apply(x))
      : tf.concat(this.projectQkvParts(x), 1)); // [T, qDim + 2 kvDim]
  }

  /** The padded, no-cache forward: x `[batch, seq, hidden]` -> `[batch, seq, hidden]`. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor3D;
    check(x.rank === 3, W, () => `padded input must be [batch, seq, hidden], got shape [${x.shape}]`);
    const [batch, seq, hidden] = x.shape;
    check(hidden === this.opts.hiddenSize, W, () => `input hidden size (${hidden}) must equal hiddenSize (${this.opts.hiddenSize})`);
    const tables = this.rope.tables();
    check(seq <= tables.maxPositions, W, () => `sequence length (${seq}) exceeds the rope table's ${tables.maxPositions} positions`);
    this.ensureBuilt();
    return tf.tidy(() => {
      const o = this.opts;
      const qkv = this.projectQkv(x.reshape([batch * seq, hidden])); // [B*S, qDim + 2 kvDim]
      let [q, k, v] = tf.split(qkv, [this.qDim, this.kvDim, this.kvDim], 1) as tf.Tensor2D[];
      if (o.useQkNorm) [q, k] = this.qkNorm(q, k);
      [q, k] = ropePadded(q, k, batch, seq, tables);
      const attn = attentionPadded(q, k, v, batch, seq, {
        nHeads: o.numAttentionHeads, nKvHeads: o.numKeyValueHeads, headDim: o.headDim, scale: o.scale, mask: this.mask, tables,
      }); // [B*S, qDim]
      return this.oProj!.apply(attn).reshape([batch, seq, hidden]);
    });
  }

  private qkNorm(q: tf.Tensor2D, k: tf.Tensor2D): [tf.Tensor2D, tf.Tensor2D] {
    const { headDim, rmsNormEps } = this.opts;
    return [headRmsNorm(q, this.qNormWeight!.read() as tf.Tensor1D, headDim, rmsNormEps),
      headRmsNorm(k, this.kNormWeight!.read() as tf.Tensor1D, headDim, rmsNormEps)];
  }

  /**
   * Ragged call over the paged cache: projects the packed rows, applies qk-norm and RoPE,
   * stores K/V into the step's pages, attends, projects out.
   * @param layerIdx which layer of the cache to use (< kvParams.numLayers)
   * @param hidden `[totalTokens, hiddenSize]`, sequences packed one after another
   * @param kv the step's view from `PagedKVCache.fetch`
   * @param freqsCis rope tables: a RotaryEmbedding or a `[positions, rotaryDim]` tensor (default: this.rope)
   * @param inputRowOffsets `[batch + 1]` int32 row offsets (default: kv.rowOffsets; must agree with it)
   * @returns `[totalTokens, hiddenSize]`
   */
  callRagged(layerIdx: number, hidden: tf.Tensor2D, kv: PagedKVCollection,
    freqsCis?: RotaryEmbedding | tf.Tensor2D, inputRowOffsets?: tf.Tensor1D | Int32Array | number[]): tf.Tensor2D {
    const attn = this.attendRagged(layerIdx, hidden, kv, freqsCis, inputRowOffsets); // [T, qDim]
    if (kv.totalTokens === 0) { attn.dispose(); return tf.zeros([0, this.opts.hiddenSize]); }
    const y = tf.tidy(() => this.oProj!.apply(attn) as tf.Tensor2D); // [T, hidden]
    attn.dispose();
    return y;
  }

  /**
   * `callRagged` without the output projection: the attention output `[T, qDim]` (heads
   * concatenated), K/V stored. Tensor-parallel shards apply `oProj` to row chunks of it so each
   * chunk's readback overlaps the next chunk's compute (lib/sharding/worker.ts).
   *
   * @example
   * const attn = layer.attendRagged(0, hidden, kv); // [T, qDim]
   * const y = layer.oProj!.apply(attn) as tf.Tensor2D; // [T, hidden], as callRagged
   */
  attendRagged(layerIdx: number, hidden: tf.Tensor2D, kv: PagedKVCollection,
    freqsCis?: RotaryEmbedding | tf.Tensor2D, inputRowOffsets?: tf.Tensor1D | Int32Array | number[]): tf.Tensor2D {
    const tables = this.prepareRagged(layerIdx, hidden, kv, freqsCis, inputRowOffsets);
    if (kv.totalTokens === 0) return tf.zeros([0, this.qDim]);
    return tf.tidy(() => {
      const o = this.opts;
      const q = this.ropeAndStore(layerIdx, hidden, kv, tables); // [T, qDim]
      return flashAttentionRaggedPaged(q, {
        nHeads: o.numAttentionHeads, nKvHeads: o.numKeyValueHeads, headDim: o.headDim, scale: o.scale, mask: this.mask,
        collection: kv, layerIdx, variant: 'auto',
      }); // [T, qDim]
    });
  }

  /**
   * The ragged call's projection, qk-norm, RoPE and cache store with Q discarded: how a
   * speculative-decoding draft model fills its cache from the target model's hidden states.
   */
  materializeKvFromHidden(layerIdx: number, hidden: tf.Tensor2D, kv: PagedKVCollection,
    freqsCis?: RotaryEmbedding | tf.Tensor2D, inputRowOffsets?: tf.Tensor1D | Int32Array | number[]): void {
    const tables = this.prepareRagged(layerIdx, hidden, kv, freqsCis, inputRowOffsets);
    if (kv.totalTokens === 0) return;
    tf.tidy(() => { this.ropeAndStore(layerIdx, hidden, kv, tables); });
  }

  private prepareRagged(layerIdx: number, hidden: tf.Tensor2D, kv: PagedKVCollection,
    freqsCis: RotaryEmbedding | tf.Tensor2D | undefined, rowOffsets: tf.Tensor1D | Int32Array | number[] | undefined): RopeTables {
    const tables = ropeTablesOf(freqsCis ?? this.rope, this.headDim, this.rope.interleaved);
    validateRaggedCall(this, layerIdx, hidden, kv, tables, rowOffsets);
    this.ensureBuilt();
    return tables;
  }

  /** Projection, qk-norm, RoPE and store; returns rotated q `[T, qDim]`. */
  private ropeAndStore(layerIdx: number, hidden: tf.Tensor2D, kv: PagedKVCollection, tables: RopeTables): tf.Tensor2D {
    const o = this.opts;
    const qkv = this.projectQkv(hidden); // [T, qDim + 2 kvDim]
    const attrs: RopeSplitStoreRaggedAttrs = {
      nHeads: o.numAttentionHeads, nKvHeads: o.numKeyValueHeads, headDim: o.headDim, rope: tables,
      qkNormEps: o.useQkNorm ? o.rmsNormEps : -1, collection: kv, layerIdx,
    };
    const qw = this.qNormWeight?.read() as tf.Tensor1D | undefined, kw = this.kNormWeight?.read() as tf.Tensor1D | undefined;
    if (o.fuseRopeAndStore) return ropeSplitStoreRagged(qkv, attrs, qw, kw);
    const { q, k, v } = ropeSplitReference(qkv, attrs, qw, kw); // separate split, norm and rope ops
    storeKvReference(k, v, attrs); // separate store op
    return q;
  }

  /**
   * Reference-layout q/k/v weight `[qDim + 2 kvDim, hidden]` (weights clipped when clipQkv targets
   * weights). Each access builds a new tensor that the caller owns: dispose it (or read it inside
   * `tf.tidy`), e.g. `const w = layer.wqkv; ...; w.dispose();`.
   */
  get wqkv(): tf.Tensor2D {
    this.ensureBuilt();
    return tf.tidy(() => {
      const { clipQkv, clipQkvTarget } = this.opts;
      const read = (p: LinearLike) => quantOf(p)?.dequantized() ?? p.kernel.read(); // [hidden, out]
      const kernel = this.qkvProj ? read(this.qkvProj)
        : tf.concat([read(this.qProj!), read(this.kProj!), read(this.vProj!)], 1); // [hidden, qkv]
      const clipped = clipQkv !== null && clipQkvTarget === 'weights' ? tf.clipByValue(kernel, -clipQkv, clipQkv) : kernel;
      return clipped.transpose() as tf.Tensor2D;
    });
  }

  /** q, k and v biases concatenated `[qDim + 2 kvDim]`, or null without hasBias; a new tensor the caller disposes, as `wqkv`. */
  get wqkvBias(): tf.Tensor1D | null {
    this.ensureBuilt();
    if (!this.opts.hasBias) return null;
    if (this.qkvProj) return this.qkvProj.bias!.read().clone() as tf.Tensor1D;
    return tf.concat([this.qProj!.bias!.read(), this.kProj!.bias!.read(), this.vProj!.bias!.read()]) as tf.Tensor1D;
  }

  /** Loads Hugging Face tensors (`q_proj.weight` `[out, in]`, ..., `q_norm.weight`); see weights.ts. */
  setHfWeights(weights: HfWeights): void {
    this.ensureBuilt();
    if (isQuantized(this)) setQuantHfWeights(this, weights);
    else setHfWeights(this, weights);
  }

  /**
   * Names `cls` as the projections' class in this layer's options (and so in its config), e.g.
   * after `applyLoRA` replaced the projections with LoRA ones. The options object is replaced.
   */
  useLinearClass(cls: LinearCls): void {
    this.resolved = { ...this.resolved, linearCls: cls };
  }

  /**
   * Replaces each projection p of this built layer by `wrap(name, p, addWeight)` (name `q_proj` ..
   * `o_proj`; addWeight adds a float32 weight to this layer under the name given), e.g. LoRA
   * adapters around the kept kernels (applyLoRA). Call useLinearClass after to name the new class.
   */
  replaceProjections(wrap: (name: string, p: LinearLike, addWeight: AddWeight) => LinearLike): void {
    this.ensureBuilt();
    const addWeight: AddWeight = (name, shape, init, trainable) => this.addWeight(name, shape, 'float32', init, undefined, trainable);
    if (this.qProj) this.qProj = wrap('q_proj', this.qProj, addWeight);
    if (this.kProj) this.kProj = wrap('k_proj', this.kProj, addWeight);
    if (this.vProj) this.vProj = wrap('v_proj', this.vProj, addWeight);
    if (this.qkvProj) this.qkvProj = wrap('qkv_proj', this.qkvProj, addWeight);
    if (this.oProj) this.oProj = wrap('o_proj', this.oProj, addWeight);
  }

  /**
   * The projections this layer has, under their Hugging Face names (`q_proj`, `k_proj`, `v_proj`,
   * or `qkv_proj` when stacked, and `o_proj`), in that order: the one name table that LoRA, the
   * adapter exporter and other per-projection loops read.
   * @example
   * for (const [name, p] of layer.namedProjections()) console.log(name, p.constructor.name);
   */
  namedProjections(): [string, LinearLike][] {
    const all: [string, LinearLike | null | undefined][] = [
      ['q_proj', this.qProj], ['k_proj', this.kProj], ['v_proj', this.vProj], ['qkv_proj', this.qkvProj], ['o_proj', this.oProj],
    ];
    return all.filter((e): e is [string, LinearLike] => e[1] != null);
  }

  /** Tensor-parallel sharding is built by the sharding module. */
  shard(devices: DevicePlacement[]): AttentionWithRope[] {
    return shardLayer(this, devices);
  }

  /** Frees the weights; also for a layer only ever called through callRagged (never `apply`d). */
  override dispose(): ReturnType<tf.layers.Layer['dispose']> {
    this.ensureBuilt();
    const self = this as unknown as { _refCount: number | null };
    if (self._refCount === null) self._refCount = 1;
    return super.dispose();
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...layerConfig(this.opts) };
  }

  static override fromConfig<T extends tf.serialization.Serializable>(
    cls: tf.serialization.SerializableConstructor<T>, config: tf.serialization.ConfigDict): T {
    return new cls(argsFromConfig(config));
  }
}

tf.serialization.registerClass(AttentionWithRope);
