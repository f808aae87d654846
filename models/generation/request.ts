/** One generation request and its live state inside the generator. */
import type { SamplingParams } from '../../lib/generation/sampler.js';
import { SeededRng } from '../../lib/generation/rng.js';

export interface GenerationRequest {
  promptIds: readonly number[];
  /** Default 32. */
  maxNewTokens?: number;
  /** Generation ends after emitting one of these (it is included in the output). */
  stopTokens?: readonly number[];
  sampling?: SamplingParams;
  /** RNG seed of this request (default: the generator's seed). Same seed, same tokens, batched or alone. */
  seed?: number;
  /**
   * Called with each new token as soon as it is chosen. If it throws, this request alone fails
   * (its `done` rejects with the error, its pages go back to the pool); other requests go on.
   */
  onToken?: (token: number, seq: SequenceHandle) => void;
}

/** `error`: its onToken callback threw (the handle's `done` rejects with that error). */
export type FinishReason = 'stop' | 'length' | 'error';

/** What the caller sees of a request: its tokens so far and, at the end, why it finished. */
export interface SequenceHandle {
  readonly id: number;
  readonly promptIds: readonly number[];
  readonly tokens: readonly number[];
  readonly finishReason: FinishReason | null;
  /** Resolves with the new tokens when the sequence finishes. */
  readonly done: Promise<number[]>;
}

/** Internal state of a sequence. */
export class SequenceState implements SequenceHandle {
  readonly tokens: number[] = [];
  finishReason: FinishReason | null = null;
  /** Prompt tokens already in the cache. */
  prefilled = 0;
  /** Cache sequence id once admitted, else -1. */
  cacheId = -1;
  readonly rng: SeededRng;
  readonly done: Promise<number[]>;
  resolve!: (t: number[]) => void;
  reject!: (e: unknown) => void;

  constructor(readonly id: number, readonly req: GenerationRequest, readonly maxNewTokens: number, seed: number) {
    this.rng = new SeededRng(seed);
    this.done = new Promise<number[]>((res, rej) => { this.resolve = res; this.reject = rej; });
    this.done.catch(() => undefined); // rejection is reported through run() as well
  }

  get promptIds(): readonly number[] { return this.req.promptIds; }
  get inPrefill(): boolean { return this.prefilled < this.req.promptIds.length; }
  /** Tokens this sequence will hold at most. */
  get maxLength(): number { return this.req.promptIds.length + this.maxNewTokens; }
}
