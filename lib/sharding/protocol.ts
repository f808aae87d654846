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
 * (shm_region.ts: the input, then one partial slot per worker); they reduce-scatter the same way,
 * into the input area (every worker has finished reading it by then), and the main process copies
 * the sum out once. Where that is not available (no native addon, /dev/shm not writable,
 * `sharedMemory: false`, TFJS_ATTENTION_SHM=0) the input travels in the call message, the partial
 * in the reply (structured-clone IPC, one copy each way) and the main process sums.
 *
 * Partials are float32 or float16 (`partialDtype`, see partials.ts); the sum is float32.
 *
 * A call is three-phase: `call` (fetch + compute into the slot, nothing committed) on every
 * worker, then `reduce` (each worker its row range; nothing committed), then, only when every
 * worker answered both ok, `commit` (cache.step). A failure in `call` or `reduce` (an error, a
 * death, a timeout): no commit anywhere, every reserved page is given back.
 */
import type { DevicePlacement } from '../types.js';
import type { PartialDtype } from './partials.js';

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
  /** How the partial is written (slot or reply). */
  partialDtype: PartialDtype;
  /** Rows per readback chunk: the output projection runs chunk by chunk, each read back while the next computes (0: one piece). */
  chunkRows: number;
}

/** Reduce-scatter: sum rows `[rowStart, rowEnd)` of every partial slot into out. Changes no state. */
export interface ReduceMsg {
  op: 'reduce';
  id: number;
  /** Thread workers: the partials buffer and a fresh output buffer. Process workers: null (the mapped region; out = its input area). */
  partials: SharedArrayBuffer | null;
  out: SharedArrayBuffer | null;
  slotFloats: number;
  numSlots: number;
  rowStart: number;
  rowEnd: number;
  hidden: number;
  partialDtype: PartialDtype;
}

export interface CommitMsg {
  op: 'commit';
  id: number;
}

export type WorkerMsg =
  | InitMsg | CallMsg | ReduceMsg | CommitMsg
  | { op: 'seq'; seq: SeqAction }
  | { op: 'inspect'; id: number }
  /** The call `id` failed or timed out elsewhere: give back what its fetch reserved (nothing was committed). */
  | { op: 'abort'; id: number }
  /** Testing: throw or exit in the next `call` (after writing K/V) or the next `reduce` (after half its rows). */
  | { op: 'fault'; mode: 'throw' | 'exit'; phase?: 'call' | 'reduce' }
  | { op: 'dispose' };

export interface Reply {
  id: number;
  ok: boolean;
  error?: string;
  /** init: the backend in use; inspect: the cache state. */
  backend?: string;
  lengths?: [number, number][];
  numFreePages?: number;
  /** call, process workers over IPC: the partial output `[T, hidden]` (float16 codes for 'float16'). */
  partial?: Float32Array | Uint16Array;
  /** init with shm: whether the worker mapped the region (false: it runs over IPC, shmError says why). */
  shm?: boolean;
  shmError?: string;
  /** call: ms the worker spent in the call handler (compute and writing its partial). */
  computeMs?: number;
  /** reduce: ms the worker spent summing its rows. */
  reduceMs?: number;
}
