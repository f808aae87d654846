#!/usr/bin/env node
/**
 * Builds the browser's WebAssembly SIMD kernels (native/wasm/*.c: sgemm/GEMV, paged flash attention,
 * RMSNorm, SwiGLU MLP) with clang's wasm32 target and wasm-ld, clang >= 16 (Debian 12: apt-get install clang-19 lld-19;
 * `TFJS_ATTENTION_WASM_TOOLCHAIN=1 bash scripts/setup.sh` installs them, an optional step). Four variants of the same sources:
 *   wasm/tfjs_attention_kernels.wasm                 SIMD128 (every browser with wasm SIMD)
 *   wasm/tfjs_attention_kernels_relaxed.wasm         SIMD128 + relaxed SIMD (fused multiply-add)
 *   wasm/tfjs_attention_kernels_shared.wasm          SIMD128 on a shared memory
 *   wasm/tfjs_attention_kernels_relaxed_shared.wasm  relaxed SIMD on a shared memory
 * A memory import must match the memory's `shared` flag: where the page is cross-origin isolated,
 * tfjs-wasm runs its threaded build on a shared memory (maximum 4 GiB), and only the `_shared` builds link to it.
 * and kernels/wasm/simd_bytes.ts, the same bytes as base64 (what the package loads: no fetch, no fs,
 * so the browser-clean main entry can carry them). The outputs are committed, so a clone without
 * clang works; this script only needs to run after native/wasm/ changes (spec/kernels/wasm_simd_build.spec.ts
 * rebuilds with the recorded compiler when it is present and checks the committed bytes are current).
 *
 * The module imports tfjs-wasm's memory (env.memory) and exports its stack pointer, so it must
 * hold no data segment: the script checks the linked module imports only env.memory and has no data.
 *
 *   node scripts/build-wasm-kernels.cjs [--check] [--out DIR]
 *     --check: build into a temporary folder and exit 1 when the committed files differ (2: no clang)
 * Env: TFJS_ATTENTION_CLANG=/path/to/clang picks the compiler (default: clang-19, then clang).
 */
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const srcDir = path.join(root, 'native', 'wasm');
const SOURCES = ['sgemm.c', 'attention.c', 'decoder_steps.c'];
const RELAXED = ['-mrelaxed-simd', '-DWASM_RELAXED'];
const SHARED = ['-matomics', '-mbulk-memory', '-Wl,--shared-memory', '-Wl,--max-memory=4294967296'];
const VARIANTS = [
  { file: 'tfjs_attention_kernels.wasm', flags: [], key: 'simd128', name: 'SIMD128' },
  { file: 'tfjs_attention_kernels_relaxed.wasm', flags: RELAXED, key: 'relaxed', name: 'RELAXED' },
  { file: 'tfjs_attention_kernels_shared.wasm', flags: SHARED, key: 'simd128Shared', name: 'SIMD128_SHARED' },
  { file: 'tfjs_attention_kernels_relaxed_shared.wasm', flags: [...RELAXED, ...SHARED], key: 'relaxedShared', name: 'RELAXED_SHARED' },
];
const EXPORTS = ['sgemm', 'sgemm_scratch_floats', 'sgemm_cols', 'sgemm_cols_scratch_floats', 'swiglu_gate_up_cols', 'flash_attention_items', 'flash_attention_item_count', 'flash_attention', 'flash_scratch_floats', 'rms_norm', 'swiglu', 'swiglu_scratch_floats', '__stack_pointer'];

function findClang() {
  const tries = process.env.TFJS_ATTENTION_CLANG ? [process.env.TFJS_ATTENTION_CLANG] : ['clang-19', 'clang'];
  for (const c of tries) {
    const r = spawnSync(c, ['--version'], { encoding: 'utf8' });
    if (r.status !== 0) continue;
    const version = r.stdout.split('\n')[0].trim(), major = Number(/version (\d+)/.exec(version)?.[1] ?? 0);
    if (major >= 16) return { clang: c, version }; // relaxed-SIMD intrinsics (wasm_f32x4_relaxed_madd)
    console.log(`[build-wasm-kernels] ${c} is ${version}; the kernels need clang >= 16 (Debian 12: apt-get install clang-19 lld-19)`);
  }
  return null;
}

/**
 * A wasm binary's section ids, imports and export names, read directly (WebAssembly.Module would
 * refuse the relaxed build on a Node without relaxed SIMD).
 */
