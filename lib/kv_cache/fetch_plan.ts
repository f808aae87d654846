/**
 * The checking and planning half of `PagedKVCache.fetch`: pure reads of the cache's state,
 * so a fetch that fails here (bad input, out of pages) has changed nothing.
 */
import { check } from '../errors.js';
import type { PageAllocator } from './page_allocator.js';

const W = 'PagedKVCache';

/** Host state of one sequence. `gen`: stamp of its live fetch, minus it once stepped, 0 if none. */
export interface SeqState {
  pages: number[];
  length: number;
  gen: number;
}

export const isIndex = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;

/** `[0, 1, 2]`, or the first 8 and a count. */
export const idList = (ids: Iterable<number>): string => {
  const a = Array.from(ids);
  return a.length <= 8 ? `[${a.join(', ')}]` : `[${a.slice(0, 8).join(', ')}, ... ${a.length} in all]`;
};

/** Checks fetch's arguments; returns the batch size. */
export function validateFetch(seqIds: readonly number[], numNewTokens: readonly number[], seqs: Map<number, SeqState>): number {
  check(seqIds != null && typeof seqIds.length === 'number', W, () => `fetch: seqIds must be an array, got ${String(seqIds)}`);
  check(numNewTokens != null && typeof numNewTokens.length === 'number', W, () =>
    `fetch: numNewTokens must be an array, got ${String(numNewTokens)}`);
  const batch = seqIds.length;
  check(batch === numNewTokens.length, W, () =>
    `fetch: seqIds.length (${batch}) must equal numNewTokens.length (${numNewTokens.length})`);
  check(batch > 0, W, () => `fetch: seqIds must name at least one sequence, got []`);
  const seen = new Map<number, number>();
  for (let b = 0; b < batch; b++) {
    const id = seqIds[b];
    const n = numNewTokens[b];
    check(isIndex(id), W, () => `seqIds[${b}] (${id}) must be an integer >= 0`);
    check(!seen.has(id), W, () => `seqIds[${b}] (${id}) repeats seqIds[${seen.get(id)}] (${id}): ids in a step must be unique`);
    seen.set(id, b);
    check(seqs.has(id), W, () => `seqIds[${b}] (${id}) is not a known sequence (known: ${idList(seqs.keys())})`);
    check(typeof n === 'number' && Number.isInteger(n), W, () => `numNewTokens[${b}] (${n}) must be an integer`);
    check(n >= 0, W, () => `numNewTokens[${b}] (${n}) must be >= 0`);
  }
  return batch;
}

export interface FetchPlan {
  /** Fresh pages the step takes: growth plus copies. */
  need: number;
  /** Pairs (b, pageIdx): shared pages batch entry b will write, to copy first. */
  cow: number[];
  maxPagesPerSeq: number;
  maxContext: number;
}

/**
 * Counts the pages a (validated) fetch needs. A page is copied before a write when it has
 * other owners; `pending` counts copies already planned off a page, so when several owners of
 * one page write in the same step the last one keeps the original (n owners, n-1 copies at most).
 * O(batch + pages touched), never O(pool).
 */
export function planFetch(
  seqIds: readonly number[], numNewTokens: readonly number[], seqs: Map<number, SeqState>,
  alloc: PageAllocator, pageSize: number,
): FetchPlan {
  const pending = new Map<number, number>();
  const plan: FetchPlan = { need: 0, cow: [], maxPagesPerSeq: 1, maxContext: 0 };
  for (let b = 0; b < seqIds.length; b++) {
    const s = seqs.get(seqIds[b])!;
    const end = s.length + numNewTokens[b];
    const pages = Math.ceil(end / pageSize);
    plan.maxPagesPerSeq = Math.max(plan.maxPagesPerSeq, pages);
    plan.maxContext = Math.max(plan.maxContext, end);
    if (numNewTokens[b] > 0) {
      // Pages written: from the one holding position `length` to the last one needed.
      for (let j = Math.floor(s.length / pageSize); j < Math.min(pages, s.pages.length); j++) {
        const page = s.pages[j];
        const taken = pending.get(page) ?? 0;
        if (alloc.refCount(page) - taken > 1) {
          pending.set(page, taken + 1);
          plan.cow.push(b, j);
          plan.need++;
        }
      }
    }
    plan.need += Math.max(0, pages - s.pages.length);
  }
  return plan;
}
