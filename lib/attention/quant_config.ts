/**
 * `quantConfig` of AttentionWithRope, after the reference's QuantConfig: how the activations
 * entering a projection are quantized (input scale: granularity + origin), how the weights are
 * scaled (weight scale: granularity + block size) and the storage format. Formats and their
 * exact semantics: spec/fixtures/README.md ("quant/").
 *
 * Only `format` is required; the scales default to what the format means, and any scale given
 * must agree with the format (errors name both values).
 *
 * @example
 * new AttentionWithRope({ ...args, quantConfig: { format: 'fp8_dynamic' } });
 * new AttentionWithRope({ ...args, quantConfig: { format: 'gptq_int4', weightScale: { granularity: 'block', blockSize: [1, 128] } } });
 */
import { check } from '../errors.js';

export const QUANT_FORMATS = ['fp8_static', 'fp8_dynamic', 'fp8_block', 'nvfp4', 'int8_w8a8', 'gptq_int4'] as const;
export type QuantFormat = typeof QUANT_FORMATS[number];
export type ScaleGranularity = 'tensor' | 'rowwise' | 'block';

export interface InputScaleSpec {
  granularity: ScaleGranularity;
  /** static: a calibrated scale stored with the weights; dynamic: computed from each row at run time. */
  origin: 'static' | 'dynamic';
  /** Columns per block with granularity 'block'. */
  blockSize?: number;
}

export interface WeightScaleSpec {
  granularity: ScaleGranularity;
  /** `[rows, cols]` of the `[out, in]` weight per scale with granularity 'block'. */
  blockSize?: [number, number];
}

export interface QuantConfig {
  format: QuantFormat;
  /** null for weight-only formats (gptq_int4). */
  inputScale?: InputScaleSpec | null;
  weightScale?: WeightScaleSpec;
}

export type ResolvedQuantConfig = { format: QuantFormat; inputScale: InputScaleSpec | null; weightScale: Required<WeightScaleSpec> };

const DEFAULTS: Record<QuantFormat, ResolvedQuantConfig> = {
  fp8_static: { format: 'fp8_static', inputScale: { granularity: 'tensor', origin: 'static' }, weightScale: { granularity: 'tensor', blockSize: [0, 0] } },
  fp8_dynamic: { format: 'fp8_dynamic', inputScale: { granularity: 'rowwise', origin: 'dynamic' }, weightScale: { granularity: 'rowwise', blockSize: [0, 0] } },
  fp8_block: { format: 'fp8_block', inputScale: { granularity: 'block', origin: 'dynamic', blockSize: 128 }, weightScale: { granularity: 'block', blockSize: [128, 128] } },
  nvfp4: { format: 'nvfp4', inputScale: { granularity: 'block', origin: 'static', blockSize: 16 }, weightScale: { granularity: 'block', blockSize: [1, 16] } },
  int8_w8a8: { format: 'int8_w8a8', inputScale: { granularity: 'rowwise', origin: 'dynamic' }, weightScale: { granularity: 'rowwise', blockSize: [0, 0] } },
  gptq_int4: { format: 'gptq_int4', inputScale: null, weightScale: { granularity: 'block', blockSize: [1, 64] } },
};

/** Weight granularities each format can store. */
const WEIGHT_GRANULARITIES: Record<QuantFormat, ScaleGranularity[]> = {
  fp8_static: ['tensor', 'rowwise'], fp8_dynamic: ['tensor', 'rowwise'], fp8_block: ['block'],
  nvfp4: ['block'], int8_w8a8: ['tensor', 'rowwise'], gptq_int4: ['block'],
};

const W = 'AttentionWithRope';