function inspect(bytes) {
  let p = 8;
  const leb = () => { let r = 0, s = 0, b; do { b = bytes[p++]; r |= (b & 0x7f) << s; s += 7; } while (b & 0x80); return r >>> 0; };
  const name = () => { const n = leb(); const t = Buffer.from(bytes.subarray(p, p + n)).toString('utf8'); p += n; return t; };
  const ids = [], imports = [], exports = [];
  while (p < bytes.length) {
    const id = bytes[p++], size = leb(), end = p + size;
    ids.push(id);
    if (id === 2 || id === 7) {
      for (let i = 0, count = leb(); i < count; i++) {
        if (id === 2) {
          const mod = name(), field = name(), kind = bytes[p++];
          imports.push(`${mod}.${field}`);
          if (kind === 0 || kind === 1) leb();
          if (kind === 1) { const f = bytes[p++]; leb(); if (f & 1) leb(); }
          else if (kind === 2) { const f = bytes[p++]; leb(); if (f & 1) leb(); }
          else if (kind === 3) p += 2;
        } else { exports.push(name()); p++; leb(); }
      }
    }
    p = end;
  }
  return { ids, imports, exports };
}

function build(clang, outDir) {
  fs.mkdirSync(outDir, { recursive: true });
  const out = {};
  for (const v of VARIANTS) {
    const dest = path.join(outDir, v.file);
    const args = ['--target=wasm32', '-msimd128', ...v.flags, '-O3', '-nostdlib', '-ffreestanding', '-mmutable-globals',
      '-Wall', '-Werror', '-Wl,--no-entry', '-Wl,--import-memory', '-Wl,--export=__stack_pointer', '-Wl,-z,stack-size=0',
      '-Wl,--strip-all', '-o', dest, ...SOURCES.map((s) => path.join(srcDir, s))];
    const r = spawnSync(clang, args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`[build-wasm-kernels] ${clang} failed for ${v.file}:\n${r.stderr}`);
    const bytes = fs.readFileSync(dest);
    const info = inspect(bytes);
    if (info.ids.includes(11)) throw new Error(`[build-wasm-kernels] ${v.file} has a data segment; the kernels must not use static data (they run on tfjs-wasm's memory)`);
    if (info.imports.join() !== 'env.memory') throw new Error(`[build-wasm-kernels] ${v.file} imports ${info.imports.join(', ')}; only env.memory is allowed`);
    for (const e of EXPORTS) if (!info.exports.includes(e)) throw new Error(`[build-wasm-kernels] ${v.file} lacks export ${e}`);
    out[v.key] = bytes;
  }
  return out;
}

function bytesModule(built, version) {
  const b64 = (b) => Buffer.from(b).toString('base64');
  const what = { simd128: 'SIMD128', relaxed: 'SIMD128 + relaxed SIMD', simd128Shared: 'SIMD128, shared memory', relaxedShared: 'relaxed SIMD, shared memory' };
  return `/**
 * The browser's WebAssembly SIMD kernels (native/wasm/), as base64. GENERATED by
 * scripts/build-wasm-kernels.cjs from the C files of native/wasm/: do not edit; rebuild after changing them.
 * Compiler: ${version}
 */
export const WASM_KERNELS_COMPILER = ${JSON.stringify(version)};
${VARIANTS.map((v) => `/** ${what[v.key]} build (${built[v.key].length} bytes). */
export const WASM_KERNELS_${v.name} = '${b64(built[v.key])}';
`).join('')}`;
}

function main() {
  const check = process.argv.includes('--check');
  const found = findClang();
  if (!found) {
    console.log('[tfjs-attention-rope] no clang: the WebAssembly SIMD kernels were not rebuilt (the committed build in wasm/ is used)');
    process.exit(check ? 2 : 0);
  }
  const outDir = check ? fs.mkdtempSync(path.join(os.tmpdir(), 'wasm-kernels-')) : path.join(root, 'wasm');
  const built = build(found.clang, outDir);
  const tsPath = path.join(root, 'kernels', 'wasm', 'simd_bytes.ts');
  const ts = bytesModule(built, found.version);
  if (check) {
    const same = VARIANTS.every((v) => fs.existsSync(path.join(root, 'wasm', v.file))
      && Buffer.compare(fs.readFileSync(path.join(root, 'wasm', v.file)), built[v.key]) === 0)
      && fs.existsSync(tsPath) && fs.readFileSync(tsPath, 'utf8') === ts;
    fs.rmSync(outDir, { recursive: true, force: true });
    console.log(same ? `[build-wasm-kernels] committed build is current (${found.version})` : '[build-wasm-kernels] committed build differs: run node scripts/build-wasm-kernels.cjs');
    process.exit(same ? 0 : 1);
  }
  fs.writeFileSync(tsPath, ts);
  console.log(`[build-wasm-kernels] ${VARIANTS.map((v) => `${v.file} ${built[v.key].length} B`).join(', ')} (${found.version})`);
}

main();
