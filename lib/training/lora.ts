/**
 * LoRA adapters for AttentionWithRope's projections: y = x·W (+b) + (alpha/r)·(dropout(x)·A)·B,
 * A `[in, r]` (small random), B `[r, out]` (zeros, so a fresh adapter changes nothing). The base
 * kernel is frozen (`trainable: false`); only A and B train. `merge()` folds the adapter into W
 * (serving at the base cost), `split()` takes it back out.
 *
 * Two ways in:
 * - `linearCls: loraLinearClass({ rank: 8, alpha: 16, targets: ['q', 'v'] })` when building a layer;
 *   the class is registered under a name (`lora(r=8,alpha=16,dropout=0,targets=q+v)`) that
 *   getConfig writes and fromConfig resolves, in any process that imported this module.
 * - `applyLoRA(layer, options)` on a built layer (e.g. a loaded checkpoint's), wrapping its weights.
 *
 * With `clipQkv` on weights, the clip applies to the base kernel and the adapter's delta is added
 * after it; merging then clips the merged kernel (the same numbers while |W + delta| <= clip).
 */
import * as tf from '@tensorflow/tfjs';
import { projectionMatMul } from '../../kernels/projection_matmul.js';
import type { AttentionWithRope } from '../attention/attention_with_rope.js';
import { type LinearCls, type LinearLike, type LinearOptions, registerLinearClass, registerLinearClassResolver } from '../attention/linear.js';
import { check, checkInt } from '../errors.js';
import { QuantLinear } from '../attention/quant_linear.js';

export type LoRATarget = 'q' | 'k' | 'v' | 'o' | 'qkv';
const TARGETS: readonly LoRATarget[] = ['q', 'k', 'v', 'o', 'qkv'];

export interface LoRAOptions {
  rank: number;
  /** Scale numerator: the delta is (alpha / rank)·A·B. Default: rank (scale 1). */
  alpha?: number;
  /** Dropout on the adapter's input while `loraTraining(layer, true)`. Default 0. */
  dropout?: number;
  /** Which projections get an adapter (q, k, v, o; qkv for a stacked layer). Default ['q', 'v']. */
  targets?: LoRATarget[];
  /** Freeze the base kernel and bias (default true). */
  freezeBase?: boolean;
}

type Resolved = Required<LoRAOptions>;

function resolve(o: LoRAOptions): Resolved {
  const W = 'LoRA';
  checkInt(o.rank, W, 'rank', 1);
  const r: Resolved = { rank: o.rank, alpha: o.alpha ?? o.rank, dropout: o.dropout ?? 0, targets: o.targets ?? ['q', 'v'], freezeBase: o.freezeBase ?? true };
  check(Number.isFinite(r.alpha) && r.alpha > 0, W, () => `alpha must be > 0, got ${o.alpha}`);
  check(r.dropout >= 0 && r.dropout < 1, W, () => `dropout must be in [0, 1), got ${o.dropout}`);
  check(Array.isArray(r.targets) && r.targets.length > 0, W, () => `targets must be a non-empty list of ${TARGETS.join(', ')}, got ${JSON.stringify(o.targets)}`);
  for (const t of r.targets) check(TARGETS.includes(t), W, () => `targets has '${t}', must be one of ${TARGETS.join(', ')}`);
  return r;
}

/** Projection kind from a layer weight name: 'q_proj' -> 'q'. */
function targetOf(name: string): LoRATarget | undefined {
  const m = /(qkv|q|k|v|o)_proj$/.exec(name);
  return m ? (m[1] as LoRATarget) : undefined;
}

/** A projection with an optional LoRA adapter; a plain Linear when its projection is not a target. */
export class LoRALinear implements LinearLike {
  static readonly className = 'LoRALinear';
  readonly inDim: number;
  readonly outDim: number;
  readonly kernel: tf.LayerVariable;
  readonly bias: tf.LayerVariable | null;
  readonly loraA: tf.LayerVariable | null = null;
  readonly loraB: tf.LayerVariable | null = null;
  readonly scaling: number;
  readonly options: Resolved;
  /** Dropout runs only while true (see loraTraining). */
  training = false;
  /** True while the adapter is folded into the kernel. */
  merged = false;
  /** The packed base projection when the layer's weights are quantized (QLoRA): always frozen. */
  readonly base: QuantLinear | null = null;

