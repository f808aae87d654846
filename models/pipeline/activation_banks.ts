/**
 * The activation slots between pipeline stages (see protocol.ts): two banks of one slot
 * `[capacity, hidden]` f32 per micro-batch, in a SharedArrayBuffer (threads) or a /dev/shm
 * mapping (processes); or none, the activations then travelling in the messages. Capacity grows
 * with the largest micro-batch; a grown /dev/shm file is named to the stages in the next call and
 * unlinked when that call ends (every stage has mapped it by then).
 */
import type { Transport } from '../../lib/sharding/shard_worker.js';
import { SharedRegion } from '../../lib/sharding/shm_region.js';
import type { Activations } from './protocol.js';

export class ActivationBanks {
  kind: Activations['kind'];
  private capacity = 0;
  private sab: SharedArrayBuffer | null = null;

  constructor(transport: Transport, private region: SharedRegion | null, private readonly hidden: number, private readonly micro: number) {
    this.kind = transport === 'thread' ? 'sab' : region ? 'shm' : 'message';
    if (region) this.capacity = region.capacity;
  }

  /** A stage could not map the region: activations go in the messages from now on. */
  fallBackToMessages(): void {
    this.region?.unlink();
    this.region = null;
    this.kind = 'message';
  }

  /** Room for micro-batches of `rows` tokens. */
  ensure(rows: number): void {
    if (rows <= this.capacity || this.kind === 'message') return;
    const cap = Math.max(rows, 2 * this.capacity, 16);
    if (this.kind === 'sab') {
      this.sab = new SharedArrayBuffer(2 * this.micro * cap * this.hidden * 4);
    } else {
      const old = this.region!;
      try {
        this.region = new SharedRegion(cap, this.hidden, 2 * this.micro - 1);
      } catch (e) { // /dev/shm full, say
        this.region = null;
        this.kind = 'message';
        console.warn(`[PipelineModel] shared memory could not grow to ${rows} rows (${(e as Error).message}); moving activations in messages from now on`);
      }
      old.unlink();
    }
    this.capacity = cap;
  }

  /** Slot of micro-batch `k` in `bank` (0 or 1); for messages, `data` is the activations to send. */
  at(bank: number, k: number, data?: Float32Array): Activations {
    const slot = bank * this.micro + k, slotFloats = this.capacity * this.hidden;
    if (this.kind === 'sab') return { kind: 'sab', buffer: this.sab!, slot, slotFloats };
    if (this.kind === 'shm') return { kind: 'shm', ref: this.region!.ref, slot, slotFloats };
    return { kind: 'message', data };
  }

  /** After a call: a grown region's name is no longer needed. */
  release(): void { this.region?.unlink(); }

  dispose(): void {
    this.region?.unlink();
    this.region = null;
    this.sab = null;
  }
}
