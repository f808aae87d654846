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
import { MpiComm, type MpiCommOptions } from '../mpi/comm.js';

type NamedTensor = { name: string; tensor: tf.Tensor };

const W = 'DataParallel';

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
  /** Layouts (names and sizes) already agreed on by every rank. */
  private readonly agreedLayouts = new Set<string>();

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
   * (the extras are always sums: loss parts, counts).
   * Disposes the input tensors. The first call with a new set of names and sizes first checks
   * that every rank sends the same layout (a mismatch fails every rank).
   */
  allreduceGradients(grads: tf.NamedTensorMap, opts: { average?: boolean; extras?: number[] } = {}): { grads: tf.NamedTensorMap; extras: number[] } {
    const names = Object.keys(grads);
    const sizes = names.map((n) => grads[n].size);
    const extras = opts.extras ?? [];
    const total = sizes.reduce((s, x) => s + x, 0) + extras.length;
    this.agreeLayout(`${names.map((n, i) => `${n}:${sizes[i]}`).join(',')}|${extras.length}`);
    const buf = new Float32Array(total);
    let off = 0;
    names.forEach((n, i) => { buf.set(grads[n].dataSync() as Float32Array, off); off += sizes[i]; });
    buf.set(extras, off);
    this.comm.allreduceSum(buf);
    if (opts.average && this.size > 1) {
      const inv = 1 / this.size;
      for (let i = 0; i < total - extras.length; i++) buf[i] *= inv; // the gradients; extras stay sums
    }
    const out: tf.NamedTensorMap = {};
    off = 0;
    names.forEach((n, i) => {
      out[n] = tf.tensor(buf.subarray(off, off + sizes[i]), grads[n].shape, 'float32');
      off += sizes[i];
    });
    tf.dispose(grads);
    return { grads: out, extras: Array.from(buf.subarray(off)) };
  }

  /** Overwrites every variable with rank `root`'s values (one broadcast per variable). */
  broadcastVariables(vars: readonly tf.Variable[], root = 0): void {
    this.agreeLayout(vars.map((v) => `${v.name}:${v.size}`).join(','));
    for (const v of vars) {
      const data = Float32Array.from(v.dataSync() as Float32Array);
      this.comm.broadcast(data, root);
      if (!this.isRootOf(root)) v.assign(tf.tensor(data, v.shape, 'float32'));
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

  private isRootOf(root: number): boolean { return this.rank === root; }

  /** Once per layout: every rank must send the same names and sizes, else every rank throws. */
  private agreeLayout(layout: string): void {
    if (this.agreedLayouts.has(layout)) return;
    this.comm.agreeSame(layout, W, 'the trainable variables (names and sizes; every rank must build the same model)');
    this.agreedLayouts.add(layout);
  }
}

/**
 * An optimizer that averages gradients over the data-parallel ranks before `inner` applies them:
 * for `model.fit` (which calls `minimize`, hence `applyGradients`) and `opt.minimize` loops.
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
