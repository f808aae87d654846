/**
 * A child process for a spec, awaited (not spawnSync, which blocks the jest worker's event loop
 * and so its hang watchdog, spec/support/hang_watchdog.ts), in its own process group: on the
 * timeout the whole group gets SIGKILL, grandchildren (compilers, jest workers) included.
 *
 *   const r = await runChild(process.execPath, ['-e', '1'], { timeoutMs: 10_000 });  // { status: 0, signal: null, out: '' }
 */
import { spawn } from 'node:child_process';

export interface ChildResult { status: number | null; signal: NodeJS.Signals | null; out: string; timedOut: boolean }

export function runChild(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<ChildResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', timedOut = false;
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { timedOut = true; try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* already gone */ } }, opts.timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); resolve({ status: null, signal: null, out: `${out}\n${e.message}`, timedOut }); });
    child.on('exit', (status, signal) => {
      clearTimeout(timer);
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* the group is empty */ }  // nothing of it outlives the call
      setImmediate(() => resolve({ status, signal, out, timedOut }));
    });
  });
}
