/**
 * Hostile checkpoint folders made from a valid one: each case copies the folder and breaks one
 * thing (a header field, a file kind, a path, a config value). `expect` is what the error must
 * say: the file or field and the value found.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface HostileCase {
  name: string;
  /** Breaks the copy in `dir` (made from the valid checkpoint). */
  make(dir: string, outside: string): void;
  expect: RegExp;
}

type Header = Record<string, any>;

/** Rewrites model.safetensors of `dir` with `edit` applied to its header (data bytes kept). */
export function editHeader(dir: string, edit: (h: Header) => void, file = 'model.safetensors'): void {
  const p = path.join(dir, file);
  const bytes = fs.readFileSync(p);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Header;
  edit(header);
  writeRaw(p, Buffer.from(JSON.stringify(header)), bytes.subarray(8 + n));
}

/** Writes a safetensors file from header bytes and data bytes (the length field is the header's size). */
export function writeRaw(file: string, header: Buffer, data: Uint8Array, lengthField = BigInt(header.length)): void {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthField);
  fs.writeFileSync(file, Buffer.concat([len, header, data]));
}

const setField = (tensor: string, field: string, value: unknown) => (dir: string) =>
  editHeader(dir, (h) => { h[tensor][field] = value; });
const editConfig = (edit: (c: Record<string, unknown>) => void) => (dir: string) => {
  const p = path.join(dir, 'config.json');
  const c = JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>;
  edit(c);
  fs.writeFileSync(p, JSON.stringify(c));
};
const replaceFile = (file: string, text: string) => (dir: string) => fs.writeFileSync(path.join(dir, file), text);
const mkfifo = (p: string) => { fs.rmSync(p, { force: true }); execFileSync('mkfifo', [p]); };

/** Splits model.safetensors into a two-shard index; `edit` changes the weight_map. */
export function shard(dir: string, edit?: (map: Record<string, string>, dir: string) => void): void {
  const src = path.join(dir, 'model.safetensors');
  fs.renameSync(src, path.join(dir, 'model-00001-of-00001.safetensors'));
  const bytes = fs.readFileSync(path.join(dir, 'model-00001-of-00001.safetensors'));
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Header;
  const map: Record<string, string> = {};
  for (const k of Object.keys(header)) if (k !== '__metadata__') map[k] = 'model-00001-of-00001.safetensors';
  edit?.(map, dir);
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
}

const EMB = 'model.embed_tokens.weight';
const HEAD = 'lm_head.weight';

