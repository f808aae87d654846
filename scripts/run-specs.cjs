#!/usr/bin/env node
/**
 * `npm test`: every spec through jest, with one safety net for a spec file that hangs.
 *
 * spec/support/hang_watchdog.ts kills a jest worker whose test made no progress for
 * TFJS_ATTENTION_SPEC_HANG_MIN minutes, after printing the test's name and the stacks, and
 * leaves a marker in this run's hang folder. When every failed file of the run is such a hang,
 * those files run once more in a fresh jest, and that run decides the exit code; the hang stays
 * in the log above (`[hang watchdog] ...`) as a bug to fix. Any other failure fails the run.
 * Arguments go to jest (e.g. `npm test -- spec/models`).
 */
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const jest = path.join(root, 'node_modules', 'jest', 'bin', 'jest.js');
const hangDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tfjs-attention-hangs-'));
const results = path.join(hangDir, 'results.json');
const env = { ...process.env, TFJS_ATTENTION_SPEC_HANG_DIR: hangDir };

const first = spawnSync(process.execPath, [jest, '--json', `--outputFile=${results}`, ...process.argv.slice(2)], { cwd: root, stdio: 'inherit', env });
let code = first.status ?? 1;
if (code !== 0) {
  const hung = fs.readdirSync(hangDir).filter((f) => f.endsWith('.txt')).map((f) => fs.readFileSync(path.join(hangDir, f), 'utf8').split('\n')[0]);
  let failed = null;
  try { failed = JSON.parse(fs.readFileSync(results, 'utf8')).testResults.filter((r) => r.status !== 'passed').map((r) => r.name); } catch { /* no results: jest itself failed */ }
  if (hung.length > 0 && failed && failed.length > 0 && failed.every((f) => hung.includes(f))) {
    console.error(`\n[hang watchdog] ${hung.length} spec file(s) hung and were killed (stacks above), nothing else failed; running them once more:\n  ${hung.map((f) => path.relative(root, f)).join('\n  ')}`);
    const again = spawnSync(process.execPath, [jest, '--ci', ...hung], { cwd: root, stdio: 'inherit', env: { ...env, TFJS_ATTENTION_SPEC_HANG_DIR: path.join(hangDir, 'again') } });
    code = again.status ?? 1;
    console.error(`[hang watchdog] re-run of the hung file(s): ${code === 0 ? 'passed' : 'failed'}; the hang is a bug to fix either way`);
  }
}
fs.rmSync(hangDir, { recursive: true, force: true });
process.exit(code);
