/**
 * Messages between ShardedAttention (main thread) and its shard workers. Control goes by
 * postMessage; data by SharedArrayBuffer, never copied between threads:
 * - input `[capacity, hidden]` f32: the step's hidden rows, written once by the main thread,
 *   read in place by every worker (the broadcast);
 * - partials `[numDevices, capacity, hidden]` f32: worker d writes its partial output in slot d;
 * - out `[T, hidden]` f32, fresh each call: the all-reduce result; worker d sums rows
 *   `[rowStart, rowEnd)` of every slot into it (a reduce-scatter, so the sum runs in parallel),
 *   and the main thread wraps it as the output tensor.
 *
 * Process workers (transport 'process', one process per device: how several GPUs are reached
 * through WebGPU, see sharded_attention.ts) map one /dev/shm file with the main process
 * (shm_region.ts: the input, then one partial slot per worker); the main process reduces. Where
 * that is not available (no native addon, /dev/shm not writable, `sharedMemory: false`,
 * TFJS_ATTENTION_SHM=0) the input travels in the call message and the partial in the reply
 * (structured-clone IPC, one copy each way).
 *
 * A call is two-phase: `call` (fetch + compute, nothing committed) on every worker, then, only
 * when every worker answered ok, `commit` (cache.step + reduce). Any failure: no commit anywhere.
 */
import type { DevicePlacement } from '../types.js';

export type SeqAction = { action: 'add'; seqId: number } | { action: 'release'; seqId: number } | { action: 'fork'; srcId: number; dstId: number };

/** A /dev/shm file to map: `bytes` long, input then partial slots of `capacity` rows each. */
export interface ShmRef { path: string; bytes: number; capacity: number }

export interface InitMsg {
  op: 'init';
  id: number;
  device: DevicePlacement;
  /** getConfig() of the shard layer. */
  config: Record<string, unknown>;
  /** Hugging Face layout weights of the shard. */
  weights: Record<string, Float32Array>;
  /** Composite path only (ATTENTION_ROPE_FORCE_COMPOSITE). */
  forceComposite: boolean;
  /** CPU fused kernels: 'auto' (default), 'native' or 'ts', see ShardedAttentionOptions. */
  cpuKernelImpl: 'ts' | 'native' | 'auto';
  /** Native CPU kernel threads (the addon's pool is process-wide and not reentrant: 1). */
  nativeThreads: number;
  /** Process workers: the shared region to map (absent: IPC). */
  shm?: ShmRef;
}

export interface CallMsg {
  op: 'call';
  id: number;
  layerIdx: number;
  seqIds: number[];
  numNewTokens: number[];
  materialize: boolean;
  /** Thread workers: the shared input buffer. Process workers over IPC: the rows themselves (a copy). Over shm: null. */
  input: SharedArrayBuffer | Float32Array | null;
  /** Thread workers: the shared partials buffer. Process workers: null (the partial is in the shm slot or the reply). */
  partials: SharedArrayBuffer | null;
  /** Floats per partial slot (capacity * hidden). */
  slotFloats: number;
  /** Process workers over shared memory: the region (a new path after a grow: map it). */
  shm?: ShmRef;
}

export interface CommitMsg {
  op: 'commit';
  id: number;
  /** Absent for materialize (nothing to reduce). */
  reduce?: { out: SharedArrayBuffer; partials: SharedArrayBuffer; slotFloats: number; numSlots: number; rowStart: number; rowEnd: number; hidden: number };
}

export type WorkerMsg =
  | InitMsg | CallMsg | CommitMsg
  | { op: 'seq'; seq: SeqAction }
  | { op: 'inspect'; id: number }
  /** The call `id` failed or timed out elsewhere: give back what its fetch reserved (nothing was committed). */
  | { op: 'abort'; id: number }
  | { op: 'fault'; mode: 'throw' | 'exit' }
  | { op: 'dispose' };

export interface Reply {
  id: number;
  ok: boolean;
  error?: string;
  /** init: the backend in use; inspect: the cache state. */
  backend?: string;
  lengths?: [number, number][];
  numFreePages?: number;
  /** call, process workers over IPC: the partial output `[T, hidden]`. */
  partial?: Float32Array;
  /** init with shm: whether the worker mapped the region (false: it runs over IPC, shmError says why). */
  shm?: boolean;
  shmError?: string;
  /** call: ms the worker spent in the call handler (compute and writing its partial). */
  computeMs?: number;
}
