/**
 * Shared memory between the main process and process workers (transport 'process'): one file in
 * /dev/shm (or TFJS_ATTENTION_SHM_DIR), created and sized by the main process, mapped MAP_SHARED by it and by every worker
 * through the native addon (native/shm.cc), so a call moves only small control messages over IPC.
 *
 * Layout, f32, `capacity` rows of `hidden`: the input `[capacity, hidden]` (written once by the
 * main process, read in place by every worker), then one partial slot `[capacity, hidden]` per
 * worker (worker d writes slot d; each worker then sums one row range of every slot into the input
 * area, which the main process copies out: see protocol.ts). PipelineModel maps its activation
 * banks the same way (models/pipeline/activation_banks.ts).
 *
 * The file's name is only needed until every worker has mapped it: the main process unlinks it as
 * soon as every worker answered (or failed) the message that named it (init, or the call after a
 * grow), and again (best effort) on dispose, at exit and on SIGINT / SIGTERM / SIGHUP. A process
 * killed with SIGKILL inside that window leaves its file: the next process to create a region
 * removes files of processes that are gone (sweepStaleRegions).
 */
import * as fs from 'node:fs';
import { nativeKernels } from '../../kernels/cpu/native.js';
import '../backends/native_node.js';  // loads the addon that maps the shared files
import type { ShmRef } from './protocol.js';

/** Where the region files go: /dev/shm, or TFJS_ATTENTION_SHM_DIR (another tmpfs, where /dev/shm is small). */
export const shmDir = (): string => process.env.TFJS_ATTENTION_SHM_DIR || '/dev/shm';
export const SHM_PREFIX = 'tfjs-attention-rope.';

const live = new Set<string>();
let exitHooked = false;
const unlinkQuietly = (p: string) => { try { nativeKernels?.unlinkShared?.(p); } catch { /* best effort */ } };

/** Why shared memory cannot be used in this process, or null when it can. */
export function sharedMemoryUnavailable(): string | null {
  if (process.env.TFJS_ATTENTION_SHM === '0') return 'TFJS_ATTENTION_SHM=0';
  if (!nativeKernels) return 'the native addon did not load';
  if (!nativeKernels.mapShared || !nativeKernels.unlinkShared) return 'the native addon predates mapShared; rebuild it';
  try { fs.accessSync(shmDir(), fs.constants.W_OK); } catch { return `${shmDir()} is not writable`; }
  return null;
}

let counter = 0;

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Unlinks the live files on exit and on SIGINT / SIGTERM / SIGHUP; where no one else listens for
 * that signal, it is raised again afterwards so the process still ends as it would have.
 */
function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.once('exit', () => live.forEach(unlinkQuietly));
  for (const sig of SIGNALS) {
    const onSignal = () => {
      live.forEach(unlinkQuietly);
      live.clear();
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch (e) { return (e as NodeJS.ErrnoException).code === 'EPERM'; }
}

/** Removes region files left by processes that are gone (killed with SIGKILL mid-call, say). */
export function sweepStaleRegions(): number {
  let removed = 0;
  let names: string[];
  try { names = fs.readdirSync(shmDir()); } catch { return 0; }
  for (const f of names) {
    const pid = Number(new RegExp(`^${SHM_PREFIX.replace(/\./g, '\\.')}(\\d+)\\.\\d+$`).exec(f)?.[1]);
    if (!pid || pid === process.pid || alive(pid)) continue;
    try { fs.unlinkSync(`${shmDir()}/${f}`); removed++; } catch { /* raced with another sweeper */ }
  }
  return removed;
}

/** The main process's side: creates the file and holds its mapping. */
export class SharedRegion {
  readonly path = `${shmDir()}/${SHM_PREFIX}${process.pid}.${counter++}`;
  readonly buffer: ArrayBuffer;
  private linked = true;

  /** Throws (the addon's error) when the file cannot be created, sized or mapped. */
  constructor(readonly capacity: number, readonly hidden: number, readonly numSlots: number) {
    if (!exitHooked) sweepStaleRegions();
    hookExit();
    live.add(this.path);
    try {
      this.buffer = nativeKernels!.mapShared!(this.path, (1 + numSlots) * capacity * hidden * 4, true);
    } catch (e) {
      live.delete(this.path);
      throw e;
    }
  }

  get ref(): ShmRef { return { path: this.path, bytes: this.buffer.byteLength, capacity: this.capacity }; }

  /** The first `n` floats of the input. */
  input(n: number): Float32Array { return new Float32Array(this.buffer, 0, n); }

  /** The first `n` floats of worker `d`'s partial slot. */
  slot(d: number, n: number): Float32Array { return new Float32Array(this.buffer, (1 + d) * this.capacity * this.hidden * 4, n); }

  /** Removes the file's name (the mappings stay valid). Idempotent. */
  unlink(): void {
    if (!this.linked) return;
    this.linked = false;
    live.delete(this.path);
    unlinkQuietly(this.path);
  }

  get isLinked(): boolean { return this.linked; }
}

/** A worker's side: maps the file the main process named. */
export function mapRegion(ref: ShmRef): ArrayBuffer {
  if (!nativeKernels?.mapShared) throw new Error(`cannot map ${ref.path}: ${sharedMemoryUnavailable() ?? 'no addon'}`);
  return nativeKernels.mapShared(ref.path, ref.bytes, false);
}
