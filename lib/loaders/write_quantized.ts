/**
 * Writes a Hugging Face checkpoint in a quantized (or half-precision) format from float32 HF
 * weights: every decoder projection (q/k/v/o, gate/up/down) goes through quantizeProjection,
 * embeddings / norms / biases / the LM head stay float32 (the LM head is in the `ignore` list,
 * as the published checkpoints of these formats do), and `config.json` carries the real
 * `quantization_config` of the format (compressed-tensors, DeepSeek `fp8`, ModelOpt, GPTQ v1) or
 * `torch_dtype`. loadPretrained reads it back packed.
 *
 * @example
 * writeQuantizedCheckpoint(dir, hfConfig, weights, 'fp8_dynamic'); // config.json + model.safetensors
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { QuantFormat } from '../attention/quant_config.js';
import { quantizeProjection } from '../attention/quantize_weights.js';
import type { RawTensor } from '../attention/quant_weights.js';
import { check } from '../errors.js';

export type CheckpointFormat = QuantFormat | 'bf16' | 'f16';

export interface WriteQuantizedOptions {
  /** Static activation scale per projection HF prefix (fp8_static, nvfp4); default 1. */
  inputScales?: Map<string, number>;
  /** GPTQ group size (default 32). */
  group?: number;
  /** fp8_block weight block (default [128, 128]). */
  block?: [number, number];
}

const PROJECTION = /^model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)\.weight$/;

/** The config.json `quantization_config` of a format as its publishers write it (null for bf16 / f16). */
export function hfQuantizationConfig(format: CheckpointFormat, o: WriteQuantizedOptions = {}): Record<string, unknown> | null {
  const fp8 = (strategy: string, dynamic: boolean) => ({ type: 'float', num_bits: 8, strategy, dynamic, symmetric: true });
  const ct = (format: string, weights: object, input: object) => ({
    quant_method: 'compressed-tensors', format, quantization_status: 'compressed', ignore: ['lm_head'],
    config_groups: { group_0: { targets: ['Linear'], weights, input_activations: input } },
  });
  switch (format) {
    case 'bf16': case 'f16': return null;
    case 'fp8_static': return ct('float-quantized', fp8('tensor', false), fp8('tensor', false));
    case 'fp8_dynamic': return ct('float-quantized', fp8('channel', false), fp8('token', true));
    case 'int8_w8a8': return ct('int-quantized', { type: 'int', num_bits: 8, strategy: 'channel', dynamic: false, symmetric: true },
      { type: 'int', num_bits: 8, strategy: 'token', dynamic: true, symmetric: true });
    case 'fp8_block': return { quant_method: 'fp8', fmt: 'e4m3', activation_scheme: 'dynamic', weight_block_size: o.block ?? [128, 128] };
    case 'nvfp4': return { quant_method: 'modelopt', quant_algo: 'NVFP4', group_size: 16, kv_cache_quant_algo: null, exclude_modules: ['lm_head'] };
    case 'gptq_int4': return { quant_method: 'gptq', bits: 4, group_size: o.group ?? 32, desc_act: false, sym: false, checkpoint_format: 'gptq' };
  }
}

/** Bytes of a safetensors file holding tensors as stored (names sorted, data 8-byte aligned). */
export function rawSafetensorsBytes(tensors: Map<string, RawTensor>): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const n of names) {
    const t = tensors.get(n)!;
    header[n] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.byteLength] };
    offset += t.bytes.byteLength;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.length), true);
  out.set(head, 8);
  let at = 8 + head.length;
  for (const n of names) { out.set(tensors.get(n)!.bytes, at); at += tensors.get(n)!.bytes.byteLength; }
  return out;
}

/**
 * Quantizes `weights` (HF name -> float32 `[out, in]` / vectors) into `format` and writes
 * `dir/config.json` (hfConfig plus quantization_config / torch_dtype) and `dir/model.safetensors`.
 */
export function writeQuantizedCheckpoint(dir: string, hfConfig: Record<string, unknown>,
  weights: Map<string, { shape: number[]; data: Float32Array }>, format: CheckpointFormat, o: WriteQuantizedOptions = {}): void {
  const out = new Map<string, RawTensor>();
  const half = format === 'bf16' || format === 'f16';
  // half-precision checkpoints store every tensor in that dtype; quantized ones keep the rest float32
  const plain = (name: string, shape: number[], data: Float32Array): RawTensor => (half ? quantizeProjection(format, name, data, 1, data.length)[`${name}.weight`]
    : { dtype: 'F32', shape, bytes: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
  for (const [name, t] of weights) {
    if (!PROJECTION.test(name)) { out.set(name, { ...plain(name, t.shape, t.data), shape: t.shape }); continue; }
    check(t.shape.length === 2, 'writeQuantizedCheckpoint', () => `projection '${name}' must be [out, in], got [${t.shape}]`);
    const p = name.slice(0, -'.weight'.length);
    const q = quantizeProjection(format, p, t.data, t.shape[0], t.shape[1], { inputScale: o.inputScales?.get(p) ?? 1, group: o.group ?? 32, block: o.block });
    for (const [n, v] of Object.entries(q)) out.set(n, v);
  }
  const qc = hfQuantizationConfig(format, o);
  const config: Record<string, unknown> = { ...hfConfig, torch_dtype: format === 'bf16' ? 'bfloat16' : format === 'f16' ? 'float16' : 'float32' };
  delete config.dtype;
  if (qc) config.quantization_config = qc;
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  fs.writeFileSync(path.join(dir, 'model.safetensors'), rawSafetensorsBytes(out));
}
