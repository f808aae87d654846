/**
 * Reads checkpoint tensors straight into float32 storage the caller owns (issue 11, loading at
 * disk speed): a model's variables, views of one arena, at any offset and row stride, optionally
 * transposed (Hugging Face `[out, in]` -> the layers' `[in, out]`) or side by side (stacked q/k/v
 * columns). Nothing holds a file or a second float32 copy of a tensor.
 *
 * With the native addon (`readInto`, native/widen.cc): the pool's threads pread ~512 KiB blocks
 * into their own scratch and widen (BF16, F16) or transpose them into place with AVX-512; F32 is
 * read straight into place. Without it (browsers never get here: this is Node-only; the addon
 * missing or `TFJS_ATTENTION_CPU_IMPL=ts`): 1 MiB chunks through one reused buffer, BF16 widened
 * with WebAssembly SIMD (widen_bf16.ts), F16 through a table, F64 by a copy, then placed.
 *
 * @example
 * const locs = locateTensors(dir);
 * const embed = new Float32Array(32000 * 512);
 * readTensorsInto(locs, new Map([['model.embed_tokens.weight', { data: embed, offset: 0, stride: 512, transpose: false }]]));
 */
import * as fs from 'node:fs';
import { check } from '../errors.js';
import { activeNative } from '../../kernels/cpu/native.js';
import { openRegularFile, readFully } from './checkpoint_files.js';
import type { TensorLocation } from './checkpoint.js';
import { bf16Widener } from './widen_bf16.js';

const WHERE = 'loadHfCheckpoint';

/**
 * Where one tensor `[rows, cols]` (leading dims folded into rows; a 1-D tensor is one row) goes:
 * `data[offset + r * stride + c]`, or with `transpose` `data[offset + c * stride + r]`.
 */
export interface TensorDestination {
  data: Float32Array;
  offset: number;
  stride: number;
  transpose: boolean;
}

/** The addon's reader (native/widen.cc); absent from addons built before it. */
type NativeReadInto = (fd: number, position: number, dtype: number, rows: number, cols: number, dst: Float32Array,
  dstOffset: number, dstStride: number, transpose: number) => number;

const NATIVE_DTYPE: Record<string, number> = { BF16: 0, F16: 1, F32: 2 };
const BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

function nativeReader(): NativeReadInto | undefined {
  const n = activeNative() as unknown as { readInto?: NativeReadInto } | null;
  return typeof n?.readInto === 'function' ? n.readInto : undefined;
}

/** `[rows, cols]` of a tensor shape: leading dims folded into rows; a scalar or 1-D tensor is one row. */
export function rowsCols(shape: number[]): [number, number] {
  if (shape.length === 0) return [1, 1];
  const cols = shape[shape.length - 1];
  return [shape.slice(0, -1).reduce((a, b) => a * b, 1), cols];
}

function checkDestination(loc: TensorLocation, d: TensorDestination, rows: number, cols: number): void {
  const inner = d.transpose ? rows : cols, outer = d.transpose ? cols : rows;
  const ok = d.data instanceof Float32Array && Number.isInteger(d.offset) && d.offset >= 0 && Number.isInteger(d.stride) && d.stride >= inner;
  check(ok, WHERE, () => `tensor '${loc.name}' destination must be a Float32Array with offset >= 0 and stride >= ${inner}, ` +
    `got offset ${d.offset} and stride ${d.stride}`);
  const last = d.offset + (outer - 1) * d.stride + inner;
  check(rows * cols === 0 || last <= d.data.length, WHERE, () =>
    `tensor '${loc.name}' [${loc.shape}] placed at offset ${d.offset}, stride ${d.stride}${d.transpose ? ', transposed' : ''} ` +
    `needs ${last} floats, its destination holds ${d.data.length}`);
}

let f16Table: Float32Array | undefined;
/** Float32 value of every float16 bit pattern (256 KiB, built once). */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  f16Table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    f16Table[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return f16Table;
}

/** Bytes read per chunk by the fallback (the chunk stays in cache while it is widened and placed). */
const CHUNK_BYTES = 1 << 20;
let chunkBytes: ArrayBuffer | undefined;
let chunkFloats: Float32Array | undefined;

/** Widens `n` stored values in `raw` (of `dtype`) into `out[0 .. n)`. */
function widenChunk(dtype: string, raw: Uint8Array, n: number, out: Float32Array): void {
  if (dtype === 'F32') out.set(new Float32Array(raw.buffer, raw.byteOffset, n));
  else if (dtype === 'F64') out.set(new Float64Array(raw.buffer, raw.byteOffset, n));
  else {
    const half = new Uint16Array(raw.buffer, raw.byteOffset, n);
    if (dtype === 'BF16') { const bits = new Uint32Array(out.buffer, out.byteOffset, n); for (let i = 0; i < n; i++) bits[i] = half[i] << 16; }
    else { const t = halfTable(); for (let i = 0; i < n; i++) out[i] = t[half[i]]; }
  }
}

