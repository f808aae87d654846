/**
 * The main thread's handle on one shard worker: request/reply by id, death detection. A worker is
 * a thread (node:worker_threads; shares memory with the main thread) or a child process (IPC with
 * structured clone; how one process per GPU reaches several GPUs through WebGPU).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { AttentionRopeError } from '../errors.js';
import type { DevicePlacement } from '../types.js';
import { deviceName } from './devices.js';
import type { Reply, WorkerMsg } from './protocol.js';

const W = 'ShardedAttention';

export type Transport = 'thread' | 'process';

/** The command that starts a process worker running `script` (default: this Node on the script). */
export type SpawnCommand = (device: DevicePlacement, script: string) => { command: string; args: string[] };

/** A worker that did not answer in time (it may still be alive: stopped, hung or slow). */
export class TimeoutError extends AttentionRopeError {}

/** A message with a request id (the shard and pipeline protocols both fit). */
type Request = { op: string; id: number };

export class ShardWorker<R extends { id: number } = Reply, M extends { op: string } = WorkerMsg> {
  private readonly thread: Worker | null = null;
  private readonly child: ChildProcess | null = null;
  private readonly waiting = new Map<number, { resolve(r: R): void; reject(e: Error): void }>();
  private exited: Promise<void>;
  /** Why the worker is gone (uncaught error or exit), or null while it lives. */
  dead: Error | null = null;
  /** The tfjs backend it runs (after init). */
  backend = '';

  /**
   * `owner` names the error messages' source (`[ShardedAttention]`, `[PipelineModel]`), `role`
   * the worker in them (`device 1 (cpu:1)`, `stage 1 (cpu:1)`).
   */
  constructor(script: string, readonly device: DevicePlacement, readonly index: number,
    readonly transport: Transport = 'thread', spawnCommand?: SpawnCommand, private readonly owner = W, private readonly role = 'device') {
    const onMessage = (r: R) => {
      const w = this.waiting.get(r.id);
      if (w) { this.waiting.delete(r.id); w.resolve(r); }
    };
    let exited!: () => void;
    this.exited = new Promise((r) => { exited = r; });
    const onExit = (code: number | null, signal?: string | null) => {
      this.fail(new Error(`[${this.owner}] ${this.name} exited with code ${code}${signal ? ` (${signal})` : ''}`));
      exited();
    };
    const onError = (e: Error) => this.fail(new Error(`[${this.owner}] ${this.name} died: ${e.message}`));
    if (transport === 'thread') {
      this.thread = new Worker(script);
      this.thread.on('message', onMessage).on('error', onError).on('exit', (c) => onExit(c));
    } else {
      const cmd = spawnCommand?.(device, script) ?? { command: process.execPath, args: [script] };
      this.child = spawn(cmd.command, cmd.args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
      this.child.on('message', (r) => onMessage(r as R)).on('error', onError).on('exit', onExit);
    }
  }

  get name(): string { return `${this.role} ${this.index} (${deviceName(this.device)})`; }
  /** The process id of a process worker (null for a thread). */
  get pid(): number | null { return this.child?.pid ?? null; }

  /**
   * Sends `msg` and resolves with the worker's reply; rejects if the worker dies first, or after
   * `timeoutMs` without a reply (a stopped or hung worker: its late reply is then ignored).
   */
  request(msg: M & Request, transfer: ArrayBuffer[] = [], timeoutMs = Infinity): Promise<R> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const done = () => { if (timer) clearTimeout(timer); };
      this.waiting.set(msg.id, { resolve: (r) => { done(); resolve(r); }, reject: (e) => { done(); reject(e); } });
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          if (!this.waiting.delete(msg.id)) return;
          reject(new TimeoutError(`[${this.owner}] ${this.name} did not answer '${msg.op}' (call ${msg.id}) within ${timeoutMs} ms (callTimeoutMs)`));
        }, timeoutMs);
      }
      this.send({ ...msg, slot: this.index } as unknown as M, transfer);
    });
  }

  /** Sends without waiting (ordered before any later message). */
  post(msg: M): void { if (!this.dead) this.send(msg, []); }

  async terminate(): Promise<void> {
    if (this.dead) return;
    if (this.thread) await this.thread.terminate();
    else { this.child!.kill(); await this.exited; }
  }

  private send(msg: M, transfer: ArrayBuffer[]): void {
    if (this.thread) this.thread.postMessage(msg, transfer);
    else this.child!.send(msg);
  }

  private fail(e: Error): void {
    this.dead ??= e;
    for (const w of this.waiting.values()) w.reject(this.dead);
    this.waiting.clear();
  }
}

/**
 * A SpawnCommand that lets a process worker see only NVIDIA GPU `device.index`: the other
 * `/dev/nvidiaN` files are bind-mounted over with /dev/null in a private mount namespace
 * (`unshare -m`, needs root or user namespaces), what containers do with GPUs. Threads of one
 * process all land on GPU 0 whatever adapter they ask for (measured on 2 H200s, see
 * shared/device/README.md), so this is how `webgpu:1` reaches the second GPU.
 *
 * @example
 * await ShardedAttention.create(layer, parseDevices('webgpu:0,webgpu:1'), { transport: 'process', spawnCommand: isolateNvidiaGpu });
 */
export const isolateNvidiaGpu: SpawnCommand = (device, script) => ({
  command: 'unshare',
  args: ['-m', 'bash', '-c',
    `for f in /dev/nvidia[0-9]*; do [ -e "$f" ] && [ "$f" != /dev/nvidia${device.index} ] && mount --bind /dev/null "$f"; done; exec "$0" "$@"`,
    process.execPath, script],
});
