/**
 * Loading quantized and half-precision checkpoints: every projection (q/k/v/o, the MLP's
 * gate/up/down, the untied LM head when the checkpoint stores it packed) keeps its packed bytes
 * as QuantLinear int32 words plus float32 scales; embeddings, norms and biases are float32.
 * Everything is checked against the safetensors headers before the model is built.
 *
 * Memory after loading: packed weight bytes + float32 scales + the float32 embeddings / norms;
 * no float32 copy of a packed weight exists at any time (each is read raw, packed, written).
 *
 * @example
 * const { model } = await loadPretrained('Llama-3.2-1B-Instruct-FP8-dynamic'); // q/k/v/o + MLP packed fp8
 */
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { resolveQuantConfig } from '../lib/attention/quant_config.js';
import { quantAttrs, type ProjectionQuant, type QuantLinear } from '../lib/attention/quant_linear.js';
import { packProjection, writePacked, type RawTensor } from '../lib/attention/quant_weights.js';
import { check } from '../lib/errors.js';
import type { TensorLocation } from '../lib/loaders/checkpoint.js';
import { openRegularFile, readFully } from '../lib/loaders/checkpoint_files.js';
import { ignoredModules, layerQuantFromHf } from '../lib/loaders/hf_quantization.js';
import { packedTensorSpecs, readRawTensors, type PackedTensorSpec } from '../lib/loaders/quant_checkpoint.js';
import type { DecoderConfig, HfConfig } from './config.js';
import type { DecoderForCausalLM, ModelQuant } from './decoder_lm.js';
import { type Placement, readIntoVariables } from './load_in_place.js';

const W = 'loadPretrained';

/**
 * How a checkpoint's projections are stored: from `quantization_config`, or `torch_dtype`
 * float16 / bfloat16 when `packHalfWeights`; undefined for float32 loading.
 */
export function modelQuantOf(hfConfig: HfConfig, locations: Map<string, TensorLocation>, packHalfWeights: boolean): ModelQuant | undefined {
  const lq = layerQuantFromHf(hfConfig);
  if (!lq.quantConfig && (lq.dtype === 'float32' || !packHalfWeights)) return undefined;
  const others = ignoredModules(hfConfig).filter((m) => !/^(re:)?(\.\*)?lm_head\$?$/.test(m));
  check(others.length === 0, W, () =>
    `quantization_config leaves module(s) ${others.slice(0, 4).map((m) => `'${m}'`).join(', ')} unquantized; only 'lm_head' may be (every decoder projection is packed)`);
  const head = locations.get('lm_head.weight');
  const headPacked = lq.quantConfig ? locations.has('lm_head.qweight') || (head !== undefined && !['F32', 'F16', 'BF16'].includes(head.dtype)) : true;
  return { ...lq, lmHead: headPacked };
}

/** Packing of one projection `[out, in]` (null: float32). */
function projectionQuant(q: ModelQuant, name: string, inDim: number, outDim: number): ProjectionQuant {
  return { quant: q.quantConfig && resolveQuantConfig(q.quantConfig, [{ name, inDim, outDim }]), dtype: q.dtype };
}

/** HF prefix -> [in, out] of every packed projection of a config. */
function packedProjections(c: DecoderConfig, q: ModelQuant): Map<string, [number, number]> {
  const H = c.hiddenSize, I = c.intermediateSize, qDim = c.numAttentionHeads * c.headDim, kvDim = c.numKeyValueHeads * c.headDim;
  const out = new Map<string, [number, number]>();
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `model.layers.${i}.`;
    out.set(`${p}self_attn.q_proj`, [H, qDim]).set(`${p}self_attn.k_proj`, [H, kvDim]).set(`${p}self_attn.v_proj`, [H, kvDim]).set(`${p}self_attn.o_proj`, [qDim, H]);
    out.set(`${p}mlp.gate_proj`, [H, I]).set(`${p}mlp.up_proj`, [H, I]).set(`${p}mlp.down_proj`, [I, H]);
  }
  if (q.lmHead && !c.tieWordEmbeddings) out.set('lm_head', [H, c.vocabSize]);
  return out;
}

/**
 * Expected tensors of a packed model: `float` (HF name -> shape, loaded as float32) and `packed`
 * (stored dtypes and shapes of every packed projection's tensors). `floatSpecs` is the float
 * model's full list (DecoderForCausalLM.weightSpecs), from which the packed weights are removed.
 */
export function packedWeightSpecs(c: DecoderConfig, q: ModelQuant, floatSpecs: Map<string, number[]>, found: Map<string, TensorLocation>):
  { float: Map<string, number[]>; packed: Map<string, PackedTensorSpec> } {
  const float = new Map(floatSpecs);
  const packed = new Map<string, PackedTensorSpec>();
  for (const [p, [inDim, outDim]] of packedProjections(c, q)) {
    float.delete(`${p}.weight`);
    const pq = projectionQuant(q, p, inDim, outDim);
    const specs = packedTensorSpecs(quantAttrs(pq, inDim, outDim), pq.quant?.inputScale?.origin === 'static', p, found);
    for (const [n, s] of specs) packed.set(n, s);
  }
  return { float, packed };
}

