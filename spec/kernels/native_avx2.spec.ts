/**
 * The AVX2 + FMA build of the native addon (what hosts without AVX-512 compile at install): built
 * with `node scripts/build-native.cjs --avx2` (reused while no source under native/ is newer), then
 * the cpu kernel specs run against it in a child jest (TFJS_ATTENTION_NATIVE_PATH). Fails, never
 * skips, when the build fails on a host that built the default addon.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { nativeKernels } from '../../kernels/cpu/native';
import { runChild } from '../support/run_child';

const root = path.resolve(__dirname, '../..');
const addon = path.join(root, 'native/build-avx2/tfjs_attention_native.node');
const SPECS = ['spec/kernels/cpu_kernels.spec.ts', 'spec/training/flash_train_native.spec.ts', 'spec/kernels/projection_matmul.spec.ts',
  'spec/kernels/native_kv_cache.spec.ts', 'spec/models/read_into.spec.ts', 'spec/quant/native_decode.spec.ts'];

function upToDate(): boolean {
  if (!fs.existsSync(addon)) return false;
  const built = fs.statSync(addon).mtimeMs;
  return fs.readdirSync(path.join(root, 'native')).filter((f) => /\.(cc|h|gyp)$/.test(f))
    .every((f) => fs.statSync(path.join(root, 'native', f)).mtimeMs <= built);
}

const withAddon = nativeKernels !== null ? describe : describe.skip;  // skip reason: no compiler here, the default addon did not build either

withAddon('native addon, AVX2 build', () => {
  beforeAll(async () => {
    if (upToDate()) return;
    const r = await runChild(process.execPath, ['scripts/build-native.cjs', '--avx2'], { cwd: root, timeoutMs: 600000 });
    if (r.status !== 0) throw new Error(`AVX2 build failed (exit ${r.status}${r.timedOut ? ', killed after 600 s' : ''}):\n${r.out.slice(-3000)}`);
  }, 620000);

  it('is an AVX2 build', async () => {
    const probe = await runChild(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(addon)}).isa())`], { timeoutMs: 60000 });
    expect(probe.out).toBe('avx2');
  });

  it(`passes the cpu kernel specs (${SPECS.map((s) => path.basename(s)).join(', ')})`, async () => {
    const jest = path.join(root, 'node_modules/jest/bin/jest.js');
    const r = await runChild(process.execPath, [jest, '--ci', ...SPECS], {
      cwd: root, timeoutMs: 900000, env: { ...process.env, TFJS_ATTENTION_NATIVE_PATH: addon },
    });
    const out = r.out;
    expect([r.status, out.match(/Tests:.*$/m)?.[0]]).toEqual([0, expect.stringMatching(/passed/)]);
    expect(out).not.toMatch(/skipped/);
  }, 900000);
});
