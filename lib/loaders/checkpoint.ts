/**
 * Hugging Face checkpoint folders: `config.json`, `model.safetensors` or a sharded
 * `model.safetensors.index.json`, tensors streamed straight into float32 arrays.
 *
 * Memory: only the headers are read (and validated, see safetensors_header.ts) up front; each
 * tensor's bytes are then read once, in file order, directly into its own float32 array
 * (read_into.ts: the addon's threads widen ~512 KiB blocks in place; without it one 1 MiB chunk).
 * Nothing holds a whole file, so peak memory stays near the weights' float32 size.
 * `readTensorsInto` (read_into.ts) places tensors into storage the caller owns instead.
 * Every file is opened through checkpoint_files.ts: confined to the folder, regular files only.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { check } from '../errors.js';
import { CHECKPOINT_LIMITS, confinedPath, openRegularFile, readFully, readJsonObject } from './checkpoint_files.js';
import { checkHeaderLength, parseSafetensorsHeader } from './safetensors_header.js';
import { byFileInOrder, readTensorInto, rowsCols } from './read_into.js';

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

/** Reads `config.json` of a checkpoint folder (confined to the folder, a regular file, a JSON object). */
export function readHfConfig(dir: string): Record<string, unknown> {
  checkFolder(dir);
  const file = confinedPath(dir, 'config.json', WHERE, 'config.json');
  check(fs.existsSync(file), WHERE, () => `no config.json in '${dir}'`);
  return readJsonObject(file, WHERE);
}

function checkFolder(dir: string): void {
  check(typeof dir === 'string' && dir.length > 0, WHERE, () => `dir must be a folder path, got ${JSON.stringify(dir)}`);
  let st: fs.Stats;
  try { st = fs.statSync(dir); } catch { return check(false, WHERE, () => `checkpoint folder '${dir}' does not exist`); }
  check(st.isDirectory(), WHERE, () => `checkpoint folder '${dir}' is not a directory`);
}

/**
 * Reads and validates the header of one safetensors file (8-byte little-endian length, then
 * JSON): every tensor's dtype, shape and data_offsets are checked against the file's size and
 * against each other (no overlaps) before any tensor byte is read.
 */
export function readSafetensorsLocations(file: string): Map<string, TensorLocation> {
  const { fd, size } = openRegularFile(file, WHERE);
  try {
    const lenBuf = Buffer.alloc(8);
    if (size >= 8) readFully(fd, lenBuf, 0, file, WHERE, 'the header length field');
    const n = checkHeaderLength(size >= 8 ? lenBuf.readBigUInt64LE(0) : 0n, size, `'${file}'`, WHERE, CHECKPOINT_LIMITS.safetensorsHeader);
    const headerBuf = Buffer.alloc(n);
    readFully(fd, headerBuf, 8, file, WHERE, 'the header');
    const { entries } = parseSafetensorsHeader(headerBuf.toString('utf8'), size - 8 - n, `'${file}'`, WHERE);
    const out = new Map<string, TensorLocation>();
    for (const [name, e] of entries) {
      out.set(name, { name, file, dtype: e.dtype, shape: e.shape, begin: 8 + n + e.data_offsets[0], end: 8 + n + e.data_offsets[1] });
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Locates every tensor of a checkpoint folder: `model.safetensors`, or the shards named by
 * `model.safetensors.index.json` (`weight_map`: tensor name -> shard file inside the folder).
 * Each tensor is taken from the shard the index names for it.
 */
export function locateTensors(dir: string): Map<string, TensorLocation> {
  checkFolder(dir);
  const index = confinedPath(dir, 'model.safetensors.index.json', WHERE, 'model.safetensors.index.json');
  if (fs.existsSync(index)) {
    const weightMap = readJsonObject(index, WHERE).weight_map;
    check(typeof weightMap === 'object' && weightMap !== null && !Array.isArray(weightMap), WHERE, () =>
      `'${index}' field weight_map must be an object {tensor name: shard file}, got ${JSON.stringify(weightMap) ?? 'nothing'}`);
    const shards = new Map<string, Map<string, TensorLocation>>();
    const out = new Map<string, TensorLocation>();
    for (const [name, shard] of Object.entries(weightMap as Record<string, unknown>)) {
      const field = `'${index}' field weight_map['${name}']`;
      const file = confinedPath(dir, shard, WHERE, field);
      if (!shards.has(file)) {
        check(fs.existsSync(file), WHERE, () => `${field}: shard '${shard as string}' is missing in '${dir}'`);
        shards.set(file, readSafetensorsLocations(file));
      }
      const loc = shards.get(file)!.get(name);
      check(loc, WHERE, () => `${field}: tensor '${name}' is not in shard '${shard as string}' although the index names it there`);
      out.set(name, loc);
    }
    for (const locs of shards.values()) for (const [name, loc] of locs) if (!out.has(name)) out.set(name, loc);
    return out;
  }
  const single = confinedPath(dir, 'model.safetensors', WHERE, 'model.safetensors');
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

function readTensor(fd: number, loc: TensorLocation): Float32Array {
  const out = new Float32Array(loc.shape.reduce((a, b) => a * b, 1));
  readTensorInto(fd, loc, { data: out, offset: 0, stride: rowsCols(loc.shape)[1], transpose: false });
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
  for (const [file, locs] of byFileInOrder(wanted)) {
    const { fd } = openRegularFile(file, WHERE);
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