/** Validates a quantConfig against the layer's shapes (every projection's in and out dims). */
export function resolveQuantConfig(q: unknown, shapes: { name: string; inDim: number; outDim: number }[]): ResolvedQuantConfig {
  check(q !== null && typeof q === 'object', W, () => `quantConfig must be an object with a format, got ${JSON.stringify(q)}`);
  const c = q as QuantConfig;
  check(QUANT_FORMATS.includes(c.format), W, () => `quantConfig.format must be one of ${QUANT_FORMATS.join(', ')}, got '${c.format}'`);
  const d = DEFAULTS[c.format];
  const input = c.inputScale === undefined ? d.inputScale : c.inputScale;
  if (d.inputScale === null) {
    check(input === null, W, () => `quantConfig.inputScale (${JSON.stringify(input)}) must be null for format '${c.format}' (weight-only)`);
  } else {
    check(input !== null && typeof input === 'object', W, () => `quantConfig.inputScale (null) must be given for format '${c.format}' (it quantizes activations)`);
    check(input.origin === d.inputScale.origin, W, () =>
      `quantConfig.inputScale.origin ('${input.origin}') does not fit format '${c.format}' (needs '${d.inputScale!.origin}')`);
    check(input.granularity === d.inputScale.granularity, W, () =>
      `quantConfig.inputScale.granularity ('${input.granularity}') does not fit format '${c.format}' (needs '${d.inputScale!.granularity}')`);
  }
  const wsIn = c.weightScale ?? d.weightScale;
  check(WEIGHT_GRANULARITIES[c.format].includes(wsIn.granularity), W, () =>
    `quantConfig.weightScale.granularity ('${wsIn.granularity}') does not fit format '${c.format}' (one of ${WEIGHT_GRANULARITIES[c.format].join(', ')})`);
  const blockSize = (wsIn.granularity === 'block' ? wsIn.blockSize ?? d.weightScale.blockSize : [0, 0]) as [number, number];
  check(Array.isArray(blockSize) && blockSize.length === 2 && blockSize.every((b) => Number.isInteger(b) && b >= (wsIn.granularity === 'block' ? 1 : 0)),
    W, () => `quantConfig.weightScale.blockSize must be two integers >= 1, got ${JSON.stringify(wsIn.blockSize)}`);
  let inputScale = input ? { ...input } : null;
  if (c.format === 'nvfp4') {
    check(blockSize[0] === 1 && blockSize[1] === 16, W, () => `quantConfig.weightScale.blockSize ([${blockSize}]) must be [1, 16] for format 'nvfp4'`);
    check((inputScale!.blockSize ?? 16) === 16, W, () => `quantConfig.inputScale.blockSize (${inputScale!.blockSize}) must be 16 for format 'nvfp4'`);
    inputScale = { ...inputScale!, blockSize: 16 };
  }
  if (c.format === 'fp8_block') {
    const ib = c.inputScale?.blockSize ?? blockSize[1]; // defaults follow the weight blocks
    check(ib === blockSize[1], W, () => `quantConfig.inputScale.blockSize (${ib}) must equal weightScale.blockSize[1] (${blockSize[1]}): activation groups line up with weight blocks`);
    inputScale = { ...inputScale!, blockSize: ib };
  }
  if (c.format === 'gptq_int4') {
    check(blockSize[0] === 1 && blockSize[1] % 8 === 0, W, () => `quantConfig.weightScale.blockSize ([${blockSize}]) must be [1, g] with g a multiple of 8 for format 'gptq_int4'`);
  }
  for (const s of shapes) {
    if (c.format === 'nvfp4') {
      check(s.inDim % 16 === 0, W, () => `${s.name} input size (${s.inDim}) must be a multiple of the nvfp4 block (16)`);
    }
    if (c.format === 'gptq_int4') {
      check(s.inDim % blockSize[1] === 0, W, () => `${s.name} input size (${s.inDim}) must be a multiple of the gptq group size (${blockSize[1]})`);
      check(s.outDim % 8 === 0, W, () => `${s.name} output size (${s.outDim}) must be a multiple of 8 (gptq packs 8 zero points a word)`);
    }
  }
  return { format: c.format, inputScale, weightScale: { granularity: wsIn.granularity, blockSize } };
}
