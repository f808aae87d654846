/**
 * Checkpoint tensors read straight into caller-owned float32 storage (lib/loaders/read_into.ts):
 * the addon's threaded reader (native/widen.cc) and the TypeScript fallback give the same bits for
 * every BF16 / F16 pattern, transposed or not, at any offset and stride, and nothing outside the
 * tensor's slots is written; bad destinations and truncated files are named errors. The float32
 * load on cpu (models/load_in_place.ts) gives every tensor exactly, in BF16, F16 and F32.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { getCpuKernelImpl, nativeKernels, setCpuKernelImpl } from '../../kernels/cpu/native';
import { locateTensors } from '../../lib/loaders/checkpoint';
import { readTensorsInto, type TensorDestination } from '../../lib/loaders/read_into';
import { exportHfWeights } from '../../models/export';
import { loadPretrained, loadWeights } from '../../models/load';
import { createModel } from '../../models/registry';
import { registerAllKernels } from '../../kernels/register_all';
import { FAMILY_CONFIGS, familyWeights } from './support/families';
import { writeCheckpoint } from './support/tiny_checkpoint';

const SENTINEL = -7;

/** A safetensors file of raw tensors (dtype, shape, bytes as given). */
function writeRaw(tensors: [string, string, number[], Uint8Array][]): string {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [name, dtype, shape, bytes] of tensors) { header[name] = { dtype, shape, data_offsets: [off, off + bytes.length] }; off += bytes.length; }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' ';
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(Buffer.from(json), 8);
  let at = 8 + json.length;
  for (const [, , , b] of tensors) { out.set(b, at); at += b.length; }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'read-into-'));
  fs.writeFileSync(path.join(dir, 'model.safetensors'), out);
  return dir;
}

function f16Value(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Expected float32 of stored element i. */
function valueOf(dtype: string, bytes: Uint8Array, i: number): number {
  const v = new DataView(bytes.buffer, bytes.byteOffset);
  if (dtype === 'F32') return v.getFloat32(4 * i, true);
  if (dtype === 'F64') return Math.fround(v.getFloat64(8 * i, true));
  const h = v.getUint16(2 * i, true);
  return dtype === 'BF16' ? new Float32Array(new Uint32Array([h << 16]).buffer)[0] : f16Value(h);
}

const SIZE: Record<string, number> = { BF16: 2, F16: 2, F32: 4, F64: 8 };

function patternBytes(dtype: string, n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n * SIZE[dtype]);
  if (dtype === 'BF16' || dtype === 'F16') {
    const u = new Uint16Array(out.buffer);
    for (let i = 0; i < n; i++) u[i] = (i * 40503 + seed) & 0xffff; // every 16-bit pattern over 65536 values
  } else {
    const f = dtype === 'F32' ? new Float32Array(out.buffer) : new Float64Array(out.buffer);
    for (let i = 0; i < n; i++) f[i] = Math.sin(i * 0.37 + seed) * 1000;
  }
  return out;
}

/** Same float32 value (NaN: any NaN; zeros: same sign). */
const same = (a: number, b: number) => (Number.isNaN(a) && Number.isNaN(b)) || Object.is(a, b);

function withImpl<T>(impl: 'native' | 'ts', f: () => T): T {
  const was = getCpuKernelImpl();
  setCpuKernelImpl(impl);
  try { return f(); } finally { setCpuKernelImpl(was); }
}

