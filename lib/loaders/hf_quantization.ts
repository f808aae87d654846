/**
 * A Hugging Face `config.json`'s `quantization_config` (and `torch_dtype`) as the layer's
 * `quantConfig` / `dtype`: compressed-tensors FP8 (static per-tensor inputs, or dynamic per-token
 * with channel weight scales), FP8 block (DeepSeek-V3 `fp8` with `weight_block_size`, tensors
 * `weight_scale_inv`), ModelOpt NVFP4, GPTQ v1 (4 bits, symmetric or not, `desc_act` honoured
 * through `g_idx`), and compressed-tensors INT8 W8A8. Anything else is an error naming the method.
 *
 * @example
 * layerQuantFromHf({ quantization_config: { quant_method: 'fp8', weight_block_size: [128, 128] } });
 * // -> { quantConfig: { format: 'fp8_block', ... }, dtype: 'float32' }
 */
import { check } from '../errors.js';
import type { QuantConfig } from '../attention/quant_config.js';
import type { WeightDType } from '../attention/quant_linear.js';

const W = 'loadHfCheckpoint';

export interface LayerQuant {
  quantConfig: QuantConfig | null;
  dtype: WeightDType;
}

type Json = Record<string, any>;

/** compressed-tensors: the first config group's weights / input_activations. */
function compressedTensors(q: Json): QuantConfig {
  const groups = Object.values((q.config_groups ?? {}) as Record<string, Json>);
  check(groups.length >= 1, W, () => 'quantization_config (compressed-tensors) has no config_groups');
  const g = groups[0], w = g.weights ?? {}, a = g.input_activations ?? null;
  const type = `${w.type}${w.num_bits}`;
  if (type === 'float8') {
    check(a !== null, W, () => 'compressed-tensors FP8 without input_activations (weight-only FP8) is not supported');
    if (w.strategy === 'block') {
      const bs = w.block_structure ?? [128, 128];
      return { format: 'fp8_block', weightScale: { granularity: 'block', blockSize: [bs[0], bs[1]] }, inputScale: { granularity: 'block', origin: 'dynamic', blockSize: bs[1] } };
    }
    const weightScale = { granularity: w.strategy === 'channel' ? 'rowwise' : 'tensor' } as const;
    if (a.dynamic) return { format: 'fp8_dynamic', weightScale };
    check(a.strategy === 'tensor', W, () => `compressed-tensors FP8 static input_activations.strategy must be 'tensor', got '${a.strategy}'`);
    return { format: 'fp8_static', weightScale };
  }
  if (type === 'int8') {
    check(a !== null && a.dynamic === true, W, () => `compressed-tensors INT8 needs dynamic per-token input_activations, got ${JSON.stringify(a)}`);
    return { format: 'int8_w8a8', weightScale: { granularity: w.strategy === 'channel' ? 'rowwise' : 'tensor' } };
  }
  if (type === 'float4' || g.format === 'nvfp4-pack-quantized') return { format: 'nvfp4' };
  check(false, W, () => `compressed-tensors weights of type '${w.type}' with ${w.num_bits} bits are not supported (fp8, int8, nvfp4 are)`);
}

/** quantConfig and dtype for a checkpoint's config.json. */
export function layerQuantFromHf(config: Json): LayerQuant {
  const td = String(config.torch_dtype ?? config.dtype ?? 'float32');
  const dtype: WeightDType = td === 'bfloat16' ? 'bfloat16' : td === 'float16' ? 'float16' : 'float32';
  const q = config.quantization_config as Json | undefined;
  if (!q) return { quantConfig: null, dtype };
  const method = String(q.quant_method ?? q.quant_algo ?? 'unknown');
  switch (method) {
    case 'compressed-tensors': return { quantConfig: compressedTensors(q), dtype: 'float32' };
    case 'fp8': {
      const bs = q.weight_block_size as number[] | undefined;
      check(Array.isArray(bs) && bs.length === 2, W, () => `quantization_config 'fp8' needs weight_block_size [rows, cols], got ${JSON.stringify(bs)}`);
      check(q.activation_scheme === undefined || q.activation_scheme === 'dynamic', W, () =>
        `quantization_config 'fp8' activation_scheme must be 'dynamic', got '${q.activation_scheme}'`);
      return { quantConfig: { format: 'fp8_block', weightScale: { granularity: 'block', blockSize: [bs[0], bs[1]] },
        inputScale: { granularity: 'block', origin: 'dynamic', blockSize: bs[1] } }, dtype: 'float32' };
    }
    case 'modelopt': {
      const algo = String(q.quant_algo ?? q.quantization?.quant_algo);
      check(algo === 'NVFP4', W, () => `modelopt quant_algo '${algo}' is not supported (NVFP4 is)`);
      return { quantConfig: { format: 'nvfp4' }, dtype: 'float32' };
    }
    case 'gptq': {
      check(q.bits === 4, W, () => `gptq bits must be 4, got ${q.bits}`);
      check((q.checkpoint_format ?? 'gptq') === 'gptq', W, () => `gptq checkpoint_format must be 'gptq' (v1), got '${q.checkpoint_format}'`);
      const group = q.group_size === -1 ? 0 : q.group_size;
      check(Number.isInteger(group) && group > 0, W, () => `gptq group_size must be a positive integer (per-column -1 is not supported), got ${q.group_size}`);
      return { quantConfig: { format: 'gptq_int4', inputScale: null, weightScale: { granularity: 'block', blockSize: [1, group] } }, dtype: 'float32' };
    }
    default:
      check(false, W, () => `quantization_config.quant_method '${method}' is not supported (compressed-tensors, fp8, modelopt, gptq are)`);
  }
}

/** Modules a quantization_config leaves in float (compressed-tensors `ignore`, modelopt `exclude_modules`, gptq `lm_head: true` aside). */
export function ignoredModules(config: Json): string[] {
  const q = config.quantization_config as Json | undefined;
  if (!q) return [];
  const list = q.ignore ?? q.exclude_modules ?? q.quantization?.exclude_modules ?? [];
  check(Array.isArray(list) && list.every((m: unknown) => typeof m === 'string'), W, () =>
    `quantization_config.ignore / exclude_modules must be a list of module names, got ${JSON.stringify(list)}`);
  return list as string[];
}
