/**
 * Validation of a safetensors header, shared by the in-memory reader (`readSafetensors`) and
 * the checkpoint streamer: every entry's dtype, shape and `data_offsets` are checked against
 * the data section's size before any byte is read, and no two tensors may overlap. Each error
 * names the file (or buffer), the tensor and the field, with the values found.
 */
import { check } from '../errors.js';
import { parseJsonText } from './limits.js';

/** Bytes per element of every safetensors dtype. */
export const SAFETENSORS_DTYPE_BYTES: Readonly<Record<string, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
};

/** One validated tensor entry; offsets are relative to the data section. */
export interface SafetensorsEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export interface SafetensorsHeader {
  entries: Map<string, SafetensorsEntry>;
  metadata?: Record<string, string>;
}

/** Checks the 8-byte header length against the file size and the header limit. */
export function checkHeaderLength(headerLen: bigint, fileSize: number, label: string, where: string, limit: number): number {
  check(fileSize >= 8, where, () => `${label} is ${fileSize} bytes, shorter than the 8-byte header length field`);
  check(headerLen >= 2n, where, () => `${label} header length field is ${headerLen}; a header holds at least '{}' (2 bytes)`);
  check(headerLen <= BigInt(limit), where, () => `${label} header length field (${headerLen}) is over the ${limit}-byte header limit`);
  const n = Number(headerLen);
  check(8 + n <= fileSize, where, () => `${label} header length field (${n}) runs past the end: the file has ${fileSize - 8} bytes after the length field`);
  return n;
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/**
 * Parses and validates header JSON text for a data section of `dataBytes` bytes.
 * `label` names the file (or `'buffer'`) in errors.
 */
export function parseSafetensorsHeader(text: string, dataBytes: number, label: string, where: string): SafetensorsHeader {
  const json = parseJsonText(text, label, where);
  check(typeof json === 'object' && json !== null && !Array.isArray(json), where, () => `${label} header must be a JSON object`);
  const entries = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> | undefined;
  for (const [name, info] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      check(typeof info === 'object' && info !== null && !Array.isArray(info), where, () => `${label} __metadata__ must be an object of strings`);
      metadata = info as Record<string, string>;
      continue;
    }
    entries.set(name, checkEntry(name, info, dataBytes, label, where));
  }
  checkNoOverlap(entries, label, where);
  return { entries, metadata };
}

function checkEntry(name: string, info: unknown, dataBytes: number, label: string, where: string): SafetensorsEntry {
  const t = `${label} tensor '${name}'`;
  check(typeof info === 'object' && info !== null && !Array.isArray(info), where, () => `${t} must be an object {dtype, shape, data_offsets}`);
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  check(typeof dtype === 'string' && dtype in SAFETENSORS_DTYPE_BYTES, where, () =>
    `${t} field dtype (${JSON.stringify(dtype)}) is not a safetensors dtype (${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')})`);
  check(Array.isArray(shape) && shape.every(isCount), where, () => `${t} field shape (${JSON.stringify(shape)}) must be an array of integers >= 0`);
  check(Array.isArray(offsets) && offsets.length === 2 && offsets.every(isCount), where, () =>
    `${t} field data_offsets (${JSON.stringify(offsets)}) must be two integers >= 0`);
  const [begin, end] = offsets as [number, number];
  check(begin <= end, where, () => `${t} field data_offsets [${begin}, ${end}] ends before it begins`);
  check(end <= dataBytes, where, () => `${t} field data_offsets [${begin}, ${end}] runs past the ${dataBytes}-byte data section`);
  const count = (shape as number[]).reduce((a, b) => a * b, 1);
  const need = count * SAFETENSORS_DTYPE_BYTES[dtype];
  check(Number.isSafeInteger(need) && end - begin === need, where, () =>
    `${t} field data_offsets [${begin}, ${end}] spans ${end - begin} bytes; its shape [${shape as number[]}] of ${dtype} needs ${need}`);
  return { dtype, shape: (shape as number[]).slice(), data_offsets: [begin, end] };
}

function checkNoOverlap(entries: Map<string, SafetensorsEntry>, label: string, where: string): void {
  const spans = [...entries].filter(([, e]) => e.data_offsets[1] > e.data_offsets[0]).sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  for (let i = 1; i < spans.length; i++) {
    const [prevName, prev] = spans[i - 1];
    const [name, e] = spans[i];
    check(e.data_offsets[0] >= prev.data_offsets[1], where, () =>
      `${label} tensors '${prevName}' [${prev.data_offsets}] and '${name}' [${e.data_offsets}] overlap in data_offsets`);
  }
}