/** Every hostile checkpoint the suite loads. */
export const HOSTILE_CHECKPOINTS: HostileCase[] = [
  { name: 'negative begin offset', make: setField(EMB, 'data_offsets', [-8, 65528]), expect: /'model\.embed_tokens\.weight' field data_offsets \(\[-8,65528\]\) must be two integers >= 0/ },
  { name: 'end past the data section', make: setField(HEAD, 'data_offsets', [1e9, 1e9 + 65536]), expect: /'lm_head\.weight' field data_offsets \[1000000000, 1000065536\] runs past the \d+-byte data section/ },
  { name: 'begin after end', make: setField(HEAD, 'data_offsets', [65536, 0]), expect: /'lm_head\.weight' field data_offsets \[65536, 0\] ends before it begins/ },
  { name: 'overlapping tensors', make: setField(EMB, 'data_offsets', [0, 65536]), expect: /tensors 'lm_head\.weight' \[0,65536\] and 'model\.embed_tokens\.weight' \[0,65536\] overlap in data_offsets/ },
  { name: 'fractional offset', make: setField(HEAD, 'data_offsets', [0.5, 65536.5]), expect: /'lm_head\.weight' field data_offsets \(\[0\.5,65536\.5\]\) must be two integers/ },
  { name: 'string offsets', make: setField(HEAD, 'data_offsets', ['0', '65536']), expect: /'lm_head\.weight' field data_offsets \(\["0","65536"\]\)/ },
  { name: 'three offsets', make: setField(HEAD, 'data_offsets', [0, 1, 2]), expect: /'lm_head\.weight' field data_offsets \(\[0,1,2\]\)/ },
  { name: 'offsets missing', make: setField(HEAD, 'data_offsets', undefined), expect: /'lm_head\.weight' field data_offsets \(undefined\)/ },
  { name: 'span does not fit the shape', make: setField(HEAD, 'shape', [256, 32]), expect: /'lm_head\.weight' field data_offsets \[0, 65536\] spans 65536 bytes; its shape \[256,32\] of F32 needs 32768/ },
  { name: 'unknown dtype', make: setField(HEAD, 'dtype', 'F128'), expect: /'lm_head\.weight' field dtype \("F128"\) is not a safetensors dtype/ },
  { name: 'dtype not a string', make: setField(HEAD, 'dtype', 4), expect: /'lm_head\.weight' field dtype \(4\)/ },
  { name: 'integer dtype for a float weight', make: setField(HEAD, 'dtype', 'I32'), expect: /tensor 'lm_head\.weight' has dtype I32; supported: F32, F16, BF16, F64/ },
  { name: 'negative dimension', make: setField(HEAD, 'shape', [-256, -64]), expect: /'lm_head\.weight' field shape \(\[-256,-64\]\) must be an array of integers >= 0/ },
  { name: 'shape not an array', make: setField(HEAD, 'shape', '256x64'), expect: /'lm_head\.weight' field shape \("256x64"\)/ },
  { name: 'huge shape (size overflow)', make: setField(HEAD, 'shape', [2 ** 40, 2 ** 40]), expect: /'lm_head\.weight' field data_offsets \[0, 65536\] spans 65536 bytes; its shape \[1099511627776,1099511627776\]/ },
  { name: 'shape transposed vs config', make: (d) => editHeader(d, (h) => { h[HEAD].shape = [64, 256]; }), expect: /mis-shaped tensor\(s\): lm_head\.weight is \[64,256\], expected \[256,64\]/ },
  { name: 'tensor entry not an object', make: (d) => editHeader(d, (h) => { h['extra'] = 7; }), expect: /tensor 'extra' must be an object \{dtype, shape, data_offsets\}/ },
  { name: 'metadata not an object', make: (d) => editHeader(d, (h) => { h.__metadata__ = 'pt'; }), expect: /__metadata__ must be an object of strings/ },
  { name: 'header is an array', make: (d) => writeRaw(path.join(d, 'model.safetensors'), Buffer.from('[1, 2]'), new Uint8Array(0)), expect: /header must be a JSON object/ },
  { name: 'header is not JSON', make: (d) => writeRaw(path.join(d, 'model.safetensors'), Buffer.from('{"a": {dtype'), new Uint8Array(0)), expect: /model\.safetensors' is not valid JSON at character 7/ },
  { name: 'header length 0', make: (d) => writeRaw(path.join(d, 'model.safetensors'), Buffer.alloc(0), new Uint8Array(16)), expect: /header length field is 0; a header holds at least '\{\}'/ },
  { name: 'header length 2^63', make: (d) => writeRaw(path.join(d, 'model.safetensors'), Buffer.from('{}'), new Uint8Array(0), 2n ** 63n), expect: /header length field \(9223372036854775808\) is over the 104857600-byte header limit/ },
  { name: 'header length past the end', make: (d) => writeRaw(path.join(d, 'model.safetensors'), Buffer.from('{}'), new Uint8Array(0), 4096n), expect: /header length field \(4096\) runs past the end: the file has 2 bytes after the length field/ },
  { name: 'file shorter than the length field', make: replaceFile('model.safetensors', 'abc'), expect: /model\.safetensors' is 3 bytes, shorter than the 8-byte header length field/ },
  { name: 'empty weights file', make: replaceFile('model.safetensors', ''), expect: /model\.safetensors' is 0 bytes/ },
  { name: 'truncated data section', make: (d) => { const p = path.join(d, 'model.safetensors'); fs.truncateSync(p, fs.statSync(p).size - 4); }, expect: /runs past the \d+-byte data section/ },
  { name: 'weights file is a FIFO', make: (d) => mkfifo(path.join(d, 'model.safetensors')), expect: /model\.safetensors' is not a regular file \(a FIFO\)/ },
  { name: 'weights file is a directory', make: (d) => { fs.rmSync(path.join(d, 'model.safetensors')); fs.mkdirSync(path.join(d, 'model.safetensors')); }, expect: /model\.safetensors' is not a regular file \(a directory\)/ },
  { name: 'weights file symlinked outside', make: (d, out) => { const p = path.join(d, 'model.safetensors'); fs.renameSync(p, path.join(out, 'w.safetensors')); fs.symlinkSync(path.join(out, 'w.safetensors'), p); }, expect: /model\.safetensors \('model\.safetensors'\) resolves through a symlink to a file outside the checkpoint folder/ },
  { name: 'no weights file', make: (d) => fs.rmSync(path.join(d, 'model.safetensors')), expect: /no model\.safetensors or model\.safetensors\.index\.json in '/ },
  { name: "weight_map with '../'", make: (d) => shard(d, (m) => { m[HEAD] = '../../etc/passwd'; }), expect: /weight_map\['lm_head\.weight'\] \('\.\.\/\.\.\/etc\/passwd'\) must be a path inside the checkpoint folder/ },
  { name: 'weight_map with an absolute path', make: (d) => shard(d, (m) => { m[HEAD] = '/etc/passwd'; }), expect: /weight_map\['lm_head\.weight'\] \('\/etc\/passwd'\) must be a path inside the checkpoint folder/ },
  { name: 'weight_map naming a symlink outside', make: (d, out) => shard(d, (m, dd) => { fs.writeFileSync(path.join(out, 'secret.txt'), 'TOP SECRET'); fs.symlinkSync(path.join(out, 'secret.txt'), path.join(dd, 'evil.safetensors')); m[HEAD] = 'evil.safetensors'; }), expect: /weight_map\['lm_head\.weight'\] \('evil\.safetensors'\) resolves through a symlink to a file outside/ },
  { name: 'weight_map naming a FIFO', make: (d) => shard(d, (m, dd) => { mkfifo(path.join(dd, 'pipe.safetensors')); m[HEAD] = 'pipe.safetensors'; }), expect: /pipe\.safetensors' is not a regular file \(a FIFO\)/ },
  { name: 'weight_map value not a string', make: (d) => shard(d, (m) => { (m as Record<string, unknown>)[HEAD] = 3; }), expect: /weight_map\['lm_head\.weight'\] must be a non-empty file name, got 3/ },
  { name: 'weight_map names a missing shard', make: (d) => shard(d, (m) => { m[HEAD] = 'model-00002-of-00002.safetensors'; }), expect: /weight_map\['lm_head\.weight'\]: shard 'model-00002-of-00002\.safetensors' is missing in/ },
  { name: 'weight_map names a tensor its shard lacks', make: (d) => shard(d, (m) => { m['model.ghost.weight'] = 'model-00001-of-00001.safetensors'; }), expect: /tensor 'model\.ghost\.weight' is not in shard 'model-00001-of-00001\.safetensors' although the index names it there/ },
  { name: 'weight_map not an object', make: (d) => { shard(d); fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), '{"weight_map": ["a"]}'); }, expect: /model\.safetensors\.index\.json' field weight_map must be an object/ },
  { name: 'index not JSON', make: (d) => { shard(d); fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), '{"weight_map": '); }, expect: /model\.safetensors\.index\.json' is not valid JSON/ },
  { name: 'config.json not JSON', make: replaceFile('config.json', '{"hidden_size": 64,'), expect: /config\.json' is not valid JSON/ },
  { name: 'config.json an array', make: replaceFile('config.json', '[]'), expect: /config\.json' must hold a JSON object, got an array/ },
  { name: 'config.json a FIFO', make: (d) => mkfifo(path.join(d, 'config.json')), expect: /config\.json' is not a regular file \(a FIFO\)/ },
  { name: 'config.json symlinked outside', make: (d, out) => { const p = path.join(d, 'config.json'); fs.renameSync(p, path.join(out, 'config.json')); fs.symlinkSync(path.join(out, 'config.json'), p); }, expect: /config\.json \('config\.json'\) resolves through a symlink to a file outside/ },
  { name: 'no config.json', make: (d) => fs.rmSync(path.join(d, 'config.json')), expect: /no config\.json in '/ },
  { name: 'hidden_size a string', make: editConfig((c) => { c.hidden_size = '64'; }), expect: /config\.hidden_size must be a number, got "64"/ },
  { name: 'hidden_size negative', make: editConfig((c) => { c.hidden_size = -64; }), expect: /config\.hidden_size must be an integer >= 1, got -64/ },
  { name: 'vocab_size fractional', make: editConfig((c) => { c.vocab_size = 255.5; }), expect: /config\.vocab_size must be an integer >= 1, got 255\.5/ },
  { name: 'vocab_size huge (no allocation)', make: editConfig((c) => { c.vocab_size = 2 ** 30; }), expect: /mis-shaped tensor\(s\): model\.embed_tokens\.weight is \[256,64\], expected \[1073741824,64\]/ },
  { name: 'num_hidden_layers 0', make: editConfig((c) => { c.num_hidden_layers = 0; }), expect: /config\.num_hidden_layers must be an integer >= 1, got 0/ },
  { name: 'heads not a multiple of kv heads', make: editConfig((c) => { c.num_key_value_heads = 3; }), expect: /config\.num_attention_heads \(4\) must be a multiple of config\.num_key_value_heads \(3\)/ },
  { name: 'rms_norm_eps negative', make: editConfig((c) => { c.rms_norm_eps = -1; }), expect: /config\.rms_norm_eps must be > 0, got -1/ },
  { name: 'unsupported model_type', make: editConfig((c) => { c.model_type = 'gpt9'; }), expect: /config\.model_type \("gpt9"\) is not supported/ },
  { name: 'generation_config.json not JSON', make: replaceFile('generation_config.json', '{"eos_token_id": 2'), expect: /generation_config\.json' is not valid JSON/ },
  { name: 'generation_config.json a FIFO', make: (d) => mkfifo(path.join(d, 'generation_config.json')), expect: /generation_config\.json' is not a regular file \(a FIFO\)/ },
  { name: 'generation_config.json a string', make: replaceFile('generation_config.json', '"greedy"'), expect: /generation_config\.json' must hold a JSON object, got string/ },
  { name: 'tokenizer.json not JSON', make: replaceFile('tokenizer.json', '{"model": {'), expect: /tokenizer\.json' is not valid JSON/ },
  { name: 'tokenizer.json not a tokenizer', make: replaceFile('tokenizer.json', '{"model": 5}'), expect: /tokenizer\.json' is not a tokenizer this reader understands/ },
  { name: 'tokenizer.json a FIFO', make: (d) => mkfifo(path.join(d, 'tokenizer.json')), expect: /tokenizer\.json' is not a regular file \(a FIFO\)/ },
  { name: 'tokenizer_config.json an array', make: (d) => { fs.writeFileSync(path.join(d, 'tokenizer.json'), '{}'); fs.writeFileSync(path.join(d, 'tokenizer_config.json'), '[1]'); }, expect: /tokenizer_config\.json' must hold a JSON object, got an array/ },
];

/** A fresh copy of `src` (plus an "outside" folder beside it for symlink targets). */
export function copyCheckpoint(src: string): { dir: string; outside: string; root: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'hostile-ckpt-'));
  const dir = path.join(root, 'ckpt');
  const outside = path.join(root, 'outside');
  fs.mkdirSync(dir);
  fs.mkdirSync(outside);
  for (const f of fs.readdirSync(src)) if (!f.startsWith('expected')) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  return { dir, outside, root };
}

