/** The main thread's handle on one shard worker: request/reply by id, death detection. */
import { Worker } from 'node:worker_threads';
import type { DevicePlacement } from '../types.js';
import { deviceName } from './devices.js';
import type { Reply, WorkerMsg } from './protocol.js';

const W = 'ShardedAttention';

export class ShardWorker {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve(r: Reply): void; reject(e: Error): void }>();
  /** Why the worker is gone (uncaught error or exit), or null while it lives. */
  dead: Error | null = null;
  /** The tfjs backend it runs (after init). */
  backend = '';

  constructor(script: string, readonly device: DevicePlacement, readonly index: number) {
    this.worker = new Worker(script);
    const name = `device ${index} (${deviceName(device)})`;
    this.worker.on('message', (r: Reply) => {
      const w = this.waiting.get(r.id);
      if (w) { this.waiting.delete(r.id); w.resolve(r); }
    });
    this.worker.on('error', (e) => this.fail(new Error(`[${W}] ${name} died: ${e.message}`)));
    this.worker.on('exit', (code) => this.fail(new Error(`[${W}] ${name} exited with code ${code}`)));
  }

  get name(): string { return `device ${this.index} (${deviceName(this.device)})`; }

  /** Sends `msg` and resolves with the worker's reply; rejects if the worker dies first. */
  request(msg: WorkerMsg & { id: number }, transfer: ArrayBuffer[] = []): Promise<Reply> {
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      this.waiting.set(msg.id, { resolve, reject });
      this.worker.postMessage({ ...msg, slot: this.index }, transfer);
    });
  }

  /** Sends without waiting (ordered before any later message). */
  post(msg: WorkerMsg): void { if (!this.dead) this.worker.postMessage(msg); }

  async terminate(): Promise<void> { if (!this.dead) await this.worker.terminate(); }

  private fail(e: Error): void {
    this.dead ??= e;
    for (const w of this.waiting.values()) w.reject(this.dead);
    this.waiting.clear();
  }
}
