/**
 * The decoder's weights as the native step (models/native_forward.ts) reads them on `cpu`: the
 * variables' own Float32Arrays (the cpu backend's storage, no copy) in their `[in, out]` layout,
 * except q/k/v, packed once into one `[hidden, qDim + 2 kvDim]` matrix so one sgemm (one pass
 * over the weights in decode) projects all three. Remade when any variable is reassigned
 * (training, loading): each read is keyed by the variables' data ids.
 *
 * Huge pages (given the addon's allocator, native/huge_pages.cc, and at least HUGE_PAGES_MIN_BYTES
 * of weights): the first packing moves every weight variable's values into one arena on 2 MiB
 * transparent huge pages (one copy; each variable then holds a view of it, same values and shapes)
 * and packs q/k/v onto huge pages too. A decode step streams every weight once; on 4 KiB pages a
 * read stream loses ~40% of this machine's bandwidth (a plain read loop: ~15 GB/s against ~25) to
 * TLB misses and prefetchers stopping at every page. The old arrays go at the next collection
 * (the process's allocator may keep their pages for later allocations). In-place MADV_COLLAPSE
 * was tried first: no copy, but 20-40 s on this VM (the kernel drains every CPU's page lists).
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

/** The addon's huge-page allocator (native/huge_pages.cc). */
export interface HugePages {
  allocHuge(bytes: number): ArrayBuffer;
}

/** Models with fewer weight bytes stay where they are (their weights live in the caches anyway). */
export const HUGE_PAGES_MIN_BYTES = 64 << 20;

/**
 * Moves the float32 variables' values into one arena on huge pages, each variable then holding a
 * view of it (same values and shapes); false when the arena cannot be had (the arrays stay).
 */
export function moveToHugePages(vars: tf.LayerVariable[], huge: HugePages): boolean {
  const unique = [...new Set(vars)].filter((v) => v.dtype === 'float32');
  const offsets: number[] = [];
  let total = 0;
  for (const v of unique) { offsets.push(total); total += Math.ceil(v.read().size / FLOAT_ALIGN) * FLOAT_ALIGN; }
  let arena: Float32Array;
  try { arena = new Float32Array(huge.allocHuge(total * 4)); } catch { return false; }
  unique.forEach((v, i) => {
    const src = v.read();
    const view = arena.subarray(offsets[i], offsets[i] + src.size);
    view.set(src.dataSync() as Float32Array);
    const t = tf.tensor(view, src.shape, 'float32');
    v.write(t); // the variable now shares t's storage: the view (its old array is collected)
    t.dispose();
  });
  return true;
}

/** The native step's weights of `model` (made on first use, remade when a variable changed). */
export function nativeWeightsOf(model: DecoderForCausalLM, huge?: HugePages): NativeWeights {
  const sourcesNow = () => variablesOf(model).map((v) => v?.read().dataId ?? null) as object[];
  let sources = sourcesNow();
  const hit = cache.get(model);
  if (hit && hit.sources.length === sources.length && hit.sources.every((s, i) => s === sources[i])) return hit;
  const vars = variablesOf(model).filter((v): v is tf.LayerVariable => v !== null);
  const bytes = [...new Set(vars)].reduce((n, v) => n + 4 * v.read().size, 0);
  huge = huge && bytes >= HUGE_PAGES_MIN_BYTES ? huge : undefined;
  if (!hit && huge && moveToHugePages(vars, huge)) sources = sourcesNow(); // once per model: later repacks keep new arrays as they are
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
