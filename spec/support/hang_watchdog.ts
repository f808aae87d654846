/**
 * jest setupFilesAfterEnv: a watchdog thread per spec file that turns a hang into a named failure.
 *
 * Why: jest's testTimeout cannot fire while a test blocks its worker's thread (a native call
 * that never returns, a synchronous read of a pipe); such a suite keeps `npm test` from ever
 * finishing, and CI stops at its own limit with no name in the log. The main thread stamps
 * every hook and test start/end into a SharedArrayBuffer; a worker thread (which runs while the
 * main thread is blocked) checks the stamp every few seconds. After TFJS_ATTENTION_SPEC_HANG_MIN
 * minutes (default 17: above the longest per-test timeout in spec/, 15 min) with no stamp, it
 * writes `[hang watchdog] <file> > <test or hook>: no progress for N min` to stderr, leaves a
 * marker file, and kills its jest worker (SIGKILL). jest retries a crashed file up to 3 times; a
 * retry that finds the marker fails at once with the same message, so one hang costs one limit.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

const limitMin = Number(process.env.TFJS_ATTENTION_SPEC_HANG_MIN ?? 17);
const NAME_BYTES = 1024;
const testPath = expect.getState().testPath ?? 'unknown spec';
const marker = path.join(os.tmpdir(), `tfjs-attention-hang-${path.basename(testPath)}-${process.ppid}.txt`);

if (fs.existsSync(marker)) {
  const why = fs.readFileSync(marker, 'utf8');
  throw new Error(`an earlier run of this spec file hung and was killed: ${why}`);
}

if (limitMin > 0) {
  // [0]: stamp (seconds since start, bumped on every event), [1]: name length; then the name's bytes
  const shared = new SharedArrayBuffer(8 + NAME_BYTES);
  const head = new Int32Array(shared, 0, 2);
  const nameBytes = new Uint8Array(shared, 8, NAME_BYTES);
  const t0 = Date.now();
  const stamp = (what: string) => {
    const b = Buffer.from(what.slice(0, 400));
    nameBytes.set(b.subarray(0, NAME_BYTES));
    Atomics.store(head, 1, Math.min(b.length, NAME_BYTES));
    Atomics.store(head, 0, Math.round((Date.now() - t0) / 1000));
  };
  stamp('loading the spec file');
  const file = path.relative(process.cwd(), testPath);
  const watchdog = new Worker(`
    const { workerData } = require('node:worker_threads');
    const fs = require('node:fs');
    const { shared, limitS, t0, file, marker } = workerData;
    const head = new Int32Array(shared, 0, 2), name = new Uint8Array(shared, 8);
    setInterval(() => {
      const idle = (Date.now() - t0) / 1000 - Atomics.load(head, 0);
      if (idle < limitS) return;
      const what = Buffer.from(name.subarray(0, Atomics.load(head, 1))).toString();
      const msg = file + ' > ' + what + ': no progress for ' + Math.round(idle / 60) + ' min (a blocking call that never returned)';
      try { fs.writeFileSync(marker, msg); } catch {}
      fs.writeSync(2, '\\n[hang watchdog] ' + msg + '; killing this jest worker\\n');
      process.kill(process.pid, 'SIGKILL');
    }, 5000);
  `, { eval: true, workerData: { shared, limitS: limitMin * 60, t0, file, marker } });
  watchdog.unref();

  const current = () => expect.getState().currentTestName ?? '(hook)';
  beforeAll(() => stamp('beforeAll'));
  beforeEach(() => stamp(current()));
  afterEach(() => stamp(`after ${current()}`));
  afterAll(async () => { stamp('afterAll'); await watchdog.terminate(); });
}
