/**
 * Data-parallel training over MPI: every rank holds the whole model, takes its share of each
 * global batch, and the ranks sum their gradients in one fused allreduce per step (every
 * gradient flattened into one buffer, plus any scalars riding along), so every rank applies the
 * same update and the weights stay identical (checked by `checkIdentical`). Only trainable
 * variables' gradients cross the wire: with LoRA that is the adapters alone.
 *
 * For your own loop: `allreduceGradients` between `variableGrads` and `applyGradients`. For
 * `model.fit`: wrap the optimizer in `DataParallelOptimizer` and pass `dp.fitCallback(model)`.
 */
import * as tf from '@tensorflow/tfjs';
import { check } from '../errors.js';
import { MpiComm, type MpiCommOptions, fnv1a } from '../mpi/comm.js';

type NamedTensor = { name: string; tensor: tf.Tensor };

const W = 'DataParallel';

/** Floats of the layout check appended to every gradient allreduce. */
export const LAYOUT_FLOATS = 4;

/**
 * A data-parallel group: all ranks of the MPI job.
 *
 * @example
 * // mpirun -np 2 --oversubscribe node train.js
 * const dp = DataParallel.init();
 * dp.broadcastVariables(vars);                          // rank 0's initial weights everywhere
 * const local = dp.slice(globalBatch);                  // this rank's examples
 * const { grads } = tf.variableGrads(() => lossOf(local), vars);
 * const summed = dp.allreduceGradients(grads, { average: true }).grads; // one allreduce
 * opt.applyGradients(summed);
 * dp.checkIdentical(vars);                              // throws on every rank if any differs
 */
export class DataParallel {
  /** The gradients' names and sizes every rank agreed on at the first allreduceGradients. */
  private layout: { key: string; floats: number } | null = null;

  constructor(readonly comm: MpiComm) {}

  /** Joins the MPI world (mpirun's ranks; a plain `node` process is a world of 1). */
  static init(opts: MpiCommOptions = {}): DataParallel {
    return new DataParallel(MpiComm.world(opts));
  }

  get rank(): number { return this.comm.rank; }
  get size(): number { return this.comm.size; }
  get isRoot(): boolean { return this.comm.rank === 0; }

  /** This rank's `[start, end)` of `n` items: contiguous, the remainder to the first ranks. */
  range(n: number): [number, number] {
    check(Number.isInteger(n) && n >= this.size, W, () => `the global batch (${n}) must be an integer >= the number of ranks (${this.size})`);
    const base = Math.floor(n / this.size), extra = n % this.size;
    const start = this.rank * base + Math.min(this.rank, extra);
    return [start, start + base + (this.rank < extra ? 1 : 0)];
  }

  /** This rank's share of a global batch (see `range`). */
  slice<T>(items: readonly T[]): T[] {
    const [a, b] = this.range(items.length);
    return items.slice(a, b);
  }

  /**
   * Sums `grads` over every rank in one allreduce (the tensors flattened in their key order,
   * `extras` appended) and returns new tensors, divided by the number of ranks when `average`
   * (the extras are always sums: loss parts, counts). Disposes the input tensors. The first call
   * checks that every rank sends the same names and sizes; later calls send a hash of them in the
   * same buffer, so a rank that sends other gradients fails every rank.
   */
  allreduceGradients(grads: tf.NamedTensorMap, opts: { average?: boolean; extras?: number[] } = {}): { grads: tf.NamedTensorMap; extras: number[] } {
    const names = Object.keys(grads);
    const sizes = names.map((n) => grads[n].size);
    const extras = opts.extras ?? [];
    const nGrad = sizes.reduce((s, x) => s + x, 0);
    const key = `${names.map((n, i) => `${n}:${sizes[i]}`).join(',')}|${extras.length}`;
    if (!this.layout) { // the first call: every rank must send the same (a different length would be undefined behaviour in MPI)
      try {
        this.comm.agreeSame(key, W, 'the gradients (names, sizes and extras; every rank must build the same model)');
      } catch (e) { tf.dispose(grads); throw e; }
      this.layout = { key, floats: nGrad + extras.length };
    }
    // Later calls send the agreed length whatever happens, with the hash of what this rank has
    // as LAYOUT_FLOATS bytes (sums exact in float32 up to 65,536 ranks): every rank must get
    // size x its own bytes back, else some rank sent other gradients; nobody's memory is at risk.
    const same = key === this.layout.key, n = this.layout.floats;
    const h = fnv1a(key);
    const hashBytes = [h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff];
    const buf = new Float32Array(n + LAYOUT_FLOATS);
    if (same) {
      let off = 0;
      names.forEach((name, i) => { buf.set(grads[name].dataSync() as Float32Array, off); off += sizes[i]; });
      buf.set(extras, off);
    }
    buf.set(hashBytes, n);
    this.comm.allreduceSum(buf);
    const agreed = hashBytes.every((x, i) => buf[n + i] === this.size * x);
    if (!agreed || !same) tf.dispose(grads);
    check(same, W, () => `this rank's gradients (${names.length} tensors, ${nGrad} floats, ${extras.length} extras) are not those of the first call `
      + `(${this.layout!.key.split(',').length} tensors, ${this.layout!.floats} floats with extras); after changing the trainable variables call resetLayout() on every rank`);
    check(agreed, W, () => 'another rank sent other gradients (names, sizes or extras) than this one; every rank must build the same model and pass the same variables');
    if (opts.average && this.size > 1) {
      const inv = 1 / this.size;
      for (let i = 0; i < nGrad; i++) buf[i] *= inv; // the gradients; extras stay sums
    }
    const out: tf.NamedTensorMap = {};
    let off = 0;
    names.forEach((name, i) => {
      out[name] = tf.tensor(buf.subarray(off, off + sizes[i]), grads[name].shape, 'float32');
      off += sizes[i];
    });
    tf.dispose(grads);
    return { grads: out, extras: Array.from(buf.subarray(nGrad, nGrad + extras.length)) };
  }

