/**
 * Quantized checkpoints that do not fit their quantization_config: each gets a named error
 * (tensor, both dtypes or shapes, the method) before any model weight is allocated.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type CheckpointFormat, writeQuantizedCheckpoint } from '../../lib/loaders/write_quantized';
import { loadPretrained } from '../../models/load';
import { editHeader } from '../adversarial/support/hostile_checkpoints';
import { CONFIG, floatWeights } from './support/tiny_quant_llama';

type Edit = (dir: string) => void;
const header = (edit: (h: Record<string, any>) => void): Edit => (dir) => editHeader(dir, edit);
const config = (edit: (c: Record<string, any>) => void): Edit => (dir) => {
  const p = path.join(dir, 'config.json');
  const c = JSON.parse(fs.readFileSync(p, 'utf8'));
  edit(c);
  fs.writeFileSync(p, JSON.stringify(c));
};
const L0 = 'model.layers.0.';

const CASES: [string, CheckpointFormat, Edit, RegExp][] = [
  ['a missing weight scale', 'fp8_dynamic', header((h) => { delete h[`${L0}mlp.down_proj.weight_scale`]; }),
    /\[loadPretrained\] checkpoint lacks 1 tensor\(s\) of its quantized format: model\.layers\.0\.mlp\.down_proj\.weight_scale \(F32\/F16\/BF16 \[64,1\]\)/],
  ['a rowwise scale of the wrong length', 'int8_w8a8', header((h) => { h[`${L0}self_attn.k_proj.weight_scale`].shape = [16, 2]; }),
    /model\.layers\.0\.self_attn\.k_proj\.weight_scale is \[16,2\], expected \[32,1\]/],
  ['fp8 weights stored as I8', 'fp8_static', header((h) => { h[`${L0}self_attn.q_proj.weight`].dtype = 'I8'; }),
    /model\.layers\.0\.self_attn\.q_proj\.weight is I8, expected F8_E4M3/],
  ['block scales that do not tile the weight', 'fp8_block', header((h) => { h[`${L0}mlp.up_proj.weight_scale_inv`].shape = [2, 4]; }),
    /model\.layers\.0\.mlp\.up_proj\.weight_scale_inv is \[2,4\], expected \[4,2\]/],
  ['a g_idx that is not one index per input', 'gptq_int4', header((h) => { h[`${L0}mlp.down_proj.g_idx`].shape = [64, 2]; }),
    /model\.layers\.0\.mlp\.down_proj\.g_idx is \[64,2\], expected \[128\]/],
  ['qzeros for another group size', 'gptq_int4', header((h) => { h[`${L0}self_attn.o_proj.qzeros`].shape = [2, 4]; }),
    /model\.layers\.0\.self_attn\.o_proj\.qzeros is \[2,4\], expected \[1,8\]/],
  ['scales of the wrong dtype', 'gptq_int4', header((h) => { Object.assign(h[`${L0}mlp.gate_proj.scales`], { dtype: 'I32', shape: [1, 64] }); }),
    /model\.layers\.0\.mlp\.gate_proj\.scales is I32, expected F32 or F16 or BF16/],
  ['nvfp4 without its global scale', 'nvfp4', header((h) => { delete h[`${L0}self_attn.v_proj.weight_scale_2`]; }),
    /lacks 1 tensor\(s\).*self_attn\.v_proj\.weight_scale_2/],
  ['bytes that do not fill the shape', 'nvfp4', header((h) => { const t = h[`${L0}mlp.up_proj.weight`]; t.data_offsets[1] -= 1; }),
    /up_proj\.weight holds 4095 bytes, \[128,32\] of U8 needs 4096|data_offsets/],
  ['an unknown quant_method', 'fp8_dynamic', config((c) => { c.quantization_config.quant_method = 'awq'; }),
    /quantization_config\.quant_method 'awq' is not supported/],
  ['an unknown modelopt algorithm', 'nvfp4', config((c) => { c.quantization_config.quant_algo = 'W4A8_AWQ'; }),
    /modelopt quant_algo 'W4A8_AWQ' is not supported/],
  ['a float layer inside a quantized model', 'fp8_dynamic', config((c) => { c.quantization_config.ignore = ['lm_head', 'model.layers.1.mlp.down_proj']; }),
    /leaves module\(s\) 'model\.layers\.1\.mlp\.down_proj' unquantized/],
  ['gptq with 8 bits', 'gptq_int4', config((c) => { c.quantization_config.bits = 8; }), /gptq bits must be 4, got 8/],
];

describe('quantized checkpoints with named errors', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'quant-bad-'));
  const weights = floatWeights();
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

  for (const [name, format, edit, expected] of CASES) {
    it(`${format}: ${name}`, async () => {
      const dir = path.join(root, name.replace(/\W+/g, '_'));
      writeQuantizedCheckpoint(dir, CONFIG, weights, format, { group: 64, block: [32, 32] });
      edit(dir);
      const before = tf.memory();
      await expect(loadPretrained(dir)).rejects.toThrow(expected);
      expect(tf.memory().numTensors).toBe(before.numTensors); // nothing allocated, nothing leaked
      expect(tf.memory().numBytes).toBe(before.numBytes);
    });
  }
});
