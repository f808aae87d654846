import { check } from '../errors.js';

/**
 * Free list and reference counts of a page pool (no contents: PagedKVCache owns those).
 *
 * The free list is a stack, so `alloc` and `release` are O(1) whatever the pool size; the
 * only O(pool) work is the constructor. Page ids are handed out 0, 1, 2, ... on a fresh pool;
 * released pages are reused last-in first-out.
 */
export class PageAllocator {
  readonly numPages: number;
  /** `[numPages]` owners of each page; 0 = free. */
  private readonly refs: Int32Array;
  /** Stack of free page ids; entries `[0, top)` are live. */
  private readonly stack: Int32Array;
  private top: number;
  private high = 0;

  constructor(numPages: number) {
    this.numPages = numPages;
    this.refs = new Int32Array(numPages);
    this.stack = new Int32Array(numPages);
    for (let i = 0; i < numPages; i++) this.stack[i] = numPages - 1 - i; // pops 0 first
    this.top = numPages;
  }

  get numFree(): number {
    return this.top;
  }

  /**
   * One more than the largest page id ever handed out: pages `[0, highWater)` are all a device
   * copy of the pool needs. Fresh pools hand out 0, 1, 2, ... and reuse freed pages first, so this
   * follows the most pages ever in use at once, not the pool size.
   */
  get highWater(): number {
    return this.high;
  }

  refCount(page: number): number {
    return this.refs[page];
  }

  /** Takes a free page (refcount 1). The caller has checked `numFree` first. */
  alloc(): number {
    check(this.top > 0, 'PagedKVCache', () => `internal: alloc on an empty free list (pool of ${this.numPages})`);
    const page = this.stack[--this.top];
    this.refs[page] = 1;
    if (page >= this.high) this.high = page + 1;
    return page;
  }

  /** One more owner of `page`. */
  retain(page: number): void {
    this.refs[page]++;
  }

  /** One owner fewer; the page goes back to the free list when none is left. */
  release(page: number): void {
    check(this.refs[page] > 0, 'PagedKVCache', () => `internal: release of free page ${page}`);
    if (--this.refs[page] === 0) this.stack[this.top++] = page;
  }
}