  constructor(o: LinearOptions, lora: LoRAOptions, existing?: { kernel: tf.LayerVariable; bias: tf.LayerVariable | null; base?: QuantLinear | null }) {
    this.options = resolve(lora);
    this.inDim = o.inDim;
    this.outDim = o.outDim;
    this.scaling = this.options.alpha / this.options.rank;
    const baseTrainable = !this.options.freezeBase;
    if (existing?.base) this.base = existing.base;
    else if (o.quant && !existing) {
      check(o.addTypedWeight !== undefined, 'LoRALinear', () => 'a quantized base needs the layer\'s addTypedWeight');
      this.base = new QuantLinear({ ...o, addTypedWeight: o.addTypedWeight!, quant: o.quant });
    }
    this.kernel = this.base?.kernel ?? existing?.kernel ?? o.addWeight(`${o.name}/kernel`, [o.inDim, o.outDim], tf.initializers.glorotUniform({}), baseTrainable);
    this.bias = this.base ? this.base.bias : existing ? existing.bias : o.useBias ? o.addWeight(`${o.name}/bias`, [o.outDim], tf.initializers.zeros(), baseTrainable) : null;
    const target = targetOf(o.name);
    if (target && this.options.targets.includes(target)) {
      if (this.options.freezeBase || this.base) { this.kernel.trainable = false; if (this.bias) this.bias.trainable = false; }
      const r = this.options.rank;
      this.loraA = o.addWeight(`${o.name}/lora_A`, [o.inDim, r], tf.initializers.randomNormal({ stddev: 1 / Math.sqrt(o.inDim) }), true);
      this.loraB = o.addWeight(`${o.name}/lora_B`, [r, o.outDim], tf.initializers.zeros(), true);
    }
  }

  /** The adapter's delta scaling·A·B `[in, out]`, or null without an adapter. */
  delta(): tf.Tensor2D | null {
    if (!this.loraA) return null;
    return tf.tidy(() => tf.mul(tf.matMul(this.loraA!.read() as tf.Tensor2D, this.loraB!.read() as tf.Tensor2D), this.scaling) as tf.Tensor2D);
  }

  /** The kernel the projection applies: W, plus the delta unless merged. `[in, out]` */
  effectiveKernel(): tf.Tensor2D {
    if (this.base) return tf.tidy(() => { const d = this.delta(), w = this.base!.dequantized(); return d ? tf.add(w, d) as tf.Tensor2D : w; });
    const d = this.merged ? null : this.delta();
    if (!d) return (this.kernel.read() as tf.Tensor2D).clone();
    return tf.tidy(() => tf.add(this.kernel.read(), d) as tf.Tensor2D);
  }

  apply(x: tf.Tensor2D, kernelOverride?: tf.Tensor2D): tf.Tensor2D {
    return tf.tidy(() => {
      const y = this.base ? this.base.apply(x, kernelOverride)
        : projectionMatMul(x, kernelOverride ?? (this.kernel.read() as tf.Tensor2D), { bias: this.bias?.read() }); // [T, out]
      if (!this.loraA || this.merged) return y;
      const xin = this.training && this.options.dropout > 0 ? tf.dropout(x, this.options.dropout) : x;
      const low = projectionMatMul(xin as tf.Tensor2D, this.loraA.read() as tf.Tensor2D); // [T, r]
      return tf.add(y, tf.mul(projectionMatMul(low, this.loraB!.read() as tf.Tensor2D), this.scaling)) as tf.Tensor2D; // [T, out]
    });
  }

