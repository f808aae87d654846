/**
 * The committed WebAssembly SIMD build (wasm/*.wasm and kernels/wasm/simd_bytes.ts, made by
 * scripts/build-wasm-kernels.cjs from native/wasm/): the base64 module carries exactly the committed
 * binaries; each imports only env.memory (it runs on tfjs-wasm's memory), has no data segment and
 * exports every kernel; the SIMD128 builds (plain and shared memory) validate on this engine. Where the compiler recorded in
 * simd_bytes.ts is installed, a rebuild must reproduce the committed bytes (the build is current).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import {
  WASM_KERNELS_COMPILER, WASM_KERNELS_RELAXED, WASM_KERNELS_RELAXED_SHARED, WASM_KERNELS_SIMD128, WASM_KERNELS_SIMD128_SHARED,
} from '../../kernels/wasm/simd_bytes';

const root = path.resolve(__dirname, '..', '..');
const EXPORTS = ['sgemm', 'sgemm_scratch_floats', 'sgemm_cols', 'sgemm_cols_scratch_floats', 'swiglu_gate_up_cols', 'flash_attention_items',
  'flash_attention_item_count', 'flash_attention', 'flash_scratch_floats', 'rms_norm', 'swiglu', 'swiglu_scratch_floats', '__stack_pointer'];

/** Section ids, imports and exports of a wasm binary (read directly: the relaxed build may not compile here). */
function inspect(bytes: Uint8Array): { ids: number[]; imports: string[]; exports: string[] } {
  let p = 8;
  const leb = () => { let r = 0, s = 0, b; do { b = bytes[p++]; r |= (b & 0x7f) << s; s += 7; } while (b & 0x80); return r >>> 0; };
  const name = () => { const n = leb(); const t = Buffer.from(bytes.subarray(p, p + n)).toString('utf8'); p += n; return t; };
  const ids: number[] = [], imports: string[] = [], exports: string[] = [];
  while (p < bytes.length) {
    const id = bytes[p++], size = leb(), end = p + size;
    ids.push(id);
    if (id === 2) {
      for (let i = 0, n = leb(); i < n; i++) { imports.push(`${name()}.${name()}`); const kind = bytes[p++]; if (kind === 2) { const f = bytes[p++]; leb(); if (f & 1) leb(); } else break; }
    } else if (id === 7) {
      for (let i = 0, n = leb(); i < n; i++) { exports.push(name()); p++; leb(); }
    }
    p = end;
  }
  return { ids, imports, exports };
}

const clangFor = (version: string): string | null => {
  for (const c of ['clang-19', 'clang']) {
    const r = spawnSync(c, ['--version'], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.split('\n')[0].trim() === version) return c;
  }
  return null;
};

describe('committed WebAssembly SIMD kernels', () => {
  const builds = [
    ['tfjs_attention_kernels.wasm', WASM_KERNELS_SIMD128],
    ['tfjs_attention_kernels_relaxed.wasm', WASM_KERNELS_RELAXED],
    ['tfjs_attention_kernels_shared.wasm', WASM_KERNELS_SIMD128_SHARED],
    ['tfjs_attention_kernels_relaxed_shared.wasm', WASM_KERNELS_RELAXED_SHARED],
  ] as const;

  it.each(builds)('%s: the base64 module equals the committed file; imports only env.memory, no data, every export', (file, b64) => {
    const bytes = Buffer.from(b64, 'base64');
    expect(Buffer.compare(bytes, readFileSync(path.join(root, 'wasm', file)))).toBe(0);
    const info = inspect(bytes);
    expect(info.imports).toEqual(['env.memory']);
    expect(info.ids).not.toContain(11);
    for (const e of EXPORTS) expect(info.exports).toContain(e);
  });

  it.each([['SIMD128', WASM_KERNELS_SIMD128], ['SIMD128 shared-memory', WASM_KERNELS_SIMD128_SHARED]])('the %s build validates and compiles here', (_, b64) => {
    const bytes = Buffer.from(b64, 'base64');
    expect(WebAssembly.validate(bytes)).toBe(true);
    expect(WebAssembly.Module.exports(new WebAssembly.Module(bytes)).map((e) => e.name).sort()).toEqual([...EXPORTS].sort());
  });

  // skip reason: the compiler the committed build was made with is not installed (CI need not have clang)
  (clangFor(WASM_KERNELS_COMPILER) ? it : it.skip)(`a rebuild with ${WASM_KERNELS_COMPILER} reproduces the committed bytes`, () => {
    const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'build-wasm-kernels.cjs'), '--check'],
      { encoding: 'utf8', env: { ...process.env, TFJS_ATTENTION_CLANG: clangFor(WASM_KERNELS_COMPILER)! } });
    expect(r.stdout + r.stderr).toContain('committed build is current');
    expect(r.status).toBe(0);
  });
});
