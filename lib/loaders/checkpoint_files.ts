/**
 * Safe file access for checkpoint folders: every file read is named relative to the folder,
 * must resolve (symlinks included) inside it, must be a regular file (a FIFO or device never
 * blocks the process: the open is non-blocking and checked with fstat before any read), and
 * is size-limited before anything is allocated. Every error names the file and the field.
 *
 * The one allowance: a Hugging Face hub cache snapshot (`.../snapshots/<rev>/`) whose files
 * are symlinks into the same repository's `blobs/` folder, as `huggingface_hub` lays them out.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AttentionRopeError, check } from '../errors.js';
import { CHECKPOINT_LIMITS, parseJsonText } from './limits.js';

export { CHECKPOINT_LIMITS } from './limits.js';

/** Folders a file of `dir` may resolve into: the folder itself, plus `blobs/` of an HF cache snapshot. */
function allowedRoots(realDir: string): string[] {
  const roots = [realDir];
  if (path.basename(path.dirname(realDir)) === 'snapshots') roots.push(path.join(realDir, '..', '..', 'blobs'));
  return roots;
}

const inside = (root: string, p: string) => {
  const rel = path.relative(root, p);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
};

/**
 * The absolute path of `name` inside checkpoint folder `dir`, after checking that `name` is a
 * plain relative path and that it resolves (through any symlink) inside the folder.
 * `field` says where the name came from, for the error (e.g. `weight_map['lm_head.weight']`).
 */
export function confinedPath(dir: string, name: unknown, where: string, field: string): string {
  check(typeof name === 'string' && name.length > 0 && !name.includes('\0'), where, () =>
    `${field} must be a non-empty file name, got ${JSON.stringify(name)}`);
  check(!path.isAbsolute(name) && !name.split(/[\\/]/).includes('..'), where, () =>
    `${field} ('${name}') must be a path inside the checkpoint folder '${dir}' (no absolute path, no '..')`);
  const file = path.join(dir, name);
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch {
    return file; // missing: the caller reports it with its own context
  }
  const roots = allowedRoots(fs.realpathSync(dir));
  check(roots.some((r) => inside(r, real)), where, () =>
    `${field} ('${name}') resolves through a symlink to a file outside the checkpoint folder '${dir}'`);
  return file;
}

/**
 * Opens a regular file for reading without blocking (a FIFO, socket or device is refused);
 * returns the descriptor and the size. The caller closes the descriptor.
 */
export function openRegularFile(file: string, where: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'error';
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code;
    throw new AttentionRopeError(`[${where}] cannot open '${file}' (${why})`);
  }
  const st = fs.fstatSync(fd);
  if (!st.isFile()) {
    fs.closeSync(fd);
    check(false, where, () => `'${file}' is not a regular file (${kindOf(st)}); checkpoints hold regular files only`);
  }
  return { fd, size: st.size };
}

function kindOf(st: fs.Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a file';
}

/** Reads `[position, position + out.length)` of an open file fully; a short file is an error naming it. */
export function readFully(fd: number, out: Uint8Array, position: number, file: string, where: string, what: string): void {
  let done = 0;
  while (done < out.length) {
    const n = fs.readSync(fd, out, done, out.length - done, position + done);
    check(n > 0, where, () => `'${file}' ends at byte ${position + done} inside ${what} (needs bytes up to ${position + out.length})`);
    done += n;
  }
}

/** Reads a whole regular file of at most `maxBytes` bytes. */
export function readLimitedFile(file: string, where: string, maxBytes: number): Buffer {
  const { fd, size } = openRegularFile(file, where);
  try {
    check(size <= maxBytes, where, () => `'${file}' is ${size} bytes, more than the ${maxBytes}-byte limit for this file`);
    const buf = Buffer.alloc(size);
    readFully(fd, buf, 0, file, where, 'its contents');
    return buf;
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads a JSON file that must hold an object (not an array, null or a scalar). */
export function readJsonObject(file: string, where: string, maxBytes = CHECKPOINT_LIMITS.jsonFile): Record<string, unknown> {
  const value = parseJsonText(readLimitedFile(file, where, maxBytes).toString('utf8'), `'${file}'`, where);
  check(typeof value === 'object' && value !== null && !Array.isArray(value), where, () =>
    `'${file}' must hold a JSON object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`);
  return value as Record<string, unknown>;
}
