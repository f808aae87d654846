import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { locateTensors, readHfConfig, readSafetensorsFileF32, readTensors } from '../../lib/loaders/checkpoint';
import { loadTokenizer } from '../../lib/loaders/tokenizer';
import { loadPretrained } from '../../models/load';
import { createModel, supportedModelTypes } from '../../models/registry';
import { FAMILY_CONFIGS, familyWeights } from './support/families';
import { safetensorsBytes, writeCheckpoint } from './support/tiny_checkpoint';

const CFG = FAMILY_CONFIGS.llama_bias_hf4;

describe('HF checkpoint loading', () => {
  it('converts F16 and BF16 to float32 exactly, F32 as is (BF16 written truncated)', () => {
    const t = new Map([['a', { shape: [2, 3], data: Float64Array.from([0, -1.5, 2 ** -14, 65504, 0.25, -3]) }]]);
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'st-')), 'x.safetensors');
      fs.writeFileSync(file, safetensorsBytes(t, dtype));
      const got = readSafetensorsFileF32(file).get('a')!;
      expect(got.shape).toEqual([2, 3]);
      expect(Array.from(got.data)).toEqual(dtype === 'BF16' ? [0, -1.5, 2 ** -14, 65280, 0.25, -3] : [0, -1.5, 2 ** -14, 65504, 0.25, -3]);
    }
  });

  it('reads a sharded checkpoint through model.safetensors.index.json, each shard front to back', () => {
    const dir = writeCheckpoint(CFG, familyWeights(CFG), { shards: 3 });
    const locs = locateTensors(dir);
    expect(new Set([...locs.values()].map((l) => path.basename(l.file))).size).toBe(3);
    const names = [...readTensors(locs)].map((t) => t.name);
    expect(names.sort()).toEqual([...familyWeights(CFG).keys()].sort());
  });

  it('names missing tensors', async () => {
    const w = familyWeights(CFG);
    w.delete('model.layers.1.mlp.up_proj.weight');
    const dir = writeCheckpoint(CFG, w);
    await expect(loadPretrained(dir)).rejects.toThrow(/\[loadWeights\] checkpoint lacks 1 tensor\(s\): model\.layers\.1\.mlp\.up_proj\.weight/);
  });

  it('names mis-shaped tensors with both shapes', async () => {
    const w = familyWeights(CFG);
    const bad = w.get('model.layers.0.self_attn.k_proj.weight')!;
    w.set('model.layers.0.self_attn.k_proj.weight', { shape: [bad.shape[0] / 2, bad.shape[1] * 2], data: bad.data });
    const dir = writeCheckpoint(CFG, w);
    await expect(loadPretrained(dir)).rejects.toThrow('model.layers.0.self_attn.k_proj.weight is [8,64], expected [16,32]');
  });

  it('names the folder when config.json or the weights are absent', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'empty-'));
    expect(() => readHfConfig(dir)).toThrow(`no config.json in '${dir}'`);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(CFG));
    await expect(loadPretrained(dir)).rejects.toThrow(/no model\.safetensors or model\.safetensors\.index\.json/);
  });

  it('rejects an unknown model_type, listing the supported ones', () => {
    expect(() => createModel({ ...CFG, model_type: 'gpt2' })).toThrow(
      '[createModel] config.model_type ("gpt2") is not supported; supported: llama, mistral, qwen2, qwen3, olmo');
    expect(supportedModelTypes()).toEqual(['llama', 'mistral', 'qwen2', 'qwen3', 'olmo']);
  });

  it('ignores extra tensors (lm_head.weight beside tied embeddings, rotary inv_freq)', async () => {
    const cfg = FAMILY_CONFIGS.qwen2_bias_window;
    const w = familyWeights(cfg);
    w.set('lm_head.weight', w.get('model.embed_tokens.weight')!);
    w.set('model.layers.0.self_attn.rotary_emb.inv_freq', { shape: [4], data: new Float64Array(4) });
    const { model } = await loadPretrained(writeCheckpoint(cfg, w));
    expect(model.lmHead.tied).toBe(true);
    expect(model.lmHead.trainableWeights.length).toBe(0);
    model.dispose();
  });
});

describe('tokenizer.json', () => {
  it('loads through @huggingface/tokenizers, offline', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tok-'));
    expect(await loadTokenizer(dir)).toBeNull();
    const vocab: Record<string, number> = { '<unk>': 0, hello: 1, world: 2, '!': 3 };
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({
      version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
      pre_tokenizer: { type: 'Whitespace' }, post_processor: null, decoder: null,
      model: { type: 'WordLevel', vocab, unk_token: '<unk>' },
    }));
    const tok = (await loadTokenizer(dir))!;
    expect(tok.encode('hello world !')).toEqual([1, 2, 3]);
    expect(tok.decode([1, 2])).toContain('hello');
  });

  it('handles a byte-level BPE tokenizer.json (GPT-2 / Llama 3 / Qwen style), multi-byte text round trip', async () => {
    // GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 upwards
    const printable = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    const vocab: Record<string, number> = {};
    let extra = 0;
    for (let b = 0; b < 256; b++) vocab[String.fromCharCode(printable(b) ? b : 256 + extra++)] = b;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bpe-'));
    fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({
      version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null, decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
        fuse_unk: false, byte_fallback: false, vocab, merges: [] },
    }));
    const tok = (await loadTokenizer(dir))!;
    const ids = tok.encode('héllo wörld');
    expect(ids).toEqual([...Buffer.from('héllo wörld', 'utf8')]);
    expect(tok.decode(ids)).toBe('héllo wörld');
  });
});
