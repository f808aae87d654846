/**
 * The decoder's weights as the native step (models/native_forward.ts) reads them on `cpu`: the
 * variables' own Float32Arrays (the cpu backend's storage, no copy) in their `[in, out]` layout,
 * except q/k/v, packed once into one `[hidden, qDim + 2 kvDim]` matrix so one sgemm (one pass
 * over the weights in decode) projects all three. Remade when any variable is reassigned
 * (training, loading): each read is keyed by the variables' data ids.
 *
 * Huge pages (when given the addon's helpers, native/huge_pages.cc): each packing asks the kernel
 * to move the variables' arrays onto 2 MiB transparent huge pages in place (MADV_COLLAPSE: same
 * addresses and values, no extra memory) and puts the packed q/k/v on fresh huge pages. A decode
 * step streams every weight once; on 4 KiB pages a read stream loses ~40% of this machine's
 * bandwidth (a plain read loop: ~15 GB/s against ~25) to TLB misses and prefetchers stopping at
 * every page. The one-time cost is the kernel's page copy (on a VM that backs memory lazily,
 * seconds for the 135M model the first time).
 *
 * @example
 * const w = nativeWeightsOf(model); // w.layers[0].qkv: Float32Array [hidden * (qDim + 2 kvDim)]
 */
import * as tf from '@tensorflow/tfjs';
import type { DecoderForCausalLM } from './decoder_lm.js';

export interface NativeLayerWeights {
  inputNorm: Float32Array; postNorm: Float32Array;
  /** `[hidden, qDim + 2 kvDim]` */
  qkv: Float32Array; qkvBias: Float32Array | null;
  /** `[qDim, hidden]` */
  o: Float32Array; oBias: Float32Array | null;
  qNorm: Float32Array | null; kNorm: Float32Array | null;
  /** `[hidden, I]`, `[hidden, I]`, `[I, hidden]` */
  gate: Float32Array; up: Float32Array; down: Float32Array;
  gateBias: Float32Array | null; upBias: Float32Array | null; downBias: Float32Array | null;
}

/** Grow-only activation buffers of the native step (one set per model: calls run one at a time). */
export interface NativeScratch { h: Float32Array; x: Float32Array; qkv: Float32Array; q: Float32Array; attn: Float32Array }

export interface NativeWeights {
  layers: NativeLayerWeights[];
  /** `[vocab, hidden]` */
  embed: Float32Array; lmHead: Float32Array; finalNorm: Float32Array;
  scratch: NativeScratch;
  /** Data ids of every variable read (an assign gives a variable a new one: stale). */
  sources: object[];
}

const cache = new WeakMap<DecoderForCausalLM, NativeWeights>();

function variablesOf(model: DecoderForCausalLM): (tf.LayerVariable | null)[] {
  const vars: (tf.LayerVariable | null)[] = [model.embedTable, model.lmHead.weight, model.norm.weight];
  for (const b of model.blocks) {
    const a = b.attn, m = b.mlp;
    vars.push(b.inputNorm.weight, b.postNorm.weight, a.qNormWeight, a.kNormWeight, m.gateKernel, m.upKernel, m.downKernel, m.gateBias,
      m.upBias, m.downBias);
    for (const p of [a.qProj, a.kProj, a.vProj, a.oProj]) vars.push(p!.kernel, p!.bias);
  }
  return vars;
}

/** The cpu backend's own array of a variable (readSync returns the stored values, not a copy). */
const values = (v: tf.LayerVariable | null): Float32Array | null => (v ? v.read().dataSync() as Float32Array : null);

/** Columns `[rows, w_i]` of each part side by side: `[rows, Σ w_i]` (into `out` when given). */
function concatColumns(parts: Float32Array[], rowCount: number, out?: Float32Array): Float32Array {
  const widths = parts.map((p) => p.length / rowCount), total = widths.reduce((x, y) => x + y, 0);
  out ??= new Float32Array(rowCount * total);
  for (let r = 0; r < rowCount; r++) {
    let at = r * total;
    parts.forEach((p, i) => { out.set(p.subarray(r * widths[i], (r + 1) * widths[i]), at); at += widths[i]; });
  }
  return out;
}

const FLOAT_ALIGN = 16; // 64-byte slots in the arena

/** The addon's huge-page helpers (native/huge_pages.cc). */
export interface HugePages {
  allocHuge(bytes: number): ArrayBuffer;
  collapseHuge(a: Float32Array): number;
}

/** The native step's weights of `model` (made on first use, remade when a variable changed). */
export function nativeWeightsOf(model: DecoderForCausalLM, huge?: HugePages): NativeWeights {
  const vars = variablesOf(model);
  const sources = vars.map((v) => v?.read().dataId ?? null) as object[];
  const hit = cache.get(model);
  if (hit && hit.sources.length === sources.length && hit.sources.every((s, i) => s === sources[i])) return hit;
  if (huge) for (const v of new Set(vars)) if (v && v.dtype === 'float32') huge.collapseHuge(values(v)!); // in place, once per packing
  const H = model.config.hiddenSize;
  const qkvSize = Math.ceil(H * (model.blocks[0].attn.qDim + 2 * model.blocks[0].attn.kvDim) / FLOAT_ALIGN) * FLOAT_ALIGN;
  let packArena: Float32Array | null = null; // the packed q/k/v copies on huge pages too
  if (huge) try { packArena = new Float32Array(huge.allocHuge(qkvSize * model.blocks.length * 4)); } catch { packArena = null; }
  const layers = model.blocks.map((b, i): NativeLayerWeights => {
    const a = b.attn, m = b.mlp;
    const proj = [a.qProj!, a.kProj!, a.vProj!];
    const slot = packArena?.subarray(i * qkvSize, i * qkvSize + H * (a.qDim + 2 * a.kvDim));
    return {
      inputNorm: values(b.inputNorm.weight)!, postNorm: values(b.postNorm.weight)!,
      qkv: concatColumns(proj.map((p) => values(p.kernel)!), H, slot), // [H, qDim + 2 kvDim]
      qkvBias: a.qProj!.bias ? concatColumns(proj.map((p) => values(p.bias)!), 1) : null,
      o: values(a.oProj!.kernel)!, oBias: values(a.oProj!.bias),
      qNorm: values(a.qNormWeight), kNorm: values(a.kNormWeight),
      gate: values(m.gateKernel)!, up: values(m.upKernel)!, down: values(m.downKernel)!,
      gateBias: values(m.gateBias), upBias: values(m.upBias), downBias: values(m.downBias),
    };
  });
  const empty = new Float32Array(0);
  const made: NativeWeights = {
    layers, embed: values(model.embedTable)!, lmHead: values(model.lmHead.weight)!, finalNorm: values(model.norm.weight)!,
    scratch: hit?.scratch ?? { h: empty, x: empty, qkv: empty, q: empty, attn: empty }, sources,
  };
  cache.set(model, made);
  return made;
}

/** Drops the packed copies (the variables stay). */
export function disposeNativeWeights(model: DecoderForCausalLM): void {
  cache.delete(model);
}
