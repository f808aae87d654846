import { check, checkInt } from '../errors.js';
import { type ShardHeads, headCounts, splitHeads } from './head_split.js';

/** A weight on the host: row-major `data` of `shape` (1-D biases, 2-D `[out, in]` Hugging Face layout). */
export interface HostTensor {
  data: Float32Array;
  shape: number[];
}

/** Head layout the head-aware strategies slice by. */
export type HeadLayout = {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
};

export type ShardingKind =
  | 'replicate' | 'tensor_parallel' | 'rowwise' | 'columnwise'
  | 'q_head_rowwise' | 'kv_head_rowwise' | 'stacked_qkv' | 'head_aware_columnwise';

const HEAD_KINDS: readonly ShardingKind[] = ['q_head_rowwise', 'kv_head_rowwise', 'stacked_qkv', 'head_aware_columnwise'];
const KINDS: readonly ShardingKind[] = ['replicate', 'tensor_parallel', 'rowwise', 'columnwise', ...HEAD_KINDS];

/** The per-weight strategies a tensor-parallel attention layer implies. */
export interface AttentionWeightStrategies {
  /** q_proj weight and bias: rowwise by query head (GQA-aware, padded where KV runs are unequal). */
  q: ShardingStrategy;
  /** k_proj / v_proj weight and bias: rowwise by KV head (a straddling KV head on both devices). */
  kv: ShardingStrategy;
  /** qkv_proj (stacked): by thirds, each third as q / kv above. */
  qkv: ShardingStrategy;
  /** o_proj: columnwise by query head; its bias on device 0 only. */
  o: ShardingStrategy;
  /** q_norm / k_norm weights: replicated. */
  norm: ShardingStrategy;
}

/**
 * How a layer's weights spread over devices (after the reference's `ShardingStrategy`).
 * Layer strategies: `replicate` (every device holds everything), `tensor_parallel` (attention
 * heads split across devices; see `weightStrategies`). Weight strategies, each with
 * `shard(weight, device)`: `rowwise` / `columnwise` (even split of dim 0 / 1, remainder to the
 * first devices), and the head-aware ones, which follow `splitHeads`: `q_head_rowwise`,
 * `kv_head_rowwise`, `stacked_qkv`, `head_aware_columnwise`.
 *
 * @example
 * const s = ShardingStrategy.tensorParallel(2);
 * const { q, o } = s.weightStrategies({ numHeads: 16, numKvHeads: 4, headDim: 64 });
 * const q0 = q.shard({ data: qWeight, shape: [1024, 1024] }, 0); // rows of heads 0..7: [512, 1024]
 */
export class ShardingStrategy {
  readonly heads: HeadLayout | null;
  private splitCache: ShardHeads[] | null = null;

  constructor(readonly kind: ShardingKind, readonly numDevices: number, heads?: HeadLayout | null) {
    check(KINDS.includes(kind), 'ShardingStrategy', () => `kind must be one of ${KINDS.join(', ')}, got '${kind}'`);
    checkInt(numDevices, 'ShardingStrategy', 'numDevices', 1);
    this.heads = heads ? { numHeads: heads.numHeads, numKvHeads: heads.numKvHeads, headDim: heads.headDim } : null;
    check(!HEAD_KINDS.includes(kind) || this.heads !== null, 'ShardingStrategy', () => `kind '${kind}' needs a head layout {numHeads, numKvHeads, headDim}`);
    if (this.heads) {
      checkInt(this.heads.headDim, 'ShardingStrategy', 'heads.headDim', 1);
      this.splitCache = splitHeads(this.heads.numHeads, this.heads.numKvHeads, numDevices); // validates the counts
    }
  }
  static replicate(numDevices: number): ShardingStrategy { return new ShardingStrategy('replicate', numDevices); }
  static tensorParallel(numDevices: number): ShardingStrategy { return new ShardingStrategy('tensor_parallel', numDevices); }
  static rowwise(numDevices: number): ShardingStrategy { return new ShardingStrategy('rowwise', numDevices); }
  static columnwise(numDevices: number): ShardingStrategy { return new ShardingStrategy('columnwise', numDevices); }
  static qHeadRowwise(numDevices: number, h: HeadLayout): ShardingStrategy { return new ShardingStrategy('q_head_rowwise', numDevices, h); }
  static kvHeadRowwise(numDevices: number, h: HeadLayout): ShardingStrategy { return new ShardingStrategy('kv_head_rowwise', numDevices, h); }
  static stackedQkv(numDevices: number, h: HeadLayout): ShardingStrategy { return new ShardingStrategy('stacked_qkv', numDevices, h); }
  static headAwareColumnwise(numDevices: number, h: HeadLayout): ShardingStrategy { return new ShardingStrategy('head_aware_columnwise', numDevices, h); }

  get isTensorParallel(): boolean { return this.kind === 'tensor_parallel'; }

  /** The head split (head-aware kinds only). */
  get split(): ShardHeads[] {
    check(this.splitCache !== null, 'ShardingStrategy', () => `kind '${this.kind}' has no head split`);
    return this.splitCache;
  }

  /** The weight strategies of a tensor-parallel (or replicated) attention layer with these heads. */
  weightStrategies(h: HeadLayout): AttentionWeightStrategies {
    const n = this.numDevices;
    if (this.kind === 'replicate') {
      const r = ShardingStrategy.replicate(n);
      return { q: r, kv: r, qkv: r, o: r, norm: r };
    }
    check(this.kind === 'tensor_parallel', 'ShardingStrategy.weightStrategies', () => `kind must be 'tensor_parallel' or 'replicate', got '${this.kind}'`);
    return {
      q: ShardingStrategy.qHeadRowwise(n, h), kv: ShardingStrategy.kvHeadRowwise(n, h), qkv: ShardingStrategy.stackedQkv(n, h),
      o: ShardingStrategy.headAwareColumnwise(n, h), norm: ShardingStrategy.replicate(n),
    };
  }

