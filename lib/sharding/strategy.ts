import { check, checkInt } from '../errors.js';

/**
 * How a layer's weights spread over devices (after the reference's `ShardingStrategy`).
 * `replicate`: every device holds everything; `tensor_parallel`: attention heads split across devices.
 *
 * @example
 * const s = ShardingStrategy.tensorParallel(2);
 */
export class ShardingStrategy {
  constructor(readonly kind: 'replicate' | 'tensor_parallel', readonly numDevices: number) {
    check(kind === 'replicate' || kind === 'tensor_parallel', 'ShardingStrategy', () =>
      `kind must be 'replicate' or 'tensor_parallel', got '${kind}'`);
    checkInt(numDevices, 'ShardingStrategy', 'numDevices', 1);
  }
  static replicate(numDevices: number): ShardingStrategy { return new ShardingStrategy('replicate', numDevices); }
  static tensorParallel(numDevices: number): ShardingStrategy { return new ShardingStrategy('tensor_parallel', numDevices); }
  get isTensorParallel(): boolean { return this.kind === 'tensor_parallel'; }
  toJSON(): { kind: string; numDevices: number } { return { kind: this.kind, numDevices: this.numDevices }; }
  static fromJSON(j: { kind: 'replicate' | 'tensor_parallel'; numDevices: number }): ShardingStrategy {
    return new ShardingStrategy(j.kind, j.numDevices);
  }
}
