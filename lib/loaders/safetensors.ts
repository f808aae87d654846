/**
 * Minimal safetensors reader/writer: 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}}`, then the raw little-endian bytes.
 * Float types (F32, F16, BF16, F64) come out as Float32Array, integer types (I32, I64, I8, U8, I16) as Int32Array.
 */
import { check } from '../errors.js';
import { CHECKPOINT_LIMITS } from './limits.js';
import { checkHeaderLength, parseSafetensorsHeader, type SafetensorsEntry } from './safetensors_header.js';

export type { SafetensorsEntry } from './safetensors_header.js';

export interface LoadedTensor {
  dtype: string;
  shape: number[];
  data: Float32Array | Int32Array;
}

/** dtypes `readSafetensors` decodes (float ones to Float32Array, integer ones to Int32Array). */
const BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/**
 * Parses and validates the header of safetensors bytes (every entry's dtype, shape and offsets
 * checked against this view's own byteLength: a pooled Buffer's neighbours are never read).
 */
export function safetensorsHeader(bytes: Uint8Array): { entries: Record<string, SafetensorsEntry>; dataStart: number; metadata?: Record<string, string> } {
  check(bytes instanceof Uint8Array, 'readSafetensors', () => `bytes must be a Uint8Array or Buffer, got ${Object.prototype.toString.call(bytes)}`);
  const size = bytes.byteLength;
  const lenField = size >= 8 ? new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true) : 0n;
  const headerLen = checkHeaderLength(lenField, size, 'the buffer', 'readSafetensors', CHECKPOINT_LIMITS.safetensorsHeader);
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
  const { entries, metadata } = parseSafetensorsHeader(text, size - 8 - headerLen, 'the buffer', 'readSafetensors');
  return { entries: Object.fromEntries(entries), dataStart: 8 + headerLen, metadata };
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Decodes one entry of a safetensors file to float32 or int32. */
export function decodeEntry(bytes: Uint8Array, dataStart: number, name: string, e: SafetensorsEntry): LoadedTensor {
  const size = BYTES[e.dtype];
  check(size !== undefined, 'readSafetensors', () => `tensor '${name}' has dtype ${e.dtype}; readSafetensors decodes ${Object.keys(BYTES).join(', ')}`);
  const n = e.shape.reduce((a, b) => a * b, 1);
  const [begin, end] = e.data_offsets;
  check(end - begin === n * size && dataStart + end <= bytes.byteLength, 'readSafetensors', () =>
    `tensor '${name}' data_offsets [${begin}, ${end}] do not fit its shape [${e.shape}] of ${e.dtype} inside the ${bytes.byteLength - dataStart}-byte data section`);
  const at = dataStart + begin;
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, n * size);
  const isFloat = e.dtype[0] === 'F' || e.dtype === 'BF16';
  const out = isFloat ? new Float32Array(n) : new Int32Array(n);
  switch (e.dtype) {
    case 'F32':
      if ((bytes.byteOffset + at) % 4 === 0) out.set(new Float32Array(bytes.buffer, bytes.byteOffset + at, n));
      else for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case 'F64': for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true); break;
    case 'F16': for (let i = 0; i < n; i++) out[i] = f16ToF32(view.getUint16(2 * i, true)); break;
    case 'BF16': {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = view.getUint16(2 * i, true) << 16;
      break;
    }
    case 'I64': for (let i = 0; i < n; i++) out[i] = Number(view.getBigInt64(8 * i, true)); break;
    case 'I32': for (let i = 0; i < n; i++) out[i] = view.getInt32(4 * i, true); break;
    case 'I16': for (let i = 0; i < n; i++) out[i] = view.getInt16(2 * i, true); break;
    case 'I8': for (let i = 0; i < n; i++) out[i] = view.getInt8(i); break;
    default: for (let i = 0; i < n; i++) out[i] = view.getUint8(i); break;
  }
  return { dtype: e.dtype, shape: e.shape, data: out };
}

/**
 * Reads every tensor of safetensors bytes (a Buffer view of a larger pool is fine: only its own
 * byteOffset..byteLength range is read).
 *
 * @example
 * const tensors = readSafetensors(fs.readFileSync('weights.safetensors'));
 * tensors.get('lm_head.weight')?.shape; // [vocab, hidden]
 */
export function readSafetensors(bytes: Uint8Array): Map<string, LoadedTensor> {
  const { entries, dataStart } = safetensorsHeader(bytes);
  const out = new Map<string, LoadedTensor>();
  for (const [name, e] of Object.entries(entries)) out.set(name, decodeEntry(bytes, dataStart, name, e));
  return out;
}

/** Writes float32 tensors as a safetensors file (names sorted, 8-byte aligned data). */
export function writeSafetensors(tensors: Map<string, { shape: number[]; data: Float32Array }>, metadata?: Record<string, string>): Uint8Array {
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const n = t.shape.reduce((a, b) => a * b, 1);
    check(n === t.data.length, 'writeSafetensors', () => `tensor '${name}' shape [${t.shape}] holds ${n} values, data has ${t.data.length}`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * n] };
    offset += 4 * n;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.length;
  for (const name of names) {
    const d = tensors.get(name)!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), at);
    at += d.byteLength;
  }
  return out;
}
