/**
 * Messages between PipelineModel (main thread) and its stage workers (one thread or process per
 * device). Control by message; activations `[tokens, hidden]` f32 through shared memory where
 * there is some, in a bank of slots `[2 * microBatches][capacity, hidden]`:
 * - threads: one SharedArrayBuffer;
 * - processes: one /dev/shm file mapped by every process (lib/sharding/shm_region.ts);
 * - else (no addon, `sharedMemory: false`): in the messages (structured clone, a copy each way).
 * Stage s reads micro-batch k from slot `(s % 2) * M + k` and writes it to `((s + 1) % 2) * M + k`:
 * the slot it writes was last read by stage s - 1, which finished micro-batch k before stage s got
 * it, so two banks are enough however many micro-batches are in flight.
 *
 * A stage handles `run` messages strictly in order: fetch the micro-batch's pages, compute, commit
 * (cache.step) and answer. Chunks of one sequence come in order, each seeing the previous ones' K/V.
 */
import type { DevicePlacement } from '../../lib/types.js';
import type { ShmRef } from '../../lib/sharding/protocol.js';
import type { StageOutput, StageSpec } from './stage_model.js';
import type { SeqAction } from '../../lib/sharding/protocol.js';

export interface StageInitMsg {
  op: 'init';
  id: number;
  device: DevicePlacement;
  spec: StageSpec;
  cpuKernelImpl: 'ts' | 'native' | 'auto';
  nativeThreads: number;
  /** Process workers: the shared region to map (absent: IPC). */
  shm?: ShmRef;
}

/** Where activations come from / go to. */
export type Activations =
  | { kind: 'sab'; buffer: SharedArrayBuffer; slot: number; slotFloats: number }
  | { kind: 'shm'; ref: ShmRef; slot: number; slotFloats: number }
  | { kind: 'message'; data?: Float32Array };

export interface StageRunMsg {
  op: 'run';
  id: number;
  /** Micro-batch index within the call (for ordering checks and errors). */
  microBatch: number;
  seqIds: number[];
  numNewTokens: number[];
  /** First stage: the token ids. */
  ids?: Int32Array;
  /** Other stages: where the input activations are. */
  input?: Activations;
  /** Non-last stages: where to write the output activations. */
  output?: Activations;
  /** Last stage: logits or greedy tokens of these rows of the micro-batch. */
  result: StageOutput;
  logitRows?: Int32Array;
}

export type StageMsg =
  | StageInitMsg | StageRunMsg
  | { op: 'seq'; seq: SeqAction }
  | { op: 'inspect'; id: number }
  | { op: 'fault'; mode: 'throw' | 'exit'; afterRuns: number }
  | { op: 'dispose' };

export interface StageReply {
  id: number;
  ok: boolean;
  error?: string;
  backend?: string;
  shm?: boolean;
  /** run over messages: the output activations. */
  hidden?: Float32Array;
  /** run, last stage: `[R, vocab]` logits (flat) or `[R]` tokens. */
  logits?: Float32Array;
  tokens?: Int32Array;
  /** run: ms in the handler. */
  computeMs?: number;
  /** inspect: the stage cache. */
  lengths?: [number, number][];
  numFreePages?: number;
}
