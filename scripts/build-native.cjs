#!/usr/bin/env node
/**
 * Builds the optional native CPU kernels (native/, N-API, node-gyp) at install time.
 * Never fails the install: when no compiler, node-gyp or headers are available it prints a note
 * and exits 0, and the kernels fall back to the pure-TypeScript path.
 *
 * Env: TFJS_ATTENTION_SKIP_NATIVE=1 skips the build.
 * Output: native/build/Release/tfjs_attention_native.node (loaded by kernels/cpu/native.ts).
 *
 * Then, where Open MPI's compiler wrapper is present (`mpicc --showme` gives its flags; Debian:
 * apt-get install openmpi-bin libopenmpi-dev), the MPI binding native/mpi/ ->
 * native/mpi/build/Release/tfjs_attention_mpi.node (loaded by lib/mpi/binding.ts). Without MPI it
 * is skipped with a note; only the MPI features need it. TFJS_ATTENTION_SKIP_MPI=1 skips it.
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

function nodeGypArgs(gyp) {
  const args = [gyp, 'rebuild'];
  // Headers shipped with this node (e.g. /usr/include/node) spare node-gyp a download.
  const prefix = path.dirname(path.dirname(process.execPath));
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);
  return args;
}

function buildMpi(gyp) {
  if (process.env.TFJS_ATTENTION_SKIP_MPI === '1') return note('MPI binding skipped (TFJS_ATTENTION_SKIP_MPI=1)');
  const mpiDir = path.join(nativeDir, 'mpi');
  if (!fs.existsSync(path.join(mpiDir, 'binding.gyp'))) return;
  const showme = spawnSync('mpicc', ['--showme:compile'], { encoding: 'utf8' });
  if (showme.status !== 0) {
    return note('MPI not found (no mpicc); the MPI features need: apt-get install openmpi-bin libopenmpi-dev, then npm run install');
  }
  const r = spawnSync(process.execPath, nodeGypArgs(gyp), { cwd: mpiDir, stdio: 'inherit', timeout: 300000 });
  const out = path.join(mpiDir, 'build', 'Release', 'tfjs_attention_mpi.node');
  if (r.status !== 0 || !fs.existsSync(out)) return note(`MPI binding build failed (${r.error ? r.error.message : `exit ${r.status}`}); the MPI features are unavailable`);
  try {
    if (typeof require(out).allreduceSum !== 'function') throw new Error('missing exports');
    note('MPI binding built (native/mpi)');
  } catch (e) {
    note(`MPI binding built but does not load (${e.message}); the MPI features are unavailable`);
  }
}

/** The AVX2 variant: sources copied to native/build-avx2/src, built with -mno-avx512f appended. */
function buildAvx2(gyp) {
  const dir = path.join(nativeDir, 'build-avx2'), src = path.join(dir, 'src');
  fs.mkdirSync(src, { recursive: true });
  for (const f of fs.readdirSync(nativeDir)) {
    if (/\.(cc|h|gyp)$/.test(f)) fs.copyFileSync(path.join(nativeDir, f), path.join(src, f));
  }
  const args = nodeGypArgs(gyp);
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
  try { buildMpi(gyp); } catch (e) { note(`MPI binding skipped: ${e && e.message}`); }
  const r = spawnSync(process.execPath, nodeGypArgs(gyp), { cwd: nativeDir, stdio: 'inherit', timeout: 300000 });
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