  /** Forgets the gradients' layout (call on every rank after changing the trainable variables). */
  resetLayout(): void { this.layout = null; }

  /** Overwrites every variable with rank `root`'s values (one broadcast of them all). */
  broadcastVariables(vars: readonly tf.Variable[], root = 0): void {
    this.comm.agreeSame(vars.map((v) => `${v.name}:${v.size}`).join(','), W, 'the variables (names and sizes; every rank must build the same model)');
    const all = new Float32Array(vars.reduce((s, v) => s + v.size, 0));
    let off = 0;
    for (const v of vars) { all.set(v.dataSync() as Float32Array, off); off += v.size; }
    this.comm.broadcast(all, root);
    if (this.rank === root) return;
    off = 0;
    for (const v of vars) {
      tf.tidy(() => v.assign(tf.tensor(all.subarray(off, off + v.size), v.shape, 'float32')));
      off += v.size;
    }
  }

  /**
   * Checks that every rank holds bit-identical `vars` (a hash of their bytes, compared with
   * rank 0's); throws on every rank, naming how many differ, when any does.
   */
  checkIdentical(vars: readonly tf.Variable[]): void {
    this.comm.agreeSame(vars.map((v) => v.dataSync() as Float32Array), W, `weights (hash of ${vars.length} variables)`);
  }

  /**
   * A tfjs callback for `model.fit` on every rank: at the start, rank 0's weights go to every
   * rank; at the end, the weights are checked identical.
   */
  fitCallback(model: { weights: tf.LayerVariable[] }): tf.CustomCallback {
    const vars = () => model.weights.map((w) => w.read() as tf.Variable);
    return new tf.CustomCallback({
      onTrainBegin: async () => { this.broadcastVariables(vars()); },
      onTrainEnd: async () => { this.checkIdentical(vars()); },
    });
  }

}

/**
 * An optimizer that averages gradients over the data-parallel ranks before `inner` applies them:
 * for `model.fit` (which calls `minimize`, hence `applyGradients`) and `opt.minimize` loops.
 * With a mean loss, the average is the global batch's gradient when every rank's batch has the
 * same size (a global batch divisible by the ranks); with unequal shares scale each rank's loss
 * by its share instead and sum (`allreduceGradients`, as train/data_parallel.ts does).
 *
 * @example
 * const dp = DataParallel.init();
 * model.compile({ optimizer: new DataParallelOptimizer(tf.train.adam(1e-3), dp), loss: 'meanSquaredError' });
 * const [a, b] = dp.range(xs.shape[0]);                 // this rank's rows of the global batch
 * await model.fit(xs.slice(a, b - a), ys.slice(a, b - a), { batchSize: 32 / dp.size, shuffle: false, callbacks: [dp.fitCallback(model)] });
 */
export class DataParallelOptimizer extends tf.Optimizer {
  static get className(): string { return 'DataParallelOptimizer'; }

  constructor(readonly inner: tf.Optimizer, readonly dp: DataParallel) {
    super();
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | NamedTensor[]): void {
    const map: tf.NamedTensorMap = Array.isArray(variableGradients)
      ? Object.fromEntries(variableGradients.map((g) => [g.name, g.tensor])) : variableGradients;
    // The caller (minimize) disposes its gradients; allreduceGradients disposes what it is given.
    const copies: tf.NamedTensorMap = {};
    for (const [n, t] of Object.entries(map)) copies[n] = t.clone();
    const { grads } = this.dp.allreduceGradients(copies, { average: true });
    this.inner.applyGradients(grads);
    tf.dispose(grads);
  }

  override async getWeights(): Promise<NamedTensor[]> { return this.inner.getWeights(); }
  override async setWeights(weightValues: NamedTensor[]): Promise<void> { return this.inner.setWeights(weightValues); }
  override getConfig(): tf.serialization.ConfigDict { return this.inner.getConfig(); }
  override dispose(): void { this.inner.dispose(); super.dispose(); }
  override get iterations(): number { return this.inner.iterations; }
}
