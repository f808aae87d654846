/**
 * The sequence API that a runtime spread over workers exposes (ShardedAttention, PipelineModel):
 * a main-thread book of sequences (a 1-head, 1-dim PagedKVCache that validates ids, counts and pages
 * before any worker moves) mirrored to the workers by one broadcast per change.
 */
import { PagedKVCache } from '../kv_cache/paged_kv_cache.js';
import type { SeqAction } from './protocol.js';

export abstract class WorkerSequences {
  /** Main-thread mirror of the sequence bookkeeping: validates before dispatch. */
  protected readonly book: PagedKVCache;

  protected constructor(pageSize: number | undefined, numPages: number) {
    this.book = new PagedKVCache({ nKvHeads: 1, headDim: 1, pageSize, numLayers: 1, numPages });
  }

  /** Throws, naming `what`, while the runtime is disposed, broken or in a call. */
  protected abstract checkIdle(what: string): void;
  /** Sends one sequence change to every worker. */
  protected abstract broadcastSeq(seq: SeqAction): void;

  get sequenceIds(): number[] { return this.book.sequenceIds; }
  hasSequence(seqId: number): boolean { return this.book.hasSequence(seqId); }
  cacheLength(seqId: number): number { return this.book.cacheLength(seqId); }

  addSequence(seqId?: number): number {
    this.checkIdle('addSequence');
    const id = this.book.addSequence(seqId);
    this.broadcastSeq({ action: 'add', seqId: id });
    return id;
  }
  releaseSequence(seqId: number): void {
    this.checkIdle('releaseSequence');
    this.book.releaseSequence(seqId);
    this.broadcastSeq({ action: 'release', seqId });
  }
  forkSequence(srcId: number, dstId?: number): number {
    this.checkIdle('forkSequence');
    const id = this.book.forkSequence(srcId, dstId);
    this.broadcastSeq({ action: 'fork', srcId, dstId: id });
    return id;
  }
}
