/**
 * Hostile checkpoints: every malformed or malicious folder gets an AttentionRopeError naming the
 * file and the field with the values found, never a bare SyntaxError/TypeError/RangeError, a
 * hang (FIFOs) or a read outside the folder or buffer; no tensor is left behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { AttentionRopeError } from '../../lib/errors';
import { readSafetensors, writeSafetensors } from '../../lib/loaders/safetensors';
import { locateTensors } from '../../lib/loaders/checkpoint';
import { loadPretrained } from '../../models/load';
import { useBackend } from '../../lib/backends/select';
import { copyCheckpoint, HOSTILE_CHECKPOINTS, shard } from './support/hostile_checkpoints';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'models', 'tiny_llama');
const roots: string[] = [];
const tally = { tried: 0, clear: 0 };

let start = { tensors: 0, bytes: 0, rss: 0 };
beforeAll(() => { start = { tensors: tf.memory().numTensors, bytes: tf.memory().numBytes, rss: process.memoryUsage().rss }; });
afterAll(() => console.log(`hostile checkpoints and buffers: ${tally.tried} tried, ${tally.clear} rejected with a clear error; ` +
  `tf.memory() ${start.tensors} tensors / ${start.bytes} bytes -> ${tf.memory().numTensors} / ${tf.memory().numBytes}, ` +
  `RSS ${(start.rss / 2 ** 20).toFixed(0)} -> ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`));

describe('hostile checkpoint folders', () => {
  beforeAll(async () => { await useBackend('cpu'); });
  afterAll(() => { for (const r of roots) fs.rmSync(r, { recursive: true, force: true }); });

  for (const c of HOSTILE_CHECKPOINTS) {
    it(`${c.name}: a clear error naming the file or field, nothing allocated`, async () => {
      const { dir, outside, root } = copyCheckpoint(FIXTURE);
      roots.push(root);
      c.make(dir, outside);
      const before = tf.memory();
      tally.tried++;
      let error: unknown;
      try {
        (await loadPretrained(dir)).model.dispose();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(AttentionRopeError);
      const message = (error as Error).message;
      expect(message).toMatch(c.expect);
      expect(message).toMatch(/^\[(loadHfCheckpoint|loadWeights|loadPretrained|loadTokenizer|readDecoderConfig|createModel)\] /);
      expect(message).not.toContain('TOP SECRET');
      expect(message).not.toContain('root:');
      expect(tf.memory().numTensors).toBe(before.numTensors);
      expect(tf.memory().numBytes).toBe(before.numBytes);
      tally.clear++;
    });
  }

  it('a valid sharded index and a Hugging Face cache snapshot (symlinks into blobs/) still load', async () => {
    const { dir, root } = copyCheckpoint(FIXTURE);
    roots.push(root);
    shard(dir);
    const sharded = await loadPretrained(dir);
    // snapshots/<rev>/model.safetensors -> ../../blobs/<hash>, as huggingface_hub lays it out
    const repo = path.join(root, 'models--x--tiny');
    const snap = path.join(repo, 'snapshots', 'abc123');
    fs.mkdirSync(path.join(repo, 'blobs'), { recursive: true });
    fs.mkdirSync(snap, { recursive: true });
    for (const f of fs.readdirSync(FIXTURE).filter((x) => !x.startsWith('expected'))) {
      fs.copyFileSync(path.join(FIXTURE, f), path.join(repo, 'blobs', `blob-${f}`));
      fs.symlinkSync(path.join('..', '..', 'blobs', `blob-${f}`), path.join(snap, f));
    }
    const cached = await loadPretrained(snap);
    expect(cached.model.embedTable.read().arraySync()).toEqual(sharded.model.embedTable.read().arraySync());
    sharded.model.dispose();
    cached.model.dispose();
  });

  it('locateTensors rejects a folder that does not exist or is a file, naming it', () => {
    expect(() => locateTensors('/nonexistent/ckpt')).toThrow("[loadHfCheckpoint] checkpoint folder '/nonexistent/ckpt' does not exist");
    expect(() => locateTensors(path.join(FIXTURE, 'config.json'))).toThrow(/checkpoint folder '.*config\.json' is not a directory/);
  });
});

describe('readSafetensors on buffers', () => {
  const valid = writeSafetensors(new Map([['a', { shape: [2, 2], data: Float32Array.of(1, 2, 3, 4) }]]));

  /** `bytes` placed in the middle of a larger pooled buffer whose other bytes are 0x7f. */
  function pooled(bytes: Uint8Array): Buffer {
    const pool = Buffer.alloc(bytes.length + 4096, 0x7f);
    pool.set(bytes, 2048);
    return pool.subarray(2048, 2048 + bytes.length);
  }

  function withHeader(header: object, dataBytes: number): Uint8Array {
    const h = Buffer.from(JSON.stringify(header));
    const out = Buffer.alloc(8 + h.length + dataBytes);
    out.writeBigUInt64LE(BigInt(h.length));
    h.copy(out, 8);
    return out;
  }

  it('reads a valid view of a pooled Buffer', () => {
    expect(Array.from(readSafetensors(pooled(valid)).get('a')!.data)).toEqual([1, 2, 3, 4]);
  });

  const cases: [string, Uint8Array, RegExp][] = [
    ['offsets past the view into the pool', withHeader({ a: { dtype: 'F32', shape: [4], data_offsets: [16, 32] } }, 16), /the buffer tensor 'a' field data_offsets \[16, 32\] runs past the 16-byte data section/],
    ['negative offsets into the header', withHeader({ a: { dtype: 'F32', shape: [4], data_offsets: [-40, -24] } }, 16), /the buffer tensor 'a' field data_offsets \(\[-40,-24\]\) must be two integers >= 0/],
    ['overlap', withHeader({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, 16), /tensors 'a' \[0,16\] and 'b' \[8,16\] overlap/],
    ['length field past the view', (() => { const b = Buffer.from(valid); b.writeBigUInt64LE(BigInt(valid.length)); return b; })(), /the buffer header length field \(\d+\) runs past the end/],
    ['7 bytes', new Uint8Array(7), /the buffer is 7 bytes, shorter than the 8-byte header length field/],
    ['bad JSON', (() => { const b = Buffer.from(valid); b[9] = 0x7b; b[10] = 0x7b; return b; })(), /the buffer is not valid JSON/],
  ];
  for (const [what, bytes, message] of cases) {
    it(`rejects ${what} (in a pooled Buffer) with a clear error`, () => {
      tally.tried++;
      expect(() => readSafetensors(pooled(bytes))).toThrow(message);
      expect(() => readSafetensors(pooled(bytes))).toThrow(AttentionRopeError);
      tally.clear++;
    });
  }

  it('rejects what is not bytes', () => {
    tally.tried++;
    expect(() => readSafetensors('abc' as unknown as Uint8Array)).toThrow(/\[readSafetensors\] bytes must be a Uint8Array or Buffer, got \[object String\]/);
    tally.clear++;
  });
});
