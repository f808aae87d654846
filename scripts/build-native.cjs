#!/usr/bin/env node
/**
 * Builds the optional native CPU kernels (native/, N-API, node-gyp) at install time.
 * Never fails the install: when no compiler, node-gyp or headers are available it prints a note
 * and exits 0, and the kernels fall back to the pure-TypeScript path.
 *
 * Env: TFJS_ATTENTION_SKIP_NATIVE=1 skips the build.
 * Output: native/build/Release/tfjs_attention_native.node (loaded by kernels/cpu/native.ts).
 *
 * `--avx2`: builds the AVX2 + FMA variant (`-mno-avx512f`, what hosts without AVX-512 get from
 * -march=native) into native/build-avx2/ instead, from a copy of the sources, exiting 1 when it
 * fails (spec/kernels/native_avx2.spec.ts runs the cpu kernel specs against it).
 */
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const nativeDir = path.join(root, 'native');
const note = (msg) => console.log(`[tfjs-attention-rope] ${msg}`);

function findNodeGyp() {
  const candidates = [];
  try { candidates.push(require.resolve('node-gyp/bin/node-gyp.js')); } catch { /* not a dependency */ }
  if (process.env.npm_execpath) {
    candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  const prefix = path.dirname(path.dirname(process.execPath));
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(path.join(path.dirname(process.execPath), 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => fs.existsSync(c));
}

/** The AVX2 variant: sources copied to native/build-avx2/src, built with -mno-avx512f appended. */
function buildAvx2(gyp) {
  const dir = path.join(nativeDir, 'build-avx2'), src = path.join(dir, 'src');
  fs.mkdirSync(src, { recursive: true });
  for (const f of fs.readdirSync(nativeDir)) {
    if (/\.(cc|h|gyp)$/.test(f)) fs.copyFileSync(path.join(nativeDir, f), path.join(src, f));
  }
  const args = [gyp, 'rebuild'];
  const prefix = path.dirname(path.dirname(process.execPath));
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  // CXXFLAGS come after the target's -march=native on gyp's compile line, so AVX-512 is switched off.
  const env = { ...process.env, CXXFLAGS: '-mno-avx512f' };
  const r = spawnSync(process.execPath, args, { cwd: src, stdio: 'inherit', timeout: 600000, env });
  const built = path.join(src, 'build', 'Release', 'tfjs_attention_native.node');
  if (r.status !== 0 || !fs.existsSync(built)) throw new Error(`AVX2 build failed (${r.error ? r.error.message : `exit ${r.status}`})`);
  const out = path.join(dir, 'tfjs_attention_native.node');
  fs.copyFileSync(built, out);
  note(`AVX2 variant built: ${path.relative(root, out)} (isa ${require(out).isa()})`);
}

function main() {
  if (process.argv.includes('--avx2')) {
    const gyp = findNodeGyp();
    if (!gyp) throw new Error('node-gyp not found');
    buildAvx2(gyp);
    process.exit(0);
  }
  if (process.env.TFJS_ATTENTION_SKIP_NATIVE === '1') return note('native build skipped (TFJS_ATTENTION_SKIP_NATIVE=1)');
  if (!fs.existsSync(path.join(nativeDir, 'binding.gyp'))) return note('no native/ sources; using the TypeScript kernels');
  const gyp = findNodeGyp();
  if (!gyp) return note('node-gyp not found; using the TypeScript kernels');
  const args = [gyp, 'rebuild'];
  // Headers shipped with this node (e.g. /usr/include/node) spare node-gyp a download.
  const prefix = path.dirname(path.dirname(process.execPath));
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  const r = spawnSync(process.execPath, args, { cwd: nativeDir, stdio: 'inherit', timeout: 300000 });
  const out = path.join(nativeDir, 'build', 'Release', 'tfjs_attention_native.node');
  if (r.status !== 0 || !fs.existsSync(out)) {
    return note(`native build failed (${r.error ? r.error.message : `exit ${r.status}`}); using the TypeScript kernels`);
  }
  try {
    const addon = require(out);
    if (typeof addon.flashAttention !== 'function') throw new Error('missing exports');
    note(`native kernels built (${addon.threads()} threads)`);
  } catch (e) {
    note(`native addon built but does not load (${e.message}); using the TypeScript kernels`);
  }
}

try { main(); } catch (e) {
  note(`native build skipped: ${e && e.message}`);
  if (process.argv.includes('--avx2')) process.exit(1);
}
process.exit(0);
