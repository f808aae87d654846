/**
 * jest setupFilesAfterEnv: a watchdog thread per spec file that turns a hang into a named failure.
 *
 * Why: jest's testTimeout cannot fire while a test blocks its worker's thread (a native call
 * that never returns, a JS loop that never ends, a synchronous read of a pipe); such a suite
 * keeps `npm test` from ever finishing, and CI stops at its own limit with no name in the log.
 * The main thread's event loop beats a heartbeat into a SharedArrayBuffer every second, and
 * every hook and test writes its name there; a worker thread (which runs while the main thread
 * is blocked) checks the beat. After TFJS_ATTENTION_SPEC_HANG_MIN minutes (default 6) without
 * one, it prints to stderr:
 *   [hang watchdog] <file> > <test or hook>: the main thread blocked for N min
 * then every thread's native stack (gdb, when installed; the main thread's first) and the main
 * thread's JavaScript stack (through the inspector, when the block is a JS loop), leaves a
 * marker file for scripts/run-specs.cjs and kills its jest worker (SIGKILL). 0 turns it off.
 * A test that waits asynchronously, however long, keeps the beat going: jest's own timeouts
 * govern it. So specs run long child processes with spawn, not spawnSync.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';

const limitMin = Number(process.env.TFJS_ATTENTION_SPEC_HANG_MIN ?? 6);
const NAME_BYTES = 1024;
const testPath = expect.getState().testPath ?? 'unknown spec';
/** Where scripts/run-specs.cjs looks for the files that hung (one folder per run). */
const hangDir = process.env.TFJS_ATTENTION_SPEC_HANG_DIR ?? path.join(os.tmpdir(), `tfjs-attention-hangs-${process.ppid}`);

if (limitMin > 0) {
  // [0]: heartbeat (seconds since t0), [1]: name length; then the name's bytes
  const shared = new SharedArrayBuffer(8 + NAME_BYTES);
  const head = new Int32Array(shared, 0, 2);
  const nameBytes = new Uint8Array(shared, 8, NAME_BYTES);
  const t0 = Date.now();
  const beat = () => Atomics.store(head, 0, Math.round((Date.now() - t0) / 1000));
  const stamp = (what: string) => {
    const b = Buffer.from(what.slice(0, 400));
    nameBytes.set(b.subarray(0, NAME_BYTES));
    Atomics.store(head, 1, Math.min(b.length, NAME_BYTES));
    beat();
  };
  stamp('loading the spec file');
  const heartbeat = setInterval(beat, 1000);
  heartbeat.unref();
  const watchdog = new Worker(`
    const { workerData } = require('node:worker_threads');
    const fs = require('node:fs'), path = require('node:path'), cp = require('node:child_process');
    const { shared, limitS, t0, file, testPath, hangDir } = workerData;
    const head = new Int32Array(shared, 0, 2), name = new Uint8Array(shared, 8);
    const say = (s) => fs.writeSync(2, s + '\\n');
    const cut = (l) => l.slice(0, 220);
    // native stacks (gdb, when installed): the main thread (thread 1) whole, the others 10 frames each
    function nativeStacks() {
      // gdb stops this whole process, this thread included: its output goes to a file (a pipe that this thread
      // reads would fill and block gdb), and a separate \`timeout\` process bounds it
      const gdb = (args) => {
        const out = path.join(hangDir, 'gdb-' + process.pid + '.txt');
        const fd = fs.openSync(out, 'w');
        const r = cp.spawnSync('timeout', ['-s', 'KILL', '60', 'gdb', '-p', String(process.pid), '-batch', '-nx', ...args], { stdio: ['ignore', fd, fd] });
        fs.closeSync(fd);
        const text = fs.readFileSync(out, 'utf8');
        fs.rmSync(out, { force: true });
        return { error: r.error || (r.status === 127 ? new Error('not installed') : null), stdout: text };
      };
      const main = gdb(['-ex', 'thread 1', '-ex', 'bt 40']);
      if (main.error) return say('[hang watchdog] no native stacks (gdb: ' + main.error.message + ')');
      say('[hang watchdog] native stack of the main thread:\\n' + main.stdout.split('\\n').filter((l) => /^#/.test(l)).map(cut).join('\\n'));
      const all = gdb(['-ex', 'thread apply all bt 10']).stdout.split('\\n').filter((l) => /^(#\\d |Thread )/.test(l)).map(cut);
      say('[hang watchdog] other threads:\\n' + all.slice(0, 300).join('\\n'));
    }
    // the main thread's JS stack: the inspector pauses it, which happens only while it runs JS (an endless loop)
    function jsStack(done) {
      const { Session } = require('node:inspector');
      const session = new Session();
      let said = false;
      const finish = (text) => { if (!said) { said = true; say(text); done(); } };
      try {
        session.connectToMainThread();
        session.on('Debugger.paused', (m) => finish('[hang watchdog] main thread JS stack:\\n' + m.params.callFrames.slice(0, 25)
          .map((f) => '  at ' + (f.functionName || '(anonymous)') + ' ' + f.url + ':' + (f.location.lineNumber + 1)).join('\\n')));
        session.post('Debugger.enable', () => session.post('Debugger.pause'));
      } catch (e) { finish('[hang watchdog] no inspector: ' + e.message); }
      setTimeout(() => finish('[hang watchdog] no JS stack within 3 s: the main thread is blocked outside JavaScript (see its native stack)'), 3000);
    }
    const timer = setInterval(() => {
      const idle = (Date.now() - t0) / 1000 - Atomics.load(head, 0);
      if (idle < limitS) return;
      clearInterval(timer);
      const what = Buffer.from(name.subarray(0, Atomics.load(head, 1))).toString();
      const msg = file + ' > ' + what + ': the main thread blocked for ' + Math.round(idle / 60) + ' min (a call that never returned)';
      say('\\n[hang watchdog] ' + msg);
      fs.mkdirSync(hangDir, { recursive: true });
      try { fs.writeFileSync(path.join(hangDir, path.basename(testPath) + '.txt'), testPath + '\\n' + msg); } catch {}
      nativeStacks();
      jsStack(() => { say('[hang watchdog] killing this jest worker'); process.kill(process.pid, 'SIGKILL'); });
    }, 5000);
  `, { eval: true, workerData: { shared, limitS: limitMin * 60, t0, file: path.relative(process.cwd(), testPath), testPath, hangDir } });
  watchdog.unref();

  const current = () => expect.getState().currentTestName ?? '(hook)';
  beforeAll(() => stamp('beforeAll'));
  beforeEach(() => stamp(current()));
  afterEach(() => stamp(`after ${current()}`));
  afterAll(async () => {
    stamp('afterAll');
    clearInterval(heartbeat);
    await watchdog.terminate();
  });
}