/** The fallback: rows in chunks through one buffer, widened, then copied or transposed into place. */
function readIntoJs(fd: number, loc: TensorLocation, d: TensorDestination, rows: number, cols: number): void {
  const size = BYTES[loc.dtype];
  const what = `tensor '${loc.name}'`;
  if (!d.transpose && (d.stride === cols || rows === 1)) { // contiguous: flat chunks of values
    const count = rows * cols;
    if (loc.dtype === 'F32') return readFully(fd, new Uint8Array(d.data.buffer, d.data.byteOffset + 4 * d.offset, 4 * count), loc.begin, loc.file, WHERE, what);
    if (loc.dtype === 'BF16') {
      const w = bf16Widener();
      for (let first = 0; first < count; first += w.chunkValues) {
        const n = Math.min(w.chunkValues, count - first);
        readFully(fd, w.input(n), loc.begin + 2 * first, loc.file, WHERE, what);
        w.widen(n, d.data, d.offset + first);
      }
      return;
    }
  }
  const rowBytes = cols * size;
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
  if (!chunkBytes || chunkBytes.byteLength < perChunk * rowBytes) chunkBytes = new ArrayBuffer(Math.max(CHUNK_BYTES, rowBytes));
  if (!chunkFloats || chunkFloats.length < perChunk * cols) chunkFloats = new Float32Array(Math.max(CHUNK_BYTES, rowBytes) / 2);
  for (let r0 = 0; r0 < rows; r0 += perChunk) {
    const n = Math.min(perChunk, rows - r0);
    const raw = new Uint8Array(chunkBytes, 0, n * rowBytes);
    readFully(fd, raw, loc.begin + r0 * rowBytes, loc.file, WHERE, what);
    const vals = chunkFloats.subarray(0, n * cols); // [n, cols]
    widenChunk(loc.dtype, raw, n * cols, vals);
    if (!d.transpose) {
      for (let r = 0; r < n; r++) d.data.set(vals.subarray(r * cols, (r + 1) * cols), d.offset + (r0 + r) * d.stride);
      continue;
    }
    const B = 32; // tiles: dst[(c) * stride + r0 + r] = vals[r * cols + c]
    for (let rb = 0; rb < n; rb += B) {
      const re = Math.min(n, rb + B);
      for (let cb = 0; cb < cols; cb += B) {
        const ce = Math.min(cols, cb + B);
        for (let c = cb; c < ce; c++) {
          const at = d.offset + c * d.stride + r0;
          for (let r = rb; r < re; r++) d.data[at + r] = vals[r * cols + c];
        }
      }
    }
  }
}

/** Reads one located tensor from its open file into `d` (checked to fit first). */
export function readTensorInto(fd: number, loc: TensorLocation, d: TensorDestination): void {
  const size = BYTES[loc.dtype];
  check(size !== undefined, WHERE, () => `tensor '${loc.name}' has dtype ${loc.dtype}; supported: ${Object.keys(BYTES).join(', ')}`);
  const [rows, cols] = rowsCols(loc.shape);
  check(loc.end - loc.begin === rows * cols * size, WHERE, () =>
    `tensor '${loc.name}' holds ${loc.end - loc.begin} bytes, its shape [${loc.shape}] of ${loc.dtype} needs ${rows * cols * size}`);
  checkDestination(loc, d, rows, cols);
  if (rows * cols === 0) return;
  const native = nativeReader();
  const code = NATIVE_DTYPE[loc.dtype];
  if (!native || code === undefined) return readIntoJs(fd, loc, d, rows, cols);
  const got = native(fd, loc.begin, code, rows, cols, d.data, d.offset, d.stride, d.transpose ? 1 : 0);
  check(got === loc.end - loc.begin, WHERE, () =>
    `'${loc.file}' ends at byte ${loc.begin + got} inside tensor '${loc.name}' (needs bytes up to ${loc.end})`);
}

/** The locations grouped by file, each file's in byte order (a file is then opened once and read front to back). */
export function byFileInOrder(locations: Iterable<TensorLocation>): Map<string, TensorLocation[]> {
  const byFile = new Map<string, TensorLocation[]>();
  for (const loc of locations) {
    if (!byFile.has(loc.file)) byFile.set(loc.file, []);
    byFile.get(loc.file)!.push(loc);
  }
  for (const locs of byFile.values()) locs.sort((a, b) => a.begin - b.begin);
  return byFile;
}

/**
 * Reads every named tensor into its destination, one file at a time, each file opened once and
 * read front to back. Every destination is checked against its tensor before the first byte is read.
 */
export function readTensorsInto(locations: Map<string, TensorLocation>, destinations: Map<string, TensorDestination>): void {
  const wanted = [...destinations].map(([name, d]) => {
    const loc = locations.get(name);
    check(loc, WHERE, () => `tensor '${name}' is not in the checkpoint`);
    const [rows, cols] = rowsCols(loc.shape);
    checkDestination(loc, d, rows, cols);
    return loc;
  });
  for (const [file, locs] of byFileInOrder(wanted)) {
    const { fd } = openRegularFile(file, WHERE);
    try {
      for (const loc of locs) readTensorInto(fd, loc, destinations.get(loc.name)!);
    } finally {
      fs.closeSync(fd);
    }
  }
}
