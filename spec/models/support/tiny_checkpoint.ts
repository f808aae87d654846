/**
 * Writes small random Hugging Face checkpoints for specs: any family config, F32/F16/BF16,
 * single file or sharded with model.safetensors.index.json. Values are multiples of 1/1024 in
 * [-0.25, 0.25], exact in every dtype, so a float64 reference sees the same weights.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type StoreDtype = 'F32' | 'F16' | 'BF16';

export interface Tensor64 { shape: number[]; data: Float64Array }

function f16Bits(x: number): number {
  if (x === 0) return 0;
  const s = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  const e = Math.floor(Math.log2(a));
  if (e < -14) return s | Math.round(a / 2 ** -24); // subnormal
  const m = Math.round((a / 2 ** e - 1) * 1024);
  return s | ((e + 15) << 10) | m;
}

function encode(data: Float64Array, dtype: StoreDtype): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(Float32Array.from(data).buffer);
  const out = new Uint16Array(data.length);
  if (dtype === 'BF16') {
    const bits = new Uint32Array(Float32Array.from(data).buffer);
    for (let i = 0; i < data.length; i++) out[i] = bits[i] >>> 16;
  } else {
    for (let i = 0; i < data.length; i++) out[i] = f16Bits(data[i]);
  }
  return new Uint8Array(out.buffer);
}

/** Bytes of a safetensors file holding `tensors` in `dtype`. */
export function safetensorsBytes(tensors: Map<string, Tensor64>, dtype: StoreDtype): Uint8Array {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const blobs: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of tensors) {
    const b = encode(t.data, dtype);
    header[name] = { dtype, shape: t.shape, data_offsets: [off, off + b.length] };
    blobs.push(b);
    off += b.length;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' ';
  const out = new Uint8Array(8 + json.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(Buffer.from(json, 'utf8'), 8);
  let p = 8 + json.length;
  for (const b of blobs) { out.set(b, p); p += b.length; }
  return out;
}

/** Deterministic pseudo-random weights, multiples of 1/1024 in [-0.25, 0.25]. */
export function randomTensor(shape: number[], seed: number, ones = false): Tensor64 {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float64Array(n);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const v = ((s >>> 8) % 513) - 256; // [-256, 256]
    data[i] = ones ? 1 + Math.trunc(v / 8) / 128 : v / 1024; // exact in BF16 and F16
  }
  return { shape, data };
}

/** Writes `config` and `tensors` as a checkpoint folder; returns its path. */
export function writeCheckpoint(config: Record<string, unknown>, tensors: Map<string, Tensor64>,
  opts: { dtype?: StoreDtype; shards?: number; dir?: string } = {}): string {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'tiny-ckpt-'));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const dtype = opts.dtype ?? 'F32';
  const shards = opts.shards ?? 1;
  if (shards === 1) {
    fs.writeFileSync(path.join(dir, 'model.safetensors'), safetensorsBytes(tensors, dtype));
    return dir;
  }
  const names = [...tensors.keys()];
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = new Map(names.filter((_, i) => i % shards === s).map((n) => [n, tensors.get(n)!]));
    for (const n of part.keys()) weightMap[n] = file;
    fs.writeFileSync(path.join(dir, file), safetensorsBytes(part, dtype));
  }
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  return dir;
}