  /**
   * Device `index`'s part of weight `w` (`[out, in]` or a 1-D bias). Returns null only for the
   * bias of `head_aware_columnwise` on devices other than 0 (the bias is added once, so the sum of
   * the partial outputs is right).
   */
  shard(w: HostTensor, index: number): HostTensor | null {
    const where = `ShardingStrategy(${this.kind}).shard`;
    checkInt(index, where, 'index', 0);
    check(index < this.numDevices, where, () => `index (${index}) must be < numDevices (${this.numDevices})`);
    check(w.shape.length === 1 || w.shape.length === 2, where, () => `weight must be 1-D or 2-D, got shape [${w.shape}]`);
    const size = w.shape.reduce((a, b) => a * b, 1);
    check(w.data.length === size, where, () => `weight data length (${w.data.length}) must match shape [${w.shape}] (${size})`);
    const rows = w.shape[0], cols = w.shape.length === 2 ? w.shape[1] : 1;
    const out = (data: Float32Array, r: number): HostTensor => ({ data, shape: w.shape.length === 2 ? [r, cols] : [r] });
    switch (this.kind) {
      case 'replicate': return { data: w.data.slice(), shape: w.shape.slice() };
      case 'tensor_parallel':
        return check(false, where, () => `'tensor_parallel' is a layer strategy; shard weights with weightStrategies(...)`) as never;
      case 'rowwise': {
        const [start, count] = evenRange(rows, this.numDevices, index);
        return out(w.data.slice(start * cols, (start + count) * cols), count);
      }
      case 'columnwise': {
        check(w.shape.length === 2, where, () => `columnwise needs a 2-D weight, got shape [${w.shape}]`);
        const [start, count] = evenRange(cols, this.numDevices, index);
        return gatherCols(w, Array.from({ length: count }, (_, j) => start + j));
      }
    }
    const { numHeads, numKvHeads, headDim: hd } = this.heads!;
    const s = this.split[index];
    const qDim = numHeads * hd, kvDim = numKvHeads * hd;
    const qRows = s.localHeads.flatMap((h) => range(h * hd, hd));
    const kvRows = range(s.kvStart * hd, (s.kvEnd - s.kvStart) * hd);
    const expectRows = (want: number) => check(rows === want, where, () => `weight dim 0 (${rows}) must be ${want} for ${numHeads} heads / ${numKvHeads} KV heads of ${hd}`);
    switch (this.kind) {
      case 'q_head_rowwise': expectRows(qDim); return gatherRows(w, qRows);
      case 'kv_head_rowwise': expectRows(kvDim); return gatherRows(w, kvRows);
      case 'stacked_qkv':
        expectRows(qDim + 2 * kvDim);
        return gatherRows(w, [...qRows, ...kvRows.map((r) => r + qDim), ...kvRows.map((r) => r + qDim + kvDim)]);
      default: { // head_aware_columnwise
        if (w.shape.length === 1) return index === 0 ? { data: w.data.slice(), shape: w.shape.slice() } : null;
        check(cols === qDim, where, () => `weight dim 1 (${cols}) must be numHeads * headDim (${qDim})`);
        const colIdx = s.localHeads.flatMap((h, j) => s.real[j] ? range(h * hd, hd) : Array<number>(hd).fill(-1));
        return gatherCols(w, colIdx);
      }
    }
  }

  toJSON(): { kind: ShardingKind; numDevices: number; heads?: HeadLayout } {
    return this.heads ? { kind: this.kind, numDevices: this.numDevices, heads: { ...this.heads } } : { kind: this.kind, numDevices: this.numDevices };
  }
  static fromJSON(j: { kind: ShardingKind; numDevices: number; heads?: HeadLayout | null }): ShardingStrategy {
    return new ShardingStrategy(j.kind, j.numDevices, j.heads ?? null);
  }
}

/** `[start, count)` of device `index` when `n` items split over `d` devices, remainder first. */
function evenRange(n: number, d: number, index: number): [number, number] {
  const base = Math.floor(n / d), rem = n % d;
  return [index * base + Math.min(index, rem), base + (index < rem ? 1 : 0)];
}

function range(start: number, count: number): number[] { return Array.from({ length: count }, (_, i) => start + i); }

function gatherRows(w: HostTensor, rowIdx: number[]): HostTensor {
  const cols = w.shape.length === 2 ? w.shape[1] : 1;
  const data = new Float32Array(rowIdx.length * cols);
  rowIdx.forEach((r, i) => data.set(w.data.subarray(r * cols, (r + 1) * cols), i * cols));
  return { data, shape: w.shape.length === 2 ? [rowIdx.length, cols] : [rowIdx.length] };
}

/** Columns `colIdx` of a 2-D weight; -1 makes a zero column. */
function gatherCols(w: HostTensor, colIdx: number[]): HostTensor {
  const [rows, cols] = w.shape;
  const n = colIdx.length;
  const data = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < n; j++) if (colIdx[j] >= 0) data[r * n + j] = w.data[r * cols + colIdx[j]];
  }
  return { data, shape: [rows, n] };
}

export { headCounts, splitHeads };