/** The QuantLinear of each packed HF prefix of a built model. */
function packedLayers(model: DecoderForCausalLM): Map<string, QuantLinear> {
  const out = new Map<string, QuantLinear>();
  model.blocks.forEach((b, i) => {
    const m = b.mlp.packed;
    check(m, W, () => `layer ${i}'s MLP is not packed (the model was built without quant)`);
    out.set(`model.layers.${i}.mlp.gate_proj`, m.gate).set(`model.layers.${i}.mlp.up_proj`, m.up).set(`model.layers.${i}.mlp.down_proj`, m.down);
  });
  if (model.lmHead.packed) out.set('lm_head', model.lmHead.packed);
  return out;
}

/**
 * Streams a checked packed checkpoint into a model built with the same ModelQuant: float
 * tensors straight into their variables (models/load_in_place.ts; `fresh`: a model just built, its
 * arrays filled where they are), packed projections raw, one layer's attention at a time.
 */
export function loadPackedWeights(model: DecoderForCausalLM, locations: Map<string, TensorLocation>,
  specs: { float: Map<string, number[]>; packed: Map<string, PackedTensorSpec> }, fresh = false): void {
  const targets = model.weightTargets();
  const attnFloat = new Map<number, string[]>();
  const floatNames: string[] = [];
  for (const name of specs.float.keys()) {
    const m = /^model\.layers\.(\d+)\.self_attn\./.exec(name);
    if (m) attnFloat.set(Number(m[1]), [...(attnFloat.get(Number(m[1])) ?? []), name]);
    else floatNames.push(name);
  }
  const floats = new Map<string, Placement>();
  for (const name of floatNames) {
    const target = targets.get(name);
    check(target && !target.transpose, W, () => `no float variable for tensor '${name}'`);
    floats.set(name, { variable: target.variable, transpose: false });
  }
  readIntoVariables(locations, floats, fresh); // embeddings, norms, a float head: straight into the variables
  const packedNames = [...specs.packed.keys()];
  const namesUnder = (prefix: string) => packedNames.filter((n) => n.startsWith(prefix));
  model.blocks.forEach((b, i) => {
    const prefix = `model.layers.${i}.self_attn.`;
    const raw = readRawTensors(locations, [...namesUnder(prefix), ...(attnFloat.get(i) ?? [])]);
    const group: Record<string, RawTensor> = {};
    // compressed-tensors stores block scales as `weight_scale`; the packer reads DeepSeek's `weight_scale_inv`
    const blockFp8 = b.attn.opts.quantConfig?.format === 'fp8_block';
    for (const [n, t] of raw) group[blockFp8 ? n.slice(prefix.length).replace(/\.weight_scale$/, '.weight_scale_inv') : n.slice(prefix.length)] = t;
    b.attn.setHfWeights(group);
  });
  for (const [p, layer] of packedLayers(model)) {
    if (fresh && readHalfInPlace(layer, locations.get(`${p}.weight`))) continue;
    const raw = readRawTensors(locations, namesUnder(`${p}.`));
    const get = (name: string) => raw.get(name) ?? raw.get(name.replace(/_inv$/, ''))!;
    writePacked(layer, packProjection(layer.attrs, layer.inputScale !== null, p, layer.outDim, layer.inDim, get));
  }
}

/**
 * A bfloat16 / float16 projection whose rows are whole words stores its packed words exactly as the
 * checkpoint stores the weight (two halves a word, little-endian, `[out, in / 2]`): on `cpu` the
 * bytes are read straight into the kernel variable's own array (a model just built), with no raw
 * buffer in between. False where that does not apply (the caller packs through packProjection).
 */
function readHalfInPlace(layer: QuantLinear, loc: TensorLocation | undefined): boolean {
  const want = layer.attrs.weightFormat === 'bf16' ? 'BF16' : layer.attrs.weightFormat === 'f16' ? 'F16' : null;
  if (!want || !loc || loc.dtype !== want || layer.inDim % 2 !== 0 || tf.getBackend() !== 'cpu' || layer.kernel.dtype !== 'int32') return false;
  const words = layer.outDim * layer.inDim / 2;
  check(loc.end - loc.begin === 4 * words, W, () =>
    `tensor '${loc.name}' holds ${loc.end - loc.begin} bytes, its shape [${layer.outDim}, ${layer.inDim}] of ${want} needs ${4 * words}`);
  const own = layer.kernel.read().dataSync(); // the cpu backend's own array, not a copy
  if (!(own instanceof Int32Array) || own.length !== words) return false;
  const { fd } = openRegularFile(loc.file, W);
  try {
    readFully(fd, new Uint8Array(own.buffer, own.byteOffset, own.byteLength), loc.begin, loc.file, W, `tensor '${loc.name}'`);
  } finally {
    fs.closeSync(fd);
  }
  writePacked(layer, { weight: own }); // a new data id on the same array
  return true;
}

/** Bytes the packed model's projections hold once loaded (int32 words + float32 scales, zeros, g_idx, scalar scales). */
export function packedBytes(model: DecoderForCausalLM): number {
  let n = 0;
  const all = [...packedLayers(model).values(), ...model.blocks.flatMap((b) => [b.attn.qProj, b.attn.kProj, b.attn.vProj, b.attn.qkvProj, b.attn.oProj])];
  for (const p of all) {
    const q = p as QuantLinear | null;
    if (!q || !('attrs' in q)) continue;
    for (const v of [q.kernel, q.scale, q.zeros, q.gIdx, q.inputScale, q.weightScale2]) if (v) n += v.shape.reduce((a: number, d) => a * (d ?? 1), 1) * 4;
  }
  return n;
}