  /** Folds the adapter into the kernel: W <- W + scaling·A·B. */
  merge(): void {
    if (!this.loraA || this.merged) return;
    check(this.base === null, 'LoRALinear.merge', () => `cannot fold the adapter into packed weights (format '${this.base!.attrs.weightFormat}'); serve with the adapter on`);
    tf.tidy(() => { this.kernel.write(tf.add(this.kernel.read(), this.delta()!)); });
    this.merged = true;
  }

  /** Takes the adapter back out of the kernel: W <- W - scaling·A·B. */
  split(): void {
    if (!this.loraA || !this.merged) return;
    tf.tidy(() => { this.kernel.write(tf.sub(this.kernel.read(), this.delta()!)); });
    this.merged = false;
  }
}

/** The serialisable name of a configuration, e.g. `lora(r=8,alpha=16,dropout=0,targets=q+v)` (survives tfjs's case conversions). */
export function loraClassName(o: LoRAOptions): string {
  const r = resolve(o);
  return `lora(r=${r.rank},alpha=${r.alpha},dropout=${r.dropout},targets=${r.targets.join('+')}${r.freezeBase ? '' : ',train-base'})`;
}

function parseName(name: string): LoRAOptions | undefined {
  const m = /^lora\(r=(\d+),alpha=([\d.e+-]+),dropout=([\d.e+-]+),targets=([a-z+]+)(,train-base)?\)$/i.exec(name);
  if (!m) return undefined;
  return { rank: Number(m[1]), alpha: Number(m[2]), dropout: Number(m[3]), targets: m[4].toLowerCase().split('+') as LoRATarget[], freezeBase: !m[5] };
}

/**
 * A LinearCls with these LoRA options, registered so layer configs naming it round-trip.
 *
 * @example
 * const attn = new AttentionWithRope({ ...args, linearCls: loraLinearClass({ rank: 4, alpha: 8, targets: ['q', 'k', 'v', 'o'] }) });
 */
export function loraLinearClass(o: LoRAOptions): LinearCls {
  const name = loraClassName(o);
  const opts = resolve(o);
  const cls = class extends LoRALinear { constructor(lo: LinearOptions) { super(lo, opts); } };
  registerLinearClass(name, cls);
  return cls;
}

registerLinearClassResolver((name) => {
  const o = parseName(name);
  return o ? loraLinearClass(o) : undefined;
});

/**
 * Puts LoRA adapters on a built layer's projections (its kernels and biases are kept and, by
 * default, frozen); the layer's config then names the LoRA class.
 *
 * @example
 * for (const b of model.blocks) applyLoRA(b.attn, { rank: 8, alpha: 16, targets: ['q', 'k', 'v', 'o'] });
 */
export function applyLoRA(layer: AttentionWithRope, options: LoRAOptions): void {
  if (!layer.built) layer.build([null, layer.opts.hiddenSize]);
  const cls = loraLinearClass(options);
  for (const [name, p] of layer.namedProjections()) {
    check(!(p instanceof LoRALinear), 'applyLoRA', () => `${layer.name}.${name} already has a LoRA adapter`);
  }
  layer.replaceProjections((name, p, addWeight) =>
    new LoRALinear({ name, inDim: p.inDim, outDim: p.outDim, useBias: p.bias !== null, addWeight }, options, { kernel: p.kernel, bias: p.bias, base: p instanceof QuantLinear ? p : null }));
  layer.useLinearClass(cls);
}

/** The layer's LoRA projections. */
export function loraProjections(layer: AttentionWithRope): LoRALinear[] {
  return layer.namedProjections().map(([, p]) => p).filter((p): p is LoRALinear => p instanceof LoRALinear);
}

/** Folds every adapter of the layer into its kernels. */
export function mergeLoRA(layer: AttentionWithRope): void { for (const p of loraProjections(layer)) p.merge(); }
/** Takes every adapter of the layer back out of its kernels. */
export function splitLoRA(layer: AttentionWithRope): void { for (const p of loraProjections(layer)) p.split(); }
/** Turns adapter dropout on (training) or off (inference). */
export function loraTraining(layer: AttentionWithRope, on: boolean): void { for (const p of loraProjections(layer)) p.training = on; }