describe('readTensorsInto', () => {
  const cases: [string, number[]][] = [
    ['BF16', [256, 256]], ['F16', [256, 256]], ['BF16', [37, 45]], ['F16', [37, 45]], ['F32', [37, 45]], ['F64', [9, 5]],
    ['BF16', [1, 7]], ['F16', [5]], ['F32', [3, 4, 5]], ['BF16', [600, 701]], ['F16', [700, 33]],
  ];
  const impls = nativeKernels ? ['native', 'ts'] as const : ['ts'] as const;

  it('has the addon reader (native/widen.cc) when the addon is built', () => {
    if (nativeKernels) expect(typeof (nativeKernels as unknown as { readInto?: unknown }).readInto).toBe('function');
  });

  for (const [dtype, shape] of cases) {
    for (const transpose of [false, true]) {
      it(`${dtype} [${shape}]${transpose ? ' transposed' : ''}: every value in its slot, offset and stride kept, nothing else written`, () => {
        const n = shape.reduce((a, b) => a * b, 1);
        const cols = shape.length ? shape[shape.length - 1] : 1, rows = n / cols;
        const bytes = patternBytes(dtype, n, shape.length);
        const dir = writeRaw([['pad', 'BF16', [3], new Uint8Array(6)], ['t', dtype, shape, bytes]]);
        const offset = 3, stride = (transpose ? rows : cols) + 2;
        const outer = transpose ? cols : rows;
        const results = impls.map((impl) => withImpl(impl, () => {
          const data = new Float32Array(offset + outer * stride + 5).fill(SENTINEL);
          const d: TensorDestination = { data, offset, stride, transpose };
          readTensorsInto(locateTensors(dir), new Map([['t', d]]));
          return data;
        }));
        for (const data of results) {
          const bad: string[] = [];
          const expected = new Float32Array(data.length).fill(SENTINEL);
          for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) expected[offset + (transpose ? c * stride + r : r * stride + c)] = valueOf(dtype, bytes, r * cols + c);
          for (let i = 0; i < data.length && bad.length < 5; i++) if (!same(data[i], expected[i])) bad.push(`[${i}] ${data[i]} != ${expected[i]}`);
          expect(bad).toEqual([]);
        }
        if (results.length === 2) { // native and TypeScript: the same bits (NaN payloads included where both keep them)
          const [a, b] = results.map((r) => new Uint32Array(r.buffer));
          let differ = 0;
          for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && !(Number.isNaN(results[0][i]) && Number.isNaN(results[1][i]))) differ++;
          expect(differ).toBe(0);
        }
        fs.rmSync(dir, { recursive: true });
      });
    }
  }

  for (const impl of impls) {
    it(`${impl}: a destination too small, a stride too short and a file cut short are named errors`, () => withImpl(impl, () => {
      const dir = writeRaw([['w', 'BF16', [40, 24], patternBytes('BF16', 960, 1)]]);
      const locs = locateTensors(dir);
      const put = (d: Partial<TensorDestination>) => readTensorsInto(locs, new Map([['w', { data: new Float32Array(960), offset: 0, stride: 24, transpose: false, ...d }]]));
      expect(() => put({ offset: 1 })).toThrow("[loadHfCheckpoint] tensor 'w' [40,24] placed at offset 1, stride 24 needs 961 floats, its destination holds 960");
      expect(() => put({ transpose: true })).toThrow("tensor 'w' destination must be a Float32Array with offset >= 0 and stride >= 40, got offset 0 and stride 24");
      expect(() => readTensorsInto(locs, new Map([['x', { data: new Float32Array(1), offset: 0, stride: 1, transpose: false }]])))
        .toThrow("[loadHfCheckpoint] tensor 'x' is not in the checkpoint");
      const file = path.join(dir, 'model.safetensors');
      const size = fs.statSync(file).size;
      fs.truncateSync(file, size - 100); // cut after the header was read: the data ends early
      expect(() => put({})).toThrow(new RegExp(`'${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}' ends at byte \\d+ inside tensor 'w' \\(needs bytes up to ${size}\\)`));
      fs.rmSync(dir, { recursive: true });
    }));
  }
});

for (const backend of ['cpu', 'wasm']) {
  describe(`loadPretrained on ${backend} (cpu: read in place; wasm: per tensor)`, () => {
    beforeAll(async () => {
      if (backend === 'wasm') require('@tensorflow/tfjs-backend-wasm');
      await tf.setBackend(backend);
      registerAllKernels();
    });
    afterAll(async () => { await tf.setBackend('cpu'); });

    for (const dtype of ['BF16', 'F16', 'F32'] as const) {
      for (const family of ['llama_bias_hf4', 'qwen3_layer_types', 'olmo_clip']) {
        it(`${family} ${dtype}: every tensor exact, no tensor or byte beyond a fresh model's`, async () => {
          const cfg = FAMILY_CONFIGS[family];
          const w = familyWeights(cfg);
          const dir = writeCheckpoint(cfg, w, { dtype, shards: family === 'olmo_clip' ? 2 : 1 });
          const m0 = tf.memory();
          createModel(cfg).dispose();
          const built = tf.memory(); // what a model holds: its variables and RoPE tables
          const plainModel = createModel(cfg);
          const held = { tensors: tf.memory().numTensors - built.numTensors, bytes: tf.memory().numBytes - built.numBytes };
          plainModel.dispose();
          expect(tf.memory().numTensors).toBe(m0.numTensors);
          const { model } = await loadPretrained(dir);
          expect({ tensors: tf.memory().numTensors - m0.numTensors, bytes: tf.memory().numBytes - m0.numBytes }).toEqual(held);
          const got = exportHfWeights(model);
          for (const [name, t] of w) {
            if (!got.has(name)) continue; // tied head
            expect([name, Array.from(got.get(name)!.data)]).toEqual([name, Array.from(Float32Array.from(t.data))]);
          }
          model.dispose();
          fs.rmSync(dir, { recursive: true });
        });
      }
    }
  });
}

describe('loadWeights into a model in use', () => {
  beforeAll(async () => { await tf.setBackend('cpu'); });

  it('gives its variables new arrays: a clone of an old value keeps its numbers', async () => {
    const cfg = FAMILY_CONFIGS.llama_bias_hf4;
    const dirA = writeCheckpoint(cfg, familyWeights(cfg));
    const w2 = familyWeights(cfg); // same shapes, negated values
    for (const t of w2.values()) for (let i = 0; i < t.data.length; i++) t.data[i] = -t.data[i];
    const dirB = writeCheckpoint(cfg, w2);
    const { model } = await loadPretrained(dirA);
    const kernel = model.blocks[0].attn.qProj!.kernel;
    const kept = tf.clone(kernel.read());
    const old = Array.from(kept.dataSync());
    loadWeights(model, locateTensors(dirB));
    expect(Array.from(kept.dataSync())).toEqual(old);
    expect(Array.from(kernel.read().dataSync())).toEqual(old.map((x) => -x));
    kept.dispose();
    model.dispose();
    for (const d of [dirA, dirB]) fs.rmSync(d, { recursive: true });
  });
});
