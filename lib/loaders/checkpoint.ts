/**
 * Hugging Face checkpoint folders: `config.json`, `model.safetensors` or a sharded
 * `model.safetensors.index.json`, tensors streamed straight into float32 arrays.
 *
 * Memory: only the headers are read up front; each tensor's bytes are then read once, in file
 * order, directly into its own float32 array (F32) or through one small per-tensor buffer
 * (F16/BF16/F64). Nothing holds a whole file, so peak memory stays near the weights' float32 size.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { check } from '../errors.js';

const WHERE = 'loadHfCheckpoint';

/** Where one tensor lives: its file, dtype, shape and byte range (absolute in the file). */
export interface TensorLocation {
  name: string;
  file: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

/** A float32 tensor read from a checkpoint. */
export interface LoadedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

const BYTES: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

/** Reads `config.json` of a checkpoint folder. */
export function readHfConfig(dir: string): Record<string, unknown> {
  const file = path.join(dir, 'config.json');
  check(fs.existsSync(file), WHERE, () => `no config.json in '${dir}'`);
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
}

/** Reads the header of one safetensors file (8-byte little-endian length, then JSON). */
export function readSafetensorsLocations(file: string): Map<string, TensorLocation> {
  const fd = fs.openSync(file, 'r');
  try {
    const lenBuf = Buffer.alloc(8);
    check(fs.readSync(fd, lenBuf, 0, 8, 0) === 8, WHERE, () => `'${file}' is shorter than a safetensors header`);
    const n = Number(lenBuf.readBigUInt64LE(0));
    const size = fs.fstatSync(fd).size;
    check(n > 0 && 8 + n <= size, WHERE, () => `'${file}' header length (${n}) exceeds the file size (${size})`);
    const headerBuf = Buffer.alloc(n);
    fs.readSync(fd, headerBuf, 0, n, 8);
    const header = JSON.parse(headerBuf.toString('utf8')) as Record<string, any>;
    const out = new Map<string, TensorLocation>();
    for (const [name, info] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const [b, e] = info.data_offsets as [number, number];
      out.set(name, { name, file, dtype: info.dtype, shape: info.shape, begin: 8 + n + b, end: 8 + n + e });
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Locates every tensor of a checkpoint folder: `model.safetensors`, or the shards named by
 * `model.safetensors.index.json` (`weight_map`: tensor name -> shard file).
 */
export function locateTensors(dir: string): Map<string, TensorLocation> {
  const index = path.join(dir, 'model.safetensors.index.json');
  const single = path.join(dir, 'model.safetensors');
  if (fs.existsSync(index)) {
    const weightMap = (JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map?: Record<string, string> }).weight_map;
    check(weightMap && typeof weightMap === 'object', WHERE, () => `'${index}' has no weight_map`);
    const out = new Map<string, TensorLocation>();
    for (const shard of new Set(Object.values(weightMap))) {
      const file = path.join(dir, shard);
      check(fs.existsSync(file), WHERE, () => `shard '${shard}' named by model.safetensors.index.json is missing in '${dir}'`);
      for (const [name, loc] of readSafetensorsLocations(file)) out.set(name, loc);
    }
    for (const name of Object.keys(weightMap)) {
      check(out.has(name), WHERE, () => `tensor '${name}' is not in shard '${weightMap[name]}' although the index names it`);
    }
    return out;
  }
  check(fs.existsSync(single), WHERE, () => `no model.safetensors or model.safetensors.index.json in '${dir}'`);
  return readSafetensorsLocations(single);
}

/**
 * Checks that every expected tensor exists with the expected shape; the error names each
 * missing or mis-shaped tensor with both shapes.
 */
export function checkTensorShapes(found: Map<string, TensorLocation>, expected: Map<string, number[]>, where = WHERE): void {
  const missing = [...expected.keys()].filter((n) => !found.has(n));
  check(missing.length === 0, where, () =>
    `checkpoint lacks ${missing.length} tensor(s): ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}`);
  const bad: string[] = [];
  for (const [name, shape] of expected) {
    const got = found.get(name)!.shape;
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) bad.push(`${name} is [${got}], expected [${shape}]`);
  }
  check(bad.length === 0, where, () => `mis-shaped tensor(s): ${bad.join('; ')}`);
  for (const name of expected.keys()) {
    const loc = found.get(name)!;
    check(loc.dtype in BYTES, where, () => `tensor '${name}' has dtype ${loc.dtype}; supported: ${Object.keys(BYTES).join(', ')}`);
    const want = loc.shape.reduce((a, b) => a * b, 1) * BYTES[loc.dtype];
    check(loc.end - loc.begin === want, where, () =>
      `tensor '${name}' holds ${loc.end - loc.begin} bytes, its shape [${loc.shape}] of ${loc.dtype} needs ${want}`);
  }
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

function readTensor(fd: number, loc: TensorLocation): Float32Array {
  const count = loc.shape.reduce((a, b) => a * b, 1);
  const nbytes = loc.end - loc.begin;
  const out = new Float32Array(count);
  const readInto = (buf: Uint8Array) => {
    let done = 0;
    while (done < nbytes) {
      const n = fs.readSync(fd, buf, done, nbytes - done, loc.begin + done);
      check(n > 0, WHERE, () => `'${loc.file}' ends inside tensor '${loc.name}'`);
      done += n;
    }
  };
  if (loc.dtype === 'F32') {
    readInto(new Uint8Array(out.buffer));
  } else if (loc.dtype === 'F16' || loc.dtype === 'BF16') {
    const half = new Uint16Array(count);
    readInto(new Uint8Array(half.buffer));
    if (loc.dtype === 'BF16') {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = half[i] << 16;
    } else {
      const t = halfTable();
      for (let i = 0; i < count; i++) out[i] = t[half[i]];
    }
  } else if (loc.dtype === 'F64') {
    const wide = new Float64Array(count);
    readInto(new Uint8Array(wide.buffer));
    out.set(wide);
  } else {
    check(false, WHERE, () => `tensor '${loc.name}' has dtype ${loc.dtype}; supported: ${Object.keys(BYTES).join(', ')}`);
  }
  return out;
}

/**
 * Streams the named tensors as float32, one file at a time, each file opened once and read
 * front to back. The caller should copy each tensor where it belongs and drop it.
 *
 * @example
 * const locs = locateTensors(dir);
 * for (const t of readTensors(locs, ['model.norm.weight'])) console.log(t.name, t.shape);
 */
export function* readTensors(locations: Map<string, TensorLocation>, names?: Iterable<string>): Generator<LoadedTensor> {
  const wanted = [...(names ?? locations.keys())].map((n) => {
    const loc = locations.get(n);
    check(loc, WHERE, () => `tensor '${n}' is not in the checkpoint`);
    return loc;
  });
  const byFile = new Map<string, TensorLocation[]>();
  for (const loc of wanted) {
    if (!byFile.has(loc.file)) byFile.set(loc.file, []);
    byFile.get(loc.file)!.push(loc);
  }
  for (const [file, locs] of byFile) {
    locs.sort((a, b) => a.begin - b.begin);
    const fd = fs.openSync(file, 'r');
    try {
      for (const loc of locs) yield { name: loc.name, shape: loc.shape.slice(), data: readTensor(fd, loc) };
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Reads a whole safetensors file as float32 tensors (small files: fixtures, expected logits). */
export function readSafetensorsFileF32(file: string): Map<string, LoadedTensor> {
  const out = new Map<string, LoadedTensor>();
  for (const t of readTensors(readSafetensorsLocations(file))) out.set(t.name, t);
  return out;
}
