/**
 * How one ragged step splits into micro-batches that keep every pipeline stage busy:
 * - at least as many sequences as micro-batches (batched decode): sequences in contiguous groups;
 * - fewer (a long prefill): each sequence's new tokens in chunks, micro-batch k holding chunk k of
 *   every sequence; a stage runs them in order, so each chunk sees the previous chunks' K/V.
 * Only the last chunk of a sequence yields its logits row.
 */

export interface MicroBatch {
  seqIds: number[];
  numNewTokens: number[];
  /** Rows `[rowStart, rowEnd)` of each sequence's part in the call's packed rows, in order. */
  rows: [number, number][];
  /** Rows of this micro-batch (local) whose logits are wanted: the last row of each sequence that ends here. */
  logitRows: number[];
  /** For each logitRow, the index of its sequence in the call. */
  logitSeqs: number[];
  totalTokens: number;
}

/**
 * Splits a call (`seqIds[b]` with `counts[b]` new tokens, packed in order) into at most
 * `microBatches` micro-batches. Every sequence with tokens gets its last-row logits exactly once.
 *
 * @example
 * planMicroBatches([7], [10], 2).map((m) => m.numNewTokens); // [[5], [5]]: a prefill in two chunks
 * planMicroBatches([0, 1, 2, 3], [1, 1, 1, 1], 2).map((m) => m.seqIds); // [[0, 1], [2, 3]]
 */
export function planMicroBatches(seqIds: readonly number[], counts: readonly number[], microBatches: number): MicroBatch[] {
  const offsets: number[] = [0];
  for (const n of counts) offsets.push(offsets[offsets.length - 1] + n);
  const live = seqIds.map((_, b) => b).filter((b) => counts[b] > 0);
  const out: MicroBatch[] = [];
  const push = (parts: [number, number, number][]) => { // [seq index, chunk start, chunk end] (relative to the sequence)
    if (parts.length === 0) return;
    const m: MicroBatch = { seqIds: [], numNewTokens: [], rows: [], logitRows: [], logitSeqs: [], totalTokens: 0 };
    for (const [b, s, e] of parts) {
      m.seqIds.push(seqIds[b]);
      m.numNewTokens.push(e - s);
      m.rows.push([offsets[b] + s, offsets[b] + e]);
      m.totalTokens += e - s;
      if (e === counts[b]) { m.logitRows.push(m.totalTokens - 1); m.logitSeqs.push(b); }
    }
    out.push(m);
  };
  if (live.length >= microBatches) {
    for (let k = 0; k < microBatches; k++) {
      const group = live.slice(Math.floor((k * live.length) / microBatches), Math.floor(((k + 1) * live.length) / microBatches));
      push(group.map((b) => [b, 0, counts[b]]));
    }
    return out;
  }
  const chunks = Math.max(1, Math.floor(microBatches / Math.max(1, live.length)));
  for (let k = 0; k < chunks; k++) {
    push(live.flatMap((b): [number, number, number][] => {
      const s = Math.floor((k * counts[b]) / chunks), e = Math.floor(((k + 1) * counts[b]) / chunks);
      return e > s ? [[b, s, e]] : [];
    }));
  }
  return out;
}
