/** quantization_config / torch_dtype of Hugging Face configs -> quantConfig / dtype, and the errors for the rest. */
import { layerQuantFromHf } from '../../lib/loaders/hf_quantization';
import { AttentionWithRope } from '../../lib/attention/attention_with_rope';

const ct = (weights: object, input: object | null) => ({ quantization_config: { quant_method: 'compressed-tensors', config_groups: { group_0: { weights, input_activations: input } } } });

describe('quantization_config from Hugging Face', () => {
  it('maps every supported method to the format the fixtures use', () => {
    expect(layerQuantFromHf(ct({ type: 'float', num_bits: 8, strategy: 'tensor' }, { type: 'float', num_bits: 8, strategy: 'tensor', dynamic: false })).quantConfig)
      .toEqual({ format: 'fp8_static', weightScale: { granularity: 'tensor' } });
    expect(layerQuantFromHf(ct({ type: 'float', num_bits: 8, strategy: 'channel' }, { type: 'float', num_bits: 8, strategy: 'token', dynamic: true })).quantConfig)
      .toEqual({ format: 'fp8_dynamic', weightScale: { granularity: 'rowwise' } });
    expect(layerQuantFromHf(ct({ type: 'int', num_bits: 8, strategy: 'channel' }, { type: 'int', num_bits: 8, strategy: 'token', dynamic: true })).quantConfig)
      .toEqual({ format: 'int8_w8a8', weightScale: { granularity: 'rowwise' } });
    expect(layerQuantFromHf({ quantization_config: { quant_method: 'fp8', activation_scheme: 'dynamic', weight_block_size: [128, 128] } }).quantConfig!.format).toBe('fp8_block');
    expect(layerQuantFromHf({ quantization_config: { quant_method: 'modelopt', quant_algo: 'NVFP4' } }).quantConfig).toEqual({ format: 'nvfp4' });
    expect(layerQuantFromHf({ quantization_config: { quant_method: 'gptq', bits: 4, group_size: 128, desc_act: true } }).quantConfig)
      .toEqual({ format: 'gptq_int4', inputScale: null, weightScale: { granularity: 'block', blockSize: [1, 128] } });
    expect(layerQuantFromHf({ torch_dtype: 'bfloat16' })).toEqual({ quantConfig: null, dtype: 'bfloat16' });
    expect(layerQuantFromHf({ torch_dtype: 'float16' })).toEqual({ quantConfig: null, dtype: 'float16' });
  });

  it('every mapped config builds a layer', () => {
    const args = { rope: { headDim: 64, theta: 10000, maxSeqLen: 32 }, numAttentionHeads: 4, numKeyValueHeads: 2, hiddenSize: 256,
      kvParams: { nKvHeads: 2, headDim: 64, pageSize: 4, numLayers: 1, numPages: 8 } };
    for (const c of [ct({ type: 'float', num_bits: 8, strategy: 'channel' }, { dynamic: true }), { quantization_config: { quant_method: 'gptq', bits: 4, group_size: 64 } },
      { quantization_config: { quant_method: 'fp8', weight_block_size: [128, 128] } }, { quantization_config: { quant_method: 'modelopt', quant_algo: 'NVFP4' } }]) {
      new AttentionWithRope({ ...args, ...layerQuantFromHf(c) } as never).dispose();
    }
  });

  it('unknown methods and unsupported variants name what was given', () => {
    expect(() => layerQuantFromHf({ quantization_config: { quant_method: 'awq', bits: 4 } })).toThrow(/quant_method 'awq' is not supported/);
    expect(() => layerQuantFromHf({ quantization_config: { quant_method: 'bitsandbytes' } })).toThrow(/quant_method 'bitsandbytes' is not supported/);
    expect(() => layerQuantFromHf({ quantization_config: { quant_method: 'gptq', bits: 3, group_size: 128 } })).toThrow(/gptq bits must be 4, got 3/);
    expect(() => layerQuantFromHf({ quantization_config: { quant_method: 'gptq', bits: 4, group_size: 128, checkpoint_format: 'gptq_v2' } }))
      .toThrow(/checkpoint_format must be 'gptq' \(v1\), got 'gptq_v2'/);
    expect(() => layerQuantFromHf({ quantization_config: { quant_method: 'modelopt', quant_algo: 'FP8' } })).toThrow(/modelopt quant_algo 'FP8' is not supported/);
    expect(() => layerQuantFromHf(ct({ type: 'int', num_bits: 4 }, null))).toThrow(/weights of type 'int' with 4 bits are not supported/);
  });
});
