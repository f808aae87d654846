/**
 * How attention heads split across devices for tensor parallelism.
 *
 * Query heads split in contiguous runs, the remainder going to the first devices (30 heads on
 * 4 devices: 8, 8, 7, 7). Each device holds exactly the KV heads its query heads use; a KV head
 * whose query heads straddle two devices is held by both (1 KV head on 2 devices: both hold it;
 * 3 on 2: the middle one is on both).
 *
 * A shard layer is a plain AttentionWithRope, and its kernels map query head h to KV head
 * `floor(h / group)`: every local KV head must serve the same number of local query heads. Where
 * a straddle makes the runs unequal (8 heads / 2 KV heads on 3 devices: device 1 has 1 head of KV 0
 * and 2 of KV 1), the shorter runs are padded with copies of one of their real heads whose
 * output-projection rows are zero: they add exactly 0 to the sum and cost that much compute.
 * When heads and KV heads divide evenly (the reference's only case) there is no padding.
 */
import { check, checkInt } from '../errors.js';

export interface ShardHeads {
  /** Device index. */
  index: number;
  /** Global query heads `[qStart, qEnd)` this device computes. */
  qStart: number;
  qEnd: number;
  /** Global KV heads `[kvStart, kvEnd)` this device holds. */
  kvStart: number;
  kvEnd: number;
  /**
   * The shard layer's query heads in local order (KV-group major, `group` per local KV head):
   * the global head whose q weights each slot uses.
   */
  localHeads: number[];
  /** false for a padding slot (a copy whose o_proj rows are zero). */
  real: boolean[];
  /** Local query heads per local KV head. */
  group: number;
}

const W = 'splitHeads';

/** Query heads per device: `n / d` each, the remainder one each to the first devices. */
export function headCounts(numHeads: number, numDevices: number): number[] {
  checkInt(numHeads, W, 'numHeads', 1);
  checkInt(numDevices, W, 'numDevices', 1);
  check(numDevices <= numHeads, W, () => `numDevices (${numDevices}) must be <= numHeads (${numHeads}): every device needs a query head`);
  const base = Math.floor(numHeads / numDevices), rem = numHeads % numDevices;
  return Array.from({ length: numDevices }, (_, i) => base + (i < rem ? 1 : 0));
}

/**
 * The head split of `numHeads` query heads and `numKvHeads` KV heads over `numDevices` devices.
 *
 * @example
 * splitHeads(30, 30, 4).map((s) => s.qEnd - s.qStart);  // [8, 8, 7, 7]
 * splitHeads(6, 3, 2).map((s) => [s.kvStart, s.kvEnd]); // [[0, 2], [1, 3]]: KV head 1 on both
 */
export function splitHeads(numHeads: number, numKvHeads: number, numDevices: number): ShardHeads[] {
  const counts = headCounts(numHeads, numDevices);
  checkInt(numKvHeads, W, 'numKvHeads', 1);
  check(numHeads % numKvHeads === 0, W, () => `numHeads (${numHeads}) must be a multiple of numKvHeads (${numKvHeads})`);
  const g = numHeads / numKvHeads;
  const out: ShardHeads[] = [];
  let qStart = 0;
  counts.forEach((count, index) => {
    const qEnd = qStart + count;
    const kvStart = Math.floor(qStart / g), kvEnd = Math.floor((qEnd - 1) / g) + 1;
    const runs: number[][] = [];
    for (let kv = kvStart; kv < kvEnd; kv++) {
      const run: number[] = [];
      for (let h = Math.max(qStart, kv * g); h < Math.min(qEnd, (kv + 1) * g); h++) run.push(h);
      runs.push(run);
    }
    const group = Math.max(...runs.map((r) => r.length));
    const localHeads: number[] = [], real: boolean[] = [];
    for (const run of runs) {
      for (let j = 0; j < group; j++) {
        localHeads.push(run[Math.min(j, run.length - 1)]);
        real.push(j < run.length);
      }
    }
    out.push({ index, qStart, qEnd, kvStart, kvEnd, localHeads, real, group });
    qStart = qEnd;
  });
  return out;
}

/** One line per device, e.g. `device 1: q heads [3, 6) kv heads [0, 2) (4 local, 1 padding)`. */
export function describeSplit(split: ShardHeads[]): string {
  return split.map((s) => {
    const pad = s.real.filter((r) => !r).length;
    return `device ${s.index}: q heads [${s.qStart}, ${s.qEnd}) kv heads [${s.kvStart}, ${s.kvEnd})` +
      (pad ? ` (${s.localHeads.length} local, ${pad} padding)` : '');
  }).join('\n');
}
